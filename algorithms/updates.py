"""The pieces of a gradient step that the steering learners' ``train()`` share: optimiser steps, the critics'
updates (TD on Q^A, distillation of Q^W), Q^W's value for the actor, the target networks, and the per-step log.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .policies import QEnsemble
from .trust_region import scalar_dtype


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One gradient step on ``loss``: zero the gradients, backpropagate, step.

    :param optimizer: the optimiser of the network being trained
    :param loss: the scalar loss
    """
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


class TrainLog:
    """The values of one ``train()`` call, gradient step by gradient step; logged as their means.

    Tensor values are kept as (detached) tensors on their device and read on the host only by :meth:`latest`,
    :meth:`means` and :meth:`first_nonfinite`, so a gradient step that logs does not wait for the device; a GPU
    update reads its log once per ``train()`` call.

    :param keys: the quantities, in the order they are logged (``train/<key>``)
    """

    def __init__(self, *keys: str) -> None:
        self.values: dict[str, list[float | torch.Tensor]] = {k: [] for k in keys}

    def add(self, **values: float | torch.Tensor) -> None:
        """Append this gradient step's values (scalars: Python numbers or one-element tensors, kept unread).

        :param values: ``key=value`` for keys given at construction
        """
        for key, value in values.items():
            self.values[key].append(value.detach().reshape(()) if isinstance(value, torch.Tensor) else float(value))

    def latest(self) -> dict[str, float]:
        """The last value of each quantity logged so far, for :func:`~algorithms.faults.check_losses` (reads them)."""
        return {k: float(v[-1]) for k, v in self.values.items() if v}

    def _columns(self) -> dict[str, torch.Tensor]:
        """Each logged quantity as one tensor of its steps, all on the device of the logged tensors (float64 where the
        device has it; Apple's MPS has none)."""
        device = next(
            (x.device for v in self.values.values() for x in v if isinstance(x, torch.Tensor)), torch.device("cpu")
        )
        dtype = scalar_dtype(device)
        return {
            key: torch.stack([torch.as_tensor(x, dtype=dtype, device=device) for x in values])
            for key, values in self.values.items()
            if values
        }

    def means(self) -> dict[str, float]:
        """The mean of each quantity over the call's gradient steps (one device read for all of them)."""
        columns = self._columns()
        if not columns:
            return {}
        return dict(zip(columns, torch.stack([c.mean() for c in columns.values()]).tolist()))

    def first_nonfinite(self) -> tuple[str, int] | None:
        """``(key, step)`` of the first non-finite value (earliest step, then the first key), or ``None``.

        The deferred form of the per-step check, for updates on an accelerator: one device read for the whole call.
        """
        columns = self._columns()
        if not columns:
            return None
        none = max(len(c) for c in columns.values())  # stands for "no non-finite step"
        firsts = []
        for column in columns.values():
            bad = ~torch.isfinite(column)
            firsts.append(
                torch.where(bad.any(), bad.to(torch.int64).argmax(), torch.full_like(bad[0], none, dtype=torch.int64))
            )
        steps = torch.stack(firsts).tolist()
        step = min(steps)
        return None if step == none else (list(columns)[steps.index(step)], step)


class SteeringUpdates:
    """Mixin of :class:`~algorithms.steering.SteeringAlgorithm`: the update pieces its learners' ``train()`` share.

    The attributes below are set by the learner (its ``__init__`` and ``_setup_model``).
    """

    gamma: float
    tau: float
    latent_critic_steps: int
    action_critic: QEnsemble
    action_critic_target: QEnsemble
    latent_critic: QEnsemble | None
    latent_critic_target: QEnsemble | None

    def bellman_target(self, replay: Any, next_value: torch.Tensor) -> torch.Tensor:
        """The TD target ``y = r + gamma (1 - done) next_value`` (one discount per latent step).

        :param replay: a sampled :class:`~algorithms.buffers.LatentReplayBufferSamples`
        :param next_value: the value of the next state, ``(B, 1)``
        :return: ``(B, 1)``
        """
        return replay.rewards + (1 - replay.dones) * self.gamma * next_value

    def _require_latent_critic(self) -> QEnsemble:
        """The latent critic Q^W, for the learners that train it.

        :return: ``self.latent_critic``
        :raises RuntimeError: for a learner without one (``uses_latent_critic=False``)
        """
        if self.latent_critic is None:
            raise RuntimeError(f"{type(self).__name__} has no latent critic Q^W (uses_latent_critic=False)")
        return self.latent_critic

    def action_critic_step(self, replay: Any, target_q: torch.Tensor) -> torch.Tensor:
        """One TD step of Q^A on the stored decoded chunks: ``0.5 sum_j MSE(Q^A_j(s, a), y)``.

        :param replay: a sampled :class:`~algorithms.buffers.LatentReplayBufferSamples`
        :param target_q: the TD targets ``y``, ``(B, 1)``
        :return: the loss (detached, not read on the host)
        """
        q = self.action_critic(replay.observations, replay.decoded_actions)
        loss = 0.5 * F.mse_loss(q, target_q.expand_as(q), reduction="none").mean(0).sum()
        optimizer_step(self.action_critic.optimizer, loss)
        return loss.detach()

    def latent_critic_distill(self, obs: torch.Tensor, eps: torch.Tensor, eps_chunks: torch.Tensor) -> torch.Tensor:
        """``latent_critic_steps`` steps of ``sum_j MSE(Q^W_j(s, eps), Q^A_j(s, Phi(eps; s)))`` (member by member).

        The prior samples and their decodes are drawn once per gradient step and reused across these steps.

        :param obs: a batch of observations
        :param eps: the prior latents ``(B, d)``
        :param eps_chunks: their decoded chunks ``Phi(eps; s)``, flat
        :return: the mean loss over the ``latent_critic_steps`` steps (detached, not read on the host)
        """
        latent_critic = self._require_latent_critic()
        with torch.no_grad():
            target = self.action_critic(obs, eps_chunks)
        losses = []
        for _ in range(self.latent_critic_steps):
            loss = F.mse_loss(latent_critic(obs, eps), target, reduction="none").mean(0).sum()
            optimizer_step(latent_critic.optimizer, loss)
            losses.append(loss.detach())
        return torch.stack(losses).mean()

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
