"""Argument checks of the learners: the SB3 arguments that would train silently wrong, and the TD-target options."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def whole_number(value: Any) -> bool:
    """``value`` is an integer (a Python or numpy int, not a bool)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def finite_number(value: Any) -> bool:
    """``value`` is a finite real number (not a bool)."""
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
    if not whole_number(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1 (transitions per gradient step), got {batch_size!r}")
    if not whole_number(buffer_size) or buffer_size < 1:
        raise ValueError(f"buffer_size must be an integer >= 1 (replay capacity), got {buffer_size!r}")
    if not whole_number(learning_starts) or learning_starts < 0:
        raise ValueError(f"learning_starts must be an integer >= 0 (warm-up steps), got {learning_starts!r}")
    for name, value in (("tau", tau), ("gamma", gamma)):
        if not finite_number(value) or not 0 <= value <= 1:
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
