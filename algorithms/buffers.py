"""Replay buffer for steering: stores the latent ``w`` *and* the decoded chunk ``a`` of every transition."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.vec_env import VecNormalize


class LatentReplayBufferSamples(NamedTuple):
    observations: torch.Tensor | dict[str, torch.Tensor]
    actions: torch.Tensor  # latent w (clipped as executed)
    next_observations: torch.Tensor | dict[str, torch.Tensor]
    dones: torch.Tensor
    rewards: torch.Tensor
    decoded_actions: torch.Tensor  # flattened decoded chunk Phi(w; s)
    discounts: torch.Tensor | None = None


class LatentReplayBuffer(ReplayBuffer):
    """SB3 ``ReplayBuffer`` plus the decoded chunk (read from ``info["decoded_action"]`` of the latent env).

    :param decoded_action_dim: ``Ta * act_dim`` of the decoder's chunks
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: torch.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        decoded_action_dim: int = 1,
    ) -> None:
        if optimize_memory_usage:
            raise ValueError("LatentReplayBuffer does not support optimize_memory_usage=True")
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device,
            n_envs,
            optimize_memory_usage=False,
            handle_timeout_termination=handle_timeout_termination,
        )
        self.decoded_action_dim = int(decoded_action_dim)
        self.decoded_actions = np.zeros((self.buffer_size, self.n_envs, self.decoded_action_dim), dtype=np.float32)

    def add(self, obs, next_obs, action, reward, done, infos: list[dict[str, Any]]) -> None:
        self.decoded_actions[self.pos] = _decoded_chunks(infos, self.decoded_action_dim)
        super().add(obs, next_obs, action, reward, done, infos)

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> LatentReplayBufferSamples:
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        data = (
            self._normalize_obs(self.observations[batch_inds, env_indices, :], env),
            self.actions[batch_inds, env_indices, :],
            self._normalize_obs(self.next_observations[batch_inds, env_indices, :], env),
            (self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])).reshape(-1, 1),
            self._normalize_reward(self.rewards[batch_inds, env_indices].reshape(-1, 1), env),
            self.decoded_actions[batch_inds, env_indices, :],
        )
        return LatentReplayBufferSamples(*tuple(map(self.to_torch, data)))


class LatentDictReplayBuffer(DictReplayBuffer):
    """SB3 ``DictReplayBuffer`` (Dict observations, e.g. camera images + state) plus the decoded chunk.

    Samples are :class:`LatentReplayBufferSamples` whose observations are dicts of tensors (images stay uint8).

    :param decoded_action_dim: ``Ta * act_dim`` of the decoder's chunks
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        device: torch.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        decoded_action_dim: int = 1,
    ) -> None:
        if optimize_memory_usage:
            raise ValueError("LatentDictReplayBuffer does not support optimize_memory_usage=True")
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device,
            n_envs,
            handle_timeout_termination=handle_timeout_termination,
        )
        self.decoded_action_dim = int(decoded_action_dim)
        self.decoded_actions = np.zeros((self.buffer_size, self.n_envs, self.decoded_action_dim), dtype=np.float32)

    def add(self, obs, next_obs, action, reward, done, infos: list[dict[str, Any]]) -> None:  # type: ignore[override]
        self.decoded_actions[self.pos] = _decoded_chunks(infos, self.decoded_action_dim)
        super().add(obs, next_obs, action, reward, done, infos)

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> LatentReplayBufferSamples:
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        obs = self._normalize_obs({k: o[batch_inds, env_indices] for k, o in self.observations.items()}, env)
        next_obs = self._normalize_obs({k: o[batch_inds, env_indices] for k, o in self.next_observations.items()}, env)
        dones = self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])
        rewards = self._normalize_reward(self.rewards[batch_inds, env_indices].reshape(-1, 1), env)
        return LatentReplayBufferSamples(
            observations={k: self.to_torch(v) for k, v in obs.items()},
            actions=self.to_torch(self.actions[batch_inds, env_indices]),
            next_observations={k: self.to_torch(v) for k, v in next_obs.items()},
            dones=self.to_torch(dones.reshape(-1, 1)),
            rewards=self.to_torch(rewards),
            decoded_actions=self.to_torch(self.decoded_actions[batch_inds, env_indices]),
        )


def _decoded_chunks(infos: list[dict[str, Any]], decoded_action_dim: int) -> np.ndarray:
    """The flat decoded chunks ``(n_envs, Ta * act_dim)`` of one vec-env step, from ``info["decoded_action"]``."""
    try:
        chunks = np.stack([np.asarray(info["decoded_action"], dtype=np.float32).reshape(-1) for info in infos])
    except KeyError as exc:
        raise KeyError(
            "the env's info has no 'decoded_action': train on a latent env (LatentSteeringWrapper, "
            "make_latent_vec_env or an LPDS-*-v0 id)"
        ) from exc
    if chunks.shape[1] != decoded_action_dim:
        raise ValueError(f"decoded chunk has {chunks.shape[1]} entries, expected {decoded_action_dim}")
    return chunks
