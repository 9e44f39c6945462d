"""DSRLNA: DSRL with noise aliasing (Wagenmaker et al., 2025) on the shared two-critic machinery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from lpds_envs.decoders.base import Decoder

from .policies import DSRLNAPolicy, MultiInputDSRLNAPolicy
from .steering import SteeringAlgorithm


class DSRLNA(SteeringAlgorithm):
    """DSRL-NA: a SAC policy over latents, an action critic on decoded chunks and a latent critic aliased to it.

    Each gradient step::

        w' ~ pi^W(.|s') = bound * tanh(N(mu, sigma)),  eps ~ N(0, I) (unclipped)
        a' = Phi(w'; s'),  a_eps = Phi(eps; s)    # one decoder call (a_eps cached per transition with prior_cache)
        y = r + gamma (1 - done) [min_j Q^A_targ,j(s', a') - ent_coef log pi^W(w'|s')]
        Q^A <- TD on the stored decoded chunks
        Q^W_j <- regress Q^W_j(s, eps) on Q^A_j(s, a_eps)                          # member by member
        pi^W <- minimise ent_coef log pi^W(w|s) - min_j Q^W_j(s, w),  w ~ pi^W(.|s)
        ent_coef <- SAC temperature step towards target_entropy
        Q^A_targ <- Polyak(Q^A, tau)

    Unlike the reference code, whose noise-aliasing actor ignores ``action_magnitude`` and stays in [-1, 1],
    the latent actor here spans the env's latent box ``[-latent_bound, latent_bound]`` (a finite bound is required),
    and log-probabilities are those of the scaled latent.

    :param ent_coef: ``"auto"`` (learned, initial value 1) or ``"auto_<init>"`` or a fixed float
    :param target_entropy: entropy target of the temperature (0 in the DSRL reference configs and the paper's Adroit runs)
    :param latent_critic_steps: Q^W distillation steps per gradient step

    The remaining parameters are those of :class:`~algorithms.LagrangianSAC`.
    """

    policy_aliases = {"MlpPolicy": DSRLNAPolicy, "MultiInputPolicy": MultiInputDSRLNAPolicy}  # noqa: RUF012
    clip_prior_samples = False  # noise aliasing distills Q^W on unclipped prior samples

    def __init__(
        self,
        policy: str | type[DSRLNAPolicy],
        env: Any,
        ent_coef: str | float = "auto",
        target_entropy: float = 0.0,
        latent_critic_steps: int = 1,
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
        prior_cache: int = 0,
        _init_setup_model: bool = True,
    ) -> None:
        self.ent_coef = ent_coef
        self.target_entropy = float(target_entropy)
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
            latent_critic_steps,
            decoder,
            target_update_interval,
            policy_kwargs,
            stats_window_size,
            tensorboard_log,
            verbose,
            seed,
            device,
            compile_decoder,
            prior_cache,
        )
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        super()._setup_model()
        self.ent_coef_optimizer: torch.optim.Optimizer | None = None
        if isinstance(self.ent_coef, str):
            if not self.ent_coef.startswith("auto"):
                raise ValueError(f"ent_coef must be 'auto', 'auto_<init>' or a float, got {self.ent_coef!r}")
            init = float(self.ent_coef.split("_")[1]) if "_" in self.ent_coef else 1.0
            if init <= 0:
                raise ValueError(f"the initial entropy coefficient must be > 0, got {init}")
            self.log_ent_coef = torch.log(torch.ones(1, device=self.device) * init).requires_grad_(True)
            self.ent_coef_optimizer = torch.optim.Adam([self.log_ent_coef], lr=self.lr_schedule(1))
        else:
            self.log_ent_coef = torch.log(torch.ones(1, device=self.device) * float(self.ent_coef))

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()
        if self.ent_coef_optimizer is not None:
            state_dicts = [*state_dicts, "ent_coef_optimizer"]
        return state_dicts, [*variables, "log_ent_coef"]

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "log_ent_coef", "ent_coef_optimizer"]

    def train(self, gradient_steps: int, batch_size: int = 256) -> None:
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.action_critic.optimizer, self.latent_critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)
        logs: dict[str, list[float]] = {
            k: [] for k in ("critic_loss", "latent_critic_loss", "actor_loss", "ent_coef", "entropy")
        }
        for step in range(gradient_steps):
            replay = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            obs, next_obs = replay.observations, replay.next_observations
            ent_coef = self.log_ent_coef.detach().exp()

            with torch.no_grad():
                next_w, next_log_prob = self.actor.action_log_prob(next_obs)
                next_chunks, eps, eps_chunks = self.decode_next_and_prior(replay, next_w)  # unclipped eps (aliasing)
                next_q = self.action_critic_target(next_obs, next_chunks).min(dim=1, keepdim=True).values
                next_q = next_q - ent_coef * next_log_prob.reshape(-1, 1)
                target_q = replay.rewards + (1 - replay.dones) * self.gamma * next_q

            logs["critic_loss"].append(self.action_critic_step(replay, target_q))
            logs["latent_critic_loss"].append(self.latent_critic_distill(obs, eps, eps_chunks))

            w, log_prob = self.actor.action_log_prob(obs)
            q_w = self.latent_value(obs, w)
            actor_loss = (ent_coef * log_prob - q_w).mean()
            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.actor.optimizer.step()

            if self.ent_coef_optimizer is not None:
                ent_loss = -(self.log_ent_coef * (log_prob.detach() + self.target_entropy)).mean()
                self.ent_coef_optimizer.zero_grad()
                ent_loss.backward()
                self.ent_coef_optimizer.step()

            if step % self.target_update_interval == 0:
                self.polyak_update_targets()
            logs["actor_loss"].append(float(actor_loss.item()))
            logs["ent_coef"].append(float(ent_coef.item()))
            logs["entropy"].append(float(-log_prob.mean().item()))

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for key, values in logs.items():
            self.logger.record(f"train/{key}", float(np.mean(values)))
        self.logger.record("time/raw_env_steps", self.raw_env_steps)
