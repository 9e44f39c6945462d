"""Gradient steps per second of LagrangianSAC, DSRLNA and SB3 SAC (DSRL-SAC) on the same latent env, side by side.

All learners use the same latent env (by default ``LPDS-MultiGoal-v0``: the shipped toy diffusion backbone, 10 DDIM
steps; ``--env`` takes any LPDS id, e.g. ``LPDS-Lift-v0`` in the robomimic environment), the same network sizes
(``--net``), 2 critics and the same batch size. Each buffer is first filled by
``learn(learning_starts)``; then blocks of ``train(gradient_steps=G)`` alternate between the learners
(round-robin) and the median per-block rate is reported, with the ratio to SB3 SAC measured block by block.
``LagrangianSAC (compile_decoder)`` decodes its training batches through a ``torch.compile``d copy of the decoder
(compiled during the warm-up, so the compile time is not in the rates). Our policies default to fused Adam;
``LagrangianSAC (PyTorch-default Adam)`` and ``SB3 SAC (fused Adam)`` show what that choice is worth on each side
(ratios are always to SB3 SAC with its default optimizer, as users get it). For the steering learners a time breakdown (decode, Q^A step, Q^W distillation, actor + dual + targets) is
taken by timing the shared-machinery calls.

Usage::

    python benchmarks/train_throughput.py [--quick] [--out results.json]
    python benchmarks/train_throughput.py --env LPDS-Lift-v0 --net 256,256,256 --layer-norm --prior-cache 8 \
        --learning-starts 400 --learners LagrangianSAC "SB3 SAC (DSRL-SAC)"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CallTimer, add_repo_to_path, machine_info, markdown_table, median, train_in_blocks  # noqa: E402

add_repo_to_path()

import torch  # noqa: E402
from stable_baselines3 import SAC  # noqa: E402

from algorithms import DSRLNA, LagrangianSAC  # noqa: E402
from lpds_envs import make_latent_vec_env  # noqa: E402

LEARNERS = (
    "LagrangianSAC",
    "LagrangianSAC (compile_decoder)",
    "LagrangianSAC (PyTorch-default Adam)",
    "DSRLNA",
    "SB3 SAC (DSRL-SAC)",
    "SB3 SAC (fused Adam)",
)


def build(
    env_id: str,
    net_arch: list[int],
    batch: int,
    learning_starts: int,
    layer_norm: bool,
    prior_cache: int,
    learners: list[str] | None,
):
    common = dict(learning_starts=learning_starts, batch_size=batch, seed=0, verbose=0)
    kw = {"net_arch": net_arch, "n_critics": 2}
    if layer_norm:
        kw["layer_norm"] = True
    steer = dict(delta=0.05, prior_cache=prior_cache)
    specs = {
        "LagrangianSAC": (LagrangianSAC, None, dict(steer, policy_kwargs=kw)),
        "LagrangianSAC (compile_decoder)": (LagrangianSAC, None, dict(steer, compile_decoder=True, policy_kwargs=kw)),
        "LagrangianSAC (PyTorch-default Adam)": (
            LagrangianSAC, None, dict(steer, policy_kwargs={**kw, "optimizer_kwargs": {}})),
        "DSRLNA": (DSRLNA, 1.5, dict(policy_kwargs=kw)),
        "SB3 SAC (DSRL-SAC)": (SAC, 1.5, dict(policy_kwargs={"net_arch": net_arch, "n_critics": 2})),
        "SB3 SAC (fused Adam)": (
            SAC, 1.5, dict(policy_kwargs={"net_arch": net_arch, "n_critics": 2, "optimizer_kwargs": {"fused": True}})),
    }  # fmt: skip
    assert tuple(specs) == LEARNERS
    names = [n for n in specs if learners is None or n in learners or n == "SB3 SAC (DSRL-SAC)"]  # the reference
    models = {}
    for name in names:
        cls, bound, kwargs = specs[name]
        venv = make_latent_vec_env(env_id, seed=0, **({} if bound is None else {"latent_bound": bound}))
        models[name] = cls("MlpPolicy", venv, **kwargs, **common)
    for m in models.values():
        m.learn(learning_starts)  # fill the buffer with prior rollouts; no gradient step yet
    return models


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None)
    p.add_argument("--env", default="LPDS-MultiGoal-v0", help="any LPDS id")
    p.add_argument("--net", default="256,256", help="hidden widths, comma-separated")
    p.add_argument("--layer-norm", action="store_true", help="LayerNorm MLPs (the robomimic presets)")
    p.add_argument("--prior-cache", type=int, default=0, help="LagrangianSAC's prior_cache")
    p.add_argument("--learning-starts", type=int, default=2000, help="latent steps of prior rollouts first")
    p.add_argument(
        "--learners", nargs="+", default=None, choices=LEARNERS, help="a subset (SB3 SAC (DSRL-SAC) is always run)"
    )
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    net_arch, batch = [int(x) for x in args.net.split(",")], 256
    blocks, steps = (3, 20) if args.quick else (8, 100)
    models = build(args.env, net_arch, batch, args.learning_starts, args.layer_norm, args.prior_cache, args.learners)
    timers = {k: CallTimer(m) for k, m in models.items() if not k.startswith("SB3 SAC")}
    for m in models.values():  # warm-up
        m.train(gradient_steps=5, batch_size=batch)
    rates, ratios, breakdown = train_in_blocks(
        models, timers, blocks, steps, batch, "SB3 SAC (DSRL-SAC)", rest="actor+dual+targets"
    )
    rows = []
    for name in models:
        row = [name, f"{median(rates[name]):.1f}", f"{median(ratios[name]):.2f}x"]
        if name in breakdown:
            row += [f"{100 * median(breakdown[name][k]):.0f}%" for k in ("decode", "q_a", "q_w", "actor+dual+targets")]
        else:
            row += ["-"] * 4
        rows.append(row)
    table = markdown_table(
        ["learner", "grad steps/s", "vs SB3 SAC", "decode", "Q^A", "Q^W", "actor+dual+targets"], rows
    )
    print(
        f"{args.env}, net_arch {net_arch}, layer_norm {args.layer_norm}, prior_cache {args.prior_cache}, 2 critics, "
        f"batch {batch}, {blocks} blocks x {steps} steps"
    )
    print(table)
    for name in ("LagrangianSAC", "LagrangianSAC (compile_decoder)"):
        if name not in ratios:
            continue
        ratio = median(ratios[name])
        print(f"target {name} >= 0.5x SB3 SAC: {'met' if ratio >= 0.5 else 'NOT met'} ({ratio:.2f}x)")
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    "machine": machine_info(),
                    "args": vars(args),
                    "rates": rates,
                    "ratios": ratios,
                    "breakdown": breakdown,
                    "table": table,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
