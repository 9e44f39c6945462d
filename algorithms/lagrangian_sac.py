"""LagrangianSAC: LP-DS (Lagrangian Perturbation Diffusion Steering), paper Algorithm 1, as an SB3 algorithm."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from lpds_envs.decoders.base import Decoder

from .faults import check_losses, check_weights
from .policies import SteeringPolicy
from .steering import LagrangianTrustRegion, SteeringAlgorithm


class LagrangianSAC(LagrangianTrustRegion, SteeringAlgorithm):
    """LP-DS: learn a perturbation ``Delta(s)`` of the frozen decoder's input noise under ``E||Delta(s)||^2 <= delta``.

    Each gradient step (Algorithm 1, lines 7-20)::

        eps', eps ~ N(0, I);  a' = Phi(clip(eps' + Delta(s')); s');  a_eps = Phi(clip(eps); s)   # one decoder call
                                                             # (a_eps cached per transition with prior_cache)
        y = r + gamma (1 - done) min_j Q^A_targ,j(s', a')                                         # TD target
        Q^A <- Q^A - lr grad 0.5 sum_j (Q^A_j(s, a) - y)^2                 # a = the stored decoded chunk
        Q^W <- Q^W - lr grad sum_j (Q^W_j(s, eps) - Q^A_j(s, a_eps))^2     # latent_critic_steps times
        theta <- theta + lr grad [min_j Q^W_j(s, eps + Delta(s)) - alpha (||Delta(s)||^2 - delta)]
        alpha <- max(0, alpha + alpha_lr mean(||Delta(s)||^2 - delta))     # dual step (if use_lagrangian)
        Q^A_targ <- Polyak(Q^A, tau)

    ``delta`` is the trust-region target (the budget); ``Delta(s)`` is the learned perturbation (the actor's output,
    ``perturbation`` in the code). ``||Delta(s)||^2`` is summed over all latent dimensions, so ``delta`` is the
    paper's Table 2 value and ``delta / 2`` is a KL budget (``KL(N(Delta, I) || N(0, I)) = ||Delta||^2 / 2``).
    The discount applies once per latent step, i.e. per executed chunk (as DSRL). ``learning_starts`` and
    ``total_timesteps`` count latent steps (SB3's convention); raw env steps are logged as ``time/raw_env_steps``.

    :param policy: ``"MlpPolicy"`` or a :class:`~algorithms.policies.SteeringPolicy` subclass
    :param env: a latent env (``LatentSteeringWrapper``, ``make_latent_vec_env``, ``gym.make("LPDS-...")``) or its id
    :param delta: trust-region target (float, or a schedule ``f(progress_remaining) -> delta`` as SB3 learning rates)
    :param alpha_init: initial Lagrange multiplier (>= 0)
    :param alpha_lr: step size of the projected dual ascent on alpha
    :param use_lagrangian: ``False`` freezes alpha at ``alpha_init`` (the paper's "w/o Lagrangian" ablation with 0)
    :param latent_critic_steps: Q^W distillation steps per gradient step (paper Table 1: 10 on Adroit)
    :param decoder: the frozen decoder, when the env does not expose one (or to override it)
    :param learning_rate: Adam learning rate of actor and both critics (float or schedule)
    :param buffer_size: replay capacity (transitions)
    :param learning_starts: latent steps with ``w ~ N(0, I)`` before learning starts
    :param batch_size: minibatch size
    :param tau: Polyak coefficient of the Q^A target
    :param gamma: discount per latent step
    :param train_freq: update the model every ``train_freq`` steps
    :param gradient_steps: gradient steps per update (the UTD ratio)
    :param target_update_interval: Polyak-update the target every this many gradient steps
    :param policy_kwargs: ``net_arch``, ``n_critics``, ``layer_norm``, ``activation_fn``, ``actor_init_scale``, ...
    :param stats_window_size: episodes averaged in the rollout logs
    :param tensorboard_log: TensorBoard log directory (``None``: none)
    :param verbose: 0 silent, 1 info, 2 debug
    :param seed: seed of the pseudo-random generators
    :param device: torch device of the networks (``"auto"``: CUDA if available)
    :param compile_decoder: decode the training batches through a ``torch.compile`` copy of the decoder (same
        weights and outputs to float tolerance; ~1.3x faster decoding on CPU, a one-off compile on the first update).
        The env keeps its own decoder; needs a :class:`~lpds_envs.decoders.PretrainedDecoder`.
    :param prior_cache: ``k > 0`` decodes ``k`` prior samples ``eps`` per transition once, when it is stored, and
        distills Q^W on one of them (drawn at random) instead of decoding fresh prior samples in every gradient step.
        The decoder is frozen, so the pairs ``(eps, Phi(eps; s))`` are exact; this halves the decoder work per
        gradient step (the TD target's ``Phi(eps' + Delta(s'); s')`` must still be decoded) at the price of a finite
        set of prior samples per stored state and ``k * (d + Ta * act_dim)`` floats per transition of memory.
        0 (default) is Algorithm 1 as written.
    :param _init_setup_model: build the networks now (SB3's convention; ``load`` passes ``False``)

    Example::

        >>> import gymnasium as gym, lpds_envs
        >>> from algorithms import LagrangianSAC
        >>> model = LagrangianSAC("MlpPolicy", gym.make("LPDS-MultiGoal-v0"), delta=0.05, learning_starts=100)
        >>> model = model.learn(total_timesteps=200)
        >>> model.alpha >= 0
        True
    """

    def __init__(
        self,
        policy: str | type[SteeringPolicy],
        env: Any,
        delta: float | Callable[[float], float] = 0.35,
        alpha_init: float = 1.0,
        alpha_lr: float = 0.01,
        use_lagrangian: bool = True,
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
        self._init_trust_region(delta, alpha_init, alpha_lr, use_lagrangian)
        super().__init__(
            policy=policy,
            env=env,
            learning_rate=learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            latent_critic_steps=latent_critic_steps,
            decoder=decoder,
            target_update_interval=target_update_interval,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            seed=seed,
            device=device,
            compile_decoder=compile_decoder,
            prior_cache=prior_cache,
        )
        if _init_setup_model:
            self._setup_model()

    def train(self, gradient_steps: int, batch_size: int = 256) -> None:
        """``gradient_steps`` updates of Algorithm 1 (lines 7-20), then their mean losses and values logged.

        Logs ``train/critic_loss``, ``train/latent_critic_loss``, ``train/actor_loss``, ``train/perturbation_sq``
        (mean ``||Delta(s)||^2``), ``train/q_w`` (mean ``min_j Q^W_j(s, eps + Delta(s))``), ``train/alpha``,
        ``train/delta`` (the target), ``train/n_updates`` and ``time/raw_env_steps``.

        :param gradient_steps: gradient steps to take
        :param batch_size: minibatch size of each step
        """
        self.policy.set_training_mode(True)
        self._update_learning_rate(
            [self.actor.optimizer, self.action_critic.optimizer, self._require_latent_critic().optimizer]
        )
        delta = self.delta  # the trust-region target of this update (a schedule moves it between updates)
        logs: dict[str, list[float]] = {
            k: [] for k in ("critic_loss", "latent_critic_loss", "actor_loss", "perturbation_sq", "q_w")
        }
        for step in range(gradient_steps):
            replay = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            obs, next_obs = replay.observations, replay.next_observations

            # decode the next actions of the current steered policy and the prior samples in one call
            # (with prior_cache the prior samples were decoded when their transition was stored)
            with torch.no_grad():
                next_w = self.clip_latent(torch.randn_like(replay.actions) + self.actor(next_obs))
                next_chunks, eps, eps_chunks = self.decode_next_and_prior(replay, next_w)  # eps clipped to the box

                # TD target on the action critic (line 10)
                next_q = self.action_critic_target(next_obs, next_chunks).min(dim=1, keepdim=True).values
                target_q = replay.rewards + (1 - replay.dones) * self.gamma * next_q

            # action critic on the stored decoded chunks (line 11)
            logs["critic_loss"].append(self.action_critic_step(replay, target_q))
            # latent critic distilled on the prior (lines 14-15)
            logs["latent_critic_loss"].append(self.latent_critic_distill(obs, eps, eps_chunks))

            # actor: maximise Q^W(s, eps + Delta(s)) - alpha (||Delta(s)||^2 - delta) (lines 17-18)
            perturbation = self.actor(obs)
            perturbation_sq = perturbation.pow(2).sum(dim=1)
            q_w = self.latent_value(obs, torch.randn_like(perturbation) + perturbation)
            actor_loss = (-q_w + self.alpha * (perturbation_sq - delta)).mean()
            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.actor.optimizer.step()
            logs["actor_loss"].append(float(actor_loss.item()))
            logs["perturbation_sq"].append(float(perturbation_sq.mean().item()))
            logs["q_w"].append(float(q_w.mean().item()))

            decoded = {"next chunks": next_chunks, "prior chunks": eps_chunks}
            check_losses({k: v[-1] for k, v in logs.items() if v}, self._n_updates + step + 1, replay, decoded)

            # projected dual ascent on alpha (line 19)
            self.dual_step(perturbation_sq, delta)

            # target networks (line 20)
            if step % self.target_update_interval == 0:
                self.polyak_update_targets()

        self._n_updates += gradient_steps
        check_weights(self, self._n_updates)  # once per call: the loop's losses were checked step by step
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/alpha", self.alpha)
        self.logger.record("train/delta", delta)
        for key, values in logs.items():
            self.logger.record(f"train/{key}", float(np.mean(values)))
        self.logger.record("time/raw_env_steps", self.raw_env_steps)
