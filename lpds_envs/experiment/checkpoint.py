"""Crash-safe checkpoints of a training run, complete enough to continue it bit for bit.

A checkpoint is a folder ``<run_dir>/checkpoint`` holding

- ``model.zip``: the SB3 model (weights, optimisers, counters, last observation; SB3's own format);
- ``replay_buffer.npz``: the filled part of the replay buffer (optional; loaded without pickle);
- ``state.json``: the RNG streams (python, numpy, torch, the action space's) and the run's own bookkeeping, as plain
  JSON (nothing in it can run code when loaded);
- ``env_state.pkl``: the state of the training envs (sub-envs and VecEnv buffers, with the frozen decoder left out;
  optional). It is a pickle, read back by an unpickler restricted to an allow-list of env, wrapper, space and RNG
  classes (:class:`RestrictedUnpickler`, in :mod:`lpds_envs.experiment.env_state`): a file naming anything else
  (``os.system``, ``builtins.eval``, ...) is refused before anything runs, and the resumed run then starts from reset
  envs.

It is written to ``checkpoint.tmp``, flushed to disk (``fsync`` of every file and of the folder), and swapped in with
two ``os.replace`` calls (``checkpoint`` -> ``checkpoint.old``, ``checkpoint.tmp`` -> ``checkpoint``) followed by an
``fsync`` of the run folder, so an interruption or a power loss at any moment leaves one complete checkpoint behind
(:func:`find_checkpoint` also accepts ``checkpoint.old``). Checkpoints of earlier versions (``state.pkl``, a plain
pickle) are refused with :class:`CheckpointError`.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.vec_env import VecEnv

from .env_state import ALLOWED_CLASS_MODULES as ALLOWED_CLASS_MODULES
from .env_state import ALLOWED_FUNCTIONS as ALLOWED_FUNCTIONS
from .env_state import DENIED_CLASS_MODULES as DENIED_CLASS_MODULES
from .env_state import DUMMY_VEC_ENV_STATE as DUMMY_VEC_ENV_STATE
from .env_state import RestrictedUnpickler as RestrictedUnpickler
from .env_state import capture_env_state, restore_env_state

CHECKPOINT, TMP, OLD = "checkpoint", "checkpoint.tmp", "checkpoint.old"


# ---------------------------------------------------------------------------------------------- files


STATE_FILE, ENV_STATE_FILE, LEGACY_STATE_FILE = "state.json", "env_state.pkl", "state.pkl"
STATE_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as it is (an old pickle-based one, or a corrupt or unsafe state file)."""


