"""DPPO on the 4-goal toy (paper App. B, Fig. 10: "DPPO converges to a subset of modes over training").

DPPO (``algorithms.DPPO``, the ``dppo`` preset) fine-tunes a copy of the shipped toy diffusion backbone for
``--steps`` env steps per seed. Every ``--eval-every`` env steps (at an iteration boundary, after the update) the
fine-tuned decoder, i.e. DPPO's evaluation policy (deterministic DDIM from prior noise), runs ``--rollouts`` episodes
from the origin with the same evaluation seeds as ``examples/toy_mode_coverage.py`` (``10000 + seed``), and the
fraction of rollouts reaching each goal is recorded. The summary compares the final fractions with LP-DS (delta 0.01)
and DSRL-SAC from that study's ``toy_mode_coverage.json`` when it is found next to the output.

    python benchmarks/toy_dppo_modes.py                      # 5 seeds x 8000 env steps, 1000 rollouts per evaluation
    python benchmarks/toy_dppo_modes.py --seeds 0 --steps 2000 --rollouts 100 --out /tmp/dppo_toy

Finished seeds are kept as ``OUT/runs/dppo_seed<k>.json`` and skipped when the command is re-run (the study resumes);
the summary goes to ``OUT/toy_dppo_modes.json`` and is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from algorithms import DPPO
from algorithms.presets import get_preset
from lpds_envs.evaluation import multigoal_coverage
from lpds_envs.registration import task_decoder
from lpds_envs.wrappers import ChunkedActionWrapper

ENV_ID = "LPDS-MultiGoal-v0"
GOALS = ["bottom-left", "top-right", "top-left", "bottom-right"]
KEEP, COLLAPSE = 0.05, 0.9  # a goal is kept at >= 5% of the rollouts; one goal at >= 90% is a collapse (as toy.md)


class CoverageAtIterations(BaseCallback):
    """Goal fractions of the fine-tuned decoder at the first iteration boundary after every ``every`` env steps."""

    def __init__(self, every: int, rollouts: int, seed: int) -> None:
        super().__init__()
        self.every, self.rollouts, self.seed = every, rollouts, seed
        self.history: list[dict[str, Any]] = []

    def _measure(self) -> None:
        model: Any = self.model
        cov = multigoal_coverage(model.fine_tuned_decoder(), n_rollouts=self.rollouts, seed=self.seed)
        self.history.append(
            {
                "env_steps": int(model.raw_env_steps),
                "goal_fractions": cov["goal_fractions"],
                "no_goal": cov["no_goal"],
                "mean_return": cov["mean_return"],
            }
        )

    def _on_rollout_start(self) -> None:  # after the previous iteration's update
        model: Any = self.model
        if not self.history or model.raw_env_steps >= self.history[-1]["env_steps"] + self.every:
            self._measure()

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        model: Any = self.model
        if self.history[-1]["env_steps"] != model.raw_env_steps:
            self._measure()


def run_seed(seed: int, steps: int, eval_every: int, rollouts: int) -> dict[str, Any]:
    torch.set_num_threads(1)
    t0 = time.time()
    hp = get_preset("dppo", ENV_ID)
    n_envs = hp.pop("n_envs")
    venv = make_vec_env(
        "lpds/MultiGoal-v0",
        n_envs=n_envs,
        seed=seed,
        wrapper_class=ChunkedActionWrapper,
        wrapper_kwargs={"chunk_size": 1},
    )
    model = DPPO("MlpPolicy", venv, decoder=task_decoder("MultiGoal", None, "cpu"), seed=seed, **hp)
    coverage = CoverageAtIterations(eval_every, rollouts, seed=10_000 + seed)
    model.learn(steps, callback=coverage)  # chunk size 1: env steps = chunks
    hist = coverage.history
    return {
        "seed": seed,
        "wall_s": time.time() - t0,
        "hyperparameters": {"n_envs": n_envs, **hp},
        "curves": {key: [h[key] for h in hist] for key in hist[0]},
        "final_goal_fractions": hist[-1]["goal_fractions"],
        "final_return": hist[-1]["mean_return"],
    }


def _previous_runs(summary_path: Path, steps: int, eval_every: int, rollouts: int) -> dict[int, dict[str, Any]]:
    """Per-seed results kept in an earlier summary with the same settings (run folders do not outlive a session, the
    summary is committed), so a study can be extended with more seeds without re-running the finished ones."""
    if not summary_path.is_file():
        return {}
    old = json.loads(summary_path.read_text())
    if (old.get("env_steps"), old.get("eval_every"), old.get("rollouts_per_eval")) != (steps, eval_every, rollouts):
        return {}
    runs = old["runs"]
    return {
        seed: {
            "seed": seed,
            "wall_s": runs["wall_s"][i],
            "curves": runs["curves"][i],
            "final_goal_fractions": runs["goal_fractions"][i],
            "final_return": runs["returns"][i],
        }
        for i, seed in enumerate(runs["seeds"])
    }


def describe(fractions: list[list[float]]) -> str:
    fr = np.array(fractions)
    kept = [int((f >= KEEP).sum()) for f in fr]
    top = [float(f.max()) for f in fr]
    mean = " / ".join(f"{v:.2f}" for v in fr.mean(0))
    return (
        f"{mean}   goals >= 5%: {', '.join(map(str, kept))}   max-goal share: {', '.join(f'{t:.2f}' for t in top)}"
        f"   collapsed: {sum(t >= COLLAPSE for t in top)}/{len(top)}"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    runs_dir = args.out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    restored = _previous_runs(args.out / "toy_dppo_modes.json", args.steps, args.eval_every, args.rollouts)
    results = []
    for seed in args.seeds:
        path = runs_dir / f"dppo_seed{seed}.json"
        if path.is_file():
            print(f"seed {seed}: done earlier ({path})")
        elif seed in restored:
            path.write_text(json.dumps(restored[seed]))
            print(f"seed {seed}: taken from the committed summary {args.out / 'toy_dppo_modes.json'}")
        else:
            result = run_seed(seed, args.steps, args.eval_every, args.rollouts)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(result))
            os.replace(tmp, path)  # atomic: an interrupted seed leaves nothing half-written
            print(f"seed {seed}: {result['wall_s']:.0f} s")
        results.append(json.loads(path.read_text()))
    summary = {
        "env": ENV_ID,
        "env_steps": args.steps,
        "eval_every": args.eval_every,
        "rollouts_per_eval": args.rollouts,
        "goal_order": GOALS,
        "command": "python " + " ".join(sys.argv),
        "runs": {
            "seeds": [r["seed"] for r in results],
            "goal_fractions": [r["final_goal_fractions"] for r in results],
            "returns": [r["final_return"] for r in results],
            "curves": [r["curves"] for r in results],
            "wall_s": [r["wall_s"] for r in results],
        },
    }
    (args.out / "toy_dppo_modes.json").write_text(json.dumps(summary, indent=1))
    print(
        f"\nDPPO on {ENV_ID}, {args.steps} env steps, {args.rollouts} rollouts per evaluation, goals {' / '.join(GOALS)}"
    )
    for r in results:
        c = r["curves"]
        print(f"seed {r['seed']}:")
        for step, fr, ret in zip(c["env_steps"], c["goal_fractions"], c["mean_return"]):
            print(f"  {step:6d} env steps  goals {' '.join(f'{f:.2f}' for f in fr)}  return {ret:.2f}")
    rets = np.array(summary["runs"]["returns"])
    print(f"\nfinal, mean over {len(results)} seeds (return {rets.mean():.2f} +- {rets.std():.2f}):")
    print(f"  DPPO               {describe(summary['runs']['goal_fractions'])}")
    study = args.out / "toy_mode_coverage.json"
    if study.is_file():  # the steering study of examples/toy_mode_coverage.py, for comparison
        other = json.loads(study.read_text())["runs"]
        for name, label in (
            ("backbone", "frozen backbone"),
            ("lpds_delta_0.01", "LP-DS delta 0.01"),
            ("dsrl", "DSRL-SAC"),
        ):
            if name in other:
                print(f"  {label:18} {describe(other[name]['goal_fractions'])}")
    return summary


if __name__ == "__main__":
    main()
