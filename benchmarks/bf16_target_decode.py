"""bf16 autocast of a TD-target decode on CPU: speed and accuracy against float32 (``target_decode_dtype``).

Decodes 256 random (observation, latent) pairs through an env's shipped backbone (default ``LPDS-Hopper-v0``), in
float32 and under ``torch.autocast("cpu", dtype=torch.bfloat16)``, alternating, one thread; reports the median time
of each and how far the bf16 chunks are from the float32 ones. Writes ``benchmarks/bf16_target_decode.json``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bf16_target_decode.py [--env LPDS-MultiGoal-v0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_repo_to_path, machine_info, median  # noqa: E402

add_repo_to_path()

import torch  # noqa: E402

from lpds_envs import make_latent_vec_env  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="LPDS-Hopper-v0")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    venv = make_latent_vec_env(args.env, seed=0)
    decoder = venv.decoder
    obs = torch.as_tensor(venv.reset()[:1]).repeat(args.batch, 1) + 0.1 * torch.randn(
        args.batch, venv.observation_space.shape[0]
    )
    w = torch.randn(args.batch, decoder.latent_dim)

    def decode(bf16: bool) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return decoder(obs, w).float()

    exact, approx = decode(False), decode(True)
    diff = (exact - approx).abs()
    times: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    for _ in range(args.repeats):
        for name, bf16 in (("float32", False), ("bfloat16", True)):
            t0 = time.perf_counter()
            decode(bf16)
            times[name].append(time.perf_counter() - t0)
    result = {
        "machine": machine_info(),
        "env": args.env,
        "batch": args.batch,
        "median_s": {k: median(v) for k, v in times.items()},
        "speedup": median(times["float32"]) / median(times["bfloat16"]),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "fraction_over_0.1": float((diff > 0.1).float().mean()),
        "action_abs_max": float(exact.abs().max()),
        "times_s": times,
    }
    print({k: v for k, v in result.items() if k not in ("machine", "times_s")})
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