def fsync_path(path: str | Path) -> None:
    """Flush a file, or a folder's entries, to disk (``os.fsync``); a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. folders on Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_copy(src: str | Path, dst: str | Path) -> None:
    """Copy ``src`` to ``dst`` so that ``dst`` is always either the old or the complete new file (also across a
    power loss: the copy and the folder are flushed to disk before and after the swap)."""
    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    fsync_path(tmp)
    os.replace(tmp, dst)
    fsync_path(dst.parent)


def find_checkpoint(run_dir: str | Path) -> Path | None:
    """The run's newest complete checkpoint folder, or ``None``.

    :raises CheckpointError: when the run folder holds only a checkpoint of an earlier version (``state.pkl``)
    """
    for name in (CHECKPOINT, OLD):
        path = Path(run_dir) / name
        if (path / STATE_FILE).is_file() and (path / "model.zip").is_file():
            return path
    for name in (CHECKPOINT, OLD):
        legacy = Path(run_dir) / name / LEGACY_STATE_FILE
        if legacy.is_file():
            raise CheckpointError(
                f"{legacy} is a checkpoint of an earlier lpds version, a plain pickle that could run code when "
                f"loaded, so it is not loaded; to start the run over, delete {Path(run_dir)} (or pass another --out); "
                "to resume it, re-run with the lpds version that wrote it, if you trust the folder's origin"
            )
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


def to_json(obj: Any) -> Any:
    """``obj`` as JSON data: arrays and tensors become ``{"__array__": [...], "dtype": ...}``, tuples
    ``{"__tuple__": [...]}`` (RNG states are made of these); :func:`from_json` inverts it exactly."""
    if isinstance(obj, torch.Tensor):
        obj = obj.cpu().numpy()
    if isinstance(obj, np.ndarray):
        return {"__array__": obj.tolist(), "dtype": obj.dtype.str, "shape": list(obj.shape)}
    if isinstance(obj, tuple):
        return {"__tuple__": [to_json(v) for v in obj]}
    if isinstance(obj, list):
        return [to_json(v) for v in obj]
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError(f"checkpoint state has a dict with non-string keys: {list(obj)[:5]}")
        return {k: to_json(v) for k, v in obj.items()}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"checkpoint state holds a {type(obj).__name__}, which has no JSON form")


def from_json(obj: Any) -> Any:
    """The inverse of :func:`to_json` (arrays come back as numpy arrays)."""
    if isinstance(obj, list):
        return [from_json(v) for v in obj]
    if isinstance(obj, dict):
        if "__array__" in obj:
            return np.asarray(obj["__array__"], dtype=np.dtype(obj["dtype"])).reshape(obj["shape"])
        if "__tuple__" in obj:
            return tuple(from_json(v) for v in obj["__tuple__"])
        return {k: from_json(v) for k, v in obj.items()}
    return obj


def restore_rng(state: dict[str, Any], model: Any) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(torch.as_tensor(np.asarray(state["torch"], dtype=np.uint8)))
    model.action_space.np_random.bit_generator.state = state["action_space"]
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.as_tensor(np.asarray(s, dtype=np.uint8)) for s in state["cuda"]])


# ---------------------------------------------------------------------------------------------- replay buffer


def _buffer_arrays(buffer: ReplayBuffer) -> dict[str, np.ndarray]:
    return {k: v for k, v in vars(buffer).items() if isinstance(v, np.ndarray) and v.shape[:1] == (buffer.buffer_size,)}


def save_buffer(buffer: ReplayBuffer, path: str | Path) -> None:
    """The filled rows of every per-transition array of ``buffer`` (no pickle; a fraction of SB3's full dump)."""
    n = buffer.size()
    arrays = {k: v[:n] for k, v in _buffer_arrays(buffer).items()}
    with open(path, "wb") as f:
        np.savez(f, __pos=np.array(buffer.pos), __full=np.array(buffer.full), **arrays)


def nonfinite_buffer_field(buffer: ReplayBuffer) -> str | None:
    """The first per-transition array of ``buffer`` whose filled part holds a NaN or inf, or ``None``."""
    n = buffer.size()
    for key, value in _buffer_arrays(buffer).items():
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value[:n]).all():
            return key
    return None


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


# ---------------------------------------------------------------------------------------------- checkpoints


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w") as f:
        json.dump(data, f)


