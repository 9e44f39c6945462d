"""Report of the Hopper fine-tuning baselines (``benchmarks/hopper_finetune_study.sh``; issue 31): DPPO, IDQL and DQL
next to the Hopper steering study's LP-DS and DSRL-SAC at 40k raw env steps.

Reads the run folders under ``--runs`` and writes into ``--out``:

- ``learning_curves_LPDS-Hopper-v0.{png,pdf}`` and ``final_performance.md`` (``lpds plot``);
- ``final_vs_backbone.json`` (cache): each final model against the frozen diffusion backbone on the steering study's
  50 paired episodes (reset seeds 20000+, ``lpds evaluate --vs-backbone``), seeded with the steering study's own
  entries (``--steering``: ``benchmarks/results/hopper_40k/final_vs_backbone.json``, same episodes, same backbone),
  so LP-DS and DSRL-SAC are compared from their recorded final models;
- ``summary.md``: those tables, each seed as one number per learner with Welch's tests between learners, the final
  action entropy of the fine-tuners (``evaluations.csv``, eq. 11 at 32 states of the last evaluation) and each run's
  wall-clock.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/hopper_finetune_report.py [--runs DIR] [--out DIR] [--steering JSON]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_repo_to_path, final_vs_backbone, keep_records, markdown_table, seed_level_comparison  # noqa: E402

add_repo_to_path()

ENV_ID = "LPDS-Hopper-v0"
#: the steering study's runs compared here (hopper_study.sh's fast LP-DS and DSRL-SAC at DSRL's update ratio)
STEERING = {"lpds-utd2.5-pc8": "LP-DS", "dsrl-pw-utd2.5": "DSRL-SAC"}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", default="benchmarks/results/runs_hopper_ft")
    p.add_argument("--out", default="benchmarks/results/hopper_finetune")
    p.add_argument("--steering", default="benchmarks/results/hopper_40k/final_vs_backbone.json")
    p.add_argument("--episodes", type=int, default=50)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from lpds_envs.experiment.plotting import plot_runs

    out, runs = Path(args.out), Path(args.runs)
    out.mkdir(parents=True, exist_ok=True)
    cache_path = out / "final_vs_backbone.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    steering = json.loads(Path(args.steering).read_text())
    cache.update({k: v for k, v in steering.items() if k.split("/")[0] in STEERING})
    cache_path.write_text(json.dumps(cache, indent=1))

    keep_records(runs, ENV_ID, out)
    plot_runs([runs], out=out)
    table = final_vs_backbone(runs, out, ENV_ID, args.episodes)
    cache = json.loads(cache_path.read_text())

    groups: dict[str, list[dict]] = {}
    for key, c in sorted(cache.items()):
        variant, rest = key.split("/", 1)
        if rest.endswith(f"x{args.episodes}"):
            groups.setdefault(STEERING.get(variant, variant.upper()), []).append(c)
    backbones = {round(c["backbone_return"], 3) for cs in groups.values() for c in cs}
    text = (
        "All learners' final models against the frozen diffusion backbone on the same 50 reset seeds (20000+); "
        f"the backbone's return on them: {', '.join(f'{b:.1f}' for b in sorted(backbones))}.\n"
        + seed_level_comparison(groups)
    )

    rows = []
    for run_dir in sorted(runs.glob(f"{ENV_ID}/*/seed_*")):
        with open(run_dir / "evaluations.csv") as f:
            evals = list(csv.DictReader(f))
        if not evals or not (run_dir / "model.zip").is_file():
            continue
        first, last = evals[0], evals[-1]
        rows.append(
            [
                f"{run_dir.parent.name}/{run_dir.name}",
                last["raw_env_steps"],
                f"{float(last['time_s']) / 60:.1f}",
                f"{float(first['action_entropy']):.2f}",
                f"{float(last['action_entropy']):.2f}",
            ]
        )
    text += (
        "\nFine-tuning runs: final raw env steps (DPPO stops after the iteration that crosses the budget), wall-clock "
        "(one thread, the machine shared with another study), and the action entropy (eq. 11) of the evaluation "
        "policy at 32 states of the first and the last evaluation. DPPO's evaluation policy decodes fresh noise; "
        "IDQL's and DQL's deterministic evaluation policies are functions of the state, so their entropy is the "
        "estimator's floor.\n\n"
        + markdown_table(["run", "raw env steps", "wall-clock (min)", "entropy at step 0", "final entropy"], rows)
        + "\n\n"
        + table
    )
    (out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
