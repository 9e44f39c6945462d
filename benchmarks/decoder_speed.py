"""Decode throughput of DiffusionDecoder and FlowDecoder: batch size, eager vs ``compile=True``.

For each decoder kind (diffusion: 10 DDIM steps; flow: 10 Euler steps) and size (``loco``: obs 17, act 6,
chunk 4, hidden 512; ``toy``: obs 2, act 2, chunk 1, hidden 128; both 3 residual blocks), a random-init,
frozen eager decoder and a ``compile=True`` copy with the same weights are timed at B = 1, 16, 256.

Noise control (the machine is shared): every repeat times all compared quantities back to back, and the
order eager/compiled alternates between repeats; ratios are computed per repeat (paired) and the median
over repeats is reported. A repeat also contains "16 single calls" (B=1 on the 16 rows of the B=16 batch)
for the batched-vs-single ratio.

Compile cost: the first compiled call at each batch size is timed on its own (B=1 compiles a static
graph; the next new batch size triggers torch's automatic-dynamic recompile, which B=256 then reuses).
Inductor's on-disk cache is pointed at a fresh temporary folder unless ``--warm-cache`` is given, so
the compile times are cold-start times. ``torch._dynamo.reset()`` runs between decoders so each one
compiles as it would alone in a process.

Usage::

    python benchmarks/decoder_speed.py [--quick] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_repo_to_path, fmt_time, iqr, machine_info, markdown_table, median  # noqa: E402

CONFIGS = {
    "loco": dict(obs_dim=17, action_dim=6, chunk_size=4, hidden_dim=512, n_blocks=3),
    "toy": dict(obs_dim=2, action_dim=2, chunk_size=1, hidden_dim=128, n_blocks=3),
}
BATCHES = (1, 16, 256)
TARGET_BATCHED16 = 8.0
TARGET_COMPILED_B1 = 2.0


def kinds():
    from lpds_envs.decoders import DiffusionDecoder, FlowDecoder

    return {
        "diffusion": (DiffusionDecoder, dict(num_inference_steps=10)),
        "flow": (FlowDecoder, dict(num_inference_steps=10, integrator="euler")),
    }


def _time_calls(fn, n: int) -> float:
    """Seconds per call of ``fn()`` over ``n`` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def bench_decoder(kind: str, size: str, repeats: int, block_s: float, seed: int = 0) -> dict:
    import torch

    cls, extra = kinds()[kind]
    cfg = CONFIGS[size]
    torch._dynamo.reset()
    torch.manual_seed(seed)
    eager = cls(**cfg, **extra).freeze()
    compiled = cls(**cfg, **extra, compile=True).freeze()
    compiled.load_state_dict(eager.state_dict())

    gen = torch.Generator().manual_seed(seed + 1)
    inputs = {B: (torch.randn(B, cfg["obs_dim"], generator=gen), eager.sample_prior(B, generator=gen)) for B in BATCHES}
    obs16, w16 = inputs[16]
    singles = [(obs16[i : i + 1].clone(), w16[i : i + 1].clone()) for i in range(16)]
    decs = {"eager": eager, "compiled": compiled}

    # --- compile (first call per batch size) + correctness check against eager
    compile_s: dict[int, float] = {}
    max_abs_diff = 0.0
    for B in BATCHES:
        obs, w = inputs[B]
        t0 = time.perf_counter()
        out_c = compiled(obs, w)
        compile_s[B] = time.perf_counter() - t0
        max_abs_diff = max(max_abs_diff, float((out_c - eager(obs, w)).abs().max()))
    fell_back = compiled._compiled is None  # compile failed -> library fell back to eager (with a warning)

    # --- warm-up both modes, then size the timing blocks from a rough per-call estimate
    n_calls: dict[int, int] = {}
    for B in BATCHES:
        obs, w = inputs[B]
        for dec in decs.values():
            _time_calls(lambda dec=dec, obs=obs, w=w: dec(obs, w), 3)
        t_est = min(_time_calls(lambda dec=dec, obs=obs, w=w: dec(obs, w), 2) for dec in decs.values())
        n_calls[B] = max(1, math.ceil(block_s / max(t_est, 1e-7)))

    def run_singles(dec):
        for o, w in singles:
            dec(o, w)

    per_call: dict[str, dict[int, list[float]]] = {m: {B: [] for B in BATCHES} for m in decs}
    singles16: dict[str, list[float]] = {m: [] for m in decs}
    n_single_blocks = max(1, math.ceil(n_calls[1] / 16))
    for r in range(repeats):
        order = ["eager", "compiled"] if r % 2 == 0 else ["compiled", "eager"]
        for B in BATCHES:
            obs, w = inputs[B]
            for m in order:
                dec = decs[m]
                per_call[m][B].append(_time_calls(lambda dec=dec, obs=obs, w=w: dec(obs, w), n_calls[B]))
        for m in order:
            dec = decs[m]
            singles16[m].append(_time_calls(lambda dec=dec: run_singles(dec), n_single_blocks))

    res: dict = {
        "kind": kind,
        "size": size,
        "config": {**cfg, **extra},
        "repeats": repeats,
        "calls_per_block": {str(B): n for B, n in n_calls.items()},
        "compile_first_call_s": {str(B): v for B, v in compile_s.items()},
        "compile_total_s": sum(compile_s.values()),
        "compiled_fell_back_to_eager": fell_back,
        "max_abs_diff_compiled_vs_eager": max_abs_diff,
        "modes": {},
        "ratios": {},
    }
    for m in decs:
        res["modes"][m] = {}
        for B in BATCHES:
            ts = per_call[m][B]
            t = median(ts)
            lo, hi = iqr(ts)
            res["modes"][m][str(B)] = {
                "s_per_call": t,
                "s_per_call_iqr": [lo, hi],
                "latents_per_s": B / t,
            }
        res["modes"][m]["16_single_calls_s"] = median(singles16[m])
    for m in decs:
        paired = [s / b for s, b in zip(singles16[m], per_call[m][16])]
        res["ratios"][f"batched16_vs_16singles_{m}"] = median(paired)
        res["ratios"][f"batched16_vs_16singles_{m}_iqr"] = list(iqr(paired))
    for B in BATCHES:
        paired = [e / c for e, c in zip(per_call["eager"][B], per_call["compiled"][B])]
        res["ratios"][f"compiled_vs_eager_B{B}"] = median(paired)
        res["ratios"][f"compiled_vs_eager_B{B}_iqr"] = list(iqr(paired))
    return res


