"""Raw steps per second of ``lpds/LiberoCreamCheese-v0``: with both cameras rendered at every step, in chunks whose
intermediate steps skip the cameras (what every latent steering wrapper does), and with no camera at all.

Three modes, timed in interleaved blocks (ABCABC...) on one env from the same init state with the same random
actions; reported: the median raw steps/s of each mode and the median per-round ratios against ``every_step``.

- ``every_step``: ``env.step`` with both 64 px cameras rendered at every step (a per-step policy on the raw env);
- ``chunked``: :class:`~lpds_envs.wrappers.ChunkedActionWrapper` with ``--chunk`` steps per chunk: the cameras are
  rendered for the chunk's last step only;
- ``no_camera``: ``skip_next_observation()`` before every step (physics, controller and success check only).

Usage (in the ``libero`` environment)::

    python benchmarks/libero_speed.py [--chunk 5] [--steps 50] [--rounds 5] [--image-size 64] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import gymnasium as gym
import numpy as np

import lpds_envs  # noqa: F401  (registers the ids)
from lpds_envs.wrappers import ChunkedActionWrapper


def time_block(env, chunked, mode: str, steps: int, chunk: int, rng: np.random.Generator) -> float:
    """Seconds per raw step of ``steps`` raw steps in ``mode`` (from a fresh reset to init state 0)."""
    env.reset(seed=0)
    raw = env.unwrapped
    actions = rng.uniform(-0.3, 0.3, size=(steps, 7)).astype(np.float32)
    start = time.perf_counter()
    if mode == "chunked":
        for i in range(0, steps, chunk):
            chunked.step(actions[i : i + chunk])
    else:
        for a in actions:
            if mode == "no_camera":
                raw.skip_next_observation()
            env.step(a)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk", type=int, default=5, help="raw steps per chunk (openpi's LIBERO replan_steps: 5)")
    parser.add_argument("--steps", type=int, default=50, help="raw steps per block (a multiple of --chunk)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.steps % args.chunk:
        parser.error("--steps must be a multiple of --chunk")
    env = gym.make("lpds/LiberoCreamCheese-v0", image_size=args.image_size)
    chunked = ChunkedActionWrapper(env, args.chunk)
    modes = ("every_step", "chunked", "no_camera")
    rng = np.random.default_rng(0)
    for mode in modes:
        time_block(env, chunked, mode, args.chunk, args.chunk, rng)  # warm-up
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for mode in modes:
            times[mode].append(time_block(env, chunked, mode, args.steps, args.chunk, rng))
    env.close()
    result = {
        "env_id": "lpds/LiberoCreamCheese-v0",
        "image_size": args.image_size,
        "chunk": args.chunk,
        "steps_per_block": args.steps,
        "rounds": args.rounds,
        "steps_per_s": {m: 1.0 / statistics.median(t) for m, t in times.items()},
        "speedup_vs_every_step": {
            m: statistics.median(e / x for e, x in zip(times["every_step"], times[m])) for m in modes
        },
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, MUJOCO_GL={os.environ.get('MUJOCO_GL')}",
        "load_average_at_end": os.getloadavg(),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
