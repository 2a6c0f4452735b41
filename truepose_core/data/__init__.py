"""Data sets: SynthFashion (procedural) and DeepFashion (the PGPIS benchmark)."""
