"""lpds-zoo: the frozen backbones of lpds that are too large to travel inside the ``lpds`` wheel (PyPI's 100 MB file
limit): the locomotion (Hopper, Walker2d, HalfCheetah) and robomimic Lift/Can decoders, each in
``checkpoints/<name>/`` with its model card, evaluation and fingerprint.

It holds data only: ``lpds_envs.backbones.load_backbone(name)`` finds these folders when this package is installed.
"""

from pathlib import Path

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
