"""What the diffusion Q-learning fine-tuning baselines (:class:`~algorithms.IDQL`, :class:`~algorithms.DQL`) share,
on top of SB3's ``OffPolicyAlgorithm``.

Both act on the chunked raw task env (:class:`~lpds_envs.wrappers.ChunkedActionWrapper`: one action is a whole chunk
``(Ta, act_dim)``) and fine-tune a trainable copy of a :class:`~lpds_envs.decoders.DiffusionDecoder` (the backbone is
only the initialisation: its weights are copied into the policy's actor and never touched). The replay buffer holds
chunked transitions ``(s, chunk, summed reward, s', done)``; the critics ``Q_j(s, chunk)`` see the decoder's
normalised observations and chunks. Rollouts sample chunks from the actor itself from the first step on (the
backbone is a competent policy; there is no uniform warm-up); ``learning_starts`` only delays the updates, and
``critic_warmup_steps`` gradient steps train the critics before the actor moves.

Raw env steps are counted as every lpds learner counts them (paper App. A.4: one executed action = one step):
``model.raw_env_steps`` adds ``info["executed_steps"]`` of every stored chunk, and ``time/raw_env_steps`` is logged.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.utils import ConstantSchedule, FloatSchedule, update_learning_rate
from torch import nn

from lpds_envs.decoders.base import Decoder
from lpds_envs.decoders.diffusion import DiffusionDecoder
from lpds_envs.wrappers import executed_steps

from .faults import check_weights
from .finetune import frozen_copy
from .policies import QEnsemble
from .progress import RawStepProgressMixin
from .updates import TrainLog
from .validation import check_sb3_arguments


class DiffusionQPolicy(BasePolicy):
    """Diffusion actor (a trainable :class:`DiffusionDecoder`) and twin action critic ``Q_j(s, chunk)`` with its
    Polyak target. Subclasses add their own networks and write ``_predict``.

    :param observation_space: the chunked env's observation space (a ``Box``)
    :param action_space: the chunked env's action space, ``Box`` of shape ``(Ta, act_dim)``
    :param lr_schedule: learning-rate schedule (the learner builds the optimisers)
    :param decoder_config: ``DiffusionDecoder.get_config()`` of the backbone (the actor is built from it; the learner
        copies the backbone's weights in)
    :param net_arch: hidden layers of each critic (default ``[256, 256, 256]``, DPPO's critics)
    :param activation_fn: activation of the critics (default ``nn.Mish``, DPPO's critics)
    :param n_critics: critic ensemble members (2: twin Q)
    :param layer_norm: LayerNorm after each hidden layer of the critics
    """

    actor: DiffusionDecoder
    critic: QEnsemble
    critic_target: QEnsemble

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
        super().__init__(observation_space, action_space, FlattenExtractor, None, squash_output=False)
        if n_critics < 2:
            raise ValueError(f"n_critics must be >= 2 (twin Q), got {n_critics}")
        self.decoder_config = dict(decoder_config)
        self.net_arch = list(net_arch) if net_arch is not None else [256, 256, 256]
        self.activation_fn, self.n_critics, self.layer_norm = activation_fn, int(n_critics), bool(layer_norm)
        self.actor = DiffusionDecoder(**self.decoder_config)
        self.actor.differentiable = True
        self.chunk_shape = tuple(int(s) for s in action_space.shape)
        chunk_dim = int(np.prod(self.chunk_shape))
        self.critic = QEnsemble(
            self.make_features_extractor(), chunk_dim, self.net_arch, activation_fn, self.n_critics, self.layer_norm
        )
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.critic_target.train(False)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            decoder_config=self.decoder_config,
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            n_critics=self.n_critics,
            layer_norm=self.layer_norm,
        )
        return data

    def q_values(self, obs: torch.Tensor, chunks: torch.Tensor, target: bool = False) -> torch.Tensor:
        """``Q_j(s, chunk)`` of every member on normalised inputs, ``(B, n_critics)``.

        :param obs: raw observations ``(B, obs_dim)``
        :param chunks: raw chunks ``(B, Ta, act_dim)`` or flat ``(B, Ta * act_dim)``
        :param target: use the Polyak target critic
        """
        critic = self.critic_target if target else self.critic
        chunks_n = self.actor.normalize_actions(chunks.reshape(-1, *self.chunk_shape))
        return critic(self.actor.normalize_obs(obs.float()), chunks_n.flatten(1))

    def sample_chunks(self, obs: torch.Tensor, actor: DiffusionDecoder | None = None) -> torch.Tensor:
        """Chunks of ``actor`` (default the fine-tuned actor) from fresh prior noise ``w ~ N(0, I)``: deterministic
        DDIM from a random start. Differentiable unless called under ``torch.no_grad``.

        :param obs: raw observations ``(B, obs_dim)``
        :param actor: the diffusion model to sample (e.g. an EMA target)
        :return: raw chunks ``(B, Ta, act_dim)``
        """
        actor = self.actor if actor is None else actor
        obs = obs.float()
        return actor(obs, actor.sample_prior(obs.shape[0]))

    def bc_loss(self, obs: torch.Tensor, chunks: torch.Tensor) -> torch.Tensor:
        """The actor's denoising (DDPM epsilon) loss on a batch of stored chunks (``DiffusionDecoder.training_loss``).

        :param obs: raw observations ``(B, obs_dim)``
        :param chunks: the executed chunks, raw, ``(B, Ta, act_dim)`` or flat
        """
        chunks_n = self.actor.normalize_actions(chunks.reshape(-1, *self.chunk_shape))
        return self.actor.training_loss(self.actor.normalize_obs(obs.float()), chunks_n)

    def set_training_mode(self, mode: bool) -> None:
        """Put the actor and the critic in training (``True``) or evaluation mode; targets stay in evaluation mode.

        :param mode: training mode
        """
        self.actor.train(mode)
        self.critic.train(mode)
        self.training = mode


class DiffusionQLearning(RawStepProgressMixin, OffPolicyAlgorithm):
    """Base class of :class:`~algorithms.IDQL` and :class:`~algorithms.DQL` (see the module doc): the backbone copy,
    the chunked replay, rollouts from the actor, raw-step counting, optimisers, saving and ``fine_tuned_decoder``.

    Subclasses set ``policy_aliases``, extend ``_setup_model`` (their extra networks and optimisers) and write
    ``train()``; :class:`~algorithms.IDQL`
    documents the shared parameters.
    """

    policy: DiffusionQPolicy
    action_space: spaces.Box
    #: the learner counts raw env steps itself (``model.raw_env_steps``), as the steering learners do
    counts_raw_steps: ClassVar[bool] = True
    #: the optimisers, by attribute name, saved with the model (subclasses add theirs)
    optimizer_names: ClassVar[tuple[str, ...]] = ("actor_optimizer", "critic_optimizer")

    def __init__(
        self,
        policy: str | type[DiffusionQPolicy],
        env: Any,
        decoder: DiffusionDecoder | None = None,
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
    ) -> None:
        check_sb3_arguments(batch_size, buffer_size, learning_starts, tau, gamma)
        if int(critic_warmup_steps) != critic_warmup_steps or critic_warmup_steps < 0:
            raise ValueError(f"critic_warmup_steps must be an integer >= 0 (gradient steps), got {critic_warmup_steps}")
        if max_grad_norm is not None and not max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0 or None, got {max_grad_norm}")
        if not np.isfinite(reward_scale):
            raise ValueError(f"reward_scale must be a finite number, got {reward_scale}")
        if decoder is not None and not isinstance(decoder, DiffusionDecoder):
            raise TypeError(
                f"{type(self).__name__} fine-tunes a DiffusionDecoder, got {type(decoder).__name__}; pass the "
                "diffusion backbone as decoder= (flow and pi0 backbones are not supported)"
            )
        self.decoder: DiffusionDecoder | None = decoder
        self.actor_learning_rate = actor_learning_rate
        self.reward_scale = float(reward_scale)
        self.critic_warmup_steps = int(critic_warmup_steps)
        self.max_grad_norm = max_grad_norm
        self.raw_env_steps = 0
        self._raw_steps_stored = 0
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
            action_noise=None,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            support_multi_env=True,
            seed=seed,
            sde_support=False,
            supported_action_spaces=(spaces.Box,),
        )

    # ------------------------------------------------------------------ setup
    def _find_decoder(self) -> DiffusionDecoder | None:
        """``decoder=`` if given, else a ``decoder`` attribute of the env (``None`` when there is neither)."""
        if self.decoder is not None or self.env is None:
            return self.decoder
        try:
            found = self.env.get_attr("decoder")[0]
        except AttributeError:
            return None
        return found if isinstance(found, DiffusionDecoder) else None

    def _setup_model(self) -> None:
        self.decoder = self._find_decoder()
        if not isinstance(self.observation_space, spaces.Box) or len(self.observation_space.shape) != 1:
            raise ValueError(
                f"{type(self).__name__} needs a flat Box observation space (the decoder's obs_dim), got "
                f"{self.observation_space}"
            )
        if self.decoder is not None:
            self._check_decoder(self.decoder)
            self.policy_kwargs = {**self.policy_kwargs, "decoder_config": self.decoder.get_config()}
        elif "decoder_config" not in self.policy_kwargs:
            raise ValueError(
                f"{type(self).__name__} needs the backbone to fine-tune: pass decoder=<a DiffusionDecoder> (e.g. "
                "lpds_envs.backbones.shipped.load_backbone('multigoal-diffusion'))"
            )
        super()._setup_model()
        if self.decoder is not None:  # the backbone initialises the actor; a loaded model gets its saved weights next
            self.policy.actor.load_state_dict(self.decoder.state_dict())
        lr = self.actor_learning_rate
        self.actor_lr_schedule: Schedule = FloatSchedule(lr) if callable(lr) else ConstantSchedule(float(lr))
        self.actor_optimizer = torch.optim.Adam(self.policy.actor.parameters(), lr=self.actor_lr_schedule(1))
        self.critic_optimizer = torch.optim.Adam(self.policy.critic.parameters(), lr=self.lr_schedule(1))

    def _check_decoder(self, decoder: Decoder) -> None:
        if not isinstance(decoder, DiffusionDecoder):
            raise TypeError(f"{type(self).__name__} fine-tunes a DiffusionDecoder, got {type(decoder).__name__}")
        if tuple(self.action_space.shape) != tuple(decoder.action_shape):
            raise ValueError(
                f"the env's action space has shape {self.action_space.shape}, but the decoder's chunks are "
                f"{decoder.action_shape}; wrap the raw env with ChunkedActionWrapper(env, chunk_size="
                f"{decoder.chunk_size})"
            )
        if self.observation_space.shape != (decoder.obs_dim,):
            raise ValueError(
                f"the env's observations have shape {self.observation_space.shape}, but the decoder expects "
                f"({decoder.obs_dim},); is this the decoder of this env?"
            )

    def _excluded_save_params(self) -> list[str]:
        # the backbone is never pickled: the fine-tuned actor (its copy) is saved with the policy's weights
        return [*super()._excluded_save_params(), "decoder"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", *self.optimizer_names], []

    # ------------------------------------------------------------------ rollouts
    def _sample_action(self, learning_starts: int, action_noise: Any = None, n_envs: int = 1):
        """A chunk sampled from the current policy for every env (also before ``learning_starts``: the backbone is
        the behaviour policy to start from), clipped to the action box; it is both action and buffer action."""
        assert self._last_obs is not None, "self._last_obs was not set"  # set by learn() before any rollout
        chunks, _ = self.predict(self._last_obs, deterministic=False)
        chunks = np.clip(chunks, self.action_space.low, self.action_space.high).astype(np.float32)
        return chunks, chunks

    def _store_transition(self, replay_buffer, buffer_action, new_obs, reward, dones, infos) -> None:
        # an own counter, assigned (not added): a RawStepCallback that also adds to model.raw_env_steps cannot
        # double-count
        self._raw_steps_stored += executed_steps(infos)
        self.raw_env_steps = self._raw_steps_stored
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)

    def dump_logs(self) -> None:
        """SB3's ``dump_logs`` plus ``time/raw_env_steps`` (executed env steps, as opposed to chunks)."""
        self.logger.record("time/raw_env_steps", self.raw_env_steps)
        super().dump_logs()

    # ------------------------------------------------------------------ train() pieces
    def update_learning_rates(self) -> None:
        """Set the critics' and the actor's learning rates from their schedules and log both."""
        critic_lr = self.lr_schedule(self._current_progress_remaining)
        actor_lr = self.actor_lr_schedule(self._current_progress_remaining)
        for name in self.optimizer_names:
            update_learning_rate(getattr(self, name), actor_lr if name == "actor_optimizer" else critic_lr)
        self.logger.record("train/learning_rate", critic_lr)
        self.logger.record("train/actor_learning_rate", actor_lr)

    def bellman_target(self, replay: Any, next_value: torch.Tensor) -> torch.Tensor:
        """``reward_scale r + gamma (1 - done) next_value`` (``done`` is termination only: SB3's buffer masks time
        limits), ``(B,)``; the discount applies once per chunk.

        :param replay: the sampled batch
        :param next_value: the value of the next state, ``(B,)``
        """
        rewards, dones = replay.rewards.reshape(-1), replay.dones.reshape(-1)
        return self.reward_scale * rewards + self.gamma * (1.0 - dones) * next_value

    def actor_updates_allowed(self, step: int) -> bool:
        """Whether gradient step ``step`` of this ``train()`` call is past ``critic_warmup_steps``."""
        return self._n_updates + step >= self.critic_warmup_steps

    def actor_step(self, loss: torch.Tensor) -> None:
        """One step of the actor's optimiser on ``loss`` (gradient norm clipped to ``max_grad_norm`` if set)."""
        self.actor_optimizer.zero_grad()
        loss.backward()
        if self.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.policy.actor.parameters(), self.max_grad_norm)
        self.actor_optimizer.step()

    def record_train_logs(self, gradient_steps: int, log: TrainLog) -> None:
        """End of a ``train()`` call: count its updates, check every weight, log the means of ``log`` as
        ``train/<key>``, ``train/n_updates`` and ``time/raw_env_steps``."""
        self._n_updates += gradient_steps
        check_weights(self, self._n_updates)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for key, mean in log.means().items():
            self.logger.record(f"train/{key}", mean)
        self.logger.record("time/raw_env_steps", self.raw_env_steps)

    # ------------------------------------------------------------------ deployment
    def fine_tuned_decoder(self) -> DiffusionDecoder:
        """The fine-tuned actor as a frozen :class:`DiffusionDecoder`: deterministic DDIM (eta = 0) from the latent
        ``w``, with the backbone's configuration and normalisation and the fine-tuned weights. ``save_pretrained``
        and :func:`~lpds_envs.decoders.load_decoder` handle it like any backbone, and it can be steered or wrapped
        (``LatentSteeringWrapper``) in turn.

        :return: a new decoder (training goes on unaffected)
        """
        return frozen_copy(self.policy.actor)
