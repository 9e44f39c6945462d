"""The toy task as the fine-tuning baselines see it: the raw MultiGoal env in a ChunkedActionWrapper, with the shipped
toy diffusion backbone, and a batched evaluation of any chunk policy on it (shared by test_idql and test_dql)."""

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

import lpds_envs  # noqa: F401  (registers lpds/MultiGoal-v0)
from lpds_envs.backbones.shipped import load_backbone
from lpds_envs.decoders import DiffusionDecoder
from lpds_envs.wrappers import ChunkedActionWrapper


def toy_backbone() -> DiffusionDecoder:
    """The shipped toy backbone (shared, cached by load_backbone: tests must never modify it)."""
    backbone = load_backbone("multigoal-diffusion")
    assert isinstance(backbone, DiffusionDecoder)
    return backbone


def toy_chunked_env() -> gym.Env:
    """``ChunkedActionWrapper(lpds/MultiGoal-v0, Ta)`` with the backbone's chunk size."""
    return ChunkedActionWrapper(gym.make("lpds/MultiGoal-v0"), toy_backbone().chunk_size)


def toy_return(act: Callable[[np.ndarray], np.ndarray], episodes: int, seed: int = 0) -> float:
    """Mean undiscounted return of ``act`` (observations ``(N, 2)`` -> chunks ``(N, Ta, 2)``) over ``episodes``
    toy episodes run side by side from the origin, with torch's generator seeded by ``seed``."""
    torch.manual_seed(seed)
    envs = [toy_chunked_env() for _ in range(episodes)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]).astype(np.float32)
    total, done = np.zeros(episodes), np.zeros(episodes, dtype=bool)
    while not done.all():
        chunks = act(obs)
        for i, env in enumerate(envs):
            if done[i]:
                continue
            obs[i], reward, terminated, truncated, _ = env.step(chunks[i])
            total[i] += reward
            done[i] = terminated or truncated
    return float(total.mean())


def backbone_return(episodes: int, seed: int = 0) -> float:
    """:func:`toy_return` of the frozen backbone with latents from its prior."""
    backbone = toy_backbone()
    return toy_return(lambda obs: backbone(obs, backbone.sample_prior(len(obs))).numpy(), episodes, seed)
