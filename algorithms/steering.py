"""The base class of the latent-steering learners, on top of SB3's ``OffPolicyAlgorithm``.

What every learner here has in common: the frozen decoder (from the env or ``decoder=``), a replay buffer that
stores latent and decoded chunk, prior warm-up, one batched decoder call per gradient step, the action critic
Q^A trained by TD on decoded chunks, and the latent critic Q^W distilled on prior noise. Subclasses write
``train()`` so that it reads top to bottom against their algorithm box, from the pieces of
:mod:`algorithms.batches` (what a gradient step is fed) and :mod:`algorithms.updates` (the shared updates).

The helpers of this base class live in modules of their own and are importable from here as before:
:mod:`algorithms.validation` (argument checks), :mod:`algorithms.latent_env` (the env's decoder, unbounded boxes),
:mod:`algorithms.trust_region` (LP-DS's Lagrangian) and :mod:`algorithms.steered_policy` (deployment module).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from torch import nn
from torch.distributions import Distribution

from lpds_envs.decoders.base import Decoder

from .batches import SteeringBatches, TDInputs, cat_obs
from .buffers import LatentDictReplayBuffer, LatentReplayBuffer
from .export import ExportResult, export_steered_policy
from .faults import NonFiniteError, check_losses, check_weights
from .latent_env import UNBOUNDED_STANDIN, _accept_unbounded, resolve_decoder
from .policies import (
    MultiInputSteeringPolicy,
    PerturbationActor,
    QEnsemble,
    SquashedGaussianActor,
    SteeringPolicy,
)
from .progress import RawStepProgressMixin
from .steered_policy import SteeredPolicy, copy_module
from .trust_region import LagrangianTrustRegion
from .updates import SteeringUpdates, TrainLog
from .validation import TARGET_DECODE_DTYPES, TD_TARGETS, check_sb3_arguments, check_td_target

__all__ = [  # the names this module has always offered, wherever they are defined now
    "TARGET_DECODE_DTYPES",
    "TD_TARGETS",
    "UNBOUNDED_STANDIN",
    "LagrangianTrustRegion",
    "SteeredPolicy",
    "SteeringAlgorithm",
    "TDInputs",
    "cat_obs",
    "check_sb3_arguments",
    "check_td_target",
    "copy_module",
    "resolve_decoder",
]


@contextmanager
def distribution_checks(enabled: bool) -> Iterator[None]:
    """Within the block, ``torch.distributions`` validate their arguments (each check reads the device) only if
    ``enabled``; the global default is restored on exit.

    :param enabled: validate (torch's default) or not
    """
    before = Distribution._validate_args
    Distribution.set_default_validate_args(enabled)
    try:
        yield
    finally:
        Distribution.set_default_validate_args(before)


class SteeringAlgorithm(RawStepProgressMixin, SteeringUpdates, SteeringBatches, OffPolicyAlgorithm):
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
    counts_raw_steps = True  # keeps raw_env_steps itself (RawStepCallback then only reads it)

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

    def dump_logs(self) -> None:
        """SB3's ``dump_logs`` plus ``time/raw_env_steps`` (executed env steps, as opposed to latent steps)."""
        self.logger.record("time/raw_env_steps", self.raw_env_steps)
        super().dump_logs()

    # ------------------------------------------------------------------ train() bookkeeping
    def check_update(self, log: TrainLog, step: int, replay: Any, decoded: dict[str, torch.Tensor]) -> None:
        """The finiteness guard after gradient step ``step`` of a ``train()`` call: its latest losses must be finite.

        :param log: the call's :class:`~algorithms.updates.TrainLog`
        :param step: the gradient step within the call (0-based)
        :param replay: the step's replay batch (searched for the likely cause)
        :param decoded: the step's decoded chunks by name (searched too)
        :raises NonFiniteError: naming the first non-finite loss
        """
        if self.defer_loss_checks:
            return  # record_train_logs checks every step's values with one read
        check_losses(log.latest(), self._n_updates + step + 1, replay, decoded)

    @property
    def defer_loss_checks(self) -> bool:
        """Whether the losses' finiteness is checked once per ``train()`` call instead of after every gradient step.

        Reading a loss on the host makes the host wait for the device, so on an accelerator (any device but the CPU,
        by default) the check is deferred to the end of the call: the error then names the same quantity and step,
        but the batch that caused it is no longer at hand to name a likely cause, and the later steps of the call
        have already run. On the CPU a read costs nothing and each step is checked at once. Assign ``True`` or
        ``False`` to override (e.g. to test the deferred path on a CPU).
        """
        forced = getattr(self, "_defer_loss_checks", None)
        return self.device.type != "cpu" if forced is None else bool(forced)

    @defer_loss_checks.setter
    def defer_loss_checks(self, value: bool) -> None:
        self._defer_loss_checks = bool(value)

    def record_train_logs(self, gradient_steps: int, log: TrainLog, **scalars: float) -> None:
        """End of a ``train()`` call: count its updates, check every weight, and log ``train/n_updates``, the
        ``scalars`` as they are, the means of ``log`` and ``time/raw_env_steps``.

        :param gradient_steps: the gradient steps the call took
        :param log: the call's per-step values
        :param scalars: values logged as they are (e.g. ``alpha``, ``delta``), as ``train/<name>``
        :raises NonFiniteError: naming the first non-finite weight
        """
        if self.defer_loss_checks:
            bad = log.first_nonfinite()
            if bad is not None:
                raise NonFiniteError(
                    f"train/{bad[0]}", self._n_updates + bad[1] + 1, "checked at the end of the update (a device "
                    "update reads its losses once per train() call), so the batch is not at hand; rerun on the CPU, "
                    "or with model.defer_loss_checks = False, to have the cause named"
                )  # fmt: skip
        self._n_updates += gradient_steps
        check_weights(self, self._n_updates)  # once per call: the loop's losses were checked step by step
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for key, value in scalars.items():
            self.logger.record(f"train/{key}", value)
        for key, mean in log.means().items():
            self.logger.record(f"train/{key}", mean)
        self.logger.record("time/raw_env_steps", self.raw_env_steps)

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

    def export_steered_policy(self, path: str | os.PathLike, deterministic: bool = True, **kwargs: Any) -> ExportResult:
        """Write :meth:`steered_policy` (``Delta`` network + frozen decoder and sampler) to ONE file that a control
        loop loads with ``torch.export.load(path).module()`` (or the state-dict fallback for decoders that cannot be
        exported); see :func:`algorithms.export.export_steered_policy`.

        :param path: the file to write (``.pt2``)
        :param deterministic: ``eps = 0``; ``False``: the program takes the noise ``eps`` as an input
        :param kwargs: :func:`~algorithms.export.export_steered_policy`'s (``env_id``, ``observation_space``, ...)
        :return: what was written (path, format, metadata)
        """
        return export_steered_policy(self, path, deterministic, **kwargs)
