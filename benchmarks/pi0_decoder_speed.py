"""Pi0Decoder overhead over a direct ``sample_actions`` call, and the cost of the exact-prior subspace lift.

Two random-init tiny PI0s (transformers' real model; speed does not depend on the weights):

- ``toy``: the architecture of the shipped ``multigoal-pi0`` backbone (one 64x64 camera, latent 4 x 4, width 64,
  2 layers per transformer, 10 Euler steps);
- ``pi0-shaped``: pi0's latent and state sizes (latent 50 x 32, state 32, 7 used action dims) and two 64x64 cameras,
  same tiny width.

For B = 1 and 16 every repeat times, back to back and in alternating order:

- ``direct``: ``model.sample_actions(**inputs, noise=w)`` on inputs prepared beforehand (what the processor returns);
- ``decoder``: ``Pi0Decoder(obs, w)`` from the raw Dict observation (checks, pixel lookup table, cached prompt
  tokens, state normalisation, ``sample_actions``, action un-normalisation);
- ``processor + direct``: ``PI0Processor(images, text, state)`` then ``sample_actions`` (the naive wrapper).

Ratios are paired (computed within a repeat), and the median over repeats is reported; the target is
decoder / direct <= 1.1. The subspace lift ``z = P u + (I - P P^T) eps`` (``SubspaceDecoder.full_latent``: checks,
two matmuls) is timed for pi0's latent (D = 1600, k = 7) at B = 1, 16, 256 and compared with a decode.

Usage::

    python benchmarks/pi0_decoder_speed.py [--repeats 15] [--threads 1] [--out benchmarks/pi0_decoder_speed.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_repo_to_path, fmt_time, iqr, machine_info, markdown_table, median  # noqa: E402

BATCHES = (1, 16)
LIFT_BATCHES = (1, 16, 256)
TARGET_RATIO = 1.1


def configs() -> dict[str, dict]:
    from lpds_envs.backbones.zoo.pi0_toy import PI0_TOY_KWARGS

    return {
        "toy": dict(model=PI0_TOY_KWARGS, cameras=["image"], action_dim=2),
        "pi0-shaped": dict(
            model=dict(
                image_size=64,
                patch_size=16,
                chunk_size=50,
                max_action_dim=32,
                max_state_dim=32,
                state_dim=8,
                action_dim=7,
                hidden_size=64,
                num_layers=2,
                num_inference_steps=10,
            ),
            cameras=["agentview", "wrist"],
            action_dim=7,
        ),
    }


def _per_call(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def bench_decoder(name: str, cfg: dict, repeats: int, rows: list, results: dict) -> None:
    import numpy as np
    import torch

    from lpds_envs.decoders import Pi0Decoder
    from lpds_envs.decoders.pi0_tiny import make_tiny_pi0

    model, processor = make_tiny_pi0(**cfg["model"])
    instruction = "reach one of the four goals"
    dec = Pi0Decoder(model, processor, instruction, cfg["cameras"], "state", cfg["action_dim"])
    size, state_dim = cfg["model"]["image_size"], cfg["model"]["state_dim"]
    rng = np.random.default_rng(0)
    for batch in BATCHES:
        obs = {k: rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8) for k in cfg["cameras"]}
        obs["state"] = rng.standard_normal((batch, state_dim)).astype(np.float32)
        w = torch.randn(batch, *dec.latent_shape)
        inputs = processor(
            images=[[obs[k][i] for k in cfg["cameras"]] for i in range(batch)],
            text=[instruction] * batch,
            state=torch.from_numpy(obs["state"]),
            return_tensors="pt",
        )

        def direct(inputs=inputs, w=w):
            with torch.inference_mode():
                return model.sample_actions(**inputs, noise=w, num_steps=dec.num_steps)

        def decoder(obs=obs, w=w):
            return dec(obs, w)

        def naive(obs=obs, w=w, batch=batch):
            x = processor(
                images=[[obs[k][i] for k in cfg["cameras"]] for i in range(batch)],
                text=[instruction] * batch,
                state=torch.from_numpy(obs["state"]),
                return_tensors="pt",
            )
            with torch.inference_mode():
                return model.sample_actions(**x, noise=w, num_steps=dec.num_steps)

        fns = {"direct": direct, "decoder": decoder, "processor + direct": naive}
        ref = direct()[:, : dec.chunk_steps, : dec.action_dim] * dec.actions_std + dec.actions_mean
        assert torch.equal(decoder(), ref), "the decoder must equal sample_actions on the processor's inputs"
        for fn in fns.values():
            fn()  # warm-up
        n = max(1, int(0.15 / _per_call(direct, 1)))  # ~150 ms per timing block
        times: dict[str, list[float]] = {k: [] for k in fns}
        for r in range(repeats):
            order = list(fns) if r % 2 == 0 else list(reversed(fns))
            for key in order:
                times[key].append(_per_call(fns[key], n))
        ratios = [d / s for d, s in zip(times["decoder"], times["direct"])]
        naive_ratios = [d / s for d, s in zip(times["processor + direct"], times["direct"])]
        results[f"{name}/B{batch}"] = {
            "times": times,
            "calls_per_block": n,
            "ratio_decoder_over_direct": ratios,
            "ratio_processor_over_direct": naive_ratios,
        }
        for key in fns:
            lo, hi = iqr(times[key])
            rows.append([name, batch, key, fmt_time(median(times[key])), f"{fmt_time(lo)} – {fmt_time(hi)}", ""])
        rows[-2][-1] = f"**{median(ratios):.3f}x**"
        rows[-1][-1] = f"{median(naive_ratios):.3f}x"
        if name == "pi0-shaped":
            results[f"{name}/B{batch}"]["decoder_median_s"] = median(times["decoder"])


def bench_lift(repeats: int, results: dict) -> list:
    import torch

    from lpds_envs.decoders import CallableDecoder
    from lpds_envs.subspace import SubspaceDecoder

    base = CallableDecoder(lambda obs, w: w[:, :, :7], latent_shape=(50, 32), action_shape=(50, 7))
    base.used_action_dims = tuple(range(7))
    sub = SubspaceDecoder(base)
    rows = []
    for batch in LIFT_BATCHES:
        u, eps = torch.randn(batch, 7), torch.randn(batch, 50, 32)
        fn = lambda u=u, eps=eps: sub.full_latent(u, eps)  # noqa: E731
        fn()
        n = max(1, int(0.05 / _per_call(fn, 10)))
        times = [_per_call(fn, n) for _ in range(repeats)]
        results[f"lift/B{batch}"] = {"times": times, "calls_per_block": n}
        lo, hi = iqr(times)
        decode = results.get(f"pi0-shaped/B{batch}", {}).get("decoder_median_s")
        share = f"{median(times) / decode:.2%}" if decode else "–"
        rows.append([batch, fmt_time(median(times)), f"{fmt_time(lo)} – {fmt_time(hi)}", share])
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="write every timing to this JSON file")
    args = parser.parse_args(argv)
    add_repo_to_path()
    import torch

    torch.set_num_threads(args.threads)
    info = machine_info()
    t0 = time.time()
    rows: list = []
    results: dict = {}
    for name, cfg in configs().items():
        bench_decoder(name, cfg, args.repeats, rows, results)
    lift_rows = bench_lift(args.repeats, results)
    print(
        markdown_table(
            ["config", "B", "path", "time / call (median)", "IQR", "vs direct (paired median)"],
            rows,
        )
    )
    print()
    print(markdown_table(["B", "lift time (median)", "IQR", "share of a pi0-shaped decode"], lift_rows))
    worst = max(median(v["ratio_decoder_over_direct"]) for k, v in results.items() if "ratio_decoder_over_direct" in v)
    print(f"\nworst decoder / direct ratio: {worst:.3f} (target <= {TARGET_RATIO}); wall {time.time() - t0:.0f} s")
    if args.out:
        info["wall_s"] = time.time() - t0
        Path(args.out).write_text(json.dumps({"machine": info, "results": results}, indent=1))


if __name__ == "__main__":
    main()
