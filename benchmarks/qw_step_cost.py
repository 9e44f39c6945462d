"""What one Q^W distillation step costs at DSRL's Hopper config, and whether ``torch.compile`` can cut it.

With ``prior_cache=8, td_target="latent_critic"`` an LP-DS gradient step decodes nothing and about three quarters of
it is Q^W's 10 distillation steps (docs/results/speed.md). This script asks whether that is overhead (Python and
dispatcher work that compiling removes) or arithmetic (which only fewer steps remove):

- the Q^W of the ``lpds`` preset of ``--env`` (a 2-member ensemble of 3 x 128 Tanh + LayerNorm MLPs, batch 256),
  one distillation step (forward, MSE to a fixed target, backward, fused Adam) eager and with the loss
  ``torch.compile``-d (Inductor fuses forward and backward), alternating order, ``--repeats`` blocks of
  ``--steps`` steps, ratio per block;
- the step's forward and backward multiply-adds counted from the layer shapes (a backward pass does twice a forward
  pass's), turned into the GFLOP/s the step reaches, against the GFLOP/s of ``torch.bmm`` on the hidden layers' shapes
  (a dense-matmul ceiling for this core and thread count), measured in every block.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/qw_step_cost.py           # writes benchmarks/qw_step_cost.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_repo_to_path, machine_info, markdown_table, median  # noqa: E402

add_repo_to_path()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import lpds_envs  # noqa: E402, F401
from algorithms.policies import EnsembleLinear  # noqa: E402
from algorithms.presets import make_algorithm  # noqa: E402


def step_flops(critic: torch.nn.Module, batch: int) -> float:
    """Floating-point operations of one forward + backward pass: 2 per multiply-add, backward = 2x forward."""
    macs = sum(m.weight.numel() for m in critic.modules() if isinstance(m, EnsembleLinear)) * batch
    return 3 * 2 * macs


def bmm_gflops(n: int, batch: int, width: int, repeats: int = 200) -> float:
    """GFLOP/s of ``torch.bmm`` on ``(n, batch, width) x (n, width, width)``: the dense-matmul ceiling."""
    a, b = torch.randn(n, batch, width), torch.randn(n, width, width)
    for _ in range(10):
        torch.bmm(a, b)
    t = time.perf_counter()
    for _ in range(repeats):
        torch.bmm(a, b)
    return 2 * n * batch * width * width * repeats / (time.perf_counter() - t) / 1e9


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="LPDS-Hopper-v0")
    p.add_argument("--repeats", type=int, default=15, help="alternating blocks")
    p.add_argument("--steps", type=int, default=50, help="Q^W steps per block")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(Path(__file__).with_name("qw_step_cost.json")))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = make_algorithm("lpds", args.env, device="cpu", seed=0)
    critic = model.latent_critic
    assert critic is not None
    batch = int(model.batch_size)
    obs = torch.randn(batch, *model.observation_space.shape)
    eps = torch.randn(batch, int(np.prod(model.action_space.shape)))
    target = torch.randn(batch, critic.n_critics)

    def loss_fn(obs: torch.Tensor, eps: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(critic(obs, eps), target, reduction="none").mean(0).sum()

    compiled = torch.compile(loss_fn)

    def run(fn: Any, n: int) -> float:
        t = time.perf_counter()
        for _ in range(n):
            loss = fn(obs, eps, target)
            critic.optimizer.zero_grad()
            loss.backward()
            critic.optimizer.step()
        return (time.perf_counter() - t) / n

    t0 = time.perf_counter()
    run(compiled, 3)
    compile_s = time.perf_counter() - t0
    run(loss_fn, 10)
    flops = step_flops(critic, batch)
    hidden = max(m.weight.shape[-1] for m in critic.modules() if isinstance(m, EnsembleLinear))
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    ceilings: list[float] = []  # measured in every block too, so that load changes hit both alike
    for r in range(args.repeats):
        order = ("eager", "compiled") if r % 2 == 0 else ("compiled", "eager")
        for name in order:
            times[name].append(run(loss_fn if name == "eager" else compiled, args.steps))
        ceilings.append(bmm_gflops(critic.n_critics, batch, hidden))
    ratios = [e / c for e, c in zip(times["eager"], times["compiled"])]
    share = {k: median([flops / t / 1e9 / c for t, c in zip(v, ceilings)]) for k, v in times.items()}
    ceiling = median(ceilings)
    result = {
        "machine": machine_info(),
        "env": args.env,
        "critic": str(critic.q_nets),
        "batch": batch,
        "n_critics": critic.n_critics,
        "step_ms": {k: 1e3 * median(v) for k, v in times.items()},
        "step_ms_iqr": {k: [1e3 * float(np.percentile(v, q)) for q in (25, 75)] for k, v in times.items()},
        "eager_over_compiled": {"median": median(ratios), "min": min(ratios), "max": max(ratios)},
        "compile_s": compile_s,
        "step_gflop": flops / 1e9,
        "step_gflops": {k: flops / median(v) / 1e9 for k, v in times.items()},
        "bmm_ceiling_gflops": ceiling,
        "share_of_ceiling": share,
    }
    rows = [
        [
            k,
            f"{result['step_ms'][k]:.2f}",
            f"{result['step_gflops'][k]:.1f}",
            f"{result['step_gflops'][k] / ceiling:.0%}",
        ]
        for k in times
    ]
    print(markdown_table(["Q^W step", "ms (median)", "GFLOP/s", "of the bmm ceiling"], rows))
    print(f"eager / compiled: {median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f}); "
          f"bmm ceiling {ceiling:.1f} GFLOP/s; compile {compile_s:.1f} s")  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
