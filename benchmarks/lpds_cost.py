"""Cost of an LP-DS gradient step against DSRL-SAC's at DSRL's Hopper config, exact and with each fast TD target.

All learners are built from the presets of ``--env`` (default ``LPDS-Hopper-v0``: the shipped 1.6M-parameter
diffusion backbone, 4 envs, 3 x 128 LayerNorm nets, batch 256, ``gradient_steps`` 20, 10 latent-critic steps; SB3 SAC
from the ``dsrl`` preset, LagrangianSAC from ``lpds`` and DSRLNA from ``dsrl-na``). Each buffer is filled by
``learn(--learning-starts)`` of prior rollouts; then blocks of one ``train(gradient_steps=G)`` call (one update of
the preset) alternate between the learners round-robin, and the ratio to SB3 SAC is taken block by block (min and
median over blocks). For the steering learners the time of each block is split by timing the shared-machinery
calls: every decoder call (TD target and prior samples), the Q^A TD step, the Q^W distillation, and the rest (the
actor step, the dual step, target updates, replay sampling and, with ``td_target="latent_critic"``, Q^W's target).
Then ``--learn-rounds`` round-robin passes of ``learn(--learn-latent-steps)`` per learner (env stepping, decoding
of the executed chunks and the updates of the preset) give raw env steps/s and gradient steps/s of training as a
whole. One thread (``--threads``).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/lpds_cost.py                   # writes benchmarks/lpds_cost.json
    OMP_NUM_THREADS=1 python benchmarks/lpds_cost.py --quick --out /tmp/lpds_cost.json
    # robomimic Lift (3 x 2048 nets; in the robomimic venv): short blocks, no learn() segments
    MUJOCO_GL=egl OMP_NUM_THREADS=1 .venv-robomimic/bin/python benchmarks/lpds_cost.py --env LPDS-Lift-v0 \
        --block-steps 5 --blocks 3 --learning-starts 300 --learn-rounds 0 --out benchmarks/lpds_cost_lift.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CallTimer, add_repo_to_path, machine_info, markdown_table, median, train_in_blocks  # noqa: E402

add_repo_to_path()

import torch  # noqa: E402

from algorithms.presets import get_preset, make_algorithm  # noqa: E402
from lpds_envs.evaluation.callbacks import RawStepCallback  # noqa: E402

REFERENCE = "SB3 SAC (DSRL-SAC)"

#: name -> (algo preset, learner overrides); the reference first
LEARNERS: dict[str, tuple[str, dict[str, Any]]] = {
    REFERENCE: ("dsrl", {}),
    "LagrangianSAC": ("lpds", {}),
    "LagrangianSAC prior_cache=8": ("lpds", {"prior_cache": 8}),
    "LagrangianSAC prior_cache=8 decode_per_update": ("lpds", {"prior_cache": 8, "td_target": "decode_per_update"}),
    "LagrangianSAC prior_cache=8 bf16 target": ("lpds", {"prior_cache": 8, "target_decode_dtype": "bfloat16"}),
    "LagrangianSAC latent_critic": ("lpds", {"td_target": "latent_critic"}),
    "LagrangianSAC prior_cache=8 latent_critic": ("lpds", {"prior_cache": 8, "td_target": "latent_critic"}),
    # not a TD-target option: DSRL's 10 Q^W steps cut to 2 (learning evaluated on Hopper, docs/results/speed.md)
    "LagrangianSAC prior_cache=8 latent_critic latent_critic_steps=2": (
        "lpds",
        {"prior_cache": 8, "td_target": "latent_critic", "latent_critic_steps": 2},
    ),
    # ... and to 1, to show what the distillation costs (not evaluated)
    "LagrangianSAC prior_cache=8 latent_critic latent_critic_steps=1": (
        "lpds",
        {"prior_cache": 8, "td_target": "latent_critic", "latent_critic_steps": 1},
    ),
    "DSRLNA": ("dsrl-na", {}),
    "DSRLNA prior_cache=8 latent_critic": ("dsrl-na", {"prior_cache": 8, "td_target": "latent_critic"}),
}
PARTS = ("decode", "q_a", "q_w", "rest")


class RawSteps(RawStepCallback):
    """Only keeps ``model.raw_env_steps`` up to date (SB3's SAC does not count raw env steps itself)."""

    def _measure(self) -> dict[str, Any]:
        return {}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="LPDS-Hopper-v0")
    p.add_argument("--quick", action="store_true", help="3 blocks, fewer learners (a smoke test)")
    p.add_argument("--blocks", type=int, default=5, help="round-robin blocks (one train() call each)")
    p.add_argument("--learning-starts", type=int, default=1000, help="latent steps of prior rollouts first")
    p.add_argument("--learn-latent-steps", type=int, default=80, help="latent steps of each learn() segment")
    p.add_argument("--learn-rounds", type=int, default=2, help="learn() segments per learner (0: skip)")
    p.add_argument(
        "--block-steps",
        type=int,
        default=None,
        help="gradient steps per train() call of a block (default: the preset's gradient_steps; fewer keep the "
        "blocks short with wide nets, the per-step cost is the same)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--learners", nargs="+", default=None, choices=list(LEARNERS), help="a subset (+ the reference)")
    p.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [n for n in LEARNERS if args.learners is None or n in args.learners or n == REFERENCE]
    if args.quick and args.learners is None:
        names = [REFERENCE, "LagrangianSAC", "LagrangianSAC prior_cache=8 latent_critic"]
    blocks = 3 if args.quick else args.blocks
    preset = get_preset("lpds", args.env)
    steps, batch = int(args.block_steps or preset.get("gradient_steps", 1)), int(preset.get("batch_size", 256))
    start = machine_info()

    models, timers = {}, {}
    for name in names:
        algo, overrides = LEARNERS[name]
        model = make_algorithm(algo, args.env, seed=0, overrides={**overrides, "learning_starts": args.learning_starts})
        model.learn(args.learning_starts)  # prior rollouts only: fills the buffer, no gradient step
        model.train(gradient_steps=2, batch_size=batch)  # warm-up
        models[name] = model
        if name != REFERENCE:
            timers[name] = CallTimer(model)
        print(f"built {name}", flush=True)

    rates, ratios, split = train_in_blocks(models, timers, blocks, steps, batch, REFERENCE, progress=True)

    raw_rates: dict[str, list[float]] = {n: [] for n in names}
    learn_grad_rates: dict[str, list[float]] = {n: [] for n in names}
    raw_ratios: dict[str, list[float]] = {n: [] for n in names}
    for r in range(0 if args.quick else args.learn_rounds):
        seg = {}
        for name, model in models.items():
            counter = RawSteps(eval_freq=10**9)
            raw0, n0 = getattr(model, "raw_env_steps", 0), model._n_updates
            t0 = time.perf_counter()
            model.learn(args.learn_latent_steps, reset_num_timesteps=False, callback=counter)
            dt = time.perf_counter() - t0
            seg[name] = (model.raw_env_steps - raw0) / dt
            raw_rates[name].append(seg[name])
            learn_grad_rates[name].append((model._n_updates - n0) / dt)
        for name in names:
            raw_ratios[name].append(seg[name] / seg[REFERENCE])
        print(f"learn round {r + 1}: " + ", ".join(f"{n} {v:.0f} raw/s" for n, v in seg.items()), flush=True)

    rows = []
    for name in names:
        row = [name, f"{median(rates[name]):.1f}", f"{median(ratios[name]):.2f}x", f"{min(ratios[name]):.2f}x"]
        row += [f"{100 * median(split[name][k]):.0f}%" for k in PARTS] if name in split else ["-"] * len(PARTS)
        if raw_rates[name]:
            row += [f"{median(raw_rates[name]):.0f}", f"{median(raw_ratios[name]):.2f}x"]
        else:
            row += ["-", "-"]
        rows.append(row)
    header = ["learner", "grad steps/s", "vs SAC (median)", "(min)", "decode", "Q^A", "Q^W", "rest"]
    header += ["raw env steps/s (learn)", "vs SAC"]
    table = markdown_table(header, rows)
    print(f"{args.env}, {len(names)} learners, {blocks} blocks x train(gradient_steps={steps}), batch {batch}")
    print(table)
    result = {
        "machine": start,
        "loadavg_end": list(os.getloadavg()),
        "args": vars(args),
        "gradient_steps_per_block": steps,
        "batch_size": batch,
        "rates": rates,
        "ratios": ratios,
        "split": split,
        "learn_raw_env_steps_per_s": raw_rates,
        "learn_gradient_steps_per_s": learn_grad_rates,
        "learn_raw_ratios": raw_ratios,
        "table": table,
    }
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
