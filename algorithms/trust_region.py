"""The Lagrangian trust region ``E||Delta(s)||^2 <= delta`` of LP-DS and LP-DS-A: its target, multiplier and dual step."""

from __future__ import annotations

from collections.abc import Callable
from typing import overload

import torch
from stable_baselines3.common.utils import ConstantSchedule, FloatSchedule

from .validation import finite_number


def scalar_dtype(device: torch.device | str) -> torch.dtype:
    """The dtype of the update's scalar bookkeeping (alpha, logged losses) on ``device``: float64 where the device has
    it, float32 on Apple's MPS, which has no float64.

    :param device: the learner's device
    """
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


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
        if not callable(delta) and not (finite_number(delta) and delta > 0):
            raise ValueError(
                f"delta must be > 0 and finite (a trust-region size, paper Table 2 uses 0.10-0.50), got {delta!r}"
            )
        if not (finite_number(alpha_init) and alpha_init >= 0):
            raise ValueError(f"alpha_init must be >= 0 and finite (a Lagrange multiplier), got {alpha_init!r}")
        if not (finite_number(alpha_lr) and alpha_lr >= 0):
            raise ValueError(f"alpha_lr must be >= 0 and finite (the dual step size, e.g. 0.01), got {alpha_lr!r}")
        self.delta_schedule = FloatSchedule(delta) if callable(delta) else ConstantSchedule(float(delta))
        self.alpha = float(alpha_init)
        self.alpha_init, self.alpha_lr, self.use_lagrangian = float(alpha_init), float(alpha_lr), bool(use_lagrangian)

    @property
    def delta(self) -> float:
        """The current trust-region target ``delta`` (constant unless a schedule was given); not ``Delta(s)``."""
        return float(self.delta_schedule(self._current_progress_remaining))

    def alpha_tensor(self, device: torch.device | str) -> torch.Tensor:
        """``alpha`` as a float64 scalar tensor on ``device``: ``train()`` moves it there and reads it back once, so
        the dual step does not wait for the device at every gradient step.

        :param device: the learner's device
        """
        return torch.tensor(self.alpha, dtype=scalar_dtype(device), device=device)

    def trust_region_actor_loss(
        self, value: torch.Tensor, perturbation_sq: torch.Tensor, delta: float, alpha: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The actor's loss: the negated Lagrangian ``mean(-value + alpha (||Delta(s)||^2 - delta))``.

        :param value: the critic's value of the steered latents or chunks, ``(B,)``
        :param perturbation_sq: ``||Delta(s)||^2`` of each state of the batch, ``(B,)``
        :param delta: the current trust-region target
        :param alpha: the multiplier as a scalar tensor (:meth:`alpha_tensor`); ``None``: ``self.alpha``
        :return: the scalar loss
        """
        multiplier = self.alpha if alpha is None else alpha
        return (-value + multiplier * (perturbation_sq - delta)).mean()

    @overload
    def dual_step(self, perturbation_sq: torch.Tensor, delta: float, alpha: torch.Tensor) -> torch.Tensor: ...

    @overload
    def dual_step(self, perturbation_sq: torch.Tensor, delta: float, alpha: None = None) -> float: ...

    def dual_step(
        self, perturbation_sq: torch.Tensor, delta: float, alpha: torch.Tensor | None = None
    ) -> torch.Tensor | float:
        """``alpha <- max(0, alpha + alpha_lr * (mean ||Delta(s)||^2 - delta))`` (no-op without the Lagrangian).

        :param perturbation_sq: ``||Delta(s)||^2`` of each state of the batch, ``(B,)``
        :param delta: the current trust-region target
        :param alpha: the multiplier as a scalar tensor (:meth:`alpha_tensor`): the step is taken on the device and
            the new tensor returned, ``self.alpha`` untouched; ``None``: ``self.alpha`` is updated (a host read)
        :return: the new multiplier
        """
        if alpha is not None:
            if not self.use_lagrangian:
                return alpha
            step = perturbation_sq.detach().mean().to(alpha.dtype) - delta
            return torch.clamp(alpha + self.alpha_lr * step, min=0.0)
        if self.use_lagrangian:
            self.alpha = max(0.0, self.alpha + self.alpha_lr * (float(perturbation_sq.mean().item()) - delta))
        return self.alpha
