"""Behaviour cloning of diffusion and flow decoders from ``(obs, action-chunk)`` pairs.

Diffusion: the DDPM epsilon loss. Flow: conditional flow matching on the linear path. Both keep an EMA of the
weights (the EMA copy is what gets saved), are seeded and reproducible on one machine, show a tqdm progress
bar, and write resumable training state atomically, so re-running the same call continues an interrupted run.

Example::

    from lpds_envs.backbones import load_npz, train_backbone
    data = load_npz("demos.npz", chunk_size=4)
    decoder = train_backbone("flow", data, out_dir="my_backbone", steps=20_000)
    # later: lpds_envs.decoders.load_decoder("my_backbone")
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from ..decoders import DiffusionDecoder, FlowDecoder, PretrainedDecoder
from ..decoders.card import format_metric
from .data import ChunkDataset

DECODER_KINDS: dict[str, type[DiffusionDecoder] | type[FlowDecoder]] = {
    "diffusion": DiffusionDecoder,
    "flow": FlowDecoder,
}
STATE_NAME = "training_state.pt"


def minmax_normalization(x: np.ndarray, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Shift and scale that map each column of ``x`` (N, D) to [-1, 1] (constant columns get scale 1)."""
    lo, hi = x.min(axis=0), x.max(axis=0)
    scale = (hi - lo) / 2.0
    scale = np.where(scale < eps, 1.0, scale)
    return ((hi + lo) / 2.0).astype(np.float32), scale.astype(np.float32)


def standard_normalization(x: np.ndarray, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each column (constant columns get scale 1)."""
    std = x.std(axis=0)
    return x.mean(axis=0).astype(np.float32), np.where(std < eps, 1.0, std).astype(np.float32)


NORMALIZERS = {"minmax": minmax_normalization, "standard": standard_normalization}


def group_normalization(block: np.ndarray, kind: str, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Shift and scale (each of ``block``'s D columns) for a column group such as an image's pixels (N, D).

    - ``"shared"``: one shift and one scale for the whole group, from the observation normaliser applied to all its
      values together (``kind`` is then that normaliser's name: ``minmax`` or ``standard``)
    - ``"background"``: each column's mean (the mean image) as its shift and one scale for the group, the standard
      deviation of the residual: what stays is what differs from the average scene (objects, the arm), at a
      contrast the network can see; a 3 cm object on a 2 m depth range is ~1% of a shared min-max range and several
      residual standard deviations here
    """
    if kind == "background":
        mean = block.mean(axis=0)
        std = float((block - mean).std())
        return mean.astype(np.float32), np.full(block.shape[1], std if std >= eps else 1.0, np.float32)
    shift, scale = (v[0] for v in NORMALIZERS[kind](block.reshape(-1, 1)))
    return np.full(block.shape[1], shift, np.float32), np.full(block.shape[1], scale, np.float32)


IMAGE_NORMALIZATIONS = ("shared", "background")
#: the training settings a card's command line repeats
CARD_SETTINGS = (
    "steps",
    "batch_size",
    "learning_rate",
    "weight_decay",
    "ema_decay",
    "obs_normalization",
    "image_normalization",
    "seed",
)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_backbone(
    kind: str,
    data: ChunkDataset,
    out_dir: str | os.PathLike | None = None,
    *,
    steps: int = 20_000,
    batch_size: int = 1024,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-6,
    ema_decay: float = 0.999,
    obs_normalization: str = "minmax",
    image_normalization: str = "shared",
    seed: int = 0,
    checkpoint_every: int = 2_000,
    progress: bool = True,
    device: str | torch.device = "cpu",
    card: dict[str, Any] | None = None,
    **decoder_kwargs: Any,
) -> PretrainedDecoder:
    """Train a decoder by behaviour cloning and (if ``out_dir`` is given) save it with ``save_pretrained``.

    Actions are always min-max scaled to [-1, 1] (so DDIM's x0 clipping and the flow's output clip are exact);
    observations use ``obs_normalization`` (``minmax`` as DPPO, or ``standard``), and the decoder's column groups
    (an image's pixels, :meth:`~lpds_envs.decoders.base.PretrainedDecoder.obs_normalization_groups`)
    ``image_normalization`` (:func:`group_normalization`).

    :param kind: ``"diffusion"`` or ``"flow"``
    :param data: the ``(obs, chunk)`` pairs
    :param out_dir: folder for the final decoder and the resumable training state
    :param steps: gradient steps
    :param batch_size: pairs per step
    :param learning_rate: AdamW learning rate (cosine-annealed to 1% over ``steps``)
    :param ema_decay: decay of the exponential moving average of the weights
    :param image_normalization: ``"shared"`` (one shift and scale per image) or ``"background"`` (the mean image
        subtracted, one scale): :func:`group_normalization`
    :param seed: seeds initialisation, batches and noise
    :param checkpoint_every: steps between resumable training-state saves
    :param card: what the model card ``README.md`` in ``out_dir`` says beyond the training run itself (keyword
        arguments of :func:`~lpds_envs.decoders.card.decoder_card`: ``title``, ``env_id``, ``task``, ``data``,
        ``command``, ``metrics``, ...); the card always records the data size, the training settings and the final
        BC loss
    :param decoder_kwargs: architecture and sampler arguments of the decoder class
    :return: the frozen EMA decoder
    """
    if kind not in DECODER_KINDS:
        raise ValueError(f"kind must be one of {sorted(DECODER_KINDS)}, got {kind!r}")
    if obs_normalization not in NORMALIZERS:
        raise ValueError(f"obs_normalization must be one of {sorted(NORMALIZERS)}, got {obs_normalization!r}")
    if image_normalization not in IMAGE_NORMALIZATIONS:
        raise ValueError(
            f"image_normalization must be one of {list(IMAGE_NORMALIZATIONS)}, got {image_normalization!r}"
        )
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    torch.manual_seed(seed)
    model = DECODER_KINDS[kind](
        obs_dim=data.obs_dim, action_dim=data.action_dim, chunk_size=data.chunk_size, **decoder_kwargs
    ).to(device)
    obs_shift, obs_scale = NORMALIZERS[obs_normalization](data.obs)
    for start, stop in model.obs_normalization_groups():  # e.g. an image's pixels
        kind_ = obs_normalization if image_normalization == "shared" else image_normalization
        obs_shift[start:stop], obs_scale[start:stop] = group_normalization(data.obs[:, start:stop], kind_)
    act_shift, act_scale = minmax_normalization(data.actions.reshape(-1, data.action_dim))
    model.set_normalization(obs_shift, obs_scale, act_shift, act_scale)
    obs_n = model.normalize_obs(torch.from_numpy(data.obs).to(device))
    act_n = model.normalize_actions(torch.from_numpy(data.actions).to(device))

    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=learning_rate * 0.01)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    run_config = {
        "kind": kind,
        "steps": steps,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "weight_decay": weight_decay,
        "ema_decay": ema_decay,
        "obs_normalization": obs_normalization,
        **({"image_normalization": image_normalization} if image_normalization != "shared" else {}),
        "seed": seed,
        "n_pairs": len(data),
        "decoder": model.get_config(),
    }
    start, losses = 0, []
    state_path = Path(out_dir) / STATE_NAME if out_dir is not None else None
    if state_path is not None and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
        if state["run_config"] != json.loads(json.dumps(run_config)):
            raise ValueError(
                f"{state_path} belongs to a run with different settings; delete it to start over or use another out_dir"
            )
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start, losses = int(state["step"]), list(state["losses"])

    model.train()
    bar = tqdm(
        range(start, steps), initial=start, total=steps, desc=f"BC {kind}", disable=not progress, mininterval=2.0
    )
    running = None
    for step in bar:
        idx = torch.randint(0, len(data), (batch_size,), generator=generator).to(device)
        loss = model.training_loss(obs_n[idx], act_n[idx], generator=None)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        ema.update_parameters(model)
        running = loss.item() if running is None else 0.99 * running + 0.01 * loss.item()
        if (step + 1) % 100 == 0:
            losses.append(running)
            bar.set_postfix(loss=f"{running:.4f}")
        if state_path is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
            state_path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_torch_save(
                {
                    "run_config": run_config,
                    "model": model.state_dict(),
                    "ema": ema.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "step": step + 1,
                    "losses": losses,
                },
                state_path,
            )
    final = DECODER_KINDS[kind](**model.get_config()).to(device)
    final.load_state_dict(ema.module.state_dict())
    final.freeze()
    final.bc_loss = losses[-1] if losses else float("nan")  # EMA-smoothed training loss at the end
    if out_dir is not None:
        final.save_pretrained(Path(out_dir))
        meta = {**run_config, "final_bc_loss": final.bc_loss, "loss_curve_every_100_steps": losses}
        tmp = Path(out_dir) / "training.json.tmp"
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, Path(out_dir) / "training.json")
        tmp = Path(out_dir) / "README.md.tmp"
        final.generate_model_card(**training_card(meta, data, out_dir, card)).save(tmp)
        os.replace(tmp, Path(out_dir) / "README.md")
    return final


