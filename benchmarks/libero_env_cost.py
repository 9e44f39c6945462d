"""Where the time of one `LPDS-LiberoCreamCheese-v0` latent step goes: PI0 decode, LIBERO physics, camera renders.

Runs the shipped PI0 with prior latents (``w ~ N(0, I)`` in the task's default subspace) for ``--latent-steps``
latent steps (episodes restart at their end, reset seeds 0, 1, ...), timing every decoder call and every camera
render by wrapping them; the physics and the rest of the wrapper (observation assembly, the chunk loop, clipping)
are the remainder of each step. Resets are timed apart. Needs the libero and pi0 extras (the libero venv).

Usage::

    MUJOCO_GL=egl OMP_NUM_THREADS=1 python benchmarks/libero_env_cost.py   # writes benchmarks/libero_env_cost.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_repo_to_path, machine_info, markdown_table  # noqa: E402

add_repo_to_path()

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import lpds_envs  # noqa: E402, F401  (registers the ids)
from lpds_envs.envs.libero import LiberoEnv  # noqa: E402
from lpds_envs.wrappers import LatentSteeringWrapper, executed_steps  # noqa: E402


class Stopwatch:
    """Accumulated wall time and call count of a wrapped callable."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--latent-steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    env = gym.make("LPDS-LiberoCreamCheese-v0")
    latent = env
    while not isinstance(latent, LatentSteeringWrapper):
        latent = latent.env
    raw = latent.unwrapped
    assert isinstance(raw, LiberoEnv)
    decode = Stopwatch(latent.codec.decode)  # the subspace lift and the PI0 call of every executed chunk
    latent.codec.decode = decode
    render = Stopwatch(raw.render_camera)
    raw.render_camera = render  # type: ignore[method-assign]

    rng = np.random.default_rng(0)
    step_s, reset_s, raw_steps, episodes, successes = 0.0, 0.0, 0, 0, 0
    reset_decode = reset_render = 0.0
    t0 = time.perf_counter()
    env.reset(seed=0)
    reset_s += time.perf_counter() - t0
    reset_render += render.seconds
    for _ in range(args.latent_steps):
        w = rng.standard_normal(env.action_space.shape).astype(np.float32)
        d0, r0 = decode.seconds, render.seconds
        t0 = time.perf_counter()
        _, _, terminated, truncated, info = env.step(w)
        step_s += time.perf_counter() - t0
        raw_steps += executed_steps([info])
        if terminated or truncated:
            episodes += 1
            successes += bool(info.get("success", False))
            r1, d1 = render.seconds, decode.seconds
            t0 = time.perf_counter()
            env.reset(seed=episodes)
            reset_s += time.perf_counter() - t0
            reset_render += render.seconds - r1
            reset_decode += decode.seconds - d1
        del d0, r0
    env.close()

    render_in_steps = render.seconds - reset_render
    decode_in_steps = decode.seconds - reset_decode
    physics = step_s - render_in_steps - decode_in_steps
    per_k = 1000.0 / raw_steps
    parts = {
        "PI0 decode (executed chunks, with the subspace lift)": decode_in_steps,
        "camera renders (2 x 64 px at each chunk end)": render_in_steps,
        "LIBERO physics + wrapper": physics,
    }
    rows = [[k, f"{v * per_k:.1f} s", f"{100 * v / step_s:.0f}%"] for k, v in parts.items()]
    rows.append(["all latent steps", f"{step_s * per_k:.1f} s", "100%"])
    print(
        f"{args.latent_steps} latent steps = {raw_steps} raw steps, {episodes} episodes ended ({successes} successes)"
    )
    print(f"resets: {reset_s:.1f} s for {episodes + 1} (settle steps and a render each)")
    print(markdown_table(["part", "per 1k raw env steps", "share of stepping"], rows))
    result = {
        "machine": machine_info(),
        "latent_steps": args.latent_steps,
        "raw_steps": raw_steps,
        "episodes_ended": episodes,
        "successes": successes,
        "seconds": {**parts, "all latent steps": step_s, "resets": reset_s},
        "decode_calls": decode.calls,
        "render_calls": render.calls,
        "per_1k_raw_steps_s": {k: v * per_k for k, v in {**parts, "all latent steps": step_s}.items()},
    }
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
