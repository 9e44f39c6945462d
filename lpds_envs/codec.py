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


class NonFiniteValueError(ValueError):
    """A NaN or inf latent, observation or decoder output, stopped at the wrapper before it reaches the simulator."""


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
        if latent_bound is not None:
            latent_bound = _positive_bound(latent_bound)
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
            raise NonFiniteValueError("latent contains NaN or inf; latents must be finite")
        return w

    def clip(self, w: np.ndarray) -> np.ndarray:
        if self.latent_bound is None:
            return w.copy()  # never alias the caller's array in info["latent"]
        return np.clip(w, -self.latent_bound, self.latent_bound)

    def decode(self, obs: Any, latents: Any, n: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Check and clip ``latents``, decode them at ``obs`` (batched), return ``(w (n, d), chunks (n, Ta, A))``."""
        w = self.clip(self.check(latents, n))
        check_finite_obs(obs)
        chunks = self.decoder(to_batch(obs, single=n is None), torch.from_numpy(w))
        return w, check_finite_chunks(chunks.detach().cpu().numpy())


def _positive_bound(value: Any) -> float:
    """``value`` as a finite float > 0, or a ``TypeError``/``ValueError`` that says what to pass."""
    hint = "pass a positive number such as latent_bound=2.5, or None for an unbounded latent box"
    if isinstance(value, (str, bytes, bool)):
        raise TypeError(f"latent_bound must be a number, got {value!r} ({type(value).__name__}); {hint}")
    try:
        bound = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"latent_bound must be a number, got {value!r} ({type(value).__name__}); {hint}") from None
    if not (np.isfinite(bound) and bound > 0):
        raise ValueError(f"latent_bound must be a positive number or None, got {value}; {hint}")
    return bound


def check_finite_obs(obs: Any) -> None:
    """Raise when a floating-point observation handed to the decoder holds NaN or inf (integer images pass).

    :param obs: the observation(s): an array or a dict of arrays
    :raises NonFiniteValueError: naming the observation (and its key)
    """
    items = obs.items() if isinstance(obs, dict) else [(None, obs)]
    for key, value in items:
        arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
            where = "" if key is None else f"[{key!r}]"
            raise NonFiniteValueError(
                f"the observation{where} given to the decoder contains NaN or inf: the env produced a non-finite "
                "observation; fix the env (or wrap it to replace non-finite values) before steering it"
            )


def check_finite_chunks(chunks: np.ndarray) -> np.ndarray:
    """Raise when the decoder output holds NaN or inf, before it reaches the simulator.

    :param chunks: the decoded action chunks ``(n, Ta, act_dim)``
    :return: ``chunks`` unchanged
    :raises NonFiniteValueError: naming the decoder output and the first sub-env that got it
    """
    if not np.isfinite(chunks).all():
        bad = int(np.flatnonzero(~np.isfinite(chunks.reshape(len(chunks), -1)).all(axis=1))[0])
        raise NonFiniteValueError(
            f"the decoder output (decoded action chunk of env {bad}) contains NaN or inf for a finite latent and "
            "observation; the decoder is broken (NaN weights, a division by zero, ...): check or reload it"
        )
    return chunks


def to_batch(obs: Any, single: bool) -> Any:
    """Observation(s) -> float32 tensor (or dict of tensors), with a batch axis."""
    if isinstance(obs, dict):
        return {k: to_batch(v, single) for k, v in obs.items()}
    arr = np.asarray(obs)
    t = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    if t.dtype == torch.float64:
        t = t.float()
    return t.unsqueeze(0) if single else t