def render(results: list[dict]) -> str:
    rows = []
    for r in results:
        for m in ("eager", "compiled"):
            for B in BATCHES:
                d = r["modes"][m][str(B)]
                lo, hi = d["s_per_call_iqr"]
                rows.append(
                    [
                        r["kind"],
                        r["size"],
                        m,
                        B,
                        fmt_time(d["s_per_call"]),
                        f"{fmt_time(lo)} – {fmt_time(hi)}",
                        f"{d['latents_per_s']:,.0f}",
                    ]
                )
    t1 = markdown_table(["decoder", "size", "mode", "B", "time / call (median)", "IQR", "latents / s"], rows)

    rows = []
    for r in results:
        q = r["ratios"]
        c = r["compile_first_call_s"]
        rows.append(
            [
                r["kind"],
                r["size"],
                f"{q['batched16_vs_16singles_eager']:.2f}x",
                f"{q['batched16_vs_16singles_compiled']:.2f}x",
                f"{q['compiled_vs_eager_B1']:.2f}x",
                f"{q['compiled_vs_eager_B16']:.2f}x",
                f"{q['compiled_vs_eager_B256']:.2f}x",
                f"{c['1']:.1f} / {c['16']:.1f} / {c['256']:.2f}",
                f"{r['max_abs_diff_compiled_vs_eager']:.1e}"
                + (" (fell back to eager)" if r["compiled_fell_back_to_eager"] else ""),
            ]
        )
    t2 = markdown_table(
        [
            "decoder",
            "size",
            f"batched16 eager (≥{TARGET_BATCHED16:g}x)",
            "batched16 compiled",
            f"compiled/eager B=1 (≥{TARGET_COMPILED_B1:g}x)",
            "compiled/eager B=16",
            "compiled/eager B=256",
            "first compiled call s (B=1 / 16 / 256)",
            "max abs diff compiled vs eager",
        ],
        rows,
    )
    return t1 + "\n\n" + t2


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short run (few repeats, short blocks)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved repeats per decoder (default 25, quick 4)")
    p.add_argument("--block-ms", type=float, default=None, help="target length of one timing block (default 20)")
    p.add_argument("--kinds", default="diffusion,flow")
    p.add_argument("--sizes", default="loco,toy")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warm-cache", action="store_true", help="keep inductor's default on-disk cache (faster compile)")
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    args = p.parse_args(argv)

    if not args.warm_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="lpds_bench_inductor_")
    add_repo_to_path()
    import torch

    torch.set_num_threads(args.threads)
    repeats = args.repeats or (4 if args.quick else 25)
    block_s = (args.block_ms or (5.0 if args.quick else 20.0)) / 1e3
    info = machine_info()
    if info["background_backbone_jobs"]:
        print(f"WARNING: background job(s) running, timings will be noisy: {info['background_backbone_jobs']}")
    t_start = time.perf_counter()
    results = []
    for kind in args.kinds.split(","):
        for size in args.sizes.split(","):
            t0 = time.perf_counter()
            results.append(bench_decoder(kind, size, repeats, block_s))
            print(f"[{kind}/{size}] done in {time.perf_counter() - t0:.1f}s", flush=True)
    info["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    info["wall_s"] = time.perf_counter() - t_start
    info["inductor_cache"] = "default (warm)" if args.warm_cache else "fresh temporary folder (cold)"

    print()
    print(
        f"lpds {info['git']}, torch {info['torch']}, {info['torch_threads']} threads, "
        f"{info['cpu_count']} CPUs ({info['cpu_model']}), "
        f"{info['date_utc']}, repeats={repeats}, block≈{block_s * 1e3:g} ms, wall {info['wall_s']:.0f}s, "
        f"load avg start {info['loadavg_start']} end {info['loadavg_end']}"
    )
    print()
    print(render(results))
    print()
    worst_b16 = min(r["ratios"]["batched16_vs_16singles_eager"] for r in results)
    worst_c1 = min(r["ratios"]["compiled_vs_eager_B1"] for r in results)
    print(
        f"target batched16 >= {TARGET_BATCHED16:g}x (eager): worst {worst_b16:.2f}x -> "
        f"{'MET' if worst_b16 >= TARGET_BATCHED16 else 'MISSED'}"
    )
    print(
        f"target compiled B=1 >= {TARGET_COMPILED_B1:g}x: worst {worst_c1:.2f}x -> "
        f"{'MET' if worst_c1 >= TARGET_COMPILED_B1 else 'MISSED'}"
    )
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": info, "args": vars(args), "results": results}, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
