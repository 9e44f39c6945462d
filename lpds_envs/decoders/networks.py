"""Small networks shared by the diffusion and flow decoders: a sinusoidal time embedding, a residual MLP and a small
CNN that encodes an image part of the observation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def mish(x: torch.Tensor) -> torch.Tensor:
    """``x tanh(softplus(x))``, the same function as ``torch.nn.functional.mish`` (to ~1e-6), but about 2.5x as fast
    on CPU, where ``aten::mish`` was half of a decode's time (see benchmarks/RESULTS.md).

    With ``e = exp(x)``: ``tanh(log(1 + e)) = n / (n + 2)`` where ``n = e (e + 2)``. ``x`` is capped at 20 inside
    the exponential (there ``n / (n + 2)`` is 1 in float32 already), so nothing overflows.
    """
    e = x.clamp(max=20.0).exp_()
    n = e.add(2.0).mul_(e)
    return x * n.div_(n + 2.0)


class Mish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mish(x)


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of a scalar time ``t`` (any float scale), shape ``(B,) -> (B, dim)``."""

    freqs: torch.Tensor  # buffer

    def __init__(self, dim: int, max_period: float = 10_000.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"time embedding dim must be even, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.float()[:, None] * self.freqs[None, :]
        return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class ResidualBlock(nn.Module):
    """``h + W2 mish(W1 LayerNorm(h))``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)
        self.act = Mish()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(self.act(self.fc1(self.norm(h))))


class SpatialSoftmax(nn.Module):
    """``(B, C, H, W)`` feature maps -> ``(B, 2 C)``: per channel, the expected ``(x, y)`` in ``[-1, 1]`` under the
    softmax of its activations over the image."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        b, c, h, w = features.shape
        attention = torch.softmax(features.reshape(b, c, h * w), dim=-1).reshape(b, c, h, w)
        xs = torch.linspace(-1.0, 1.0, w, device=features.device, dtype=features.dtype)
        ys = torch.linspace(-1.0, 1.0, h, device=features.device, dtype=features.dtype)
        x = (attention.sum(dim=2) * xs).sum(dim=-1)
        y = (attention.sum(dim=3) * ys).sum(dim=-1)
        return torch.cat([x, y], dim=1)


class ImageObsEncoder(nn.Module):
    """Encodes the image part of a flat observation ``[vector (V), image (H * W * C)]`` with a small CNN:
    ``(B, V + H W C) -> (B, V + feature_dim)``, the vector part passed through unchanged.

    The CNN: average pooling by ``pool`` (1: none), one 3x3 convolution of stride 2 per entry of ``channels`` (Mish
    after each), then a linear layer to ``feature_dim`` features and a LayerNorm. With ``keypoints`` the last
    convolution keeps its resolution (stride 1) and a spatial softmax turns each of its channels into the expected
    image coordinates ``(x, y)`` of its activation (robomimic's and diffusion policy's keypoint head), which the linear
    layer reads instead of the flattened feature map: it localises objects from few images.

    :param vector_dim: entries before the image
    :param image_shape: ``(H, W, C)`` of the image (row-major in the flat observation)
    :param channels: output channels of the convolutions
    :param feature_dim: image features
    :param pool: average-pooling factor applied to the image first (cheaper convolutions on large images)
    :param keypoints: end in a spatial softmax (expected x, y per channel) instead of flattening
    """

    def __init__(
        self,
        vector_dim: int,
        image_shape: Sequence[int],
        channels: Sequence[int] = (16, 32, 32),
        feature_dim: int = 64,
        pool: int = 1,
        keypoints: bool = False,
    ) -> None:
        super().__init__()
        if len(image_shape) != 3 or min(image_shape) < 1:
            raise ValueError(f"image_shape must be (H, W, C) of positive sizes, got {tuple(image_shape)}")
        if not channels or min(channels) < 1 or feature_dim < 1:
            raise ValueError(f"channels and feature_dim must be positive, got {tuple(channels)} and {feature_dim}")
        if pool < 1 or image_shape[0] % pool or image_shape[1] % pool:
            raise ValueError(f"pool must be >= 1 and divide the image size {tuple(image_shape[:2])}, got {pool}")
        self.vector_dim, self.image_shape = int(vector_dim), tuple(int(s) for s in image_shape)
        layers: list[nn.Module] = [nn.AvgPool2d(pool)] if pool > 1 else []
        c_in = self.image_shape[2]
        for i, c in enumerate(channels):
            stride = 1 if keypoints and i == len(channels) - 1 else 2
            layers += [nn.Conv2d(c_in, int(c), 3, stride=stride, padding=1), Mish()]
            c_in = int(c)
        self.cnn = nn.Sequential(*layers, SpatialSoftmax() if keypoints else nn.Flatten())
        with torch.no_grad():
            n_flat = self.cnn(torch.zeros(1, self.image_shape[2], *self.image_shape[:2])).shape[1]
        self.head = nn.Sequential(nn.Linear(n_flat, feature_dim), nn.LayerNorm(feature_dim))
        self.out_dim = self.vector_dim + int(feature_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B, V + H W C) -> (B, V + feature_dim)``."""
        h, w, c = self.image_shape
        image = obs[:, self.vector_dim :].reshape(obs.shape[0], h, w, c).permute(0, 3, 1, 2)
        return torch.cat([obs[:, : self.vector_dim], self.head(self.cnn(image))], dim=1)


class ConditionalResidualMLP(nn.Module):
    """Predicts a chunk-shaped vector from ``(x_t, t, obs)``: the epsilon network of diffusion, the velocity of flow.

    :param x_dim: flattened chunk size ``Ta * act_dim``
    :param obs_dim: observation size
    :param hidden_dim: width of the residual blocks
    :param n_blocks: number of residual blocks
    :param time_embed_dim: size of the sinusoidal time embedding
    :param obs_encoder: an :class:`ImageObsEncoder` applied to the observation first, whose output (``out_dim``
        entries) the MLP conditions on; ``None`` uses the observation as it is
    """

    def __init__(
        self,
        x_dim: int,
        obs_dim: int,
        hidden_dim: int = 256,
        n_blocks: int = 3,
        time_embed_dim: int = 32,
        obs_encoder: ImageObsEncoder | None = None,
    ):
        super().__init__()
        self.obs_encoder: ImageObsEncoder | None
        if obs_encoder is not None:
            self.obs_encoder = obs_encoder  # registered only when given: plain checkpoints keep their tensor names
            obs_dim = int(obs_encoder.out_dim)
        else:
            self.obs_encoder = None
        self.time_embed = nn.Sequential(
            SinusoidalEmbedding(time_embed_dim),
            nn.Linear(time_embed_dim, 2 * time_embed_dim),
            Mish(),
            nn.Linear(2 * time_embed_dim, time_embed_dim),
        )
        self.inp = nn.Linear(x_dim + obs_dim + time_embed_dim, hidden_dim)
        self.blocks = nn.Sequential(*[ResidualBlock(hidden_dim) for _ in range(n_blocks)])
        self.out_norm = nn.LayerNorm(hidden_dim)
        self.out = nn.Linear(hidden_dim, x_dim)
        self.x_dim, self.obs_dim = x_dim, obs_dim

    def forward(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """``x (B, x_dim)``, ``t (B,)``, ``obs (B, obs_dim)`` -> ``(B, x_dim)``."""
        h = self.inp(torch.cat([x, self.encode(obs), self.time_embed(t)], dim=-1))
        return self.head(h)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """The observation the MLP conditions on (through ``obs_encoder`` when there is one)."""
        return obs if self.obs_encoder is None else self.obs_encoder(obs)

    # A sampling loop evaluates the network K times on the same observations at K known times. The input layer
    # is linear in [x, obs, emb(t)], so its obs and time parts are computed once per decode instead of K times.
    def obs_projection(self, obs: torch.Tensor) -> torch.Tensor:
        """``W_obs obs + b`` of the input layer, ``(B, hidden)``."""
        return F.linear(self.encode(obs), self.inp.weight[:, self.x_dim : self.x_dim + self.obs_dim], self.inp.bias)

    def time_projection(self, t: torch.Tensor) -> torch.Tensor:
        """``W_t emb(t)`` of the input layer for a few times ``(K,)``, ``(K, hidden)``."""
        return F.linear(self.time_embed(t), self.inp.weight[:, self.x_dim + self.obs_dim :])

    def x_weight(self) -> torch.Tensor:
        """The ``x`` columns of the input layer, contiguous (slice once per decode, not per step)."""
        return self.inp.weight[:, : self.x_dim].contiguous()

    def forward_projected(
        self, x: torch.Tensor, w_x: torch.Tensor, obs_proj: torch.Tensor, time_proj: torch.Tensor
    ) -> torch.Tensor:
        """Same as :meth:`forward` given ``x_weight()``, ``obs_projection(obs)`` and a row ``time_projection(t)``."""
        return self.head(torch.addmm(obs_proj + time_proj, x, w_x.t()))

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(mish(self.out_norm(self.blocks(h))))
