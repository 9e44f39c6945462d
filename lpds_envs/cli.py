"""The ``lpds`` command line. Subcommands: ``demo`` (more arrive with the training CLI)."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="lpds", description="Steer frozen generative policies with online RL.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="steer the shipped toy backbone with LP-DS and DSRL-SAC and show before/after")
    demo.add_argument("--steps", type=int, default=4000, help="env steps of steering per method (default 4000)")
    demo.add_argument("--rollouts", type=int, default=1000, help="evaluation rollouts (default 1000)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="lpds_demo", help="folder for the trajectory PNG and JSON summary")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        run_demo(steps=args.steps, rollouts=args.rollouts, seed=args.seed, out=args.out)


if __name__ == "__main__":
    main()
