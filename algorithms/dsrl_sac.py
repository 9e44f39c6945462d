"""DSRLSAC: DSRL-SAC as the reference code runs it: SB3 SAC on the latent env, warmed up on the backbone's prior."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3 import SAC

from .progress import RawStepProgressMixin


class DSRLSAC(RawStepProgressMixin, SAC):
    """SB3 :class:`~stable_baselines3.SAC` on a latent-steering env, with DSRL's warm-up.

    Plain ``SAC("MlpPolicy", latent_env)`` is already DSRL-SAC; the one difference is what fills the replay buffer
    before learning starts. SB3 samples its first ``learning_starts`` actions uniformly from the action space, which
    on a latent env is a uniform draw over the latent box ``[-b, b]^d``: far from the ``N(0, I)`` latents the frozen
    backbone was trained on. The DSRL reference code (``collect_rollouts`` in ajwagen/dsrl ``utils.py``) instead
    rolls out the backbone itself, ``w ~ N(0, I)`` clipped to the box, as LP-DS's warm-up does. This class does the
    same; from ``learning_starts`` on it is SB3 SAC unchanged.

    Example::

        >>> import gymnasium as gym, lpds_envs
        >>> from algorithms import DSRLSAC
        >>> env = gym.make("LPDS-MultiGoal-v0")
        >>> model = DSRLSAC("MlpPolicy", env, learning_starts=100, target_entropy=0.0).learn(200)

    :param args: as :class:`~stable_baselines3.SAC`
    :param kwargs: as :class:`~stable_baselines3.SAC`
    """

    action_space: spaces.Box  # SAC supports Box action spaces only

    def _sample_action(
        self, learning_starts: int, action_noise: Any = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Warm-up: ``w ~ N(0, I)`` clipped to the latent box (the frozen backbone); then SB3 SAC's own sampling."""
        if self.num_timesteps >= learning_starts:
            return super()._sample_action(learning_starts, action_noise, n_envs)
        shape = (n_envs, *self.action_space.shape)
        w = np.clip(np.random.standard_normal(shape), self.action_space.low, self.action_space.high)
        w = w.astype(self.action_space.dtype)
        return w, self.policy.scale_action(w)  # SAC's buffer holds actions scaled to [-1, 1]
