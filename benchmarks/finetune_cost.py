"""What a raw env step costs when fine-tuning the backbone (DPPO, IDQL, DQL) against steering it (LP-DS, DSRL-SAC).

Each learner trains on ``LPDS-Hopper-v0`` with the shipped 1.6M-parameter diffusion backbone through ``lpds train``'s
machinery (:class:`~lpds_envs.experiment.runs.TrainingRun`) with its own preset, one after the other, one thread.
The clock runs from ``--skip`` raw env steps (past every learner's warm-up, so the window holds updates at the
preset's ratio) to ``--steps``; the figure is raw env steps per second over that window, and the seconds a
40k-raw-step run would take at that rate (the Hopper study's budget). Changes to the presets, for all learners:
``learning_starts`` cut to ``--learning-starts`` chunks (a shorter warm-up; it does not change the cost of a step
after it), and DPPO's ``n_steps`` cut to ``--dppo-n-steps`` chunks per env (DPPO's Hopper config collects 40 envs x
500 chunks x 4 = 80k raw env steps per iteration, more than the whole 40k budget; an iteration's update cost per
sample is unchanged: ``n_epochs`` passes over every sample). LP-DS runs the fast settings of the Hopper studies
(``prior_cache=8``, ``td_target="latent_critic"``, ``gradient_steps=20``); its exact-mode cost is in
``benchmarks/lpds_cost.json`` (0.08x DSRL-SAC's raw env steps/s).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/finetune_cost.py                      # writes benchmarks/finetune_cost.json
    OMP_NUM_THREADS=1 python benchmarks/finetune_cost.py --learners dsrl dppo --steps 6000 --skip 3000 --out /tmp/f.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_repo_to_path, machine_info, markdown_table  # noqa: E402

add_repo_to_path()

import torch  # noqa: E402

from lpds_envs.experiment.config import RunConfig, get_algo, resolve_hyperparams  # noqa: E402
from lpds_envs.experiment.runs import TrainingRun  # noqa: E402

ENV_ID = "LPDS-Hopper-v0"
STUDY_BUDGET = 40_000
#: name -> (algo, overrides on top of its preset)
LEARNERS: dict[str, tuple[str, dict[str, Any]]] = {
    "dsrl": ("dsrl", {"gradient_steps": 20}),
    "lpds-fast": ("lpds", {"gradient_steps": 20, "alpha_lr": 0.01, "prior_cache": 8, "td_target": "latent_critic"}),
    "dppo": ("dppo", {}),
    "idql": ("idql", {}),
    "dql": ("dql", {}),
}


class TimedRun(TrainingRun):
    """A training run that notes the clock at every env step."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.marks: list[tuple[float, int]] = []

    def after_step(self, infos: list[dict[str, Any]], raw_after: int) -> None:
        super().after_step(infos, raw_after)
        self.marks.append((time.perf_counter(), raw_after))


def measure(name: str, steps: int, skip: int, learning_starts: int, dppo_n_steps: int, out: Path) -> dict[str, Any]:
    algo, overrides = LEARNERS[name]
    overrides = {**overrides, "env_kwargs": {"backbone": "diffusion"}}
    if algo == "dppo":
        overrides["n_steps"] = dppo_n_steps
    else:
        overrides["learning_starts"] = learning_starts
    hp = resolve_hyperparams(get_algo(algo), ENV_ID, None, overrides)
    cfg = RunConfig(
        algo=algo, env_id=ENV_ID, seed=0, steps=steps, out=str(out), name=name, hyperparams=hp,
        eval_freq=10 * steps, eval_episodes=1, checkpoint_freq=10 * steps, device="cpu",
    )  # fmt: skip
    run = TimedRun(cfg, progress=False)
    t_start = time.perf_counter()
    run.run()
    total = time.perf_counter() - t_start
    start = next((t, r) for t, r in run.marks if r >= skip)
    end = run.marks[-1]
    if algo == "dppo":  # end at the first step of the last iteration: the window holds whole rollouts and updates
        per_iteration = hp["n_envs"] * dppo_n_steps * run.decoder.chunk_size
        end = next((t, r) for t, r in run.marks if r >= steps - per_iteration + 1)
    rate = (end[1] - start[1]) / (end[0] - start[0])
    updates = getattr(run.model, "_n_updates", None)
    return {
        "algo": algo,
        "overrides": {k: v for k, v in overrides.items() if k != "env_kwargs"},
        "window_raw_steps": [start[1], end[1]],
        "window_s": end[0] - start[0],
        "raw_steps_per_s": rate,
        "s_per_40k": STUDY_BUDGET / rate,
        "total_s": total,
        "n_updates": updates,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--learners", nargs="+", default=list(LEARNERS), choices=list(LEARNERS))
    p.add_argument("--steps", type=int, default=12_000, help="raw env steps per learner")
    p.add_argument("--skip", type=int, default=4_000, help="raw env steps before the clock starts")
    p.add_argument("--learning-starts", type=int, default=500, help="warm-up chunks of the off-policy learners")
    p.add_argument("--dppo-n-steps", type=int, default=25, help="DPPO chunks per env per iteration")
    p.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    result: dict[str, Any] = {"machine": machine_info(), "args": vars(args), "learners": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.learners:
            r = measure(name, args.steps, args.skip, args.learning_starts, args.dppo_n_steps, Path(tmp))
            result["learners"][name] = r
            print(f"{name}: {r['raw_steps_per_s']:.1f} raw env steps/s ({r['total_s']:.0f} s in all)", flush=True)
    ref = result["learners"].get("dsrl", {}).get("raw_steps_per_s")
    rows = [
        [name, f"{r['raw_steps_per_s']:.1f}", f"{r['raw_steps_per_s'] / ref:.2f}x" if ref else "-",
         f"{r['s_per_40k'] / 60:.0f} min", f"{r['window_raw_steps'][0]}-{r['window_raw_steps'][1]}"]
        for name, r in result["learners"].items()
    ]  # fmt: skip
    table = markdown_table(["learner", "raw env steps/s", "vs DSRL-SAC", "40k raw steps at this rate", "window"], rows)
    result["table"] = table
    print(table)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
