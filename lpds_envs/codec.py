"""The latent codec shared by every latent wrapper: the flat latent space, input checks, clipping and decoding."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from .decoders.base import Decoder

#: the latent box bound of a steering env whose task does not set one (``LatentSteeringWrapper``'s default); each
#: registered task's own bound is in :data:`lpds_envs.registration.TASKS`
DEFAULT_LATENT_BOUND = 2.5


class LatentCodec:
    """The core shared by all latent wrappers: the flat latent space, input checks, clipping and decoding.

    :param decoder: a frozen :class:`~lpds_envs.decoders.Decoder`
    :param latent_bound: symmetric bound of the latent box (``None`` = unbounded)
    """

    def __init__(self, decoder: Decoder, latent_bound: float | None = DEFAULT_LATENT_BOUND) -> None:
        if not isinstance(decoder, Decoder):
            raise TypeError(
                f"decoder must be an lpds_envs.decoders.Decoder, got {type(decoder).__name__}; "
                "wrap a plain function with CallableDecoder(fn, latent_shape, action_shape)"
            )
        if latent_bound is not None and not (np.isfinite(latent_bound) and latent_bound > 0):
            raise ValueError(f"latent_bound must be a positive number or None, got {latent_bound}")
        self.decoder = decoder
        self.latent_bound = None if latent_bound is None else float(latent_bound)
        self.latent_dim = decoder.latent_dim
        b = np.inf if self.latent_bound is None else self.latent_bound
        self.action_space = spaces.Box(-b, b, shape=(self.latent_dim,), dtype=np.float32)

    def check(self, latents: Any, n: int | None) -> np.ndarray:
        """Validate latents and return float32 ``(n, latent_dim)`` (``n=None``: one latent, no batch axis)."""
        w = latents.detach().cpu().numpy() if isinstance(latents, torch.Tensor) else np.asarray(latents)
        if not np.issubdtype(w.dtype, np.floating):
            raise TypeError(f"latent has dtype {w.dtype}, expected a floating-point array (float32)")
        d = self.latent_dim
        if n is None:
            if w.size != d or (w.ndim != 1 and w.shape != self.decoder.latent_shape):
                raise ValueError(f"latent has shape {w.shape}, expected ({d},)")
        elif w.shape not in ((n, d), (n, *self.decoder.latent_shape)):
            raise ValueError(f"latents have shape {w.shape}, expected ({n}, {d}): one flat latent per sub-env")
        w = w.reshape(-1, d).astype(np.float32, copy=False)
        if not np.isfinite(w).all():
            raise ValueError("latent contains NaN or inf; latents must be finite")
        return w

    def clip(self, w: np.ndarray) -> np.ndarray:
        if self.latent_bound is None:
            return w.copy()  # never alias the caller's array in info["latent"]
        return np.clip(w, -self.latent_bound, self.latent_bound)

    def decode(self, obs: Any, latents: Any, n: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Check and clip ``latents``, decode them at ``obs`` (batched), return ``(w (n, d), chunks (n, Ta, A))``."""
        w = self.clip(self.check(latents, n))
        chunks = self.decoder(to_batch(obs, single=n is None), torch.from_numpy(w))
        return w, chunks.detach().cpu().numpy()


def to_batch(obs: Any, single: bool) -> Any:
    """Observation(s) -> float32 tensor (or dict of tensors), with a batch axis."""
    if isinstance(obs, dict):
        return {k: to_batch(v, single) for k, v in obs.items()}
    arr = np.asarray(obs)
    t = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    if t.dtype == torch.float64:
        t = t.float()
    return t.unsqueeze(0) if single else t
