"""Report of a robomimic steering study (``benchmarks/robomimic_study.sh``): success curves, the backbone, a table.

Reads the ``lpds train`` run folders of ``LPDS-<task>-v0`` under ``--runs`` and writes into ``--out``:

- ``learning_curves_LPDS-<task>-v0.{png,pdf}`` and ``final_performance.md`` (via ``lpds plot``: evaluation return
  and success rate against raw env steps, mean and 95% bootstrap band over seeds);
- ``summary.md``: per variant, the final success rate and return (mean ± std over seeds), the best success along the
  curve, each run's change from its own step-0 evaluation (the untrained policy, i.e. close to the frozen backbone, on
  the same evaluation episode seeds), against the shipped backbone's 50-episode success from its card (``eval.json``);
  with ``--final-episodes N`` also each finished run's final model against the frozen backbone on the same N episodes
  (paired reset seeds: success and return gains with standard errors, cached in ``final_vs_backbone.json``).

Run it in the robomimic environment (without ``--final-episodes`` it reads the runs only)::

    python benchmarks/robomimic_report.py --task Lift [--runs DIR] [--out DIR] [--max-steps N] [--final-episodes N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_repo_to_path, final_vs_backbone, markdown_table  # noqa: E402

add_repo_to_path()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", required=True, choices=["Lift", "Can", "Square"])
    p.add_argument("--runs", default="benchmarks/results/runs_robomimic")
    p.add_argument("--out", default=None, help="default: benchmarks/results/robomimic_<task>")
    p.add_argument(
        "--max-steps", type=int, default=0, help="report each run's evaluations up to this many raw env steps (0: all)"
    )
    p.add_argument(
        "--final-episodes",
        type=int,
        default=0,
        help="also evaluate each finished run's final model and the frozen backbone on the same N "
        "episodes (lpds evaluate --vs-backbone); 0: skip",
    )
    args = p.parse_args(argv)
    env_id = f"LPDS-{args.task}-v0"
    out = Path(args.out or f"benchmarks/results/robomimic_{args.task.lower()}")
    out.mkdir(parents=True, exist_ok=True)

    from lpds_envs.backbones.shipped import CHECKPOINT_DIR
    from lpds_envs.backbones.zoo.robomimic import checkpoint_name
    from lpds_envs.experiment.plotting import find_runs, group_runs, plot_runs

    max_steps = args.max_steps or None
    runs = Path(args.runs) / env_id  # the study writes <runs>/<env id>/<variant>/seed_<n>: plot this task only
    if not runs.is_dir():
        raise SystemExit(f"no runs of {env_id} under {args.runs}; run benchmarks/robomimic_study.sh first")
    groups = group_runs(find_runs([runs], max_steps)).get(env_id, {})
    if not groups:
        raise SystemExit(f"no evaluated runs of {env_id} under {args.runs}; run benchmarks/robomimic_study.sh first")
    plot_runs([runs], out=out, max_steps=max_steps)
    header = [
        "policy",
        "seeds",
        "final raw env steps",
        "final success (mean ± std)",
        "best success along the curve",
        "final return (mean ± std)",
        "final − step-0 success, per seed",
    ]
    rows: list[list[str]] = []
    for kind in ("diffusion", "flow"):
        ev_path = CHECKPOINT_DIR / checkpoint_name(args.task.lower(), kind) / "eval.json"
        if ev_path.is_file():
            ev = json.loads(ev_path.read_text())
            rows.append(
                [
                    f"frozen {kind} backbone (prior latents, {ev['episodes']} episodes, card)",
                    "-",
                    "-",
                    f"{ev['success_rate']:.2f}",
                    "-",
                    "-",
                    "-",
                ]
            )
    for label, runs in sorted(groups.items()):
        finals, steps_at, bests, rets, gains = [], [], [], [], []
        for run in runs:
            suc, ret = run.success, run.returns
            finals.append(suc[-1])
            steps_at.append(int(run.steps[-1]))
            bests.append(suc.max())
            rets.append(ret[-1])
            gains.append(suc[-1] - suc[0])
        kind = runs[0].cfg.hyperparams.get("env_kwargs", {}).get("backbone", "diffusion")
        rows.append(
            [
                f"{label} ({kind})",
                str(len(finals)),
                ", ".join(map(str, sorted(set(steps_at)))),
                f"{np.mean(finals):.2f} ± {np.std(finals):.2f}",
                f"{np.mean(bests):.2f} ± {np.std(bests):.2f}",
                f"{np.mean(rets):.1f} ± {np.std(rets):.1f}",
                ", ".join(f"{g:+.2f}" for g in gains),
            ]
        )
    table = markdown_table(header, rows) + "\n"
    if args.final_episodes:
        table += "\n" + final_vs_backbone(Path(args.runs), out, env_id, args.final_episodes, max_steps, success=True)
    (out / "summary.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
