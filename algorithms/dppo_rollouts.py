"""DPPO's rollout data: the denoising chains of each env step, advantages over both levels of its MDP, and the
running reward scale.

DPPO (Ren et al., 2024) treats denoising as an inner MDP inside each env step: the state of denoising step ``k`` is
``(s, x_k)``, its action ``x_{k+1}`` (a Gaussian transition) and only the last denoising step of an env step earns
that env step's reward. With discount ``gamma_denoise`` inside an env step, the advantage of fine-tuned denoising step
``k`` (``0`` = the first fine-tuned step) of env step ``t`` is the env-step advantage scaled by its distance to the
chunk: ``A_{t,k} = gamma_denoise^(K' - 1 - k) A_t``, where ``A_t`` is GAE(gamma, lambda) over env steps.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.running_mean_std import RunningMeanStd


def denoising_discounts(ft_steps: int, gamma_denoise: float) -> torch.Tensor:
    """``gamma_denoise^(K' - 1 - k)`` for the fine-tuned denoising steps ``k = 0..K'-1`` (the last step gets 1)."""
    return gamma_denoise ** torch.arange(ft_steps - 1, -1, -1, dtype=torch.float32)


def clip_ranges(ft_steps: int, clip_range: float, clip_range_first: float, rate: float) -> torch.Tensor:
    """PPO clip range of each fine-tuned denoising step: ``clip_range_first`` at the first (noisiest) step rising
    exponentially (curvature ``rate``) to ``clip_range`` at the last, as DPPO's ``clip_ploss_coef_base`` /
    ``clip_ploss_coef`` / ``clip_ploss_coef_rate``; ``clip_range`` everywhere when a single step is fine-tuned."""
    if ft_steps == 1:
        return torch.full((1,), float(clip_range))
    frac = torch.arange(ft_steps, dtype=torch.float32) / (ft_steps - 1)
    if rate == 0:
        shape = frac
    else:
        shape = (torch.exp(rate * frac) - 1) / (math.exp(rate) - 1)
    return clip_range_first + (clip_range - clip_range_first) * shape


class DenoisingSamples(NamedTuple):
    """A rollout flattened over env steps (``N = n_steps * n_envs``) for the update."""

    observations: torch.Tensor  # (N, *obs_shape)
    chains: torch.Tensor  # (N, K' + 1, Ta, act_dim)
    old_log_probs: torch.Tensor  # (N, K'), the mean of the clipped elementwise log-probabilities
    old_values: torch.Tensor  # (N,)
    advantages: torch.Tensor  # (N,) env-step GAE
    returns: torch.Tensor  # (N,)


class DenoisingRolloutBuffer(RolloutBuffer):
    """SB3's :class:`~stable_baselines3.common.buffers.RolloutBuffer` that also keeps each env step's denoising chain
    and the log-probability of each fine-tuned transition, plus the value bootstrap of truncated episodes apart from
    the reward (so rewards can be rescaled after the rollout without scaling the bootstrap).

    :param chain_shape: ``(K' + 1, Ta, act_dim)``
    :param args: :class:`RolloutBuffer`'s
    :param kwargs: :class:`RolloutBuffer`'s
    """

    chains: np.ndarray
    chain_log_probs: np.ndarray
    bootstrap: np.ndarray

    def __init__(self, *args: Any, chain_shape: tuple[int, ...], **kwargs: Any) -> None:
        self.chain_shape = tuple(int(d) for d in chain_shape)
        super().__init__(*args, **kwargs)

    def reset(self) -> None:
        super().reset()
        self.chains = np.zeros((self.buffer_size, self.n_envs, *self.chain_shape), dtype=np.float32)
        self.chain_log_probs = np.zeros((self.buffer_size, self.n_envs, self.chain_shape[0] - 1), dtype=np.float32)
        self.bootstrap = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)

    def add_chain(self, chain: torch.Tensor, step_log_probs: torch.Tensor, bootstrap: np.ndarray) -> None:
        """Store the chains, per-step log-probabilities ``(n_envs, K')`` and truncation bootstraps of the env step
        that the next :meth:`add` stores."""
        self.chains[self.pos] = chain.cpu().numpy()
        self.chain_log_probs[self.pos] = step_log_probs.cpu().numpy()
        self.bootstrap[self.pos] = bootstrap

    def samples(self) -> DenoisingSamples:
        """The filled buffer flattened over (step, env) as tensors on the buffer's device."""
        assert self.full, "the rollout is not complete"

        def flat(a: np.ndarray) -> torch.Tensor:
            return self.to_torch(self.swap_and_flatten(a))

        return DenoisingSamples(
            flat(self.observations),
            flat(self.chains),
            flat(self.chain_log_probs),
            flat(self.values).flatten(),
            flat(self.advantages).flatten(),
            flat(self.returns).flatten(),
        )


class RunningRewardScale:
    """Divides rewards by the running std of the discounted return (no mean subtracted), clipped to ``+-clip``: PPO's
    reward scaling that DPPO applies by default (``reward_scale_running``).

    :param n_envs: parallel envs
    :param gamma: discount of the running return
    :param clip: clip of the scaled rewards
    """

    def __init__(self, n_envs: int, gamma: float, clip: float = 10.0) -> None:
        self.rms = RunningMeanStd(shape=())
        self.ret = np.zeros(n_envs)
        self.gamma, self.clip = float(gamma), float(clip)

    def update_and_scale(self, rewards: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
        """Update the statistics with a rollout's rewards ``(n_steps, n_envs)`` (``episode_starts`` marks the first
        step of each episode) and return them scaled."""
        rets = np.zeros_like(rewards, dtype=np.float64)
        for t in range(len(rewards)):
            self.ret = self.ret * self.gamma * (1.0 - episode_starts[t]) + rewards[t]
            rets[t] = self.ret
        self.rms.update(rets.reshape(-1))
        return np.clip(rewards / np.sqrt(self.rms.var + 1e-8), -self.clip, self.clip).astype(np.float32)
