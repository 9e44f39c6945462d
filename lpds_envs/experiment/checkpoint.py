"""Crash-safe checkpoints of a training run, complete enough to continue it bit for bit.

A checkpoint is a folder ``<run_dir>/checkpoint`` holding

- ``model.zip``: the SB3 model (weights, optimisers, counters, last observation);
- ``replay_buffer.npz``: the filled part of the replay buffer (optional);
- ``state.pkl``: the RNG streams (python, numpy, torch, the action space's), the state of the training envs
  (sub-envs and VecEnv buffers, with the frozen decoder left out) and the run's own bookkeeping.

It is written to ``checkpoint.tmp`` and swapped in with two ``os.replace`` calls (``checkpoint`` ->
``checkpoint.old``, ``checkpoint.tmp`` -> ``checkpoint``), so an interruption at any moment leaves one complete
checkpoint behind (:func:`find_checkpoint` also accepts ``checkpoint.old``).
"""

from __future__ import annotations

import io
import os
import pickle
import random
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper

from algorithms.steering import resolve_decoder

from ..decoders.base import Decoder

CHECKPOINT, TMP, OLD = "checkpoint", "checkpoint.tmp", "checkpoint.old"


# ---------------------------------------------------------------------------------------------- files


def atomic_copy(src: str | Path, dst: str | Path) -> None:
    """Copy ``src`` to ``dst`` so that ``dst`` is always either the old or the complete new file."""
    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def find_checkpoint(run_dir: str | Path) -> Path | None:
    """The run's newest complete checkpoint folder, or ``None``."""
    for name in (CHECKPOINT, OLD):
        path = Path(run_dir) / name
        if (path / "state.pkl").is_file() and (path / "model.zip").is_file():
            return path
    return None


# ---------------------------------------------------------------------------------------------- RNG


def capture_rng(model: Any) -> dict[str, Any]:
    """The global RNG streams a training step draws from, and the model's action-space RNG (SAC warm-up)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "action_space": model.action_space.np_random.bit_generator.state,
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], model: Any) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    model.action_space.np_random.bit_generator.state = state["action_space"]
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------------- replay buffer


def _buffer_arrays(buffer: ReplayBuffer) -> dict[str, np.ndarray]:
    return {k: v for k, v in vars(buffer).items() if isinstance(v, np.ndarray) and v.shape[:1] == (buffer.buffer_size,)}


def save_buffer(buffer: ReplayBuffer, path: str | Path) -> None:
    """The filled rows of every per-transition array of ``buffer`` (no pickle; a fraction of SB3's full dump)."""
    n = buffer.size()
    arrays = {k: v[:n] for k, v in _buffer_arrays(buffer).items()}
    with open(path, "wb") as f:
        np.savez(f, __pos=np.array(buffer.pos), __full=np.array(buffer.full), **arrays)


def load_buffer(buffer: ReplayBuffer, path: str | Path) -> None:
    """Fill a freshly built ``buffer`` (same size and spaces) from :func:`save_buffer`'s file."""
    targets = _buffer_arrays(buffer)
    with np.load(path) as data:
        for key, target in targets.items():
            saved = data[key]
            if saved.shape[1:] != target.shape[1:] or len(saved) > len(target):
                raise ValueError(f"replay buffer array {key!r} has shape {saved.shape}, expected <= {target.shape}")
            target[: len(saved)] = saved
        buffer.pos, buffer.full = int(data["__pos"]), bool(data["__full"])


# ---------------------------------------------------------------------------------------------- env state


class _Pickler(pickle.Pickler):
    """Pickles env state with every frozen decoder replaced by a reference (decoders are rebuilt, never saved)."""

    def persistent_id(self, obj: Any) -> str | None:
        return "decoder" if isinstance(obj, Decoder) else None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: Any, decoder: Decoder | None) -> None:
        super().__init__(file)
        self.decoder = decoder

    def persistent_load(self, pid: Any) -> Any:
        if pid != "decoder" or self.decoder is None:
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        return self.decoder


def _chain(venv: VecEnv) -> tuple[list[VecEnvWrapper], VecEnv]:
    wrappers = []
    while isinstance(venv, VecEnvWrapper):
        wrappers.append(venv)
        venv = venv.venv
    return wrappers, venv


