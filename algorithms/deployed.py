"""Load a steered policy written by :func:`~algorithms.export.export_steered_policy`, with input checks.

A control loop needs only ``torch.export.load(path).module()`` for a ``torch.export`` file; :func:`load_steered_policy`
adds what a loop would otherwise write itself: clear errors for a wrong path, a wrong observation shape, key or
dtype, unbatched observations, numpy inputs, and noise drawn from a seeded generator in stochastic mode. It also
loads the state-dict fallback, joined with the decoder the caller loads.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lpds_envs.decoders.base import Decoder
from lpds_envs.subspace import SubspaceDecoder

from .export import FORMAT, METADATA_FILE, PATH_EXPORT, PATH_STATE_DICT


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a file written by :func:`~algorithms.export.export_steered_policy` (either format).

    :param path: the exported file
    :return: the metadata (``format``, ``path``, ``inputs``, ``observation``, ``action_shape``, ``deterministic``...)
    :raises FileNotFoundError: when there is no such file
    :raises ValueError: when the file was not written by ``export_steered_policy``
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no exported policy at {str(path)!r}; write one with export_steered_policy")
    text: str | None = None
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            extra = [n for n in names if n.endswith(f"extra/{METADATA_FILE}")]
            if extra:
                text = archive.read(extra[0]).decode()
            elif any(n.endswith("data.pkl") for n in names):
                try:
                    saved = torch.load(path, weights_only=True)
                except Exception:  # not a plain tensors-and-bytes file: not ours
                    saved = None
                text = saved.get("metadata") if isinstance(saved, dict) else None
    if not text:
        raise ValueError(f"{path} is not a steered policy written by export_steered_policy (no {METADATA_FILE})")
    metadata = json.loads(text)
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is not a steered policy file written by export_steered_policy")
    return metadata


class _ComposedPolicy(nn.Module):
    """The state-dict fallback: the exported ``Delta`` program, then the caller's decoder."""

    def __init__(self, actor: nn.Module, decoder: Decoder) -> None:
        super().__init__()
        self.actor, self.decoder = actor, decoder

    def forward(
        self, obs: Any, eps: torch.Tensor | None = None, complement_noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        w = self.actor(obs) if eps is None else self.actor(obs, eps=eps)
        if isinstance(self.decoder, SubspaceDecoder):
            return self.decoder(obs, w, complement_noise)
        return self.decoder(obs, w)


def _check_fingerprint(path: Path, decoder: Decoder, fingerprint: dict[str, Any]) -> None:
    cls = f"{type(decoder).__module__}.{type(decoder).__qualname__}"
    if cls != fingerprint["class"] or list(decoder.latent_shape) != fingerprint["latent_shape"]:
        raise ValueError(
            f"{path} was exported with a {fingerprint['class']} of latent shape {tuple(fingerprint['latent_shape'])}, "
            f"got a {cls} of latent shape {decoder.latent_shape}; pass the decoder the policy was trained with"
        )
    state = decoder.state_dict()
    for key, (shape, total) in fingerprint["tensors"].items():
        if key not in state or list(state[key].shape) != shape:
            raise ValueError(f"{path}: the decoder has no tensor {key!r} of shape {tuple(shape)}; wrong decoder")
        got = float(state[key].double().sum())
        if abs(got - total) > 1e-6 * max(1.0, abs(total)):
            raise ValueError(f"{path}: the decoder's {key!r} differs from the exported one's; wrong decoder weights")


class DeployedPolicy:
    """A loaded steered policy: ``policy(obs) -> chunk`` with checked inputs.

    :param module: the program's module (``ExportedProgram.module()``) or the fallback's composition
    :param metadata: the file's metadata
    :param seed: seed of the generator that draws the noise inputs the caller does not pass
    """

    def __init__(self, module: nn.Module, metadata: dict[str, Any], seed: int | None = None) -> None:
        self.module, self.metadata = module, metadata
        self.deterministic = bool(metadata["deterministic"])
        self.action_shape = tuple(metadata["action_shape"])
        self.generator = torch.Generator()
        if seed is not None:
            self.generator.manual_seed(int(seed))

    def _obs(self, obs: Any) -> tuple[Any, int, bool]:
        spec = self.metadata["observation"]
        if spec["type"] == "box":
            if isinstance(obs, dict):
                raise TypeError(f"this policy takes array observations of shape {tuple(spec['shape'])}, got a dict")
            t = torch.as_tensor(np.asarray(obs) if not isinstance(obs, torch.Tensor) else obs)
            shape = tuple(spec["shape"])
            single = tuple(t.shape) == shape
            if not single and tuple(t.shape[1:]) != shape:
                raise ValueError(
                    f"observation has shape {tuple(t.shape)}, expected {shape} or a batch (B, {', '.join(map(str, shape))})"
                )
            if not (torch.is_floating_point(t) or t.dtype in (torch.int32, torch.int64, torch.uint8)):
                raise TypeError(f"observation has dtype {t.dtype}, expected a real numeric array")
            t = t.float()
            return (t[None] if single else t), 1 if single else t.shape[0], single
        if not isinstance(obs, dict):
            raise TypeError(f"this policy takes Dict observations with keys {sorted(spec['keys'])}, got {type(obs)}")
        if set(obs) != set(spec["keys"]):
            raise ValueError(f"observation has keys {sorted(obs)}, expected {sorted(spec['keys'])}")
        out, sizes, singles = {}, set(), set()
        for key, sub in spec["keys"].items():
            value = obs[key]
            t = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
            shape, dtype = tuple(sub["shape"]), getattr(torch, np.dtype(sub["dtype"]).name)
            single = tuple(t.shape) == shape
            if not single and tuple(t.shape[1:]) != shape:
                raise ValueError(f"observation[{key!r}] has shape {tuple(t.shape)}, expected {shape} or (B, *{shape})")
            if t.dtype != dtype:
                if torch.is_floating_point(t) != dtype.is_floating_point:
                    raise TypeError(f"observation[{key!r}] has dtype {t.dtype}, expected {dtype}")
                t = t.to(dtype)
            out[key] = t[None] if single else t
            sizes.add(out[key].shape[0])
            singles.add(single)
        if len(sizes) != 1 or len(singles) != 1:
            raise ValueError("the observation's entries have different batch sizes")
        return out, sizes.pop(), singles.pop()

    def _noise(self, name: str, value: Any, n: int, shape: tuple[int, ...]) -> torch.Tensor:
        if value is None:
            return torch.randn((n, *shape), generator=self.generator)
        t = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value).float()
        if t.shape[0] != n or t[0].numel() != int(np.prod(shape)):
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected ({n}, {', '.join(map(str, shape))})")
        return t.reshape(n, *shape)

    def __call__(self, obs: Any, eps: Any = None, complement_noise: Any = None) -> torch.Tensor:
        """The action chunk(s) for ``obs``.

        :param obs: one observation or a batch (array, tensor, or dict of them for Dict observations)
        :param eps: stochastic mode: the noise ``(B, noise_dim)``; ``None`` draws it from the generator
        :param complement_noise: a subspace decoder's prior noise; ``None`` draws it from the generator
        :return: ``(Ta, act_dim)`` for one observation, ``(B, Ta, act_dim)`` for a batch
        """
        obs_t, n, single = self._obs(obs)
        inputs = self.metadata["inputs"]
        kwargs: dict[str, torch.Tensor] = {}
        if "eps" in inputs:
            kwargs["eps"] = self._noise("eps", eps, n, (int(self.metadata["noise_dim"]),))
        elif eps is not None:
            raise ValueError("this policy was exported deterministic (eps = 0): it takes no eps; export it with "
                             "deterministic=False to pass noise")  # fmt: skip
        if "complement_noise" in inputs:
            shape = tuple(self.metadata["complement_noise_shape"])
            kwargs["complement_noise"] = self._noise("complement_noise", complement_noise, n, shape)
        with torch.inference_mode():
            out = self.module(obs_t, **kwargs)
        return out[0] if single else out