def training_card(
    meta: dict[str, Any], data: ChunkDataset, out_dir: str | os.PathLike, card: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Model card entries of a :func:`train_backbone` run (record ``meta`` = its ``training.json``), over which
    ``card``'s own entries go (a caller's ``metrics`` are added after the BC loss)."""
    card = dict(card or {})
    kind = meta["kind"]
    settings = ", ".join(f"{k}={meta[k]!r}" for k in CARD_SETTINGS if k in meta)
    image_norm = f" (images `{meta['image_normalization']}`)" if "image_normalization" in meta else ""
    entries: dict[str, Any] = {
        "source": str(out_dir),
        "title": f"{kind.capitalize()} backbone trained with lpds",
        "data": card.pop(
            "data",
            f"{len(data):,} (observation, action chunk) pairs: observations of {data.obs_dim} dims, chunks of "
            f"{data.chunk_size} steps x {data.action_dim} action dims.",
        ),
        "training": (
            f"Behaviour cloning with `lpds_envs.backbones.train_backbone` ({'DDPM epsilon loss' if kind == 'diffusion' else 'conditional flow matching'}): "
            f"{meta['steps']:,} AdamW steps, batch {meta['batch_size']}, learning rate {meta['learning_rate']} "
            f"(cosine to 1%), weight decay {meta['weight_decay']}, EMA {meta['ema_decay']} (the EMA weights are "
            f"saved), observations normalised `{meta['obs_normalization']}`{image_norm}, actions min-max scaled to [-1, 1], "
            f"seed {meta['seed']}. The full record, with the loss curve, is `training.json`."
        ),
        "command": card.pop("command", f'train_backbone("{kind}", data, out_dir="{out_dir}", {settings})'),
        "metrics": [
            (
                "final BC loss (EMA-smoothed, training data)",
                format_metric(meta["final_bc_loss"]),
                "running mean (0.99) of the training loss, read every 100 steps",
            ),
            *card.pop("metrics", []),
        ],
    }
    return {**entries, **card}
