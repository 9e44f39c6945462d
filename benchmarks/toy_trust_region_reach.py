"""How far can a trust region ``||Delta||^2 <= delta`` move the toy backbone's goal coverage at all?

Probe for the App. B study: for each delta, steer the shipped toy backbone with a *constant* shift
``Delta = sqrt(delta) * (cos a, sin a)`` (the largest the trust region allows) over 32 directions ``a``, run 1000
rollouts from the origin with ``w = eps + Delta`` and report the largest share any single goal reaches. A learned
``Delta(s)`` may do better than a constant, but this shows the order of magnitude the constraint permits.

    python benchmarks/toy_trust_region_reach.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_repo_to_path  # noqa: E402

add_repo_to_path()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lpds_envs.backbones.shipped import load_backbone  # noqa: E402
from lpds_envs.evaluation import multigoal_coverage  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    decoder = load_backbone("multigoal-diffusion")
    rng = np.random.default_rng(0)
    print(
        "| delta | shift norm | best single-goal share (constant shift, 32 directions) | its goal fractions BL/TR/TL/BR |"
    )
    print("|---|---|---|---|")
    for delta in (0.01, 0.05, 0.1, 0.35):
        best = (0.0, None)
        for a in np.linspace(0, 2 * np.pi, 32, endpoint=False):
            shift = np.sqrt(delta) * np.array([np.cos(a), np.sin(a)], dtype=np.float32)
            cov = multigoal_coverage(
                decoder,
                n_rollouts=1000,
                seed=1,
                latent_fn=lambda o, s=shift: rng.standard_normal((len(o), 2)).astype(np.float32) + s,
            )
            share = max(cov["goal_fractions"])
            if share > best[0]:
                best = (share, cov["goal_fractions"])
        print(
            f"| {delta} | {np.sqrt(delta):.2f} | {best[0]:.2f} | {' / '.join(f'{f:.2f}' for f in best[1])} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
