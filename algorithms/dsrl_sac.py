"""DSRLSAC: DSRL-SAC as the reference code runs it: SB3 SAC on the latent env, warmed up on the backbone's prior.

:class:`PriorWarmupMixin` holds what DSRL adds to an SB3 off-policy learner (the prior warm-up and the finiteness
guard); :mod:`algorithms.dsrl_contrib` puts it on sb3-contrib's TQC and CrossQ.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.sac.policies import MultiInputPolicy as SACMultiInputPolicy

from .faults import NonFiniteError, buffer_cause, check_weights
from .policies import ImagePoolMixin
from .progress import RawStepProgressMixin
from .steering import check_sb3_arguments

#: the losses SB3's SAC (and sb3-contrib's TQC and CrossQ) log in ``train``, checked after each call
SAC_LOSS_KEYS = ("train/critic_loss", "train/actor_loss", "train/ent_coef_loss", "train/ent_coef")


class PriorWarmupMixin:
    """Mixin for an SB3 off-policy learner on a latent-steering env (SAC, TQC, CrossQ): DSRL's warm-up on the
    backbone's prior, argument checks, and the finiteness guard after every ``train`` call.

    SB3 samples its first ``learning_starts`` actions uniformly from the action space, which on a latent env is a
    uniform draw over the latent box ``[-b, b]^d``: far from the ``N(0, I)`` latents the frozen backbone was trained
    on. The DSRL reference code (``collect_rollouts`` in ajwagen/dsrl ``utils.py``) instead rolls out the backbone
    itself, ``w ~ N(0, I)`` clipped to the box, as LP-DS's warm-up does. This mixin does the same; from
    ``learning_starts`` on the learner's own sampling is unchanged.
    """

    def _setup_model(self) -> None:
        learner: Any = self
        # CrossQ has no target networks, hence no tau: check it as the neutral 1.0
        tau = getattr(learner, "tau", 1.0)
        check_sb3_arguments(learner.batch_size, learner.buffer_size, learner.learning_starts, tau, learner.gamma)
        super()._setup_model()  # type: ignore[misc]

    def _sample_action(
        self, learning_starts: int, action_noise: Any = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Warm-up: ``w ~ N(0, I)`` clipped to the latent box (the frozen backbone); then the learner's own sampling."""
        learner: Any = self  # an SB3 off-policy learner with a Box action space
        if learner.num_timesteps >= learning_starts:
            return super()._sample_action(learning_starts, action_noise, n_envs)  # type: ignore[misc]
        space: spaces.Box = learner.action_space
        w = np.clip(np.random.standard_normal((n_envs, *space.shape)), space.low, space.high).astype(space.dtype)
        return w, learner.policy.scale_action(w)  # the buffer holds actions scaled to [-1, 1]

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """The learner's ``train``, then the finiteness guard: its logged losses and all weights must be finite.

        :param gradient_steps: gradient steps to take
        :param batch_size: minibatch size of each step
        :raises NonFiniteError: naming the first non-finite loss or weight (the update that made it is the last one)
        """
        super().train(gradient_steps, batch_size)  # type: ignore[misc]
        learner: Any = self
        logged = learner.logger.name_to_value
        for key in SAC_LOSS_KEYS:
            if key in logged and not math.isfinite(float(logged[key])):
                raise NonFiniteError(key, learner._n_updates, buffer_cause(learner.replay_buffer))
        check_weights(self, learner._n_updates)


class PooledMultiInputSACPolicy(ImagePoolMixin, SACMultiInputPolicy):
    """SB3's SAC ``MultiInputPolicy`` that also takes ``image_pool`` (as LP-DS's ``MultiInputPolicy`` does,
    :class:`~algorithms.policies.ImagePoolMixin`): the image keys reach the actor and critics average-pooled by that
    factor, so a preset can give DSRL-SAC LP-DS's small inputs from YAML (``policy_kwargs: {image_pool: 8}``).
    Without ``image_pool`` it is SB3's ``MultiInputPolicy`` unchanged.
    """


class DSRLSAC(PriorWarmupMixin, RawStepProgressMixin, SAC):
    """SB3 :class:`~stable_baselines3.SAC` on a latent-steering env, with DSRL's warm-up.

    Plain ``SAC("MlpPolicy", latent_env)`` is already DSRL-SAC; the one difference is what fills the replay buffer
    before learning starts (:class:`PriorWarmupMixin`): the backbone's prior ``w ~ N(0, I)`` clipped to the box, as
    the DSRL reference code does, instead of SB3's uniform draw over the box. From ``learning_starts`` on it is SB3
    SAC unchanged.

    Example::

        >>> import gymnasium as gym, lpds_envs
        >>> from algorithms import DSRLSAC
        >>> env = gym.make("LPDS-MultiGoal-v0")
        >>> model = DSRLSAC("MlpPolicy", env, learning_starts=100, target_entropy=0.0).learn(200)

    ``"MultiInputPolicy"`` is :class:`PooledMultiInputSACPolicy` (SB3's, plus ``image_pool``).

    :param args: as :class:`~stable_baselines3.SAC`
    :param kwargs: as :class:`~stable_baselines3.SAC`
    """

    policy_aliases = {**SAC.policy_aliases, "MultiInputPolicy": PooledMultiInputSACPolicy}  # noqa: RUF012
