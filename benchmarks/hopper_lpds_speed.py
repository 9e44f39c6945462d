"""LP-DS gradient steps per second on LPDS-Hopper-v0 for backbones of two widths (RESULTS §12).

Random-init diffusion decoders of the shipped architecture (3 residual blocks, DPPO gym sampler) at hidden 512 (the
shipped size) and 256, the study's settings (``gradient_steps=4``), one thread; env stepping included. Both are
timed in one run, so the ratio is what to read on a shared machine.

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
    from lpds_envs.backbones import locomotion
    from lpds_envs.decoders import DiffusionDecoder

    torch.set_num_threads(1)
    rates = {}
    for hidden in (512, 256):
        decoder = DiffusionDecoder(obs_dim=11, action_dim=3, chunk_size=4, hidden_dim=hidden, n_blocks=3,
                                   time_embed_dim=16, **locomotion.BACKBONE_DEFAULTS["diffusion"])
        model = make_algorithm("lpds", "LPDS-Hopper-v0", seed=0, overrides={
            "gradient_steps": 4, "learning_starts": 200, "env_kwargs": {"decoder": decoder, "latent_bound": 1.5}})
        model.learn(400)  # warm-up past learning_starts
        start, n0 = time.perf_counter(), model._n_updates
        model.learn(800, reset_num_timesteps=False)
        rates[hidden] = (model._n_updates - n0) / (time.perf_counter() - start)
        print(f"hidden {hidden}: {rates[hidden]:.2f} LP-DS gradient steps/s (env stepping included)", flush=True)
    print(f"ratio 256 / 512: {rates[256] / rates[512]:.2f}x")


if __name__ == "__main__":
    main()
