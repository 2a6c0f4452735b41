"""Run every benchmark and print their tables (the README carries the latest output)."""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="256x176 only for the step cost")
    parser.add_argument("--skip-comfy", action="store_true")
    args = parser.parse_args()
    from bench import attention, demo_run, poses, step_cost, synth_render

    sections = [attention.main(), poses.main(), demo_run.main(), synth_render.main()]
    res = ((256, 176),) if args.small else ((256, 176), (512, 352))
    sections.append(step_cost.main(res))
    if not args.skip_comfy:
        from bench import comfy_step

        sections.append(comfy_step.main(small=args.small))
    print("\n\n".join(sections))


if __name__ == "__main__":
    main()
