"""The frozen backbones shipped inside the package (``lpds_envs/backbones/checkpoints/<name>/``)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..decoders.base import Decoder, load_decoder

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
_CACHE: dict[tuple[str, str], Decoder] = {}


def shipped_backbones() -> list[str]:
    """Names of the shipped checkpoints."""
    if not CHECKPOINT_DIR.is_dir():
        return []
    return sorted(p.name for p in CHECKPOINT_DIR.iterdir() if (p / "config.json").is_file())


def backbone_path(name: str) -> Path:
    """Folder of shipped checkpoint ``name`` (``config.json`` + ``model.safetensors`` + card ``README.md``)."""
    path = CHECKPOINT_DIR / name
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"no shipped backbone {name!r} in {CHECKPOINT_DIR}; shipped: {shipped_backbones()}. "
            "If you installed from a source tree, check that the package data was included."
        )
    return path


def load_backbone(name: str, device: str | torch.device = "cpu") -> Decoder:
    """Load shipped checkpoint ``name`` (cached per device: decoders are frozen, so sharing is safe).

    A folder with ``lpds_pi0.json`` is a PI0 checkpoint, loaded with :class:`~lpds_envs.decoders.Pi0Decoder` (needs
    the ``pi0`` extra); any other is an lpds decoder (``config.json`` + ``model.safetensors``).
    """
    key = (name, str(device))
    if key not in _CACHE:
        path = backbone_path(name)
        if (path / "lpds_pi0.json").is_file():
            from ..decoders.pi0 import Pi0Decoder

            _CACHE[key] = Pi0Decoder.from_pretrained(path, device=device)
        else:
            _CACHE[key] = load_decoder(path, device=device)
    return _CACHE[key]
