"""Flow-matching decoder: a velocity MLP integrated with a fixed-step ODE solver from noise (t=0) to action (t=1)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from .base import PretrainedDecoder
from .dict_obs import ObsLayout
from .networks import ConditionalResidualMLP, ImageObsEncoder

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
    :param obs_keys: read a Dict observation: ``key -> shape`` in the order they are flattened into the ``obs_dim``
        vector (:mod:`~lpds_envs.decoders.dict_obs`); ``None``: the observation is a flat array
    :param image_key: the last of ``obs_keys``, an ``(H, W)`` or ``(H, W, C)`` image that a small CNN
        (:class:`~lpds_envs.decoders.networks.ImageObsEncoder`) encodes inside the decoder
    :param cnn_channels: the CNN's convolution channels (with ``image_key``)
    :param image_feature_dim: the CNN's output features (with ``image_key``)
    :param image_pool: average-pooling factor applied to the image before the CNN (with ``image_key``)
    :param image_keypoints: end the CNN in a spatial softmax (expected image coordinates per channel)

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
        obs_keys: Mapping[str, Sequence[int]] | Sequence[tuple[str, Sequence[int]]] | None = None,
        image_key: str | None = None,
        cnn_channels: Sequence[int] = (16, 32, 32),
        image_feature_dim: int = 64,
        image_pool: int = 1,
        image_keypoints: bool = False,
    ) -> None:
        super().__init__(obs_dim, action_dim, chunk_size)
        if image_key is not None and obs_keys is None:
            raise ValueError(f"image_key={image_key!r} needs obs_keys (the Dict observation's keys and shapes)")
        self.obs_layout = None if obs_keys is None else ObsLayout.make(obs_keys, image_key, obs_dim)
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
        encoder = None
        if self.obs_layout is not None:
            self._config.update(self.obs_layout.to_config())
            if self.obs_layout.image_shape is not None:
                self._config.update(
                    cnn_channels=[int(c) for c in cnn_channels],
                    image_feature_dim=int(image_feature_dim),
                    image_pool=int(image_pool),
                    image_keypoints=bool(image_keypoints),
                )
                encoder = ImageObsEncoder(
                    self.obs_layout.vector_dim,
                    self.obs_layout.image_shape,
                    cnn_channels,
                    image_feature_dim,
                    image_pool,
                    image_keypoints,
                )
        self.net = ConditionalResidualMLP(
            chunk_size * action_dim, obs_dim, hidden_dim, n_blocks, time_embed_dim, obs_encoder=encoder
        )
        self.num_inference_steps = int(num_inference_steps)
        self.integrator = integrator
        self.time_scale = float(time_scale)
        self.clip_output = bool(clip_output)
        self._maybe_compile(compile)

    def get_config(self) -> dict[str, Any]:
        return dict(self._config)

    def check_obs(self, obs: Any) -> torch.Tensor:
        """A batch of observations as float32 ``(B, obs_dim)``: with ``obs_keys``, a Dict observation (``key -> (B,
        *shape)``) is flattened in that order; a flat array is checked as it is."""
        if self.obs_layout is not None:
            obs = self.obs_layout.flatten(obs)
        return super().check_obs(obs)

    def obs_normalization_groups(self) -> list[tuple[int, int]]:
        """Column ranges of the flat observation normalised with one shift and scale (the image's pixels)."""
        return [] if self.obs_layout is None else self.obs_layout.shared_columns()

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
