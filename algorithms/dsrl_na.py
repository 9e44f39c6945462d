"""DSRLNA: DSRL with noise aliasing (Wagenmaker et al., 2025) on the shared two-critic machinery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from lpds_envs.decoders.base import Decoder

from .policies import DSRLNAPolicy, MultiInputDSRLNAPolicy, SquashedGaussianActor
from .steering import SteeringAlgorithm, distribution_checks
from .updates import TrainLog, optimizer_step


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

    :param policy: ``"MlpPolicy"``, ``"MultiInputPolicy"`` or a :class:`~algorithms.policies.DSRLNAPolicy` subclass
    :param env: a latent env with a finite latent bound, or its id
    :param ent_coef: ``"auto"`` (learned, initial value 1) or ``"auto_<init>"`` or a fixed float
    :param target_entropy: entropy target of the temperature (0 in the DSRL reference configs and the paper's Adroit runs)
    :param latent_critic_steps: Q^W distillation steps per gradient step
    :param decoder: the frozen decoder, when the env does not expose one (or to override it)
    :param learning_rate: Adam learning rate of actor, both critics and the temperature (float or schedule)
    :param buffer_size: replay capacity (transitions)
    :param learning_starts: latent steps with ``w ~ N(0, I)`` before learning starts
    :param batch_size: minibatch size
    :param tau: Polyak coefficient of the Q^A target
    :param gamma: discount per latent step
    :param train_freq: update the model every ``train_freq`` steps
    :param gradient_steps: gradient steps per update (the UTD ratio)
    :param target_update_interval: Polyak-update the target every this many gradient steps
    :param policy_kwargs: ``net_arch``, ``n_critics``, ``layer_norm``, ``activation_fn``, ...
    :param stats_window_size: episodes averaged in the rollout logs
    :param tensorboard_log: TensorBoard log directory (``None``: none)
    :param verbose: 0 silent, 1 info, 2 debug
    :param seed: seed of the pseudo-random generators
    :param device: torch device of the networks
    :param compile_decoder: as :class:`~algorithms.LagrangianSAC`
    :param prior_cache: as :class:`~algorithms.LagrangianSAC` (the cached prior samples are unclipped here)
    :param td_target: as :class:`~algorithms.LagrangianSAC` (``"decode"``, ``"decode_per_update"`` or
        ``"latent_critic"``; the entropy term ``- ent_coef log pi^W(w'|s')`` is kept in every mode)
    :param target_decode_dtype: as :class:`~algorithms.LagrangianSAC`
    :param _init_setup_model: build the networks now (SB3's convention; ``load`` passes ``False``)
    """

    policy_aliases = {"MlpPolicy": DSRLNAPolicy, "MultiInputPolicy": MultiInputDSRLNAPolicy}  # noqa: RUF012
    policy: DSRLNAPolicy
    actor: SquashedGaussianActor
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
        td_target: str = "decode",
        target_decode_dtype: str = "float32",
        _init_setup_model: bool = True,
    ) -> None:
        self.ent_coef = ent_coef
        self.target_entropy = float(target_entropy)
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
            td_target=td_target,
            target_decode_dtype=target_decode_dtype,
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

    def next_latents(self, replay: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The TD target's next latents ``w' ~ pi^W(.|s')`` and their log-probabilities.

        :param replay: a sampled :class:`~algorithms.buffers.LatentReplayBufferSamples`
        :return: ``(next_w, next_log_prob)``
        """
        return self.actor.action_log_prob(replay.next_observations)

    def train(self, gradient_steps: int, batch_size: int = 256) -> None:
        """``gradient_steps`` DSRL-NA updates (see the class doc), then their mean losses and values logged.

        Logs ``train/critic_loss``, ``train/latent_critic_loss``, ``train/actor_loss``, ``train/q_w`` (mean
        ``min_j Q^W_j(s, w)`` of the actor's latents), ``train/ent_coef``, ``train/entropy`` (the estimate
        ``-mean log pi^W(w|s)``), ``train/ent_coef_loss`` (when the temperature is learned), ``train/n_updates`` and
        ``time/raw_env_steps``.

        :param gradient_steps: gradient steps to take
        :param batch_size: minibatch size of each step
        """
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.action_critic.optimizer, self._require_latent_critic().optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)
        keys = ["critic_loss", "latent_critic_loss", "actor_loss", "q_w", "ent_coef", "entropy"]
        if self.ent_coef_optimizer is not None:
            keys.append("ent_coef_loss")
        log = TrainLog(*keys)
        # each batch with its next latents w' ~ pi^W(.|s') and the prior samples, decoded as td_target says
        # (exact: one decoder call per step; eps unclipped, as aliasing needs)
        # SB3's Gaussian re-validates its arguments on the host at every call; a device update skips that (a NaN
        # still reaches the losses, checked at the end of the call)
        with distribution_checks(not self.defer_loss_checks):
            for step, (replay, td) in enumerate(self.update_batches(gradient_steps, batch_size)):
                obs, next_obs = replay.observations, replay.next_observations
                eps, eps_chunks = td.eps, td.eps_chunks
                ent_coef = self.log_ent_coef.detach().exp()

                # soft TD target
                with torch.no_grad():
                    assert td.next_log_prob is not None  # next_latents returns it
                    next_q = self.next_value(next_obs, td) - ent_coef * td.next_log_prob.reshape(-1, 1)
                    target_q = self.bellman_target(replay, next_q)

                # action critic on the stored decoded chunks; latent critic aliased to it on the prior
                log.add(critic_loss=self.action_critic_step(replay, target_q))
                log.add(latent_critic_loss=self.latent_critic_distill(obs, eps, eps_chunks))

                # latent actor: minimise ent_coef log pi^W(w|s) - min_j Q^W_j(s, w)
                w, log_prob = self.actor.action_log_prob(obs)
                q_w = self.latent_value(obs, w)
                actor_loss = (ent_coef * log_prob - q_w).mean()
                optimizer_step(self.actor.optimizer, actor_loss)
                log.add(actor_loss=actor_loss, q_w=q_w.mean(), ent_coef=ent_coef, entropy=-log_prob.mean())

                # temperature step towards target_entropy
                if self.ent_coef_optimizer is not None:
                    ent_loss = -(self.log_ent_coef * (log_prob.detach() + self.target_entropy)).mean()
                    optimizer_step(self.ent_coef_optimizer, ent_loss)
                    log.add(ent_coef_loss=ent_loss)

                self.check_update(log, step, replay, td.decoded())

                # target network
                if step % self.target_update_interval == 0:
                    self.polyak_update_targets()

        self.record_train_logs(gradient_steps, log)
