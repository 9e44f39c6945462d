"""DQL (Diffusion-QL, Wang et al., 2023: diffusion policies as an expressive policy class for offline RL) as a
fine-tuning baseline of a diffusion backbone on the chunked raw env, as an SB3 algorithm."""

from __future__ import annotations

import copy
from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.utils import polyak_update
from torch import nn

from lpds_envs.decoders.diffusion import DiffusionDecoder

from .diffusion_q import DiffusionQLearning, DiffusionQPolicy
from .faults import check_losses
from .updates import TrainLog, optimizer_step


def normalized_q_loss(q: torch.Tensor, member: int) -> torch.Tensor:
    """Diffusion-QL's Q term of the actor loss: ``-mean Q_j / mean |Q_k|`` with ``j = member`` and ``k`` the next
    member; the normaliser is detached, so the term's scale does not depend on the reward scale.

    :param q: ``Q_i(s, pi(s))`` of every member, ``(B, n_critics)``, differentiable in the actor
    :param member: ``j``
    :return: the scalar loss
    """
    other = (member + 1) % q.shape[1]
    return -q[:, member].mean() / q[:, other].abs().mean().detach().clamp_min(1e-8)


class DQLPolicy(DiffusionQPolicy):
    """DQL's networks: the diffusion actor with its EMA target, and twin Q with its Polyak target.

    ``predict(deterministic=False)`` decodes a chunk from fresh prior noise ``w ~ N(0, I)`` (the diffusion policy);
    ``deterministic=True`` decodes ``w = 0``, as the steering learners' deterministic action is ``eps = 0``.

    :param observation_space: see :class:`~algorithms.diffusion_q.DiffusionQPolicy` (and the other parameters)
    """

    actor_target: DiffusionDecoder

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        decoder_config: dict[str, Any],
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.Mish,
        n_critics: int = 2,
        layer_norm: bool = False,
    ) -> None:
        super().__init__(
            observation_space, action_space, lr_schedule, decoder_config, net_arch, activation_fn, n_critics, layer_norm
        )
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.actor_target.train(False)

    def _predict(self, observation: Any, deterministic: bool = False) -> torch.Tensor:
        if not deterministic:
            return self.sample_chunks(observation)
        obs = observation.float()
        return self.actor(obs, torch.zeros(obs.shape[0], *self.actor.latent_shape, device=obs.device))


