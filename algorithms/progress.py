"""Training progress measured in raw env steps, for SB3's schedules."""

from __future__ import annotations


class RawStepProgressMixin:
    """Mixin for SB3 off-policy learners: with :attr:`raw_step_budget` set, the progress that SB3's schedules
    (learning rates, a ``delta`` schedule) see is the spent fraction of that budget of raw env steps (paper App. A.4:
    one executed action = one step) instead of latent steps over ``total_timesteps``. ``lpds train`` sets it to the
    run's ``--steps``; the learner's ``raw_env_steps`` is kept by the learner (steering learners) or by
    :class:`~lpds_envs.evaluation.RawStepCallback` (SB3's SAC).
    """

    #: budget in raw env steps; ``None``: SB3's own progress (latent steps over ``total_timesteps``)
    raw_step_budget: int | None = None

    def _update_current_progress_remaining(self, num_timesteps: int, total_timesteps: int) -> None:
        if not self.raw_step_budget:
            super()._update_current_progress_remaining(num_timesteps, total_timesteps)  # type: ignore[misc]
            return
        spent = float(getattr(self, "raw_env_steps", 0)) / float(self.raw_step_budget)
        self._current_progress_remaining = 1.0 - spent
