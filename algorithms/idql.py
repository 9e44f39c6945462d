"""IDQL (Hansen-Estruch et al., 2023: implicit Q-learning as an actor-critic method with diffusion policies) as a
fine-tuning baseline of a diffusion backbone on the chunked raw env, as an SB3 algorithm."""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.utils import polyak_update
from torch import nn

from lpds_envs.decoders.diffusion import DiffusionDecoder

from .diffusion_q import DiffusionQLearning, DiffusionQPolicy
from .faults import check_losses
from .policies import mlp
from .updates import TrainLog, optimizer_step


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """IQL's asymmetric squared loss, elementwise: ``|expectile - 1(diff < 0)| diff^2``.

    :param diff: ``Q(s, a) - V(s)``
    :param expectile: ``tau`` in (0, 1); above 0.5 moves ``V(s)`` towards an upper expectile of ``Q(s, .)``
    :return: the loss of each element (the shape of ``diff``)
    """
    weight = torch.where(diff > 0, expectile, 1.0 - expectile)
    return weight * diff.pow(2)


def select_candidates(
    chunks: torch.Tensor, q: torch.Tensor, v: torch.Tensor | None = None, expectile: float = 0.7
) -> torch.Tensor:
    """IDQL's action selection among ``M`` candidate chunks per state.

    Without ``v``: the candidate with the largest ``q``. With ``v``: a candidate drawn with probability proportional
    to ``expectile`` where ``q > v`` and ``1 - expectile`` elsewhere (the expectile exploration policy of DPPO's IDQL).

    :param chunks: candidates ``(M, B, ...)``
    :param q: their values ``(M, B)``
    :param v: the state values ``(B,)``, or ``None`` for the argmax
    :param expectile: the weight of a candidate with positive advantage
    :return: the chosen chunks ``(B, ...)``
    """
    if v is None:
        index = q.argmax(dim=0)
    else:
        advantage = q - v.reshape(1, -1)
        weights = torch.where(advantage > 0, expectile, 1.0 - expectile)
        index = torch.multinomial(weights.t(), 1).squeeze(1)
    return chunks[index, torch.arange(chunks.shape[1], device=chunks.device)]


