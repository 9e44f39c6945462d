"""LagrangianSAC: LP-DS (Lagrangian Perturbation Diffusion Steering), paper Algorithm 1, as an SB3 algorithm."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from lpds_envs.decoders.base import Decoder

from .policies import SteeringPolicy
from .steering import SteeringAlgorithm
from .trust_region import LagrangianTrustRegion
from .updates import TrainLog, optimizer_step


class LagrangianSAC(LagrangianTrustRegion, SteeringAlgorithm):
    """LP-DS: learn a perturbation ``Delta(s)`` of the frozen decoder's input noise under ``E||Delta(s)||^2 <= delta``.

    Each gradient step (Algorithm 1, lines 7-20)::

        eps', eps ~ N(0, I);  a' = Phi(clip(eps' + Delta(s')); s');  a_eps = Phi(clip(eps); s)   # one decoder call
                                                             # (a_eps cached per transition with prior_cache)
        y = r + gamma (1 - done) min_j Q^A_targ,j(s', a')                                         # TD target
                                  # (td_target="latent_critic": min_j Q^W_targ,j(s', eps' + Delta(s')), no a')
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
    :param td_target: how the TD target's next value ``min_j Q_targ,j`` is computed; all but ``"decode"`` are fast
        approximations, off by default:

        - ``"decode"`` (default): Algorithm 1 as written; each gradient step decodes ``a' = Phi(eps' + Delta(s'); s')``
          with the actor as it is at that step.
        - ``"decode_per_update"``: the next latents of all ``gradient_steps`` batches of one ``train()`` call are
          drawn with the actor as it is at the start of the call and decoded in one batched decoder call (with the
          fresh prior samples, when there is no ``prior_cache``). The same decoder work in fewer, larger calls; the
          targets of later steps use a next latent that lags the actor by up to ``gradient_steps - 1`` steps.
        - ``"latent_critic"``: no next-chunk decode at all; the target bootstraps from a Polyak target of the latent
          critic, ``y = r + gamma (1 - done) min_j Q^W_targ,j(s', clip(eps' + Delta(s')))`` (updated with ``tau``
          alongside Q^A's). Q^W is distilled from Q^A on the prior, so this trusts Q^W at the perturbed latents, as
          the actor's update already does. With ``prior_cache`` a gradient step then decodes nothing (about 2.5x
          the gradient steps/s of ``prior_cache`` alone at DSRL's Hopper config; it learned as the exact algorithm in
          the toy and Hopper checks of docs/results/speed.md, which are few seeds: hence off by default).
    :param target_decode_dtype: ``"float32"`` (default, exact) or ``"bfloat16"``: decode the TD target's next chunks
        under ``torch.autocast`` in bfloat16 (the executed actions and Q^W's prior chunks stay float32). Only with a
        decoded TD target. Measured on the shipped Hopper decoder on an AVX512-BF16 CPU: ~1.7x faster per decode,
        but 0.75% of the chunk entries move by > 0.1 (up to 0.2 near reset states, 1.6 on random ones) from float32
        (docs/results/speed.md); not recommended.
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
        td_target: str = "decode",
        target_decode_dtype: str = "float32",
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
            td_target=td_target,
            target_decode_dtype=target_decode_dtype,
        )
        if _init_setup_model:
            self._setup_model()

    def next_latents(self, replay: Any) -> tuple[torch.Tensor, None]:
        """The TD target's next latents ``clip(eps' + Delta(s'))``, ``eps' ~ N(0, I)`` (line 9).

        :param replay: a sampled :class:`~algorithms.buffers.LatentReplayBufferSamples`
        :return: ``(next_w, None)``
        """
        return self.clip_latent(torch.randn_like(replay.actions) + self.actor(replay.next_observations)), None

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
        log = TrainLog("critic_loss", "latent_critic_loss", "actor_loss", "perturbation_sq", "q_w")
        alpha = self.alpha_tensor(self.device)  # the multiplier stays on the device until the call ends
        # each batch with its next latents eps' + Delta(s') and Q^W's prior samples, decoded as td_target says
        # (Algorithm 1: one decoder call per step for the next chunks and the prior samples; with prior_cache the
        # prior samples were decoded when their transition was stored)
        for step, (replay, td) in enumerate(self.update_batches(gradient_steps, batch_size)):
            obs, next_obs = replay.observations, replay.next_observations
            eps, eps_chunks = td.eps, td.eps_chunks  # eps clipped to the box

            # TD target on the action critic (line 10)
            with torch.no_grad():
                target_q = self.bellman_target(replay, self.next_value(next_obs, td))

            # action critic on the stored decoded chunks (line 11)
            log.add(critic_loss=self.action_critic_step(replay, target_q))
            # latent critic distilled on the prior (lines 14-15)
            log.add(latent_critic_loss=self.latent_critic_distill(obs, eps, eps_chunks))

            # actor: maximise Q^W(s, eps + Delta(s)) - alpha (||Delta(s)||^2 - delta) (lines 17-18)
            perturbation = self.actor(obs)
            perturbation_sq = perturbation.pow(2).sum(dim=1)
            q_w = self.latent_value(obs, torch.randn_like(perturbation) + perturbation)
            actor_loss = self.trust_region_actor_loss(q_w, perturbation_sq, delta, alpha)
            optimizer_step(self.actor.optimizer, actor_loss)
            log.add(actor_loss=actor_loss, perturbation_sq=perturbation_sq.mean(), q_w=q_w.mean())

            self.check_update(log, step, replay, td.decoded())

            # projected dual ascent on alpha (line 19)
            alpha = self.dual_step(perturbation_sq, delta, alpha)

            # target networks (line 20)
            if step % self.target_update_interval == 0:
                self.polyak_update_targets()

        self.alpha = float(alpha)
        self.record_train_logs(gradient_steps, log, alpha=self.alpha, delta=delta)
