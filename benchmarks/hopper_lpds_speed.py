"""LP-DS gradient steps per second on LPDS-Hopper-v0: backbone width and the prior cache (RESULTS §12).

Random-init diffusion decoders of the shipped architecture (3 residual blocks, DPPO gym sampler) at hidden 512 (the
shipped size) and 256, and the 512 backbone with ``prior_cache=8`` (Q^W's prior samples decoded once per stored
transition instead of in every gradient step); the study's settings (``gradient_steps=4``), one thread; env stepping
included. All are timed in one run, so the ratios are what to read on a shared machine.

Usage::

    python benchmarks/hopper_lpds_speed.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_repo_to_path  # noqa: E402

add_repo_to_path()


def main() -> None:
    from algorithms.presets import make_algorithm
    from lpds_envs.backbones.zoo import locomotion
    from lpds_envs.decoders import DiffusionDecoder

    torch.set_num_threads(1)
    rates = {}
    for name, hidden, prior_cache in (("512", 512, 0), ("256", 256, 0), ("512 + prior_cache=8", 512, 8)):
        decoder = DiffusionDecoder(
            obs_dim=11,
            action_dim=3,
            chunk_size=4,
            hidden_dim=hidden,
            n_blocks=3,
            time_embed_dim=16,
            **locomotion.BACKBONE_DEFAULTS["diffusion"],
        )
        model = make_algorithm(
            "lpds",
            "LPDS-Hopper-v0",
            seed=0,
            overrides={
                "gradient_steps": 4,
                "learning_starts": 200,
                "prior_cache": prior_cache,
                "env_kwargs": {"decoder": decoder, "latent_bound": 1.5},
            },
        )
        model.learn(400)  # warm-up past learning_starts
        start, n0 = time.perf_counter(), model._n_updates
        model.learn(800, reset_num_timesteps=False)
        rates[name] = (model._n_updates - n0) / (time.perf_counter() - start)
        print(f"hidden {name}: {rates[name]:.2f} LP-DS gradient steps/s (env stepping included)", flush=True)
    print(f"ratio 256 / 512: {rates['256'] / rates['512']:.2f}x")
    print(f"ratio prior_cache=8 / none (hidden 512): {rates['512 + prior_cache=8'] / rates['512']:.2f}x")


if __name__ == "__main__":
    main()
