"""The frozen backbones shipped with lpds: ``lpds_envs/backbones/checkpoints/<name>/`` inside the package, and the
larger ones in the ``lpds-zoo`` data package (``lpds_zoo/checkpoints/<name>/``).

PyPI limits one file to 100 MB, and the 1.6M-parameter locomotion and robomimic Lift/Can decoders alone are 63 MB, so
they travel in their own distribution (source: ``packages/lpds-zoo/``; ``pip install lpds-zoo``, or
``pip install ./packages/lpds-zoo`` from a source tree). :func:`backbone_path` looks in both places and, for a
backbone of the data package that is not installed, says how to install it.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import cast

import torch

from lpds_envs.decoders.base import Decoder, PretrainedDecoder, load_decoder
from lpds_envs.decoders.pi0 import Pi0Decoder

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
#: where the zoo pipelines ship the backbones of the ``lpds-zoo`` data package, in a source tree
ZOO_SOURCE_DIR = Path(__file__).resolve().parents[2] / "packages" / "lpds-zoo" / "lpds_zoo" / "checkpoints"
#: the backbones that live in the ``lpds-zoo`` data package (locomotion and robomimic Lift/Can, 1.6M parameters each)
ZOO_PACKAGE_BACKBONES = tuple(
    f"{task}-{kind}"
    for task in ("hopper", "halfcheetah", "walker2d", "robomimic-lift", "robomimic-can")
    for kind in ("diffusion", "flow")
)
ZOO_INSTALL_HINT = "pip install lpds-zoo (from a source tree of lpds: pip install ./packages/lpds-zoo)"
_CACHE: dict[tuple[str, str], Decoder] = {}


def zoo_checkpoint_dir() -> Path | None:
    """The checkpoint folder of the ``lpds-zoo`` data package: when lpds itself is imported from a source tree, that
    tree's ``packages/lpds-zoo/lpds_zoo/checkpoints`` (what the zoo pipelines ship into); otherwise the installed
    package's; ``None`` when there is neither."""
    if ZOO_SOURCE_DIR.is_dir():
        return ZOO_SOURCE_DIR
    spec = importlib.util.find_spec("lpds_zoo")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "checkpoints"
        if folder.is_dir():
            return folder
    return None


def checkpoint_dirs() -> list[Path]:
    """Every folder that holds shipped checkpoints: the package's own, then the ``lpds-zoo`` data package's."""
    zoo = zoo_checkpoint_dir()
    return [CHECKPOINT_DIR] + ([zoo] if zoo is not None else [])


def shipped_backbones() -> list[str]:
    """Names of the shipped checkpoints (the package's and, when installed, the ``lpds-zoo`` data package's)."""
    return sorted(p.name for d in checkpoint_dirs() if d.is_dir() for p in d.iterdir() if (p / "config.json").is_file())


def backbone_path(name: str) -> Path:
    """Folder of shipped checkpoint ``name`` (``config.json`` + ``model.safetensors`` + card ``README.md``)."""
    for folder in checkpoint_dirs():
        if (folder / name / "config.json").is_file():
            return folder / name
    if name in ZOO_PACKAGE_BACKBONES:
        raise FileNotFoundError(
            f"the backbone {name!r} ships in the lpds-zoo data package (PyPI's 100 MB file limit keeps the larger "
            f"backbones out of lpds itself), which is not installed: {ZOO_INSTALL_HINT}"
        )
    raise FileNotFoundError(
        f"no shipped backbone {name!r} in {[str(d) for d in checkpoint_dirs()]}; shipped: {shipped_backbones()}. "
        "If you installed from a source tree, check that the package data was included."
    )


def load_backbone(name: str, device: str | torch.device = "cpu", verify: bool = False) -> Decoder:
    """Load shipped checkpoint ``name`` (cached per device: decoders are frozen, so sharing is safe).

    A folder with ``lpds_pi0.json`` is a PI0 checkpoint, loaded with :class:`~lpds_envs.decoders.Pi0Decoder` (needs
    the ``pi0`` extra); any other is an lpds decoder (``config.json`` + ``model.safetensors``).

    :param name: a name of :func:`shipped_backbones`
    :param device: where the weights go
    :param verify: first check the checkpoint's files against its ``fingerprint.json`` (:func:`verify_backbone`)
    """
    if verify:
        verify_backbone(name)
    key = (name, str(device))
    if key not in _CACHE:
        path = backbone_path(name)
        if (path / "lpds_pi0.json").is_file():
            _CACHE[key] = Pi0Decoder.from_pretrained(path, device=device)
        else:
            _CACHE[key] = load_decoder(path, device=device)
    return _CACHE[key]


