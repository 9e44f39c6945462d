"""Report of the LPDS-Hopper-v0 study (``benchmarks/hopper_study.sh``): curves, the frozen backbones, a final table.

Reads the ``lpds train`` run folders under ``--runs`` and writes into ``--out``:

- ``learning_curves_LPDS-Hopper-v0.{png,pdf}`` and ``final_performance.md`` (via ``lpds plot``: evaluation return
  against raw env steps, mean and 95% bootstrap band over seeds);
- ``backbone.json``: each frozen backbone (diffusion, flow) with prior latents ``w ~ N(0, I)`` clipped to the
  task's latent box, ``--backbone-episodes`` full episodes;
- ``summary.md``: per variant, the final evaluation (mean ± std over seeds), the best evaluation along the curve,
  the gap to the frozen backbone the variant steers, and each run's change from its own step-0 evaluation (the
  untrained policy on the same evaluation episode seeds, which removes the reset-seed noise of 10-episode means).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/hopper_report.py [--runs DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_repo_to_path, final_vs_backbone  # noqa: E402

add_repo_to_path()

ENV_ID = "LPDS-Hopper-v0"


def evaluate_backbone(kind: str, episodes: int, seed: int) -> dict:
    """The frozen ``kind`` backbone with prior latents over ``episodes`` episodes (10 sub-envs at a time)."""
    from lpds_envs import make_latent_vec_env
    from lpds_envs.evaluation import prior_latents, run_episodes

    returns, lengths = [], []
    for k in range(0, episodes, 10):
        venv = make_latent_vec_env(ENV_ID, n_envs=min(10, episodes - k), seed=seed + k, backbone=kind)
        batch = run_episodes(venv, prior_latents(venv.action_space.shape[0], seed=seed + k))
        returns += batch.returns.tolist()
        lengths += batch.lengths.tolist()
        venv.close()
    return {
        "episodes": len(returns),
        "seed": seed,
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
        "return_sem": float(np.std(returns) / np.sqrt(len(returns))),
        "length_mean": float(np.mean(lengths)),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", default="benchmarks/results/runs_hopper")
    p.add_argument("--out", default="benchmarks/results/hopper")
    p.add_argument("--backbone-episodes", type=int, default=50)
    p.add_argument(
        "--max-steps",
        type=int,
        default=0,
        help="report each run's evaluations up to this many raw env steps (0: all), to compare runs "
        "that were extended to a larger budget at a common one",
    )
    p.add_argument(
        "--final-episodes",
        type=int,
        default=0,
        help="also evaluate each finished run's final model (model.zip, at its budget) and the frozen "
        "backbone on the same N episodes (lpds evaluate --vs-backbone); 0: skip",
    )
    p.add_argument("--final-variants", nargs="+", default=None, help="run names to do that for (default: all)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from lpds_envs.experiment.plotting import find_runs, group_runs, plot_runs

    max_steps = args.max_steps or None
    plot_runs([args.runs], out=out, max_steps=max_steps)

    backbone_path = out / "backbone.json"
    backbone = json.loads(backbone_path.read_text()) if backbone_path.is_file() else {}
    for kind in ("diffusion", "flow"):
        if kind not in backbone:
            backbone[kind] = evaluate_backbone(kind, args.backbone_episodes, seed=20_000)
            backbone_path.write_text(json.dumps(backbone, indent=1))
            print(f"{kind} backbone: {backbone[kind]['return_mean']:.1f} ± {backbone[kind]['return_sem']:.1f} (sem)")

    rows = [
        "| policy | seeds | final raw env steps | final return (mean ± std) | best eval along the curve (mean ± std) "
        "| final − backbone | final − the run's step-0 evaluation (same episode seeds) |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("diffusion", "flow"):
        b = backbone[kind]
        rows.append(
            f"| frozen {kind} backbone (prior latents, {b['episodes']} episodes) | - | - | "
            f"{b['return_mean']:.1f} ± {b['return_std']:.1f} | - | - | - |"
        )
    for label, runs in sorted(group_runs(find_runs([args.runs], max_steps)).get(ENV_ID, {}).items()):
        finals = [run.returns[-1] for run in runs]
        final_steps = [int(run.steps[-1]) for run in runs]
        bests = [run.returns.max() for run in runs]
        gains = [run.returns[-1] - run.returns[0] for run in runs]
        kind = runs[0].cfg.hyperparams.get("env_kwargs", {}).get("backbone", "diffusion")
        ret = np.array(finals)
        rows.append(
            f"| {label} ({kind}) | {len(finals)} | {', '.join(map(str, sorted(set(final_steps))))} | "
            f"{ret.mean():.1f} ± {ret.std():.1f} | {np.mean(bests):.1f} ± {np.std(bests):.1f} | "
            f"{ret.mean() - backbone[kind]['return_mean']:+.1f} | "
            f"{', '.join(f'{g:+.0f}' for g in gains)} (mean {np.mean(gains):+.1f}) |"
        )
    table = "\n".join(rows) + "\n"
    if args.final_episodes:
        table += "\n" + final_vs_backbone(
            Path(args.runs), out, ENV_ID, args.final_episodes, max_steps, args.final_variants
        )
    (out / "summary.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
