"""Does LP-DS (and DSRL-NA) learn the same with a fast TD target? Toy mode coverage and Hopper gains, exact vs fast.

Reads the ``lpds train`` runs under ``benchmarks/results/runs_td_target`` (see docs/results/speed.md for the
commands that make them):

- ``LPDS-MultiGoal-v0/<lpds|dsrl-na>-<variant>/seed_<k>``: each final model's stochastic policy from the origin, 1000 rollouts
  (reset seed 10000 + k, as the toy study), per-goal fractions (a goal is kept at >= 5% of rollouts), the max-goal
  share and the mean return; plus the run's wall time.
- ``LPDS-Hopper-v0/<name>/seed_<k>/final_vs_backbone.json``: ``lpds evaluate --vs-backbone`` of the final model on
  50 paired episodes (reset seeds 20000+), set beside the 40k study's exact LP-DS runs
  (``benchmarks/results/hopper_40k/final_vs_backbone.json``, same settings and protocol).

Writes ``benchmarks/results/td_target/report.json`` and prints markdown tables.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/td_target_report.py
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, add_repo_to_path, markdown_table  # noqa: E402

add_repo_to_path()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lpds_envs.evaluation import multigoal_coverage  # noqa: E402
from lpds_envs.experiment.config import get_algo, make_run_env  # noqa: E402
from lpds_envs.experiment.evaluate import load_trained, locate_model  # noqa: E402
from lpds_envs.metrics import model_sampler  # noqa: E402
from lpds_envs.vector import make_latent_vec_env  # noqa: E402

RUNS = REPO_ROOT / "benchmarks" / "results" / "runs_td_target"
OUT = REPO_ROOT / "benchmarks" / "results" / "td_target"
STUDY = REPO_ROOT / "benchmarks" / "results" / "hopper_40k" / "final_vs_backbone.json"


def wall_time(run: Path) -> float | None:
    """The run's training wall time in seconds (its last evaluation's ``time_s``)."""
    path = run / "evaluations.csv"
    if not path.is_file():
        return None
    rows = list(csv.DictReader(path.open()))
    return float(rows[-1]["time_s"]) if rows else None


def toy_coverage(run: Path | None, seed: int) -> dict[str, Any]:
    """Goal coverage of the run's final stochastic policy (LP-DS or DSRL-NA, on the env its config names), or of the
    frozen backbone (prior latents) for ``None``."""
    if run is None:
        venv = make_latent_vec_env("LPDS-MultiGoal-v0", seed=seed)
        cov = multigoal_coverage(venv.decoder, n_rollouts=1000, seed=10_000 + seed)
    else:
        model_path, cfg = locate_model(run)
        venv = make_run_env(get_algo(cfg.algo), cfg.env_id, cfg.env_kwargs, 1, seed, "cpu")
        sampler = model_sampler(load_trained(model_path, cfg.algo, venv, device="cpu"), False)
        cov = multigoal_coverage(
            venv.decoder,
            n_rollouts=1000,
            seed=10_000 + seed,
            latent_fn=lambda obs: sampler(torch.as_tensor(obs)).numpy(),
        )
    fractions = cov["goal_fractions"]
    return {
        "goal_fractions": fractions,
        "goals_kept": int(sum(f >= 0.05 for f in fractions)),
        "max_goal_share": float(max(fractions)),
        "mean_return": float(cov["mean_return"]),
        "wall_s": None if run is None else wall_time(run),
    }


def main() -> None:
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    cache_path = OUT / "report.json"
    report: dict[str, Any] = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    toy = report.setdefault("toy", {})
    for run in sorted(RUNS.glob("LPDS-MultiGoal-v0/*/seed_*")):
        key = f"{run.parent.name}/{run.name}"
        if (run / "model.zip").is_file() and key not in toy:
            toy[key] = toy_coverage(run, int(run.name.split("_")[1]))
            cache_path.write_text(json.dumps(report, indent=1))
        if f"backbone/{run.name}" not in toy:  # the frozen backbone on the same rollout seeds
            toy[f"backbone/{run.name}"] = toy_coverage(None, int(run.name.split("_")[1]))
    rows = [
        [k, " / ".join(f"{f:.2f}" for f in v["goal_fractions"]), v["goals_kept"], f"{v['max_goal_share']:.2f}",
         f"{v['mean_return']:.2f}", f"{v['wall_s']:.0f}" if v["wall_s"] else "-"]
        for k, v in sorted(toy.items())
    ]  # fmt: skip
    print("Toy (LPDS-MultiGoal-v0, 8000 env steps, 1000 rollouts from the origin):")
    print(markdown_table(["run", "goal fractions", "goals kept", "max share", "return", "wall s"], rows))
    for variant in sorted({k.split("/")[0] for k in toy}):
        vals = [v for k, v in toy.items() if k.startswith(variant + "/")]
        print(
            f"{variant}: {len(vals)} seeds, goals kept {[v['goals_kept'] for v in vals]}, max share "
            f"{np.mean([v['max_goal_share'] for v in vals]):.3f}, return {np.mean([v['mean_return'] for v in vals]):.2f}"
        )

    hopper = report.setdefault("hopper", {})
    for path in sorted(RUNS.glob("LPDS-Hopper-v0/*/seed_*/final_vs_backbone.json")):
        r = json.loads(path.read_text())
        run = path.parent
        hopper[f"{run.parent.name}/{run.name}"] = {
            "mean_return": r["mean_return"],
            "gain": r["gain"],
            "gain_se": r["gain_se"],
            "backbone_return": r["backbone"]["mean_return"],
            "wall_s": wall_time(run),
        }
    study = json.loads(STUDY.read_text()) if STUDY.is_file() else {}
    rows = [
        [k.split("@")[0] + " (40k study, exact)", f"{v['mean_return']:.1f}", f"{v['backbone_return']:.1f}",
         f"{v['gain']:+.1f} ± {v['gain_se']:.1f}", "-"]
        for k, v in sorted(study.items()) if k.startswith("lpds-utd2.5-pc8/")
    ]  # fmt: skip
    rows += [
        [k, f"{v['mean_return']:.1f}", f"{v['backbone_return']:.1f}", f"{v['gain']:+.1f} ± {v['gain_se']:.1f}",
         f"{v['wall_s']:.0f}" if v["wall_s"] else "-"]
        for k, v in sorted(hopper.items())
    ]  # fmt: skip
    print("\nHopper (LPDS-Hopper-v0, 40k raw env steps, 50 paired episodes vs the backbone):")
    print(markdown_table(["run", "steered return", "backbone return", "gain ± SE", "wall s"], rows))
    cache_path.write_text(json.dumps(report, indent=1))
    print(f"wrote {cache_path}")


if __name__ == "__main__":
    main()
