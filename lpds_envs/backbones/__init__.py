"""Backbone training (behaviour cloning of decoders), demonstration data handling, and the shipped checkpoints."""

from .data import (
    ChunkDataset,
    Episode,
    chunk_trajectory,
    load_minari,
    load_npz,
    make_chunks,
    save_minari,
    split_episodes,
)
from .shipped import CHECKPOINT_DIR, backbone_path, load_backbone, shipped_backbones, verify_backbone
from .train import minmax_normalization, standard_normalization, train_backbone

__all__ = [
    "CHECKPOINT_DIR",
    "ChunkDataset",
    "Episode",
    "backbone_path",
    "chunk_trajectory",
    "load_backbone",
    "verify_backbone",
    "load_minari",
    "load_npz",
    "make_chunks",
    "minmax_normalization",
    "shipped_backbones",
    "save_minari",
    "split_episodes",
    "standard_normalization",
    "train_backbone",
]
