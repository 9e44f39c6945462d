"""Shared two-critic machinery of the latent-steering learners, on top of SB3's ``OffPolicyAlgorithm``.

What every learner here has in common: the frozen decoder (from the env or ``decoder=``), a replay buffer that
stores latent and decoded chunk, prior warm-up, one batched decoder call per gradient step, the action critic
Q^A trained by TD on decoded chunks, and the latent critic Q^W distilled on prior noise. Subclasses write
``train()`` so that it reads top to bottom against their algorithm box.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.preprocessing import maybe_transpose
from stable_baselines3.common.utils import ConstantSchedule, FloatSchedule, obs_as_tensor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper
from torch import nn

from lpds_envs.decoders.base import Decoder, PretrainedDecoder
from lpds_envs.vector import VecLatentSteeringWrapper

from .buffers import LatentDictReplayBuffer, LatentReplayBuffer
from .policies import (
    MultiInputSteeringPolicy,
    PerturbationActor,
    QEnsemble,
    SquashedGaussianActor,
    SteeringPolicy,
)
from .progress import RawStepProgressMixin


def resolve_decoder(env: VecEnv | None, decoder: Decoder | None) -> Decoder | None:
    """The frozen decoder: ``decoder`` if given, else the one of the latent env (batched or per sub-env).

    :param env: the learner's (vectorised) env, or ``None``
    :param decoder: an explicit decoder, which takes precedence over the env's
    :return: the decoder, or ``None`` when there is neither an env nor ``decoder``
    """
    if decoder is not None:
        if not isinstance(decoder, Decoder):
            raise TypeError(f"decoder must be an lpds_envs.decoders.Decoder, got {type(decoder).__name__}")
        return decoder
    if env is None:
        return None
    venv: Any = env
    while isinstance(venv, VecEnvWrapper):
        if isinstance(venv, VecLatentSteeringWrapper):
            return venv.decoder
        venv = venv.venv
    try:
        found = env.get_attr("decoder")[0]
    except AttributeError:
        found = None
    if not isinstance(found, Decoder):
        raise ValueError(
            "the env is not a latent steering env (no .decoder): wrap it with LatentSteeringWrapper, build it with "
            "make_latent_vec_env or gym.make('LPDS-...'), or pass decoder= explicitly"
        )
    return found


def _whole(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)


def check_sb3_arguments(batch_size: Any, buffer_size: Any, learning_starts: Any, tau: Any, gamma: Any) -> None:
    """Refuse the SB3 arguments that would train silently wrong (NaN losses, no updates), saying what to pass.

    :param batch_size: minibatch size (an integer >= 1)
    :param buffer_size: replay capacity (an integer >= 1)
    :param learning_starts: warm-up steps (an integer >= 0)
    :param tau: Polyak coefficient (a number in [0, 1])
    :param gamma: discount (a number in [0, 1])
    :raises ValueError: naming the argument, the value and the valid range
    """
    if not _whole(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1 (transitions per gradient step), got {batch_size!r}")
    if not _whole(buffer_size) or buffer_size < 1:
        raise ValueError(f"buffer_size must be an integer >= 1 (replay capacity), got {buffer_size!r}")
    if not _whole(learning_starts) or learning_starts < 0:
        raise ValueError(f"learning_starts must be an integer >= 0 (warm-up steps), got {learning_starts!r}")
    for name, value in (("tau", tau), ("gamma", gamma)):
        if not _number(value) or not 0 <= value <= 1:
            raise ValueError(f"{name} must be a finite number in [0, 1], got {value!r}")


#: values of the steering learners' ``td_target`` option (see :class:`~algorithms.LagrangianSAC`)
TD_TARGETS = ("decode", "decode_per_update", "latent_critic")
#: values of their ``target_decode_dtype`` option
TARGET_DECODE_DTYPES = ("float32", "bfloat16")


def check_td_target(td_target: Any, target_decode_dtype: Any, uses_latent_critic: bool) -> None:
    """Refuse an unknown ``td_target`` or ``target_decode_dtype`` (or a combination that would be silently ignored).

    :param td_target: one of :data:`TD_TARGETS`
    :param target_decode_dtype: one of :data:`TARGET_DECODE_DTYPES`
    :param uses_latent_critic: whether the learner trains Q^W (``"latent_critic"`` needs it)
    :raises ValueError: naming the value and the valid ones
    """
    if td_target not in TD_TARGETS:
        raise ValueError(f"td_target must be one of {TD_TARGETS} ('decode': Algorithm 1 as written), got {td_target!r}")
    if target_decode_dtype not in TARGET_DECODE_DTYPES:
        raise ValueError(
            f"target_decode_dtype must be one of {TARGET_DECODE_DTYPES} ('float32': exact), got {target_decode_dtype!r}"
        )
    if td_target == "latent_critic" and not uses_latent_critic:
        raise ValueError("td_target='latent_critic' bootstraps from Q^W's target: this learner has no latent critic")
    if td_target == "latent_critic" and target_decode_dtype != "float32":
        raise ValueError(
            "target_decode_dtype only applies to a decoded TD target; td_target='latent_critic' decodes none: "
            "leave target_decode_dtype='float32'"
        )


@dataclass
class TDInputs:
    """What one gradient step needs besides its replay batch: the next latents and Q^W's prior samples.

    :param next_w: next latents ``(B, d)`` of the policy (clipped as the learner needs)
    :param next_log_prob: their log-probabilities ``(B,)`` for a stochastic latent policy (DSRL-NA), else ``None``
    :param next_chunks: their decoded chunks ``Phi(next_w; s')``, flat; ``None`` with ``td_target="latent_critic"``
    :param eps: Q^W's prior latents ``(B, d)``
    :param eps_chunks: their decoded chunks ``Phi(eps; s)``, flat
    """

    next_w: torch.Tensor
    next_log_prob: torch.Tensor | None
    next_chunks: torch.Tensor | None
    eps: torch.Tensor
    eps_chunks: torch.Tensor

    def decoded(self) -> dict[str, torch.Tensor]:
        """The decoded chunks by name, for :func:`~algorithms.faults.check_losses`."""
        out = {"prior chunks": self.eps_chunks}
        if self.next_chunks is not None:
            out["next chunks"] = self.next_chunks
        return out


#: SB3 insists on finite Box bounds; an unbounded latent env (``latent_bound=None``) is shown to SB3 with this stand-in
UNBOUNDED_STANDIN = 1e6


class _FiniteBoundsView(VecEnvWrapper):
    """Presents an unbounded latent box as ``[-1e6, 1e6]`` so SB3 accepts it; latents pass through unchanged.

    :param venv: the latent vec env with an unbounded action box
    """

    def __init__(self, venv: VecEnv) -> None:
        box = cast(spaces.Box, venv.action_space)  # _accept_unbounded wraps Box action spaces only
        super().__init__(venv, action_space=spaces.Box(-UNBOUNDED_STANDIN, UNBOUNDED_STANDIN, box.shape, box.dtype))

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        return self.venv.step_wait()


def _accept_unbounded(env: Any, verbose: int) -> Any:
    """``env`` itself or, when its latent box is unbounded, the env vectorised and seen through ``_FiniteBoundsView``."""
    if env is None or isinstance(env, str):
        return env
    box = env.action_space
    if isinstance(box, spaces.Box) and not np.all(np.isfinite(np.concatenate([box.low, box.high]))):
        return _FiniteBoundsView(env if isinstance(env, VecEnv) else _vectorize(env, verbose))
    return env


def _vectorize(env: Any, verbose: int) -> VecEnv:
    """A single env as SB3 vectorises it (``Monitor`` unless already monitored, then ``DummyVecEnv``).

    SB3 transposes channel-last images itself (``VecTransposeImage``) when the algorithm wraps the resulting VecEnv.
    """
    if not is_wrapped(env, Monitor):
        if verbose >= 1:
            print("Wrapping the env with a `Monitor` wrapper")
        env = Monitor(env)
    if verbose >= 1:
        print("Wrapping the env in a DummyVecEnv.")
    return DummyVecEnv([lambda: env])


class SteeringAlgorithm(RawStepProgressMixin, OffPolicyAlgorithm):
    """Base class of the latent-steering learners: frozen decoder, latent replay, Q^A and Q^W (see the module doc).

    Subclasses set up their own extra state and write ``train()``; :class:`~algorithms.LagrangianSAC` documents the
    parameters in full.

    :param policy: ``"MlpPolicy"``, ``"MultiInputPolicy"`` or a :class:`~algorithms.policies.SteeringPolicy` subclass
    :param env: a latent env (``LatentSteeringWrapper``, ``make_latent_vec_env``, ``gym.make("LPDS-...")``) or its id
    :param learning_rate: Adam learning rate of actor and critics (float or schedule)
    :param buffer_size: replay capacity (transitions)
    :param learning_starts: latent steps with ``w ~ N(0, I)`` before learning starts
    :param batch_size: minibatch size
    :param tau: Polyak coefficient of the Q^A target
    :param gamma: discount per latent step
    :param train_freq: update the model every ``train_freq`` steps
    :param gradient_steps: gradient steps per update (the UTD ratio)
    :param latent_critic_steps: Q^W distillation steps per gradient step
    :param decoder: the frozen decoder, when the env does not expose one (or to override it)
    :param target_update_interval: Polyak-update the target every this many gradient steps
    :param policy_kwargs: passed to the policy (``net_arch``, ``n_critics``, ``layer_norm``, ...)
    :param stats_window_size: episodes averaged in the rollout logs
    :param tensorboard_log: TensorBoard log directory (``None``: none)
    :param verbose: 0 silent, 1 info, 2 debug
    :param seed: seed of the pseudo-random generators
    :param device: torch device of the networks
    :param compile_decoder: decode the training batches through a ``torch.compile`` copy of the decoder
    :param prior_cache: prior samples decoded and cached per stored transition (0: fresh prior samples every step)
    :param td_target: how the TD target's next value is computed (``"decode"``: exact; see LagrangianSAC)
    :param target_decode_dtype: ``"float32"`` (exact) or ``"bfloat16"`` autocast of the TD target's next-chunk decode
    """

    policy_aliases = {"MlpPolicy": SteeringPolicy, "MultiInputPolicy": MultiInputSteeringPolicy}  # noqa: RUF012
    policy: SteeringPolicy
    actor: PerturbationActor | SquashedGaussianActor  # the policy's networks, set by _setup_model
    action_critic: QEnsemble
    action_critic_target: QEnsemble
    latent_critic: QEnsemble | None
    latent_critic_target: QEnsemble | None  # Q^W's Polyak target, only with td_target="latent_critic"
    replay_buffer: LatentReplayBuffer
    action_space: spaces.Box  # supported_action_spaces=(spaces.Box,)
    clip_prior_samples = True  # Q^W is distilled on prior latents clipped to the latent box, as the env clips them
    uses_latent_critic = True  # False: the policy gets no Q^W (a learner that trains Q^A only, as LP-DS-A)

    def __init__(
        self,
        policy: str | type[SteeringPolicy],
        env: Any,
        learning_rate: float | Any = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 1000,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        latent_critic_steps: int = 1,
        decoder: Decoder | None = None,
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
    ) -> None:
        check_sb3_arguments(batch_size, buffer_size, learning_starts, tau, gamma)
        check_td_target(td_target, target_decode_dtype, self.uses_latent_critic)
        self.td_target, self.target_decode_dtype = td_target, target_decode_dtype
        if latent_critic_steps < 1:
            raise ValueError(f"latent_critic_steps must be >= 1, got {latent_critic_steps}")
        if int(prior_cache) != prior_cache or prior_cache < 0:
            raise ValueError(
                f"prior_cache must be an integer >= 0 (prior samples cached per transition), got {prior_cache}"
            )
        self.prior_cache = int(prior_cache)
        self.decoder = decoder
        self.compile_decoder = bool(compile_decoder)
        self.latent_critic_steps = int(latent_critic_steps)
        self.target_update_interval = int(target_update_interval)
        self.raw_env_steps = 0
        env = _accept_unbounded(env, verbose)
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
            replay_buffer_class=LatentReplayBuffer,
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
    @classmethod
    def load(cls, path: Any, env: Any = None, *args: Any, **kwargs: Any):
        """SB3's ``load``; an unbounded latent env is accepted as at construction.

        :param path: the saved zip (path or file-like)
        :param env: the latent env to train or evaluate on (the decoder comes from it unless ``decoder=`` is given)
        :param args: as SB3's ``BaseAlgorithm.load``
        :param kwargs: as SB3's ``BaseAlgorithm.load`` (e.g. ``decoder=``, ``device=``)
        :return: the loaded learner
        :raises ValueError: for a zip saved by another learner class (or without the model's data)
        """
        try:
            return super().load(path, _accept_unbounded(env, 0), *args, **kwargs)
        except (KeyError, AssertionError) as exc:  # SB3's errors for a zip of another learner or without its data
            raise ValueError(
                f"{path} does not hold a {cls.__name__} model ({type(exc).__name__}: {exc}); load it with the class "
                "that saved it (e.g. LagrangianSAC.load for an lpds run, DSRLNA.load for dsrl-na), or re-save it"
            ) from None

    def set_env(self, env: Any, force_reset: bool = True) -> None:
        """SB3's ``set_env``; an unbounded latent env is accepted as at construction.

        :param env: the new latent env (same spaces)
        :param force_reset: reset the env before the next ``learn``
        """
        super().set_env(_accept_unbounded(env, self.verbose), force_reset)

    def _setup_model(self) -> None:
        self.decoder = resolve_decoder(self.env, self.decoder)
        self._train_decoder = self._make_train_decoder()
        box = self.action_space
        assert isinstance(box, spaces.Box)
        high = float(np.max(box.high))
        self.latent_bound = None if high >= UNBOUNDED_STANDIN else high
        if self.decoder is not None:
            if box.shape != (self._expected_action_dim(),):
                raise ValueError(
                    f"the env's action space has shape {box.shape}, but the decoder's latent is "
                    f"{self.decoder.latent_shape} = ({self.decoder.latent_dim},) flat; is this the decoder of this env?"
                )
            decoded_dim = int(np.prod(self.decoder.action_shape))
        elif "decoded_action_dim" in self.policy_kwargs:  # loaded for prediction only
            decoded_dim = int(self.policy_kwargs["decoded_action_dim"])
        else:
            raise ValueError("no decoder: pass a latent env or decoder=")
        self.policy_kwargs = {**self.policy_kwargs, "decoded_action_dim": decoded_dim}
        self.replay_buffer_kwargs = {**self.replay_buffer_kwargs, "decoded_action_dim": decoded_dim}
        if getattr(self, "prior_cache", 0):
            self.replay_buffer_kwargs["prior_samples"] = self.prior_cache
        if self.td_target == "latent_critic":
            self.policy_kwargs["with_latent_critic_target"] = True
        if not self.uses_latent_critic:
            self.policy_kwargs["with_latent_critic"] = False
        elif not self.policy_kwargs.get("with_latent_critic", True):
            raise ValueError(f"{type(self).__name__} trains a latent critic: with_latent_critic=False is not supported")
        if isinstance(self.observation_space, spaces.Dict) and self.replay_buffer_class is LatentReplayBuffer:
            self.replay_buffer_class = LatentDictReplayBuffer  # Dict observations (images + state)
        super()._setup_model()
        self.actor = self.policy.actor
        self.action_critic = self.policy.action_critic
        self.action_critic_target = self.policy.action_critic_target
        self.latent_critic = self.policy.latent_critic
        self.latent_critic_target = self.policy.latent_critic_target

    def _expected_action_dim(self) -> int:
        """Size of the agent's action: the flat latent (subclasses acting elsewhere override this)."""
        return self._require_decoder().latent_dim

    def _excluded_save_params(self) -> list[str]:
        # the frozen decoder is never pickled into the zip: it comes back from the env or decoder= at load
        return [
            *super()._excluded_save_params(),
            "decoder",
            "_train_decoder",
            "actor",
            "action_critic",
            "action_critic_target",
            "latent_critic",
            "latent_critic_target",
        ]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "actor.optimizer", "action_critic.optimizer"]
        if self.uses_latent_critic:
            state_dicts.append("latent_critic.optimizer")
        return state_dicts, []

    # ------------------------------------------------------------------ rollouts
    def _sample_action(self, learning_starts: int, action_noise: Any = None, n_envs: int = 1):
        """Warm-up draws ``w ~ N(0, I)`` (the backbone itself), then ``w = eps + Delta(s)``; clipped to the box.

        ``action_noise`` is unused (exploration comes from ``eps``); the latent is both action and buffer action.
        """
        if self.num_timesteps < learning_starts:
            w = np.random.standard_normal((n_envs, self.action_space.shape[0])).astype(np.float32)
        else:
            assert self._last_obs is not None, "self._last_obs was not set"  # set by learn() before any rollout
            w, _ = self.predict(self._last_obs, deterministic=False)
        w = np.clip(w, self.action_space.low, self.action_space.high).astype(np.float32)
        return w, w

    def _store_transition(self, replay_buffer, buffer_action, new_obs, reward, dones, infos) -> None:
        self.raw_env_steps += int(sum(info.get("executed_steps", 1) for info in infos))
        if getattr(self, "prior_cache", 0):
            obs = self._last_obs if self._vec_normalize_env is None else self._last_original_obs
            assert obs is not None, "self._last_obs was not set"  # set by learn() before any rollout
            replay_buffer.stage_prior(*self.decode_prior_samples(obs, self.prior_cache))
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)

    def decode_prior_samples(self, obs: np.ndarray | dict[str, np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
        """``k`` prior latents per observation (clipped as the env would, unless the learner aliases noise) and
        their decoded chunks: the ``prior_cache`` entries.

        :param obs: a batch of ``n`` raw observations (array, or dict of arrays)
        :param k: prior samples per observation
        :return: the latents ``(n, k, d)`` and their decoded chunks ``(n, k, Ta * act_dim)``, as arrays
        """
        obs_t = obs_as_tensor(obs, self.device)
        n = len(next(iter(obs_t.values())) if isinstance(obs_t, dict) else obs_t)
        eps = torch.randn(n * k, self.action_space.shape[0], device=self.device)
        if self.clip_prior_samples:
            eps = self.clip_latent(eps)
        rep = (
            {key: v.repeat_interleave(k, dim=0) for key, v in obs_t.items()}
            if isinstance(obs_t, dict)
            else obs_t.repeat_interleave(k, dim=0)
        )
        with torch.no_grad():
            chunks = self.decode(rep, eps)
        return eps.reshape(n, k, -1).cpu().numpy(), chunks.reshape(n, k, -1).cpu().numpy()

    def decode_next_and_prior(
        self, replay: Any, next_w: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(a', eps, a_eps)``: the next chunks ``Phi(next_w; s')`` and Q^W's prior latents with their decodes.

        Without ``prior_cache`` the prior latents are fresh ``eps ~ N(0, I)`` (clipped unless the learner aliases
        noise), decoded together with ``next_w`` in one call; with it they come from the replay, decoded when their
        transition was stored (the frozen decoder's ``Phi(eps; s)`` never changes), and only ``next_w`` is decoded.
        With ``target_decode_dtype="bfloat16"`` the next chunks are decoded in a call of their own under autocast.

        :param replay: a sampled :class:`~algorithms.buffers.LatentReplayBufferSamples`
        :param next_w: the next latents ``(B, d)`` of the current policy (already clipped as the learner needs)
        :return: ``(next_chunks, eps, eps_chunks)``, chunks flat ``(B, Ta * act_dim)``
        """
        next_obs = replay.next_observations
        if replay.prior_latents is not None:
            return self.decode_target(next_obs, next_w), replay.prior_latents, replay.prior_chunks
        eps = torch.randn_like(replay.actions)
        if self.clip_prior_samples:
            eps = self.clip_latent(eps)
        if self.target_decode_dtype != "float32":
            return self.decode_target(next_obs, next_w), eps, self.decode(replay.observations, eps)
        next_chunks, eps_chunks = self.decode_batches((next_obs, next_w), (replay.observations, eps))
        return next_chunks, eps, eps_chunks

    def prior_samples(self, replay: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Q^W's prior latents of a batch and their decodes: cached (``prior_cache``) or fresh and decoded now.

        :param replay: a sampled :class:`~algorithms.buffers.LatentReplayBufferSamples`
        :return: ``(eps, eps_chunks)``
        """
        if replay.prior_latents is not None:
            return replay.prior_latents, replay.prior_chunks
        eps = torch.randn_like(replay.actions)
        if self.clip_prior_samples:
            eps = self.clip_latent(eps)
        return eps, self.decode(replay.observations, eps)

    def next_latents(self, replay: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The current policy's next latents ``w'`` for the TD target (each learner defines its policy).

        :param replay: a sampled :class:`~algorithms.buffers.LatentReplayBufferSamples`
        :return: ``(next_w, next_log_prob)``; ``next_log_prob`` is ``None`` for a policy without an entropy term
        """
        raise NotImplementedError(f"{type(self).__name__} does not define next_latents")

    def update_batches(self, gradient_steps: int, batch_size: int) -> Iterator[tuple[Any, TDInputs]]:
        """The replay batches of one ``train()`` call with their :class:`TDInputs`, one gradient step at a time.

        ``td_target="decode"`` (Algorithm 1): each step samples its batch, draws the next latents with the actor as
        it is at that step and decodes them with Q^W's prior samples in one call. ``"decode_per_update"``: all the
        call's batches are sampled first and their next latents drawn with the actor as it is at the start of the
        call, then decoded (with the fresh prior samples) in a single batched call. ``"latent_critic"``: as
        ``"decode"``, but the next latents are not decoded (:meth:`next_value` bootstraps from Q^W's target).

        Consume the iterator one step at a time: in ``"decode"`` and ``"latent_critic"`` mode the next latents of a
        step are drawn only when it is reached, after the previous step's updates.

        :param gradient_steps: gradient steps of this call
        :param batch_size: minibatch size
        :return: an iterator of ``(replay, td_inputs)``
        """
        if self.td_target == "decode_per_update":
            yield from self._decode_per_update(gradient_steps, batch_size)
            return
        for _ in range(gradient_steps):
            replay = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            with torch.no_grad():
                next_w, next_log_prob = self.next_latents(replay)
                if self.td_target == "latent_critic":
                    next_chunks = None
                    eps, eps_chunks = self.prior_samples(replay)
                else:
                    next_chunks, eps, eps_chunks = self.decode_next_and_prior(replay, next_w)
            yield replay, TDInputs(next_w, next_log_prob, next_chunks, eps, eps_chunks)

    def _decode_per_update(self, gradient_steps: int, batch_size: int) -> list[tuple[Any, TDInputs]]:
        """``update_batches`` for ``td_target="decode_per_update"``: every next chunk of the call in one decode."""
        replays: list[Any] = [  # LatentReplayBufferSamples
            self.replay_buffer.sample(batch_size, env=self._vec_normalize_env) for _ in range(gradient_steps)
        ]
        with torch.no_grad():
            latents = [self.next_latents(replay) for replay in replays]
            cached = replays[0].prior_latents is not None if replays else True
            priors: list[tuple[torch.Tensor, torch.Tensor | None]] = []
            for replay in replays:
                if cached:
                    priors.append((replay.prior_latents, replay.prior_chunks))
                else:
                    eps = torch.randn_like(replay.actions)
                    priors.append((self.clip_latent(eps) if self.clip_prior_samples else eps, None))
            next_pairs = [(replay.next_observations, w) for replay, (w, _) in zip(replays, latents)]
            prior_pairs = [] if cached else [(replay.observations, eps) for replay, (eps, _) in zip(replays, priors)]
            if self.target_decode_dtype != "float32":
                next_all = self.decode_target(
                    _cat_obs([o for o, _ in next_pairs]), torch.cat([w for _, w in next_pairs])
                )
                next_chunks = list(torch.split(next_all, [len(w) for _, w in next_pairs]))
                prior_chunks = self.decode_batches(*prior_pairs) if prior_pairs else []
            else:
                decoded = self.decode_batches(*next_pairs, *prior_pairs)
                next_chunks, prior_chunks = decoded[: len(next_pairs)], decoded[len(next_pairs) :]
        out = []
        for i, replay in enumerate(replays):
            eps, eps_chunks = priors[i]
            eps_chunks = prior_chunks[i] if eps_chunks is None else eps_chunks
            out.append((replay, TDInputs(latents[i][0], latents[i][1], next_chunks[i], eps, eps_chunks)))
        return out

    def next_value(self, next_obs: Any, td: TDInputs) -> torch.Tensor:
        """``min_j Q^A_targ,j(s', a')`` on the decoded next chunks, or ``min_j Q^W_targ,j(s', w')`` without them.

        :param next_obs: the batch's next observations
        :param td: the step's :class:`TDInputs`
        :return: ``(B, 1)``
        """
        if td.next_chunks is None:
            if self.latent_critic_target is None:
                raise RuntimeError("td_target='latent_critic' needs Q^W's target network (built by _setup_model)")
            return self.latent_critic_target(next_obs, td.next_w).min(dim=1, keepdim=True).values
        return self.action_critic_target(next_obs, td.next_chunks).min(dim=1, keepdim=True).values

    def dump_logs(self) -> None:
        """SB3's ``dump_logs`` plus ``time/raw_env_steps`` (executed env steps, as opposed to latent steps)."""
        self.logger.record("time/raw_env_steps", self.raw_env_steps)
        super().dump_logs()

    # ------------------------------------------------------------------ shared update pieces
    def clip_latent(self, w: torch.Tensor) -> torch.Tensor:
        """What the env does to a latent before decoding.

        :param w: latents ``(B, d)``
        :return: ``w`` clamped to ``[-latent_bound, latent_bound]`` (unchanged for an unbounded latent box)
        """
        return w if self.latent_bound is None else w.clamp(-self.latent_bound, self.latent_bound)

    def _make_train_decoder(self) -> Decoder | None:
        """The decoder of the training batches: the env's, or its compiled copy when ``compile_decoder``."""
        if not self.compile_decoder or self.decoder is None:
            return self.decoder
        if not isinstance(self.decoder, PretrainedDecoder):
            warnings.warn(
                f"compile_decoder=True needs a PretrainedDecoder, got {type(self.decoder).__name__}; decoding eagerly",
                stacklevel=3,
            )
            return self.decoder
        return self.decoder.compiled()

    def decode(self, obs: torch.Tensor | dict[str, torch.Tensor], w: torch.Tensor) -> torch.Tensor:
        """Frozen ``Phi(w; s)`` for flat latents (no clipping here).

        :param obs: a batch of observations (tensor, or dict of tensors)
        :param w: latents ``(B, d)``
        :return: flat chunks ``(B, Ta * act_dim)`` on the learner's device
        """
        decoder = getattr(self, "_train_decoder", None) or self.decoder
        if decoder is None:
            raise RuntimeError("training needs the decoder: load with env=<latent env> or decoder=")
        return decoder(obs, w).flatten(1).to(self.device)

    def decode_target(self, obs: torch.Tensor | dict[str, torch.Tensor], w: torch.Tensor) -> torch.Tensor:
        """:meth:`decode` for the TD target's next chunks, under bf16 autocast when ``target_decode_dtype`` asks.

        :param obs: a batch of next observations
        :param w: their next latents ``(B, d)``
        :return: flat float32 chunks ``(B, Ta * act_dim)``
        """
        if self.target_decode_dtype == "float32":
            return self.decode(obs, w)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
            return self.decode(obs, w).float()

    def _require_decoder(self) -> Decoder:
        """The frozen decoder, for the steps that cannot run without it.

        :return: ``self.decoder``
        :raises RuntimeError: when there is none (loaded without a latent env or ``decoder=``)
        """
        if self.decoder is None:
            raise RuntimeError("training needs the decoder: load with env=<latent env> or decoder=")
        return self.decoder

    def _require_latent_critic(self) -> QEnsemble:
        """The latent critic Q^W, for the learners that train it.

        :return: ``self.latent_critic``
        :raises RuntimeError: for a learner without one (``uses_latent_critic=False``)
        """
        if self.latent_critic is None:
            raise RuntimeError(f"{type(self).__name__} has no latent critic Q^W (uses_latent_critic=False)")
        return self.latent_critic

    def decode_batches(self, *pairs: tuple[torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
        """Decode several ``(obs, w)`` batches in one decoder call (decoding dominates the cost).

        :param pairs: ``(obs, w)`` batches
        :return: the flat chunks of each pair, in order
        """
        sizes = [len(w) for _, w in pairs]
        chunks = self.decode(_cat_obs([o for o, _ in pairs]), torch.cat([w for _, w in pairs]))
        return list(torch.split(chunks, sizes))

    def action_critic_step(self, replay: Any, target_q: torch.Tensor) -> float:
        """One TD step of Q^A on the stored decoded chunks: ``0.5 sum_j MSE(Q^A_j(s, a), y)``.

        :param replay: a sampled :class:`~algorithms.buffers.LatentReplayBufferSamples`
        :param target_q: the TD targets ``y``, ``(B, 1)``
        :return: the loss
        """
        q = self.action_critic(replay.observations, replay.decoded_actions)
        loss = 0.5 * F.mse_loss(q, target_q.expand_as(q), reduction="none").mean(0).sum()
        self.action_critic.optimizer.zero_grad()
        loss.backward()
        self.action_critic.optimizer.step()
        return float(loss.item())

    def latent_critic_distill(self, obs: torch.Tensor, eps: torch.Tensor, eps_chunks: torch.Tensor) -> float:
        """``latent_critic_steps`` steps of ``sum_j MSE(Q^W_j(s, eps), Q^A_j(s, Phi(eps; s)))`` (member by member).

        The prior samples and their decodes are drawn once per gradient step and reused across these steps.

        :param obs: a batch of observations
        :param eps: the prior latents ``(B, d)``
        :param eps_chunks: their decoded chunks ``Phi(eps; s)``, flat
        :return: the mean loss over the ``latent_critic_steps`` steps
        """
        latent_critic = self._require_latent_critic()
        with torch.no_grad():
            target = self.action_critic(obs, eps_chunks)
        losses = []
        for _ in range(self.latent_critic_steps):
            loss = F.mse_loss(latent_critic(obs, eps), target, reduction="none").mean(0).sum()
            latent_critic.optimizer.zero_grad()
            loss.backward()
            latent_critic.optimizer.step()
            losses.append(loss.item())
        return float(np.mean(losses))

    def latent_value(self, obs: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``min_j Q^W_j(s, w)`` for the actor's loss: differentiable in ``w`` only.

        Q^W's weights are switched out of autograd for this call (their gradients would be discarded anyway, as
        Q^W's own step zeroes them first), which saves the weight half of the backward pass through the ensemble.

        :param obs: a batch of observations
        :param w: latents ``(B, d)`` (the actor's, with their graph)
        :return: ``(B,)``
        """
        latent_critic = self._require_latent_critic()
        params = list(latent_critic.parameters())
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        try:
            return latent_critic(obs, w).min(dim=1).values
        finally:
            for p, flag in zip(params, flags):
                p.requires_grad_(flag)

    def polyak_update_targets(self) -> None:
        """``theta_targ <- (1 - tau) theta_targ + tau theta`` for Q^A's target (one fused call); buffers copied.

        With ``td_target="latent_critic"`` Q^W's target is moved the same way.
        """
        with torch.no_grad():
            # torch._foreach_lerp_ (private-named, as used by torch.optim): no public fused multi-tensor lerp exists;
            # a loop of Tensor.lerp_ gives the same numbers but one kernel launch per tensor on GPU
            torch._foreach_lerp_(
                list(self.action_critic_target.parameters()), list(self.action_critic.parameters()), self.tau
            )
            for b, b_targ in zip(self.action_critic.buffers(), self.action_critic_target.buffers()):
                b_targ.copy_(b)
            if self.latent_critic_target is not None:  # only with td_target="latent_critic"
                latent_critic = self._require_latent_critic()
                torch._foreach_lerp_(
                    list(self.latent_critic_target.parameters()), list(latent_critic.parameters()), self.tau
                )
                for b, b_targ in zip(latent_critic.buffers(), self.latent_critic_target.buffers()):
                    b_targ.copy_(b)

    def steered_policy(self, deterministic: bool = False) -> nn.Module:
        """A plain ``nn.Module`` mapping raw observations to raw action chunks: ``Phi(clip(eps + Delta(s)); s)``.

        For deployment without the wrapper or SB3. ``forward(obs, eps=None)``: ``eps`` defaults to fresh
        ``N(0, I)`` noise (or zeros when ``deterministic``). For DSRL-NA, whose actor outputs the latent itself,
        ``w = bound * tanh(mu(s) + sigma(s) eps)`` (``eps`` is the noise of its Gaussian, not added on top):
        ``deterministic=True`` gives ``bound * tanh(mu(s))``, the latent ``predict(deterministic=True)`` returns.
        Either way the output equals the env's ``info["decoded_action"]`` for the same latent.

        :param deterministic: use ``eps = 0`` when ``forward`` is given no noise
        :return: a :class:`SteeredPolicy` holding a frozen copy of the actor
        """
        if self.decoder is None:
            raise RuntimeError("steered_policy needs the decoder: load with env= or decoder=")
        return SteeredPolicy(self.decoder, self.actor, self.latent_bound, deterministic)


class LagrangianTrustRegion:
    """The trust region ``E||Delta(s)||^2 <= delta`` and its multiplier, shared by LP-DS and LP-DS-A (a mixin).

    ``delta`` is the trust-region *target* (the budget), not the perturbation ``Delta(s)``: a float or a schedule of
    the remaining progress (as SB3 learning rates). ``alpha`` is the Lagrange multiplier, moved by projected dual
    ascent unless ``use_lagrangian`` is False. The parameters are those of ``_init_trust_region``.
    """

    _current_progress_remaining: float

    def _init_trust_region(
        self, delta: float | Callable[[float], float], alpha_init: float, alpha_lr: float, use_lagrangian: bool
    ) -> None:
        """Validate and store the trust region.

        :param delta: the target (float > 0, or a schedule ``f(progress_remaining) -> delta``)
        :param alpha_init: initial Lagrange multiplier (>= 0)
        :param alpha_lr: step size of the dual ascent (>= 0)
        :param use_lagrangian: ``False`` freezes alpha at ``alpha_init``
        """
        if not callable(delta) and not (_number(delta) and delta > 0):
            raise ValueError(
                f"delta must be > 0 and finite (a trust-region size, paper Table 2 uses 0.10-0.50), got {delta!r}"
            )
        if not (_number(alpha_init) and alpha_init >= 0):
            raise ValueError(f"alpha_init must be >= 0 and finite (a Lagrange multiplier), got {alpha_init!r}")
        if not (_number(alpha_lr) and alpha_lr >= 0):
            raise ValueError(f"alpha_lr must be >= 0 and finite (the dual step size, e.g. 0.01), got {alpha_lr!r}")
        self.delta_schedule = FloatSchedule(delta) if callable(delta) else ConstantSchedule(float(delta))
        self.alpha = float(alpha_init)
        self.alpha_init, self.alpha_lr, self.use_lagrangian = float(alpha_init), float(alpha_lr), bool(use_lagrangian)

    @property
    def delta(self) -> float:
        """The current trust-region target ``delta`` (constant unless a schedule was given); not ``Delta(s)``."""
        return float(self.delta_schedule(self._current_progress_remaining))

    def dual_step(self, perturbation_sq: torch.Tensor, delta: float) -> None:
        """``alpha <- max(0, alpha + alpha_lr * (mean ||Delta(s)||^2 - delta))`` (no-op without the Lagrangian).

        :param perturbation_sq: ``||Delta(s)||^2`` of each state of the batch, ``(B,)``
        :param delta: the current trust-region target
        """
        if self.use_lagrangian:
            self.alpha = max(0.0, self.alpha + self.alpha_lr * (float(perturbation_sq.mean().item()) - delta))


class SteeredPolicy(nn.Module):
    """``obs -> Phi(clip(eps + Delta(obs)); obs)``; see :meth:`SteeringAlgorithm.steered_policy`.

    With a :class:`~algorithms.policies.SquashedGaussianActor` (DSRL-NA) the latent is the actor's own
    ``bound * tanh(mu(obs) + sigma(obs) eps)`` instead.

    :param decoder: the frozen decoder ``Phi``
    :param actor: the perturbation actor ``Delta(s)`` (a frozen copy is kept)
    :param latent_bound: the latent box's bound (``None``: unbounded)
    :param deterministic: use ``eps = 0`` when ``forward`` is given no noise
    """

    def __init__(self, decoder: Decoder, actor: nn.Module, latent_bound: float | None, deterministic: bool) -> None:
        super().__init__()
        self.decoder, self.actor = decoder, copy_module(actor)
        self.latent_bound, self.deterministic = latent_bound, deterministic

    @torch.no_grad()
    def forward(self, obs: torch.Tensor | dict[str, Any], eps: torch.Tensor | None = None) -> torch.Tensor:
        """The steered chunks.

        :param obs: raw observations (batched; dict of arrays or tensors for Dict observations, channel-last images)
        :param eps: the noise ``(B, d)``; ``None`` draws ``N(0, I)`` (zeros when ``deterministic``); for DSRL-NA the
            noise of the actor's pre-tanh Gaussian
        :return: the decoded action chunks
        """
        device = next(self.actor.parameters()).device
        actor_obs: Any
        if isinstance(obs, dict):  # Dict observations keep their dtypes (uint8 images)
            obs = {k: np.asarray(v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in obs.items()}
            space = getattr(self.actor.features_extractor, "observation_space", None)
            # the actor saw images as SB3 stores them (channel-first); the decoder takes the raw layout
            actor_obs = {
                k: torch.as_tensor(maybe_transpose(v, space[k]) if isinstance(space, spaces.Dict) else v, device=device)
                for k, v in obs.items()
            }
            obs = {k: torch.as_tensor(v, device=device) for k, v in obs.items()}
        else:
            obs = actor_obs = torch.as_tensor(obs, dtype=torch.float32, device=device)
        if isinstance(self.actor, SquashedGaussianActor):
            # DSRL-NA: the actor's output *is* the latent, w = bound * tanh(mu + sigma eps)
            if eps is None and not self.deterministic:
                n = len(next(iter(obs.values()))) if isinstance(obs, dict) else len(obs)
                eps = torch.randn(n, self.actor.mu.out_features, device=device)
            w = self.actor.latent(actor_obs, None if eps is None else eps.to(device))
        else:
            perturbation = self.actor(actor_obs)
            if eps is None:
                eps = torch.zeros_like(perturbation) if self.deterministic else torch.randn_like(perturbation)
            w = eps.reshape(perturbation.shape).to(perturbation) + perturbation
        if self.latent_bound is not None:
            w = w.clamp(-self.latent_bound, self.latent_bound)
        return self.decoder(obs, w)


def _cat_obs(batches: list[Any]) -> Any:
    """``torch.cat`` of observation batches; Dict observations are concatenated key by key."""
    if isinstance(batches[0], dict):
        return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
    return torch.cat(batches)


def copy_module(module: nn.Module) -> nn.Module:
    """A frozen copy of ``module``: deep-copied, in eval mode, without gradients.

    :param module: the module to copy
    :return: the copy
    """
    return copy.deepcopy(module).eval().requires_grad_(False)
