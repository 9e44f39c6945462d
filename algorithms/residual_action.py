"""LP-DS-A (paper Sec. 5.5): the same Lagrangian trust region, but the residual acts on the decoded *action*.

``a = clip(Phi(eps; s) + Delta_a(s))`` with ``eps ~ N(0, I)`` drawn by the env, trained with the action critic
Q^A only (no latent critic). The env side is :class:`ResidualActionWrapper`: its action is the residual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from lpds_envs.decoders.base import Decoder
from lpds_envs.wrappers import ChunkedActionWrapper, _to_batch

from .policies import SteeringPolicy
from .steering import LagrangianTrustRegion, SteeringAlgorithm


class ResidualActionWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """The action is a residual ``r`` on the backbone's chunk: executes ``clip(Phi(eps; s) + r, low, high)``.

    ``eps ~ N(0, I)`` is drawn by the wrapper from a generator seeded by ``reset(seed=...)`` (then continuing
    across episodes), so episodes are reproducible. ``info["decoded_action"]`` is the executed chunk,
    ``info["base_action"]`` the backbone's ``Phi(eps; s)``, ``info["latent"]`` the noise ``eps``.

    :param env: the task env (per-step ``Box`` actions, or already chunked)
    :param decoder: the frozen decoder
    """

    def __init__(self, env: gym.Env, decoder: Decoder) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, decoder=decoder)
        if getattr(env.action_space, "shape", None) == decoder.action_shape[1:]:
            env = ChunkedActionWrapper(env, decoder.chunk_size)
        if env.action_space.shape != decoder.action_shape:
            raise ValueError(f"env actions {env.action_space.shape} do not match decoder chunks {decoder.action_shape}")
        gym.Wrapper.__init__(self, env)
        self.decoder = decoder
        self.chunk_low = env.action_space.low.reshape(-1).astype(np.float32)
        self.chunk_high = env.action_space.high.reshape(-1).astype(np.float32)
        width = self.chunk_high - self.chunk_low  # a residual never needs to exceed the action range
        self.action_space = spaces.Box(-width, width, dtype=np.float32)
        self._rng = np.random.default_rng()
        self._obs: Any = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = obs
        return obs, info

    def step(self, action):
        r = np.asarray(action, dtype=np.float32).reshape(-1)
        if r.shape != self.action_space.shape:
            raise ValueError(f"residual has shape {np.shape(action)}, expected {self.action_space.shape}")
        eps = self._rng.standard_normal(self.decoder.latent_shape).astype(np.float32)
        if isinstance(self._obs, dict):  # Dict observations keep their dtypes (uint8 camera images)
            obs = _to_batch(self._obs, single=True)
        else:
            obs = torch.as_tensor(np.asarray(self._obs, dtype=np.float32))[None]
        base = self.decoder(obs, torch.from_numpy(eps)[None])
        base = base[0].numpy().reshape(-1)
        chunk = np.clip(base + r, self.chunk_low, self.chunk_high)
        obs, reward, terminated, truncated, info = self.env.step(chunk.reshape(self.decoder.action_shape))
        self._obs = obs
        info["decoded_action"], info["base_action"], info["latent"] = chunk, base, eps
        return obs, reward, terminated, truncated, info


class ResidualActionSAC(LagrangianTrustRegion, SteeringAlgorithm):
    """LP-DS-A: ``a = clip(Phi(eps; s) + Delta_a(s))``, Lagrangian trust region on ``||Delta_a||^2``, Q^A only.

    Each gradient step::

        eps', eps ~ N(0, I);  b' = Phi(eps'; s'),  b = Phi(eps; s)                 # one decoder call
        y = r + gamma (1 - done) min_j Q^A_targ,j(s', clip(b' + Delta_a(s')))
        Q^A <- TD on the executed chunks
        theta <- theta + lr grad [min_j Q^A_j(s, clip(b + Delta_a(s))) - alpha (||Delta_a(s)||^2 - delta)]
        alpha <- max(0, alpha + alpha_lr mean(||Delta_a(s)||^2 - delta))

    Use it on a :class:`ResidualActionWrapper` env. Exploration comes from the backbone's own noise ``eps``;
    the residual is deterministic (``predict`` returns ``Delta_a(s)`` either way); warm-up uses residual 0.
    The policy's latent critic is built but unused. Parameters as :class:`~algorithms.LagrangianSAC`;
    ``"MultiInputPolicy"`` (SB3's ``CombinedExtractor``) takes Dict observations such as camera images + state.
    """

    def __init__(
        self,
        policy: str | type[SteeringPolicy],
        env: Any,
        delta: float | Callable[[float], float] = 0.35,
        alpha_init: float = 1.0,
        alpha_lr: float = 0.01,
        use_lagrangian: bool = True,
        decoder: Decoder | None = None,
        learning_rate: float | Callable[[float], float] = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 1000,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        target_update_interval: int = 1,
        policy_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        compile_decoder: bool = False,
        _init_setup_model: bool = True,
    ) -> None:
        self._init_trust_region(delta, alpha_init, alpha_lr, use_lagrangian)
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,
            gradient_steps,
            1,
            decoder,
            target_update_interval,
            policy_kwargs,
            stats_window_size,
            tensorboard_log,
            verbose,
            seed,
            device,
            compile_decoder,
        )
        if _init_setup_model:
            self._setup_model()

    def _expected_action_dim(self) -> int:
        return int(np.prod(self.decoder.action_shape))

    def _setup_model(self) -> None:
        super()._setup_model()
        try:
            low, high = self.env.get_attr("chunk_low")[0], self.env.get_attr("chunk_high")[0]
        except AttributeError as exc:
            raise ValueError(
                "ResidualActionSAC needs a ResidualActionWrapper env (its action is the residual)"
            ) from exc
        self.chunk_low = torch.as_tensor(low, device=self.device)
        self.chunk_high = torch.as_tensor(high, device=self.device)

    def _sample_action(self, learning_starts: int, action_noise: Any = None, n_envs: int = 1):
        if self.num_timesteps < learning_starts:
            r = np.zeros((n_envs, self.action_space.shape[0]), dtype=np.float32)  # the backbone itself
        else:
            r, _ = self.predict(self._last_obs, deterministic=True)
        return r, r

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        return super().predict(observation, state, episode_start, deterministic=True)

    def steered_policy(self, deterministic: bool = False):
        raise NotImplementedError("steered_policy() is for latent steering; LP-DS-A acts as ResidualActionWrapper does")

    def _residual_action(self, base: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return torch.max(torch.min(base + residual, self.chunk_high), self.chunk_low)

    def train(self, gradient_steps: int, batch_size: int = 256) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.action_critic.optimizer])
        delta = self.delta
        logs: dict[str, list[float]] = {k: [] for k in ("critic_loss", "actor_loss", "perturbation_sq")}
        latent = (-1, *self.decoder.latent_shape)
        for step in range(gradient_steps):
            replay = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            obs, next_obs = replay.observations, replay.next_observations
            n = replay.rewards.shape[0]  # observations may be a dict (images + state)
            with torch.no_grad():
                eps = torch.randn((2 * n, self.decoder.latent_dim), device=self.device)
                next_base, base = self.decode_batches((next_obs, eps[:n].view(latent)), (obs, eps[n:].view(latent)))
                next_a = self._residual_action(next_base, self.actor(next_obs))
                next_q = self.action_critic_target(next_obs, next_a).min(dim=1, keepdim=True).values
                target_q = replay.rewards + (1 - replay.dones) * self.gamma * next_q
            logs["critic_loss"].append(self.action_critic_step(replay, target_q))

            residual = self.actor(obs)
            pert_sq = residual.pow(2).sum(dim=1)
            q = self.action_critic(obs, self._residual_action(base, residual)).min(dim=1).values
            actor_loss = (-q + self.alpha * (pert_sq - delta)).mean()
            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.actor.optimizer.step()
            self.dual_step(pert_sq, delta)
            if step % self.target_update_interval == 0:
                self.polyak_update_targets()
            logs["actor_loss"].append(float(actor_loss.item()))
            logs["perturbation_sq"].append(float(pert_sq.mean().item()))

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/alpha", self.alpha)
        for key, values in logs.items():
            self.logger.record(f"train/{key}", float(np.mean(values)))
        self.logger.record("time/raw_env_steps", self.raw_env_steps)