def _env_decoder(venv: VecEnv) -> Decoder | None:
    """The frozen decoder of a latent env (``None`` for an env without one, e.g. LP-DS-A's)."""
    try:
        return resolve_decoder(venv, None)
    except ValueError:
        return None


#: what a ``DummyVecEnv`` holds between steps (its public attributes): the sub-envs and the step buffers
DUMMY_VEC_ENV_STATE = ("envs", "buf_obs", "buf_dones", "buf_rews", "buf_infos", "actions", "reset_infos")


def capture_env_state(venv: VecEnv) -> bytes | None:
    """The state of the sub-envs and VecEnv buffers (``DummyVecEnv`` only), or ``None`` when it cannot be pickled."""
    wrappers, inner = _chain(venv)
    if not isinstance(inner, DummyVecEnv):
        return None
    inner_state = {k: getattr(inner, k) for k in DUMMY_VEC_ENV_STATE if hasattr(inner, k)}
    state = {"inner": inner_state, "wrappers": [{"_obs": getattr(w, "_obs", None)} for w in wrappers]}
    buf = io.BytesIO()
    try:
        _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(state)
    except Exception as exc:  # an env holding a renderer, a socket, a simulator handle without pickle support, ...
        warnings.warn(f"the env state cannot be saved ({exc}); a resumed run will start from reset envs", stacklevel=2)
        return None
    return buf.getvalue()


def restore_env_state(venv: VecEnv, blob: bytes) -> None:
    """Put :func:`capture_env_state`'s state into a freshly built ``venv`` of the same make."""
    wrappers, inner = _chain(venv)
    state = _Unpickler(io.BytesIO(blob), _env_decoder(venv)).load()
    if len(state["wrappers"]) != len(wrappers):
        raise ValueError("the saved env state does not match this env's wrappers")
    for key in DUMMY_VEC_ENV_STATE:
        if key in state["inner"]:
            setattr(inner, key, state["inner"][key])
    for w, saved in zip(wrappers, state["wrappers"]):
        if hasattr(w, "_obs"):
            w._obs = saved["_obs"]


# ---------------------------------------------------------------------------------------------- checkpoints


def save_checkpoint(
    run_dir: str | Path, model: Any, venv: VecEnv, run_state: dict[str, Any], save_replay_buffer: bool = True
) -> Path:
    """Write a complete checkpoint of ``model`` trained on ``venv`` and swap it in atomically.

    Call it only between a gradient update and the next env step (e.g. ``BaseCallback._on_rollout_start``):
    there the model, its replay buffer and the envs agree.

    :param run_state: the caller's bookkeeping, returned by :func:`load_checkpoint`
    """
    run_dir = Path(run_dir)
    tmp, final, old = run_dir / TMP, run_dir / CHECKPOINT, run_dir / OLD
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save(tmp / "model.zip")
    if save_replay_buffer and getattr(model, "replay_buffer", None) is not None:
        save_buffer(model.replay_buffer, tmp / "replay_buffer.npz")
    state = {"rng": capture_rng(model), "env": capture_env_state(venv), "run": run_state}
    with open(tmp / "state.pkl", "wb") as f:
        pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(ckpt: str | Path, algo_cls: type, venv: VecEnv, device: str = "auto") -> tuple[Any, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint` onto the freshly built ``venv``.

    Returns the model (replay buffer, RNG streams and env state restored) and the caller's ``run_state`` with one
    added entry, ``missing``: the parts the checkpoint does not hold (``"env state"``: the envs are reset instead;
    ``"replay buffer"``: it starts empty); the resume is exact when it is empty.
    """
    ckpt = Path(ckpt)
    with open(ckpt / "state.pkl", "rb") as f:
        state = pickle.load(f)
    missing = []
    if state["env"] is not None:
        restore_env_state(venv, state["env"])
    else:
        missing.append("env state")
    model = algo_cls.load(ckpt / "model.zip", env=venv, device=device, force_reset=state["env"] is None)
    buffer_file = ckpt / "replay_buffer.npz"
    if buffer_file.is_file():
        load_buffer(model.replay_buffer, buffer_file)
    elif getattr(model, "replay_buffer", None) is not None:
        missing.append("replay buffer")
    restore_rng(state["rng"], model)
    return model, {**state["run"], "missing": missing}