class DQL(DiffusionQLearning):
    """Diffusion-QL fine-tuning of a diffusion backbone on the chunked raw env.

    Each gradient step, on a replay batch of executed chunks ``(s, a, r, s', done)``::

        a'  = pi_ema(s', w'),  w' ~ N(0, I)                                  # the EMA actor, no gradient
        y   = reward_scale r + gamma (1 - done) min_j Q_targ,j(s', a')
        Q  <- Q - lr grad sum_j mean (Q_j(s, a) - y)^2                        # twin Q
        a_pi = pi(s, w),  w ~ N(0, I)                    # through the DDIM chain of the actor, with gradients
        pi <- pi - actor_lr grad [L_denoise(pi; s, a) - eta mean Q_j(s, a_pi) / mean |Q_k(s, a_pi)|]   # j random
        Q_targ <- Polyak(Q, tau);  pi_ema <- Polyak(pi, ema_tau)

    The actor's gradient reaches only its own weights (a copy of the backbone); the critics are not stepped by the
    actor loss. Defaults follow DPPO's DQL (``algorithms/hyperparams/dql.yml`` cites the configs); the EMA actor for
    the TD target follows Wang et al. (DPPO samples the online actor there: ``ema_tau=1.0``). The denoising loss is
    on the replay chunks (Wang et al.'s behaviour-cloning term on the data).

    :param policy: ``"MlpPolicy"`` or a :class:`DQLPolicy` subclass
    :param env: the chunked raw env (``ChunkedActionWrapper(raw_env, chunk_size)``, a VecEnv of them, or an id)
    :param decoder: the diffusion backbone; copied into the actor and never modified. Needed unless the env has
        a ``decoder`` attribute (and not when loading: the fine-tuned actor is in the zip)
    :param eta: weight of the normalised Q term in the actor loss (DPPO and the paper's Table 4: 1.0)
    :param ema_tau: Polyak coefficient of the EMA actor that samples the TD target's next chunks (1.0: the online actor)
    :param learning_rate: Adam learning rate of the critics (float or schedule)
    :param actor_learning_rate: Adam learning rate of the diffusion actor (float or schedule)
    :param buffer_size: replay capacity (chunked transitions)
    :param learning_starts: chunks collected (with the actor) before the first update
    :param batch_size: minibatch size
    :param tau: Polyak coefficient of the Q target (DPPO's ``target_ema_rate``)
    :param gamma: discount per chunk
    :param train_freq: update the model every ``train_freq`` chunks (per env)
    :param gradient_steps: gradient steps per update
    :param reward_scale: factor on the rewards in the TD target (DPPO: 0.01 on locomotion)
    :param critic_warmup_steps: gradient steps that train only the critics before the actor moves
    :param max_grad_norm: clip the actor's gradient norm (``None``: no clipping)
    :param policy_kwargs: the policy's ``net_arch``, ``activation_fn``, ``n_critics``, ``layer_norm``
    :param stats_window_size: episodes averaged in the rollout logs
    :param tensorboard_log: TensorBoard log directory (``None``: none)
    :param verbose: 0 silent, 1 info, 2 debug
    :param seed: seed of the pseudo-random generators
    :param device: torch device of the networks (``"auto"``: CUDA if available)
    :param _init_setup_model: build the networks now (SB3's convention; ``load`` passes ``False``)

    Example::

        >>> import gymnasium as gym, lpds_envs
        >>> from lpds_envs import ChunkedActionWrapper
        >>> from lpds_envs.backbones.shipped import load_backbone
        >>> from algorithms import DQL
        >>> backbone = load_backbone("multigoal-diffusion")
        >>> env = ChunkedActionWrapper(gym.make("lpds/MultiGoal-v0"), backbone.chunk_size)
        >>> model = DQL("MlpPolicy", env, decoder=backbone, learning_starts=50, batch_size=32).learn(100)
        >>> model.raw_env_steps
        100
    """

    policy_aliases = {"MlpPolicy": DQLPolicy}  # type: ignore[assignment]  # noqa: RUF012
    policy: DQLPolicy

    def __init__(
        self,
        policy: str | type[DQLPolicy],
        env: Any,
        decoder: DiffusionDecoder | None = None,
        eta: float = 1.0,
        ema_tau: float = 0.005,
        learning_rate: float | Schedule = 1e-3,
        actor_learning_rate: float | Schedule = 1e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        reward_scale: float = 1.0,
        critic_warmup_steps: int = 0,
        max_grad_norm: float | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        if not eta >= 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        if not 0.0 < ema_tau <= 1.0:
            raise ValueError(f"ema_tau must be in (0, 1], got {ema_tau}")
        self.eta = float(eta)
        self.ema_tau = float(ema_tau)
        super().__init__(
            policy=policy,
            env=env,
            decoder=decoder,
            learning_rate=learning_rate,
            actor_learning_rate=actor_learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            reward_scale=reward_scale,
            critic_warmup_steps=critic_warmup_steps,
            max_grad_norm=max_grad_norm,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            seed=seed,
            device=device,
        )
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        super()._setup_model()
        self.policy.actor_target.load_state_dict(self.policy.actor.state_dict())  # a loaded model's comes next

    def train(self, gradient_steps: int, batch_size: int = 256) -> None:
        """``gradient_steps`` Diffusion-QL updates (see the class doc), then their means logged.

        Logs ``train/critic_loss``, ``train/actor_loss`` (the total), ``train/bc_loss`` (the denoising term),
        ``train/q_loss`` (the normalised Q term, before ``eta``), ``train/q`` (mean ``Q_j(s, a)`` on the stored
        chunks), ``train/q_pi`` (mean ``min_j Q_j(s, a_pi)`` of the actor's chunks), ``train/target`` (mean TD
        target), ``train/actor_updates`` (1 past the critic warm-up, else 0), ``train/learning_rate``,
        ``train/actor_learning_rate``, ``train/n_updates`` and ``time/raw_env_steps``.

        :param gradient_steps: gradient steps to take
        :param batch_size: minibatch size of each step
        """
        self.policy.set_training_mode(True)
        self.update_learning_rates()
        log = TrainLog("critic_loss", "actor_loss", "bc_loss", "q_loss", "q", "q_pi", "target", "actor_updates")
        low = torch.as_tensor(self.action_space.low, device=self.device)
        high = torch.as_tensor(self.action_space.high, device=self.device)
        for step in range(gradient_steps):
            replay = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            obs, chunks, next_obs = replay.observations, replay.actions, replay.next_observations

            # TD target with the EMA actor's next chunks (clipped to the box, as the env would execute them)
            with torch.no_grad():
                next_chunks = self.policy.sample_chunks(next_obs, self.policy.actor_target)
                next_chunks = torch.maximum(torch.minimum(next_chunks, high), low)
                next_q = self.policy.q_values(next_obs, next_chunks, target=True).min(dim=1).values
                target = self.bellman_target(replay, next_q)
            q = self.policy.q_values(obs, chunks)
            critic_loss = (q - target.unsqueeze(1)).pow(2).mean(dim=0).sum()
            optimizer_step(self.critic_optimizer, critic_loss)

            # actor: denoising loss on the replay chunks + eta * normalised Q of chunks sampled through the chain
            bc_loss = self.policy.bc_loss(obs, chunks)
            self.policy.critic.requires_grad_(False)  # the Q term's gradient goes to the actor only
            q_pi = self.policy.q_values(obs, self.policy.sample_chunks(obs))
            self.policy.critic.requires_grad_(True)
            q_loss = normalized_q_loss(q_pi, int(torch.randint(q_pi.shape[1], ()).item()))
            actor_loss = bc_loss + self.eta * q_loss
            actor_moves = self.actor_updates_allowed(step)
            if actor_moves:
                self.actor_step(actor_loss)

            polyak_update(self.policy.critic.parameters(), self.policy.critic_target.parameters(), self.tau)
            polyak_update(self.policy.actor.parameters(), self.policy.actor_target.parameters(), self.ema_tau)
            log.add(
                critic_loss=critic_loss,
                actor_loss=actor_loss,
                bc_loss=bc_loss,
                q_loss=q_loss,
                q=q.mean(),
                q_pi=q_pi.min(dim=1).values.mean(),
                target=target.mean(),
                actor_updates=float(actor_moves),
            )
            check_losses(log.latest(), self._n_updates + step + 1, replay)
        self.record_train_logs(gradient_steps, log)
