"""Overhead of ``LatentSteeringWrapper.step`` over doing the same work by hand.

(a) ``LatentSteeringWrapper(gym.make(raw_id), decoder).step(w)``;
(b) the same work by hand on an equally made env (``gym.make(raw_id)``, nothing else around it): one decoder
    call ``decoder(obs[None], w[None])`` on the same observation and latent, then up to Ta raw ``env.step``
    calls (stopping at termination/truncation, as the wrapper does).

Both envs are reset with the same seed and fed the same (pre-clipped) latents, so they follow the same
trajectory and reset at the same steps (checked). Measurement alternates blocks of N latent steps between
(a) and (b) (order ABBA...) and reports the median time per latent step and the median of the per-pair
ratios (a)/(b). The decoders are random-init ``DiffusionDecoder``s (10 DDIM steps, chunk 4, eager) matching
each env's obs/action sizes: hidden 128 for MultiGoal (the toy size), hidden 512 for Hopper-v5 (loco size).

Usage::

    python benchmarks/wrapper_overhead.py [--quick] [--out results.json] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_repo_to_path, fmt_time, iqr, machine_info, markdown_table, median  # noqa: E402

TARGET_RATIO = 1.05
CHUNK = 4
LATENT_BOUND = 2.5


def env_specs() -> list[tuple[str, int]]:
    """(raw env id, decoder hidden size); Hopper only when mujoco imports."""
    specs = [("lpds/MultiGoal-v0", 128)]
    try:
        import mujoco  # noqa: F401

        specs.append(("Hopper-v5", 512))
    except ImportError:
        print("mujoco not importable: skipping Hopper-v5")
    return specs


class Pair:
    """A wrapped env and a manual env + decoder, stepped with the same latent sequence."""

    def __init__(self, env_id: str, hidden: int, seed: int, n_latents: int, compile: bool = False) -> None:
        import gymnasium as gym
        import numpy as np
        import torch

        import lpds_envs  # noqa: F401  (registers lpds/* ids)
        from lpds_envs.decoders import DiffusionDecoder
        from lpds_envs.wrappers import LatentSteeringWrapper

        probe = gym.make(env_id)
        obs_dim = int(np.prod(probe.observation_space.shape))
        act_dim = int(np.prod(probe.action_space.shape))
        probe.close()
        torch.manual_seed(seed)
        self.decoder = DiffusionDecoder(
            obs_dim, act_dim, chunk_size=CHUNK, hidden_dim=hidden, n_blocks=3, num_inference_steps=10, compile=compile
        ).freeze()
        self.wrapped = LatentSteeringWrapper(gym.make(env_id), self.decoder, latent_bound=LATENT_BOUND)
        self.raw = gym.make(env_id)
        self.env_id, self.hidden, self.obs_dim, self.act_dim = env_id, hidden, obs_dim, act_dim
        rng = np.random.default_rng(seed)
        d = self.decoder.latent_dim
        # pre-clipped, so both paths decode exactly the same latent (the wrapper's clip is then a no-op)
        self.latents = np.clip(rng.standard_normal((n_latents, d)), -LATENT_BOUND, LATENT_BOUND).astype(np.float32)
        self.obs_w, _ = self.wrapped.reset(seed=seed)
        self.obs_r, _ = self.raw.reset(seed=seed)
        self.i_w = self.i_r = 0
        self.resets_w = self.resets_r = 0
        self.raw_steps_w = self.raw_steps_r = 0

    def _next(self, which: str):
        i = getattr(self, f"i_{which}")
        setattr(self, f"i_{which}", (i + 1) % len(self.latents))
        return self.latents[i]

    def run_wrapped(self, n: int) -> float:
        env = self.wrapped
        t0 = time.perf_counter()
        for _ in range(n):
            obs, _, terminated, truncated, info = env.step(self._next("w"))
            self.raw_steps_w += info["executed_steps"]
            if terminated or truncated:
                obs, _ = env.reset()
                self.resets_w += 1
        self.obs_w = obs
        return (time.perf_counter() - t0) / n

    def run_manual(self, n: int) -> float:
        import numpy as np
        import torch

        env, dec, obs = self.raw, self.decoder, self.obs_r
        t0 = time.perf_counter()
        for _ in range(n):
            w = self._next("r")
            o = torch.from_numpy(np.asarray(obs, dtype=np.float32).reshape(1, -1))
            chunk = dec(o, torch.from_numpy(w).reshape(1, -1))[0].numpy()
            total = 0.0
            for a in chunk:
                obs, reward, terminated, truncated, _ = env.step(a)
                total += float(reward)
                self.raw_steps_r += 1
                if terminated or truncated:
                    break
            if terminated or truncated:
                obs, _ = env.reset()
                self.resets_r += 1
        self.obs_r = obs
        return (time.perf_counter() - t0) / n

    def in_sync(self) -> bool:
        import numpy as np

        return (
            self.i_w == self.i_r
            and self.resets_w == self.resets_r
            and self.raw_steps_w == self.raw_steps_r
            and np.allclose(np.asarray(self.obs_w), np.asarray(self.obs_r), atol=1e-5)
        )


def bench_env(env_id: str, hidden: int, blocks: int, block_steps: int, seed: int = 0, compile: bool = False) -> dict:
    pair = Pair(env_id, hidden, seed, n_latents=10_007, compile=compile)
    # warm-up (first calls allocate, load kernels, compile when compile=True, ...)
    t0 = time.perf_counter()
    pair.run_wrapped(1)
    first_call_s = time.perf_counter() - t0
    pair.run_manual(1)
    pair.run_wrapped(max(5, block_steps // 4))
    pair.run_manual(max(5, block_steps // 4))
    t_w: list[float] = []
    t_m: list[float] = []
    for b in range(blocks):
        if b % 2 == 0:  # ABBA ordering: A B | B A | A B ...
            t_w.append(pair.run_wrapped(block_steps))
            t_m.append(pair.run_manual(block_steps))
        else:
            t_m.append(pair.run_manual(block_steps))
            t_w.append(pair.run_wrapped(block_steps))
    ratios = [w / m for w, m in zip(t_w, t_m)]
    return {
        "env_id": env_id,
        "obs_dim": pair.obs_dim,
        "act_dim": pair.act_dim,
        "decoder": f"DiffusionDecoder(chunk={CHUNK}, hidden={hidden}, n_blocks=3, 10 DDIM steps, "
        f"{'compiled' if compile else 'eager'})",
        "first_latent_step_s": first_call_s,
        "decoder_compiled_active": getattr(pair.decoder, "_compiled", None) is not None,
        "blocks": blocks,
        "latent_steps_per_block": block_steps,
        "wrapped_s_per_latent_step": median(t_w),
        "wrapped_iqr": list(iqr(t_w)),
        "manual_s_per_latent_step": median(t_m),
        "manual_iqr": list(iqr(t_m)),
        "ratio_median_paired": median(ratios),
        "ratio_iqr": list(iqr(ratios)),
        "ratio_of_medians": median(t_w) / median(t_m),
        "overhead_s_per_latent_step": median([w - m for w, m in zip(t_w, t_m)]),
        "raw_steps_per_latent_step": pair.raw_steps_w / max(pair.i_w, 1),
        "resets": pair.resets_w,
        "trajectories_identical": pair.in_sync(),
    }


def profile_env(env_id: str, hidden: int, steps: int, seed: int = 0, top: int = 25, compile: bool = False) -> str:
    """cProfile of ``steps`` wrapped latent steps (tottime-sorted), to see where the wrapper's time goes."""
    pair = Pair(env_id, hidden, seed, n_latents=10_007, compile=compile)
    pair.run_wrapped(20)
    prof = cProfile.Profile()
    prof.enable()
    pair.run_wrapped(steps)
    prof.disable()
    s = io.StringIO()
    stats = pstats.Stats(prof, stream=s).sort_stats("tottime")
    stats.print_stats(top)
    stats.sort_stats("cumulative").print_stats(r"lpds_envs[/\\](wrappers|decoders[/\\]base)\.py", top)
    return s.getvalue()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short run")
    p.add_argument("--blocks", type=int, default=None, help="alternating blocks per env (default 40, quick 6)")
    p.add_argument("--block-steps", type=int, default=None, help="latent steps per block (default 100, quick 25)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="build the decoders with compile=True (warm-up compiles)")
    p.add_argument("--profile", action="store_true", help="also print a cProfile of the wrapped step")
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    args = p.parse_args(argv)

    add_repo_to_path()
    import torch

    torch.set_num_threads(args.threads)
    blocks = args.blocks or (6 if args.quick else 40)
    block_steps = args.block_steps or (25 if args.quick else 100)
    info = machine_info()
    if info["background_backbone_jobs"]:
        print(f"WARNING: background job(s) running, timings will be noisy: {info['background_backbone_jobs']}")
    t_start = time.perf_counter()
    results = []
    for env_id, hidden in env_specs():
        t0 = time.perf_counter()
        results.append(bench_env(env_id, hidden, blocks, block_steps, compile=args.compile))
        print(f"[{env_id}] done in {time.perf_counter() - t0:.1f}s", flush=True)
    info["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    info["wall_s"] = time.perf_counter() - t_start

    print()
    print(
        f"lpds {info['git']}, torch {info['torch']}, {info['torch_threads']} threads, "
        f"{info['cpu_count']} CPUs ({info['cpu_model']}), "
        f"{info['date_utc']}, {blocks} blocks x {block_steps} latent steps per path, wall {info['wall_s']:.0f}s, "
        f"load avg start {info['loadavg_start']} end {info['loadavg_end']}"
    )
    print()
    rows = []
    for r in results:
        rows.append(
            [
                r["env_id"],
                f"{r['obs_dim']}/{r['act_dim']}",
                r["decoder"].split("(")[1].split(", n_blocks")[0],
                fmt_time(r["wrapped_s_per_latent_step"]),
                fmt_time(r["manual_s_per_latent_step"]),
                fmt_time(r["overhead_s_per_latent_step"]),
                f"{r['ratio_median_paired']:.3f}x ({r['ratio_iqr'][0]:.3f}–{r['ratio_iqr'][1]:.3f})",
                f"{r['raw_steps_per_latent_step']:.2f}",
                "yes" if r["trajectories_identical"] else "NO",
                "MET" if r["ratio_median_paired"] <= TARGET_RATIO else "MISSED",
            ]
        )
    print(
        markdown_table(
            [
                "env",
                "obs/act",
                "decoder",
                "wrapped / latent step",
                "manual / latent step",
                "overhead / latent step",
                "ratio wrapped/manual (IQR)",
                "raw steps / latent step",
                "same trajectory",
                f"≤{TARGET_RATIO}x",
            ],
            rows,
        )
    )
    if args.profile:
        for env_id, hidden in env_specs():
            print(f"\ncProfile of {env_id} wrapped steps:\n")
            print(profile_env(env_id, hidden, steps=block_steps * 5, compile=args.compile))
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": info, "args": vars(args), "results": results}, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