def copy_for_shipping(src: Path, dest: Path, data: dict) -> tuple[dict, dict, int]:
    """Copy a trained, evaluated zoo backbone ``src`` into checkpoint folder ``dest``: the weights, config and
    ``eval.json``, and ``training.json`` with ``data`` (how the data were made) under ``"data"``.

    :return: ``(training record, evaluation record, parameter count)`` for the card
    """
    import json
    import shutil

    for f in ("config.json", "model.safetensors", "training.json", "eval.json"):
        if not (src / f).is_file():
            raise FileNotFoundError(f"{src / f} is missing; run the backbone and evaluate stages first")
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "model.safetensors", "eval.json"):
        shutil.copy2(src / f, dest / f)
    training = json.loads((src / "training.json").read_text())
    training["data"] = data
    (dest / "training.json").write_text(json.dumps(training, indent=1))
    params = sum(p.numel() for p in load_decoder(dest).parameters())
    return training, json.loads((src / "eval.json").read_text()), params


def describe_sampler(kind: str, decoder_config: dict) -> tuple[str, str]:
    """``(model, sampler)`` phrases of a backbone card for a ``diffusion`` or ``flow`` decoder config."""
    steps = decoder_config.get("num_inference_steps")
    if kind == "diffusion":
        return "epsilon-prediction", (
            f"cosine schedule with {decoder_config.get('num_train_timesteps')} training steps, deterministic DDIM "
            f"with {steps} steps from w ~ N(0, I), x0 clipped to [-1, 1]"
        )
    return "velocity-prediction", f"deterministic Euler ODE with {steps} steps from w ~ N(0, I)"


# ---------------------------------------------------------------------------------------------------------------
# Fingerprints: what a shipped checkpoint must reproduce after installation (tests/lpds_envs/backbones/test_shipped_checkpoints.py).

FINGERPRINT_FILE = "fingerprint.json"
_FINGERPRINT_BATCH = 4


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint_inputs(
    decoder: PretrainedDecoder, batch: int = _FINGERPRINT_BATCH
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed decode inputs (seed 0): observations ``U(-1, 1)`` and latents ``N(0, I)``, for state-vector decoders."""
    gen = torch.Generator().manual_seed(0)
    obs = torch.rand(batch, decoder.obs_dim, generator=gen) * 2 - 1
    w = torch.randn(batch, *decoder.latent_shape, generator=gen)
    return obs, w


def compute_fingerprint(name: str) -> dict:
    """SHA-256 of every file of checkpoint ``name`` that loading reads (not the card, evaluation or training notes) and, for state-vector
    decoders, the decoded chunks of :func:`fingerprint_inputs`."""
    path = backbone_path(name)
    files = {
        p.name: _sha256(p)
        for p in sorted(path.iterdir())
        if p.is_file() and p.name not in (FINGERPRINT_FILE, "README.md", "eval.json", "training.json")
    }
    out: dict = {"files": files}
    if not (path / "lpds_pi0.json").is_file():
        decoder = load_decoder(path)
        obs, w = fingerprint_inputs(cast(PretrainedDecoder, decoder))  # an lpds checkpoint (not a pi0 folder)
        with torch.no_grad():
            out["decode"] = {"batch": _FINGERPRINT_BATCH, "actions": decoder(obs, w).tolist()}
    return out


def verify_backbone(name: str) -> None:
    """Check that the files of shipped checkpoint ``name`` are the ones its ``fingerprint.json`` records (SHA-256): a
    damaged or modified install (a bit flip, a partial copy) raises a ``ValueError`` naming the file."""
    path = backbone_path(name)
    record = path / FINGERPRINT_FILE
    if not record.is_file():
        raise FileNotFoundError(f"{record} is missing, so {name!r} cannot be verified; reinstall lpds")
    expected = json.loads(record.read_text())["files"]
    for filename, digest in expected.items():
        if not (path / filename).is_file():
            raise ValueError(f"{path / filename} is missing from the shipped backbone {name!r}; reinstall lpds")
        if _sha256(path / filename) != digest:
            raise ValueError(
                f"{path / filename} does not match its fingerprint (SHA-256): the installed backbone {name!r} is "
                "damaged or was modified; reinstall lpds (pip install --force-reinstall lpds)"
            )


def write_fingerprint(name: str) -> Path:
    """Write ``fingerprint.json`` into checkpoint ``name`` (atomically)."""
    import json
    import os

    target = backbone_path(name) / FINGERPRINT_FILE
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(compute_fingerprint(name), indent=1))
    os.replace(tmp, target)
    return target


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="Shipped backbones: list them, or (re)write their fingerprints.")
    p.add_argument("command", choices=["list", "fingerprint"])
    p.add_argument("names", nargs="*", help="checkpoints (default: all shipped)")
    args = p.parse_args(argv)
    names = args.names or shipped_backbones()
    for name in names:
        if args.command == "list":
            print(name, backbone_path(name))
        else:
            print("wrote", write_fingerprint(name))


if __name__ == "__main__":
    main()
