"""Finiteness guard of the learners: stop at the first NaN or inf, name it, and say what probably caused it.

A NaN or inf reward, observation or decoded chunk poisons the critics' TD targets within one gradient step, and
every network a few steps later. The learners check the losses they compute anyway after every gradient step
(a few Python floats, no extra work on the normal path) and all their weights once per ``train()`` call, after
the update loop; the first non-finite value raises :class:`NonFiniteError` with the quantity, the gradient step
and, from the batch that produced it, the likely cause. Nothing here changes a number on the normal path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

#: what to check when no cause is found in the batch
GENERIC_CAUSE = (
    "a NaN or inf reward, observation or decoder output, or a learning rate too large for these rewards; "
    "check the env and the decoder, or lower the learning rate"
)


class NonFiniteError(RuntimeError):
    """A loss or a weight of a learner became NaN or inf: training cannot go on from here.

    ``str(error)`` is one line naming the quantity, the gradient step and the likely cause.

    :param quantity: what became non-finite (e.g. ``"train/critic_loss"`` or ``"weight actor.mu.weight"``)
    :param step: the gradient step (``model._n_updates`` counting) at which it was found
    :param cause: the likely cause and what to do
    """

    def __init__(self, quantity: str, step: int, cause: str) -> None:
        self.quantity, self.step, self.cause = quantity, int(step), cause
        super().__init__(f"{quantity} is NaN or inf after gradient step {self.step}; likely cause: {cause}")


def _any_nonfinite(x: Any) -> bool:
    """True when a tensor (or a dict of tensors) holds a NaN or inf; integer tensors are always finite."""
    if isinstance(x, dict):
        return any(_any_nonfinite(v) for v in x.values())
    if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
        return False
    return not bool(torch.isfinite(x).all())


def batch_cause(replay: Any, decoded: dict[str, torch.Tensor] | None = None) -> str:
    """The likely cause of a non-finite loss, read from the batch that produced it (only called on a failure).

    :param replay: a sampled replay batch (SB3's or :class:`~algorithms.buffers.LatentReplayBufferSamples`), or
        ``None``
    :param decoded: the chunks the learner decoded for this step (e.g. ``{"next chunks": ...}``)
    :return: a sentence naming the non-finite field of the batch (reward, observation, decoded chunk), or
        :data:`GENERIC_CAUSE`
    """
    fields = (
        ("rewards", "a NaN or inf reward from the env"),
        ("observations", "a NaN or inf observation from the env"),
        ("next_observations", "a NaN or inf (next) observation from the env"),
        ("decoded_actions", "a NaN or inf stored decoder output (decoded action chunk)"),
        ("actions", "a NaN or inf action/latent in the replay buffer"),
    )
    found = [what for field, what in fields if replay is not None and _any_nonfinite(getattr(replay, field, None))]
    if found:
        return f"the sampled batch holds {' and '.join(found)}; fix the env or decoder that produces it"
    bad = [name for name, chunks in (decoded or {}).items() if _any_nonfinite(chunks)]
    if bad:
        return (
            f"the decoder output is NaN or inf for the training batch's {' and '.join(bad)} (latents the learner "
            "decodes itself, e.g. prior samples outside the env's latent box); fix the decoder for those latents"
        )
    return GENERIC_CAUSE


def buffer_cause(buffer: Any) -> str:
    """The likely cause of a non-finite loss, read from the filled part of a replay buffer (only on a failure).

    :param buffer: an SB3 replay buffer, or ``None``
    :return: a sentence naming its non-finite fields (rewards, observations, ...), or :data:`GENERIC_CAUSE`
    """
    if buffer is None:
        return GENERIC_CAUSE
    n = buffer.size()
    found = []
    for field in ("rewards", "observations", "next_observations", "actions"):
        value = getattr(buffer, field, None)
        values = value.values() if isinstance(value, dict) else [value]
        if any(
            isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.floating) and not np.isfinite(v[:n]).all()
            for v in values
        ):
            found.append(field)
    if not found:
        return GENERIC_CAUSE
    return f"the replay buffer holds NaN or inf {' and '.join(found)} from the env; fix the env that produces them"


def check_losses(
    losses: dict[str, float], step: int, replay: Any = None, decoded: dict[str, torch.Tensor] | None = None
) -> None:
    """Raise :class:`NonFiniteError` for the first non-finite loss of a gradient step.

    :param losses: the step's losses and values by log name (Python floats the learner computed anyway)
    :param step: the gradient step
    :param replay: the batch of the step, to name the likely cause
    :param decoded: the chunks decoded in this step, to name the decoder as the cause (looked at only on a failure)
    :raises NonFiniteError: when one of them is NaN or inf
    """
    for name, value in losses.items():
        if not math.isfinite(value):
            raise NonFiniteError(f"train/{name}", step, batch_cause(replay, decoded))


def named_tensors(model: Any) -> Iterable[tuple[str, torch.Tensor]]:
    """The learnable state of an SB3 learner: the policy's parameters and buffers and the entropy coefficient."""
    policy = getattr(model, "policy", None)
    if isinstance(policy, torch.nn.Module):
        yield from policy.named_parameters()
        yield from policy.named_buffers()
    log_ent_coef = getattr(model, "log_ent_coef", None)
    if isinstance(log_ent_coef, torch.Tensor):
        yield "log_ent_coef", log_ent_coef


def nonfinite_weight(model: Any) -> str | None:
    """The name of the first non-finite weight (or ``alpha``) of ``model``, or ``None`` when all are finite.

    Fast path: one float64 sum over all weights and one device sync (a NaN or inf element always makes the sum
    non-finite, and a float64 sum of float32 weights cannot overflow); only when it is not finite are the tensors
    checked one by one, to name the culprit.

    :param model: an SB3 learner
    """
    alpha = getattr(model, "alpha", None)
    if isinstance(alpha, float) and not math.isfinite(alpha):
        return "alpha"
    tensors = [(name, t.detach()) for name, t in named_tensors(model) if torch.is_floating_point(t)]
    if not tensors:
        return None
    with torch.no_grad():
        if math.isfinite(float(torch.stack([t.sum(dtype=torch.float64) for _, t in tensors]).sum())):
            return None
        return next((name for name, t in tensors if not bool(torch.isfinite(t).all())), None)


def check_weights(model: Any, step: int) -> None:
    """Raise :class:`NonFiniteError` when a weight of ``model`` is NaN or inf (call it once per ``train()``).

    :param model: an SB3 learner
    :param step: the gradient step (for the message)
    :raises NonFiniteError: naming the first non-finite weight
    """
    name = nonfinite_weight(model)
    if name is not None:
        raise NonFiniteError(f"weight {name}", step, GENERIC_CAUSE)
