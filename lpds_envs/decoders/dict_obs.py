"""Dict observations for the trained decoders: a fixed key order that flattens a Dict observation into the one vector
the networks and the stored normalisation work on, and an optional image key that a CNN encodes inside the decoder.

A layout is ``obs_keys``, an ordered mapping ``key -> shape of one observation`` (stored in ``config.json`` as a list
of ``[key, shape]`` pairs, which keeps the order), and ``image_key``, one of those keys, the last, with a 2-D ``(H, W)`` (depth) or 3-D
``(H, W, C)`` shape. The flat observation is each key's entries in order (row-major); its image part is normalised
with one shift and scale for all its pixels (:meth:`ObsLayout.shared_columns`), not per pixel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class ObsLayout:
    """How a Dict observation maps to the decoder's flat observation.

    :param obs_keys: ``key -> shape`` in the flat order
    :param image_key: the key a CNN encodes (the last of ``obs_keys``), or ``None``
    """

    obs_keys: tuple[tuple[str, tuple[int, ...]], ...]
    image_key: str | None = None

    @classmethod
    def make(
        cls,
        obs_keys: Mapping[str, Sequence[int]] | Sequence[tuple[str, Sequence[int]]],
        image_key: str | None,
        obs_dim: int,
    ) -> ObsLayout:
        """Check a layout against the decoder's ``obs_dim`` and return it.

        :param obs_keys: ``key -> shape`` in the flat order (a mapping, or a list of ``[key, shape]`` pairs)
        :param image_key: the image key (the last of ``obs_keys``) or ``None``
        :param obs_dim: the decoder's flat observation size
        :raises ValueError: when the sizes do not add up, the image key is not the last key or its shape is not
            ``(H, W)`` or ``(H, W, C)``
        """
        try:
            pairs = list(obs_keys.items()) if isinstance(obs_keys, Mapping) else [(k, s) for k, s in obs_keys]
        except (TypeError, ValueError):
            pairs = []
        if not pairs or isinstance(obs_keys, str):
            raise ValueError(
                f"obs_keys must be a non-empty mapping key -> shape (or [key, shape] pairs), got {obs_keys!r}"
            )
        keys: list[tuple[str, tuple[int, ...]]] = []
        for key, shape in pairs:
            dims = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
            if not isinstance(key, str) or any(d < 1 for d in dims):
                raise ValueError(
                    f"obs_keys entry {key!r}: {shape!r} must be a string key and a shape of positive sizes"
                )
            keys.append((key, dims))
        total = sum(int(np.prod(shape)) for _, shape in keys)
        if total != obs_dim:
            raise ValueError(f"obs_keys {dict(keys)} flatten to {total} entries, but obs_dim is {obs_dim}")
        if image_key is not None:
            if keys[-1][0] != image_key:
                raise ValueError(f"image_key {image_key!r} must be the last of obs_keys {[k for k, _ in keys]}")
            if len(keys[-1][1]) not in (2, 3):
                raise ValueError(f"image {image_key!r} has shape {keys[-1][1]}, expected (H, W) or (H, W, C)")
        return cls(tuple(keys), image_key)

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """``(H, W, C)`` of the image key (``C = 1`` for a 2-D image), or ``None``."""
        if self.image_key is None:
            return None
        shape = self.obs_keys[-1][1]
        return (shape[0], shape[1], shape[2] if len(shape) == 3 else 1)

    @property
    def vector_dim(self) -> int:
        """Entries of the flat observation before the image (all of them without an image)."""
        keys = self.obs_keys[:-1] if self.image_key is not None else self.obs_keys
        return sum(int(np.prod(shape)) for _, shape in keys)

    def shared_columns(self) -> list[tuple[int, int]]:
        """Column ranges ``[start, stop)`` of the flat observation that share one normalisation (the image)."""
        if self.image_key is None:
            return []
        return [(self.vector_dim, self.vector_dim + int(np.prod(self.obs_keys[-1][1])))]

    def to_config(self) -> dict[str, Any]:
        """The ``config.json`` entries of this layout."""
        return {"obs_keys": [[k, list(shape)] for k, shape in self.obs_keys], "image_key": self.image_key}

    def flatten(self, obs: Any) -> Any:
        """A batch of Dict observations (``key -> (B, *shape)`` arrays or tensors) as one ``(B, obs_dim)`` tensor; a
        flat array or tensor passes through unchanged (the decoder checks its shape).

        :raises KeyError: naming the missing keys
        :raises ValueError: naming the key whose shape is wrong
        """
        if not isinstance(obs, Mapping):
            return obs
        missing = [k for k, _ in self.obs_keys if k not in obs]
        if missing:
            raise KeyError(
                f"observation has no key(s) {missing}; it has {sorted(obs)}, and this decoder reads "
                f"{[k for k, _ in self.obs_keys]}"
            )
        parts = []
        for key, shape in self.obs_keys:
            value = obs[key]
            t = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
            if tuple(t.shape[1:]) != shape:
                raise ValueError(
                    f"observation[{key!r}] has shape {tuple(t.shape)}, expected (B, {', '.join(map(str, shape))})"
                )
            parts.append(t.reshape(t.shape[0], -1).float())
        if any(p.shape[0] != parts[0].shape[0] for p in parts):  # no set: torch.export batch sizes are symbolic
            raise ValueError(f"observation keys have different batch sizes: {[p.shape[0] for p in parts]}")
        return torch.cat(parts, dim=1)
