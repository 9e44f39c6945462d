"""DSRL with sb3-contrib's learners: TQC and CrossQ on the latent env, as :class:`~algorithms.DSRLSAC` is SB3's SAC
on it (the same prior warm-up and finiteness guard, :class:`~algorithms.dsrl_sac.PriorWarmupMixin`).

- :class:`DSRLTQC`: :class:`sb3_contrib.TQC` (truncated quantile critics: distributional critics that drop the
  top quantiles of the target, against overestimation).
- :class:`DSRLCrossQ`: :class:`sb3_contrib.CrossQ` (batch-normalised critics without target networks).

``lpds train --algo dsrl-tqc`` / ``--algo dsrl-crossq`` train them with the presets
``algorithms/hyperparams/dsrl-tqc.yml`` / ``dsrl-crossq.yml``.
"""

from __future__ import annotations

from sb3_contrib import TQC, CrossQ

from .dsrl_sac import PriorWarmupMixin
from .progress import RawStepProgressMixin


class DSRLTQC(PriorWarmupMixin, RawStepProgressMixin, TQC):
    """sb3-contrib :class:`~sb3_contrib.TQC` on a latent-steering env, with DSRL's warm-up on the backbone's prior.

    Example::

        >>> import gymnasium as gym, lpds_envs
        >>> from algorithms import DSRLTQC
        >>> model = DSRLTQC("MlpPolicy", gym.make("LPDS-MultiGoal-v0"), learning_starts=100).learn(200)

    :param args: as :class:`~sb3_contrib.TQC`
    :param kwargs: as :class:`~sb3_contrib.TQC`
    """


class DSRLCrossQ(PriorWarmupMixin, RawStepProgressMixin, CrossQ):
    """sb3-contrib :class:`~sb3_contrib.CrossQ` on a latent-steering env, with DSRL's warm-up on the backbone's prior.

    Example::

        >>> import gymnasium as gym, lpds_envs
        >>> from algorithms import DSRLCrossQ
        >>> model = DSRLCrossQ("MlpPolicy", gym.make("LPDS-MultiGoal-v0"), learning_starts=100).learn(200)

    :param args: as :class:`~sb3_contrib.CrossQ`
    :param kwargs: as :class:`~sb3_contrib.CrossQ`
    """
