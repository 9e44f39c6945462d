"""``gym.make_vec("LPDS-...", num_envs=N)``: the ids' ``vector_entry_point`` (one batched decode for N sub-envs)
against ``vectorization_mode="sync"`` (N ``gym.make`` envs, each decoding on its own).

Both are fed the same random latents; blocks of ``--steps`` vector steps alternate between the two (ABAB...) and the
median time per vector step and the median of the per-pair ratios (sync / batched) are reported. The shipped
backbones are used (MultiGoal's toy diffusion; Hopper's diffusion, 4-step chunks, when MuJoCo imports).

Usage::

    python benchmarks/make_vec_speed.py [--envs 4] [--steps 50] [--pairs 5] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

import lpds_envs  # noqa: F401  (registers the ids)


def time_block(env, steps: int, rng: np.random.Generator) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        env.step(rng.standard_normal(env.action_space.shape).astype(np.float32))
    return (time.perf_counter() - start) / steps


def measure(env_id: str, num_envs: int, steps: int, pairs: int) -> dict:
    batched = gym.make_vec(env_id, num_envs=num_envs)
    single = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync")
    rng = np.random.default_rng(0)
    for env in (batched, single):
        env.reset(seed=0)
        time_block(env, 5, rng)  # warm-up
    t_batched, t_single = [], []
    for _ in range(pairs):
        t_batched.append(time_block(batched, steps, rng))
        t_single.append(time_block(single, steps, rng))
    batched.close()
    single.close()
    return {
        "env_id": env_id,
        "num_envs": num_envs,
        "batched_ms": 1e3 * statistics.median(t_batched),
        "sync_ms": 1e3 * statistics.median(t_single),
        "ratio": statistics.median(s / b for s, b in zip(t_single, t_batched)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    ids = ["LPDS-MultiGoal-v0"]
    try:
        import mujoco  # noqa: F401

        ids.append("LPDS-Hopper-v0")
    except ImportError:
        print("mujoco not importable: skipping LPDS-Hopper-v0")
    rows = [measure(env_id, args.envs, args.steps, args.pairs) for env_id in ids]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.envs} sub-envs")
    print("| env | batched (ms / vector step) | sync (ms / vector step) | sync / batched |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['env_id']} | {r['batched_ms']:.2f} | {r['sync_ms']:.2f} | {r['ratio']:.2f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