def save_checkpoint(
    run_dir: str | Path, model: Any, venv: VecEnv, run_state: dict[str, Any], save_replay_buffer: bool = True
) -> Path:
    """Write a complete checkpoint of ``model`` trained on ``venv`` and swap it in atomically.

    Call it only between a gradient update and the next env step (e.g. ``BaseCallback._on_rollout_start``):
    there the model, its replay buffer and the envs agree. Every file and the folder are flushed to disk before the
    swap, and the run folder after it.

    :param run_dir: the run folder (the checkpoint is ``run_dir/checkpoint``)
    :param model: the SB3 model
    :param venv: its training env
    :param run_state: the caller's bookkeeping (JSON data), returned by :func:`load_checkpoint`
    :param save_replay_buffer: also save the filled part of the replay buffer
    :return: the checkpoint folder
    """
    run_dir = Path(run_dir)
    tmp, final, old = run_dir / TMP, run_dir / CHECKPOINT, run_dir / OLD
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save(tmp / "model.zip")
    if save_replay_buffer and getattr(model, "replay_buffer", None) is not None:
        save_buffer(model.replay_buffer, tmp / "replay_buffer.npz")
    env_state = capture_env_state(venv)
    if env_state is not None:
        with open(tmp / ENV_STATE_FILE, "wb") as f:
            f.write(env_state)
    state = {
        "format": STATE_FORMAT,
        "rng": to_json(capture_rng(model)),
        "env_state": None if env_state is None else ENV_STATE_FILE,
        "torch_threads": torch.get_num_threads(),  # CPU kernels round differently with another thread count
        "run": to_json(run_state),
    }
    _write_json(tmp / STATE_FILE, state)
    for path in tmp.iterdir():
        fsync_path(path)
    fsync_path(tmp)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_path(run_dir)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _reason(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def read_state(ckpt: str | Path) -> dict[str, Any]:
    """The checkpoint's ``state.json`` (plain JSON: RNG streams and the run's bookkeeping).

    :param ckpt: the checkpoint folder
    :raises CheckpointError: when it is missing, not JSON or of another format
    """
    path = Path(ckpt) / STATE_FILE
    try:
        with open(path) as f:
            state = json.load(f)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is unreadable or not JSON ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} has format {found!r}, expected {STATE_FORMAT}")
    return from_json(state)


def load_checkpoint(ckpt: str | Path, algo_cls: type, venv: VecEnv, device: str = "auto") -> tuple[Any, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint` onto the freshly built ``venv``.

    Returns the model (replay buffer, RNG streams and env state restored) and the caller's ``run_state`` with three
    added entries: ``missing``, the parts the checkpoint does not hold (``"env state"``: the envs are reset instead;
    ``"replay buffer"``: it starts empty), ``env_state_refused``, why a saved env state was not loaded (it names
    a class outside :class:`RestrictedUnpickler`'s allow-list), or ``None``, and ``torch_threads``, the intra-op
    thread count of the process that saved it (``None`` for older checkpoints). The resume is exact when ``missing``
    is empty and this process runs with as many torch threads (CPU kernels split and round sums by thread count).

    :param ckpt: the checkpoint folder
    :param algo_cls: the learner's class
    :param venv: the freshly built training env
    :param device: torch device of the model
    :raises CheckpointError: for a missing or corrupt ``state.json``
    """
    ckpt = Path(ckpt)
    state = read_state(ckpt)
    missing, refused = [], None
    restored = False
    if state.get("env_state"):
        try:
            restore_env_state(venv, (ckpt / ENV_STATE_FILE).read_bytes())
            restored = True
        except pickle.UnpicklingError as exc:
            refused = str(exc)
        except Exception as exc:  # a truncated file or a state of another env make
            raise CheckpointError(f"{ckpt / ENV_STATE_FILE} does not load ({_reason(exc)})") from None
    if not restored:
        missing.append("env state")
    try:
        model = algo_cls.load(ckpt / "model.zip", env=venv, device=device, force_reset=not restored)
    except Exception as exc:  # a truncated zip (BadZipFile, SB3's "No data found"), another algorithm's model, ...
        raise CheckpointError(f"{ckpt / 'model.zip'} does not load as a {algo_cls.__name__} ({_reason(exc)})") from None
    buffer_file = ckpt / "replay_buffer.npz"
    if buffer_file.is_file():
        try:
            load_buffer(model.replay_buffer, buffer_file)
        except Exception as exc:  # a truncated or foreign npz
            raise CheckpointError(f"{buffer_file} does not load ({_reason(exc)})") from None
    elif getattr(model, "replay_buffer", None) is not None:
        missing.append("replay buffer")
    restore_rng(state["rng"], model)
    threads = state.get("torch_threads")
    return model, {**state["run"], "missing": missing, "env_state_refused": refused, "torch_threads": threads}
