"""TruePose: human-parsing-guided attention diffusion for pose transfer, host-agnostic PyTorch.

Submodules are imported on demand; importing this package does no work.
"""

__version__ = "0.1.0"
