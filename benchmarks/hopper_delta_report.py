"""Report of the Hopper delta sweep (``benchmarks/hopper_delta_sweep.sh``; paper Fig. 12, App. E).

Reads the sweep's run folders under ``--runs`` and writes into ``--out``:

- ``learning_curves_LPDS-Hopper-v0.{png,pdf}`` and ``final_performance.md`` (``lpds plot``: evaluation return against
  raw env steps, mean and 95% bootstrap band over seeds, one curve per delta);
- ``final_vs_backbone.json`` (cache) and ``summary.md``: each final model against the frozen backbone on the same
  ``--episodes`` reset seeds (20000 + i), per run and per delta (mean gain over seeds).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/hopper_delta_report.py [--runs DIR] [--out DIR] [--steps 20000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_repo_to_path, final_vs_backbone  # noqa: E402

add_repo_to_path()

from lpds_envs.experiment.plotting import plot_runs  # noqa: E402

ENV_ID = "LPDS-Hopper-v0"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", default="benchmarks/results/runs_delta_sweep")
    p.add_argument("--out", default="benchmarks/results/hopper_delta")
    p.add_argument("--steps", type=int, default=20_000, help="the sweep's budget (raw env steps)")
    p.add_argument("--episodes", type=int, default=50)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot_runs([args.runs], out=out, max_steps=args.steps)
    table = final_vs_backbone(Path(args.runs), out, ENV_ID, args.episodes, max_steps=args.steps)
    (out / "summary.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