def load_steered_policy(
    path: str | os.PathLike, decoder: Decoder | None = None, seed: int | None = None
) -> DeployedPolicy:
    """Load a file written by :func:`~algorithms.export.export_steered_policy`.

    :param path: the file
    :param decoder: for the state-dict format only: the decoder the policy was trained with (checked against the
        file's fingerprint)
    :param seed: seed of the noise the policy draws itself (stochastic mode, subspace complement noise)
    :return: a :class:`DeployedPolicy`
    :raises FileNotFoundError: when there is no such file
    :raises ValueError: for a file not written by ``export_steered_policy``, or a decoder that does not match
    """
    metadata = read_metadata(path)
    if metadata["path"] == PATH_EXPORT:
        return DeployedPolicy(torch.export.load(path).module(), metadata, seed)
    if metadata["path"] != PATH_STATE_DICT:
        raise ValueError(f"{path}: unknown export path {metadata['path']!r}")
    if decoder is None:
        raise ValueError(
            f"{path} holds the state-dict fallback (its {metadata['decoder']} could not be exported): pass "
            "decoder=<the same decoder>, e.g. lpds_envs.decoders.load_decoder(folder)"
        )
    _check_fingerprint(Path(path), decoder, metadata["decoder_fingerprint"])
    saved = torch.load(path, weights_only=True)
    actor = torch.export.load(io.BytesIO(saved["actor_program"])).module()
    return DeployedPolicy(_ComposedPolicy(actor, decoder), metadata, seed)