class IDQLPolicy(DiffusionQPolicy):
    """IDQL's networks: the diffusion actor, twin Q with its target, and the state value ``V(s)``.

    ``predict`` samples ``n_candidates`` chunks from the actor and picks one by the target twin Q (minimum over the
    members): ``deterministic=True`` takes the argmax over candidates decoded from a fixed set of noises (a buffer,
    saved with the policy, so the choice is a deterministic function of the state); stochastic draws fresh noises and,
    with ``expectile_exploration``, samples a candidate with the expectile weights of :func:`select_candidates`
    (argmax otherwise).

    :param n_candidates: M, candidate chunks per state
    :param sampling_expectile: weight of a candidate with ``Q > V`` in the stochastic choice
    :param expectile_exploration: stochastic choice by expectile weights (``False``: argmax of fresh candidates)
    :param observation_space: see :class:`~algorithms.diffusion_q.DiffusionQPolicy` (and the other parameters)
    """

    eval_noise: torch.Tensor  # buffer (n_candidates, Ta, act_dim)

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        decoder_config: dict[str, Any],
        n_candidates: int = 20,
        sampling_expectile: float = 0.7,
        expectile_exploration: bool = True,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.Mish,
        n_critics: int = 2,
        layer_norm: bool = False,
    ) -> None:
        super().__init__(
            observation_space, action_space, lr_schedule, decoder_config, net_arch, activation_fn, n_critics, layer_norm
        )
        if n_candidates < 1:
            raise ValueError(f"n_candidates must be >= 1, got {n_candidates}")
        self.n_candidates = int(n_candidates)
        self.sampling_expectile = float(sampling_expectile)
        self.expectile_exploration = bool(expectile_exploration)
        obs_dim = int(observation_space.shape[0])  # type: ignore[index]
        self.value = mlp(obs_dim, 1, self.net_arch, activation_fn, layer_norm)
        self.register_buffer("eval_noise", torch.randn(self.n_candidates, *self.actor.latent_shape))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            n_candidates=self.n_candidates,
            sampling_expectile=self.sampling_expectile,
            expectile_exploration=self.expectile_exploration,
        )
        return data

    def value_of(self, obs: torch.Tensor) -> torch.Tensor:
        """``V(s)`` on normalised observations, ``(B,)``."""
        return self.value(self.actor.normalize_obs(obs.float())).squeeze(-1)

    def candidates(self, obs: torch.Tensor, deterministic: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``n_candidates`` chunks per state and their target twin-Q values.

        :param obs: raw observations ``(B, obs_dim)``
        :param deterministic: decode the fixed noises ``eval_noise`` instead of fresh ones
        :return: chunks ``(M, B, Ta, act_dim)`` and ``min_j Q_targ,j`` ``(M, B)``
        """
        obs = obs.float()
        B, M = obs.shape[0], self.n_candidates
        obs_rep = obs.repeat(M, 1)  # row m * B + b: candidate m of state b
        if deterministic:
            noise = self.eval_noise.repeat_interleave(B, dim=0)
        else:
            noise = self.actor.sample_prior(M * B)
        chunks = self.actor(obs_rep, noise)
        q = self.q_values(obs_rep, chunks, target=True).min(dim=1).values
        return chunks.reshape(M, B, *self.chunk_shape), q.reshape(M, B)

    def _predict(self, observation: Any, deterministic: bool = False) -> torch.Tensor:
        chunks, q = self.candidates(observation, deterministic)
        v = self.value_of(observation) if self.expectile_exploration and not deterministic else None
        return select_candidates(chunks, q, v, self.sampling_expectile)

    def set_training_mode(self, mode: bool) -> None:
        super().set_training_mode(mode)
        self.value.train(mode)


class IDQL(DiffusionQLearning):
    """IDQL fine-tuning of a diffusion backbone on the chunked raw env.

    Each gradient step, on a replay batch of executed chunks ``(s, a, r, s', done)``::

        V   <- V - lr grad mean L_expectile(min_j Q_targ,j(s, a) - V(s))          # expectile regression
        y    = reward_scale r + gamma (1 - done) V(s')
        Q   <- Q - lr grad sum_j mean (Q_j(s, a) - y)^2                            # twin Q
        pi  <- pi - actor_lr grad L_denoise(pi; s, a)        # the actor stays a diffusion model of the replay data
        Q_targ <- Polyak(Q, tau)

    The policy improves through selection (``predict``): ``n_candidates`` chunks from the actor, one picked by
    ``Q_targ`` (see :class:`IDQLPolicy`); the actor, cloned on the chunks so selected, follows. Rollouts use the
    stochastic choice. Defaults follow DPPO's IDQL (``algorithms/hyperparams/idql.yml`` cites the configs).

    :param policy: ``"MlpPolicy"`` or an :class:`IDQLPolicy` subclass
    :param env: the chunked raw env (``ChunkedActionWrapper(raw_env, chunk_size)``, a VecEnv of them, or an id)
    :param decoder: the diffusion backbone; copied into the actor and never modified. Needed unless the env has
        a ``decoder`` attribute (and not when loading: the fine-tuned actor is in the zip)
    :param n_candidates: M, candidate chunks scored per state (DPPO: ``eval_sample_num``)
    :param expectile: the expectile of V's regression (IQL's tau; DPPO's IDQL: 0.8)
    :param sampling_expectile: weight of a candidate with positive advantage in the stochastic choice (DPPO: 0.7)
    :param expectile_exploration: stochastic choice by expectile weights (``False``: argmax of fresh candidates)
    :param learning_rate: Adam learning rate of the critics (Q and V; float or schedule)
    :param actor_learning_rate: Adam learning rate of the diffusion actor (float or schedule)
    :param buffer_size: replay capacity (chunked transitions)
    :param learning_starts: chunks collected (with the actor) before the first update
    :param batch_size: minibatch size
    :param tau: Polyak coefficient of the Q target
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
        >>> from algorithms import IDQL
        >>> backbone = load_backbone("multigoal-diffusion")
        >>> env = ChunkedActionWrapper(gym.make("lpds/MultiGoal-v0"), backbone.chunk_size)
        >>> model = IDQL("MlpPolicy", env, decoder=backbone, learning_starts=50, batch_size=32).learn(100)
        >>> model.raw_env_steps
        100
    """

    policy_aliases = {"MlpPolicy": IDQLPolicy}  # type: ignore[assignment]  # noqa: RUF012
    policy: IDQLPolicy
    optimizer_names = ("actor_optimizer", "critic_optimizer", "value_optimizer")

    def __init__(
        self,
        policy: str | type[IDQLPolicy],
        env: Any,
        decoder: DiffusionDecoder | None = None,
        n_candidates: int = 20,
        expectile: float = 0.8,
        sampling_expectile: float = 0.7,
        expectile_exploration: bool = True,
        learning_rate: float | Schedule = 1e-3,
        actor_learning_rate: float | Schedule = 1e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.001,
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
        for name, value in (("expectile", expectile), ("sampling_expectile", sampling_expectile)):
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {value}")
        if int(n_candidates) != n_candidates or n_candidates < 1:
            raise ValueError(f"n_candidates must be an integer >= 1, got {n_candidates}")
        self.n_candidates = int(n_candidates)
        self.expectile = float(expectile)
        self.sampling_expectile = float(sampling_expectile)
        self.expectile_exploration = bool(expectile_exploration)
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
        self.policy_kwargs = {
            **self.policy_kwargs,
            "n_candidates": self.n_candidates,
            "sampling_expectile": self.sampling_expectile,
            "expectile_exploration": self.expectile_exploration,
        }
        super()._setup_model()
        self.value_optimizer = torch.optim.Adam(self.policy.value.parameters(), lr=self.lr_schedule(1))

    def train(self, gradient_steps: int, batch_size: int = 256) -> None:
        """``gradient_steps`` IDQL updates (see the class doc), then their means logged.

        Logs ``train/value_loss``, ``train/critic_loss``, ``train/actor_loss`` (the denoising loss), ``train/q``
        (mean ``min_j Q_targ,j(s, a)`` on the batch), ``train/v``, ``train/advantage`` (mean ``Q - V``),
        ``train/target`` (mean TD target), ``train/actor_updates`` (1 past the critic warm-up, else 0),
        ``train/learning_rate``, ``train/actor_learning_rate``, ``train/n_updates`` and ``time/raw_env_steps``.

        :param gradient_steps: gradient steps to take
        :param batch_size: minibatch size of each step
        """
        self.policy.set_training_mode(True)
        self.update_learning_rates()
        log = TrainLog("value_loss", "critic_loss", "actor_loss", "q", "v", "advantage", "target", "actor_updates")
        for step in range(gradient_steps):
            replay = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            obs, chunks = replay.observations, replay.actions

            # V: expectile regression on the target twin Q of the stored chunks
            with torch.no_grad():
                q_data = self.policy.q_values(obs, chunks, target=True).min(dim=1).values
            v = self.policy.value_of(obs)
            advantage = q_data - v
            value_loss = expectile_loss(advantage, self.expectile).mean()
            optimizer_step(self.value_optimizer, value_loss)

            # Q: TD towards r + gamma V(s')
            with torch.no_grad():
                target = self.bellman_target(replay, self.policy.value_of(replay.next_observations))
            q = self.policy.q_values(obs, chunks)
            critic_loss = (q - target.unsqueeze(1)).pow(2).mean(dim=0).sum()
            optimizer_step(self.critic_optimizer, critic_loss)

            # actor: the denoising loss on the replay chunks (no Q term)
            actor_loss = self.policy.bc_loss(obs, chunks)
            actor_moves = self.actor_updates_allowed(step)
            if actor_moves:
                self.actor_step(actor_loss)

            polyak_update(self.policy.critic.parameters(), self.policy.critic_target.parameters(), self.tau)
            log.add(
                value_loss=value_loss,
                critic_loss=critic_loss,
                actor_loss=actor_loss,
                q=q_data.mean(),
                v=v.mean(),
                advantage=advantage.mean(),
                target=target.mean(),
                actor_updates=float(actor_moves),
            )
            check_losses(log.latest(), self._n_updates + step + 1, replay)
        self.record_train_logs(gradient_steps, log)
