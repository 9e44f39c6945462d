"""Replay buffer for steering: stores the latent ``w`` *and* the decoded chunk ``a`` of every transition."""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.vec_env import VecNormalize


class LatentReplayBufferSamples(NamedTuple):
    """A sampled minibatch: SB3's ``ReplayBufferSamples`` fields plus the decoded chunks (and cached prior samples)."""

    observations: torch.Tensor | dict[str, torch.Tensor]
    actions: torch.Tensor  # latent w (clipped as executed)
    next_observations: torch.Tensor | dict[str, torch.Tensor]
    dones: torch.Tensor
    rewards: torch.Tensor
    decoded_actions: torch.Tensor  # flattened decoded chunk Phi(w; s)
    discounts: torch.Tensor | None = None
    prior_latents: torch.Tensor | None = None  # one cached prior sample eps per transition (``prior_samples > 0``)
    prior_chunks: torch.Tensor | None = None  # its decoded chunk Phi(eps; s), flattened


class _DecodedStorage:
    """What both latent buffers add to SB3's: the decoded chunk of every transition and, optionally, a cache of
    ``prior_samples`` prior latents per stored state with their decodes ``Phi(eps; s)``.

    The decoder is frozen, so ``Phi(eps; s)`` of a stored state never changes: decoding a few prior samples once,
    when the transition is stored, and reusing them for Q^W's distillation removes the prior half of the decoder
    calls of every gradient step (see ``prior_cache`` of :class:`~algorithms.LagrangianSAC`).
    """

    buffer_size: int
    n_envs: int
    pos: int

    def _init_decoded(self, decoded_action_dim: int, prior_samples: int, latent_dim: int) -> None:
        if prior_samples < 0:
            raise ValueError(f"prior_samples must be >= 0, got {prior_samples}")
        self.decoded_action_dim = int(decoded_action_dim)
        self.decoded_actions = np.zeros((self.buffer_size, self.n_envs, self.decoded_action_dim), dtype=np.float32)
        self.prior_samples = int(prior_samples)
        self._staged_prior: tuple[np.ndarray, np.ndarray] | None = None
        if self.prior_samples:
            k = self.prior_samples
            self.prior_latents = np.zeros((self.buffer_size, self.n_envs, k, latent_dim), dtype=np.float32)
            self.prior_chunks = np.zeros((self.buffer_size, self.n_envs, k, self.decoded_action_dim), dtype=np.float32)

    def stage_prior(self, latents: np.ndarray, chunks: np.ndarray) -> None:
        """Hand over the prior samples and their decodes of the next ``add``.

        :param latents: prior latents ``(n_envs, prior_samples, d)``
        :param chunks: their decoded chunks ``(n_envs, prior_samples, Ta * act_dim)``
        """
        want = (self.n_envs, self.prior_samples)
        if latents.shape[:2] != want or chunks.shape[:2] != want:
            raise ValueError(
                f"staged prior samples have shapes {latents.shape} / {chunks.shape}, expected {want} + ..."
            )
        self._staged_prior = (latents, chunks)

    def _store_decoded(self, infos: list[dict[str, Any]]) -> None:
        self.decoded_actions[self.pos] = _decoded_chunks(infos, self.decoded_action_dim)
        if getattr(self, "prior_samples", 0):  # buffers pickled before the cache existed have no attribute
            if self._staged_prior is None:
                raise RuntimeError(
                    "this buffer caches prior samples (prior_samples > 0) but none were staged for this transition: "
                    "call stage_prior(latents, chunks) before add() (the steering learners do this)"
                )
            self.prior_latents[self.pos], self.prior_chunks[self.pos] = self._staged_prior
            self._staged_prior = None

    def _prior_of(self, batch_inds: np.ndarray, env_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        if not getattr(self, "prior_samples", 0):
            return None
        k = np.random.randint(0, self.prior_samples, size=len(batch_inds))
        return self.prior_latents[batch_inds, env_indices, k], self.prior_chunks[batch_inds, env_indices, k]


class LatentReplayBuffer(_DecodedStorage, ReplayBuffer):
    """SB3 ``ReplayBuffer`` plus the decoded chunk (read from ``info["decoded_action"]`` of the latent env).

    :param buffer_size: capacity (transitions per sub-env)
    :param observation_space: the observation space
    :param action_space: the latent box
    :param device: torch device of the sampled tensors
    :param n_envs: sub-envs per step
    :param optimize_memory_usage: must be ``False`` (not supported)
    :param handle_timeout_termination: treat time-limit truncations as non-terminal (SB3's ``TimeLimit.truncated``)
    :param decoded_action: ``Ta * act_dim`` of the decoder's chunks
    :param prior_samples: prior latents cached per stored state with their decoded chunks (0: none)
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        device: torch.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        decoded_action_dim: int = 1,
        prior_samples: int = 0,
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
        self._init_decoded(decoded_action_dim, prior_samples, int(np.prod(action_space.shape)))

    def add(self, obs, next_obs, action, reward, done, infos: list[dict[str, Any]]) -> None:
        """Store one vec-env step, its decoded chunks (``info["decoded_action"]``) and any staged prior samples.

        :param obs: observations
        :param next_obs: next observations
        :param action: latents
        :param reward: rewards
        :param done: dones
        :param infos: the infos of the step (each with ``decoded_action``)
        """
        self._store_decoded(infos)
        super().add(obs, next_obs, action, reward, done, infos)

    # LatentReplayBufferSamples is SB3's ReplayBufferSamples plus the decoded chunks (a NamedTuple cannot extend it)
    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> LatentReplayBufferSamples:
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        data = (
            self._normalize_obs(self.observations[batch_inds, env_indices, :], env),
            self.actions[batch_inds, env_indices, :],
            self._normalize_obs(self.next_observations[batch_inds, env_indices, :], env),
            (self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])).reshape(-1, 1),
            self._normalize_reward(self.rewards[batch_inds, env_indices].reshape(-1, 1), env),
            self.decoded_actions[batch_inds, env_indices, :],
        )
        samples = LatentReplayBufferSamples(*tuple(map(self.to_torch, data)))
        prior = self._prior_of(batch_inds, env_indices)
        if prior is not None:
            samples = samples._replace(prior_latents=self.to_torch(prior[0]), prior_chunks=self.to_torch(prior[1]))
        return samples


class LatentDictReplayBuffer(_DecodedStorage, DictReplayBuffer):
    """SB3 ``DictReplayBuffer`` (Dict observations, e.g. camera images + state) plus the decoded chunk.

    Samples are :class:`LatentReplayBufferSamples` whose observations are dicts of tensors (images stay uint8).

    :param buffer_size: capacity (transitions per sub-env)
    :param observation_space: the Dict observation space
    :param action_space: the latent box
    :param device: torch device of the sampled tensors
    :param n_envs: sub-envs per step
    :param optimize_memory_usage: must be ``False`` (not supported)
    :param handle_timeout_termination: treat time-limit truncations as non-terminal (SB3's ``TimeLimit.truncated``)
    :param decoded_action_dim: ``Ta * act_dim`` of the decoder's chunks
    :param prior_samples: prior latents cached per stored state with their decoded chunks (0: none)
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Dict,
        action_space: spaces.Box,
        device: torch.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        decoded_action_dim: int = 1,
        prior_samples: int = 0,
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
        self._init_decoded(decoded_action_dim, prior_samples, int(np.prod(action_space.shape)))

    def add(self, obs, next_obs, action, reward, done, infos: list[dict[str, Any]]) -> None:
        """Store one vec-env step, its decoded chunks (``info["decoded_action"]``) and any staged prior samples.

        :param obs: observations
        :param next_obs: next observations
        :param action: latents
        :param reward: rewards
        :param done: dones
        :param infos: the infos of the step (each with ``decoded_action``)
        """
        self._store_decoded(infos)
        super().add(obs, next_obs, action, reward, done, infos)

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> LatentReplayBufferSamples:
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        # _normalize_obs returns a dict for a dict
        obs = cast(
            dict, self._normalize_obs({k: o[batch_inds, env_indices] for k, o in self.observations.items()}, env)
        )
        next_obs = cast(
            dict, self._normalize_obs({k: o[batch_inds, env_indices] for k, o in self.next_observations.items()}, env)
        )
        dones = self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])
        rewards = self._normalize_reward(self.rewards[batch_inds, env_indices].reshape(-1, 1), env)
        prior = self._prior_of(batch_inds, env_indices)
        return LatentReplayBufferSamples(
            observations={k: self.to_torch(v) for k, v in obs.items()},
            actions=self.to_torch(self.actions[batch_inds, env_indices]),
            next_observations={k: self.to_torch(v) for k, v in next_obs.items()},
            dones=self.to_torch(dones.reshape(-1, 1)),
            rewards=self.to_torch(rewards),
            decoded_actions=self.to_torch(self.decoded_actions[batch_inds, env_indices]),
            prior_latents=None if prior is None else self.to_torch(prior[0]),
            prior_chunks=None if prior is None else self.to_torch(prior[1]),
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
