"""Flow-matching decoder: a velocity MLP integrated with a fixed-step ODE solver from noise (t=0) to action (t=1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .base import PretrainedDecoder
from .networks import ConditionalResidualMLP

INTEGRATORS = ("euler", "midpoint")


def integrate_ode(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    num_steps: int,
    method: str = "euler",
) -> torch.Tensor:
    """Integrate ``dx/dt = velocity(x, t)`` from ``t=0`` to ``t=1`` with ``num_steps`` fixed steps.

    ``velocity`` receives ``x`` and a ``(B,)`` tensor of times. ``euler``: ``x += h v(x, t)``;
    ``midpoint``: ``x += h v(x + h/2 v(x, t), t + h/2)`` (second order, two evaluations per step).
    """
    if method not in INTEGRATORS:
        raise ValueError(f"integrator must be one of {INTEGRATORS}, got {method!r}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    h = 1.0 / num_steps
    x = x0
    ones = torch.ones(x.shape[0], device=x.device, dtype=x.dtype)
    for i in range(num_steps):
        t = ones * (i * h)
        if method == "euler":
            x = x + h * velocity(x, t)
        else:
            x_mid = x + (0.5 * h) * velocity(x, t)
            x = x + h * velocity(x_mid, t + 0.5 * h)
    return x


class FlowDecoder(PretrainedDecoder):
    """Frozen flow-matching policy: ``Phi(w; s) = x(1)`` with ``x(0) = w`` and ``dx/dt = v_theta(x, t, s)``.

    Trained on the linear path ``x_t = (1 - t) w + t a`` (target velocity ``a - w``).

    :param obs_dim: observation size
    :param action_dim: action size of one env step
    :param chunk_size: Ta
    :param hidden_dim: residual MLP width
    :param n_blocks: residual blocks
    :param time_embed_dim: sinusoidal time embedding size
    :param num_inference_steps: ODE steps (default 10)
    :param integrator: ``euler`` or ``midpoint``
    :param time_scale: ``t`` in [0, 1] is multiplied by this before the sinusoidal embedding
    :param clip_output: clip the normalised chunk to [-1, 1] (actions are min-max scaled to that range)
    :param compile: ``torch.compile`` the whole integration loop (falls back to eager with a warning)

    Example::

        >>> import torch
        >>> from lpds_envs.decoders import FlowDecoder
        >>> dec = FlowDecoder(obs_dim=3, action_dim=2, chunk_size=8).freeze()
        >>> dec(torch.zeros(5, 3), dec.sample_prior(5)).shape
        torch.Size([5, 8, 2])
    """

    decoder_type = "flow"

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        chunk_size: int = 1,
        hidden_dim: int = 256,
        n_blocks: int = 3,
        time_embed_dim: int = 32,
        num_inference_steps: int = 10,
        integrator: str = "euler",
        time_scale: float = 100.0,
        clip_output: bool = True,
        compile: bool = False,
    ) -> None:
        super().__init__(obs_dim, action_dim, chunk_size)
        if integrator not in INTEGRATORS:
            raise ValueError(f"integrator must be one of {INTEGRATORS}, got {integrator!r}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        self._config = dict(
            obs_dim=obs_dim,
            action_dim=action_dim,
            chunk_size=chunk_size,
            hidden_dim=hidden_dim,
            n_blocks=n_blocks,
            time_embed_dim=time_embed_dim,
            num_inference_steps=num_inference_steps,
            integrator=integrator,
            time_scale=time_scale,
            clip_output=clip_output,
        )
        self.net = ConditionalResidualMLP(chunk_size * action_dim, obs_dim, hidden_dim, n_blocks, time_embed_dim)
        self.num_inference_steps = int(num_inference_steps)
        self.integrator = integrator
        self.time_scale = float(time_scale)
        self.clip_output = bool(clip_output)
        self._maybe_compile(compile)

    def get_config(self) -> dict[str, Any]:
        return dict(self._config)

    def velocity(self, x: torch.Tensor, t: torch.Tensor, obs_n: torch.Tensor) -> torch.Tensor:
        """v_theta(x_t, t, obs) for chunks ``(B, Ta, act_dim)`` and times ``(B,)`` in [0, 1]."""
        return self.net(x.flatten(1), t * self.time_scale, obs_n).view_as(x)

    def _ode_loop(self, obs_n: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # same as integrate_ode(velocity); the obs part of the input layer is computed once per decode
        obs_proj = self.net.obs_projection(obs_n)
        w_x = self.net.x_weight()

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            time_proj = self.net.time_projection(t[:1] * self.time_scale)
            return self.net.forward_projected(x.flatten(1), w_x, obs_proj, time_proj).view_as(x)

        x = integrate_ode(velocity, w, self.num_inference_steps, self.integrator)
        return x.clamp(-1.0, 1.0) if self.clip_output else x

    def _sample(self, obs_n: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self._run_sampler(obs_n, w, self._ode_loop)

    def training_loss(
        self, obs_n: torch.Tensor, actions_n: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Conditional flow matching on the linear path, ``t ~ U[0, 1]``."""
        B = actions_n.shape[0]
        noise = torch.randn(actions_n.shape, device=actions_n.device, generator=generator)
        t = torch.rand((B,), device=actions_n.device, generator=generator)
        tb = t.reshape(B, *([1] * (actions_n.ndim - 1)))
        x_t = (1 - tb) * noise + tb * actions_n
        return torch.nn.functional.mse_loss(self.velocity(x_t, t, obs_n), actions_n - noise)
