"""The frozen backbones shipped inside the package (``lpds_envs/backbones/checkpoints/<name>/``)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..decoders.base import PretrainedDecoder, load_decoder

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
_CACHE: dict[tuple[str, str], PretrainedDecoder] = {}


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


def load_backbone(name: str, device: str | torch.device = "cpu") -> PretrainedDecoder:
    """Load shipped checkpoint ``name`` (cached per device: decoders are frozen, so sharing is safe)."""
    key = (name, str(device))
    if key not in _CACHE:
        _CACHE[key] = load_decoder(backbone_path(name), device=device)
    return _CACHE[key]
