"""Crash-safe checkpoints of a training run, complete enough to continue it bit for bit.

A checkpoint is a folder ``<run_dir>/checkpoint`` holding

- ``model.zip``: the SB3 model (weights, optimisers, counters, last observation; SB3's own format);
- ``replay_buffer.npz``: the filled part of the replay buffer (optional; loaded without pickle);
- ``state.json``: the RNG streams (python, numpy, torch, the action space's) and the run's own bookkeeping, as plain
  JSON (nothing in it can run code when loaded);
- ``env_state.pkl``: the state of the training envs (sub-envs and VecEnv buffers, with the frozen decoder left out;
  optional). It is a pickle, read back by an unpickler restricted to an allow-list of env, wrapper, space and RNG
  classes (:class:`RestrictedUnpickler`): a file naming anything else (``os.system``, ``builtins.eval``, ...) is
  refused before anything runs, and the resumed run then starts from reset envs.

It is written to ``checkpoint.tmp``, flushed to disk (``fsync`` of every file and of the folder), and swapped in with
two ``os.replace`` calls (``checkpoint`` -> ``checkpoint.old``, ``checkpoint.tmp`` -> ``checkpoint``) followed by an
``fsync`` of the run folder, so an interruption or a power loss at any moment leaves one complete checkpoint behind
(:func:`find_checkpoint` also accepts ``checkpoint.old``). Checkpoints of earlier versions (``state.pkl``, a plain
pickle) are refused with :class:`CheckpointError`.
"""

from __future__ import annotations

import io
import json
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


# ---------------------------------------------------------------------------------------------- env state


class _Pickler(pickle.Pickler):
    """Pickles env state with every frozen decoder replaced by a reference (decoders are rebuilt, never saved)."""

    def persistent_id(self, obj: Any) -> str | None:
        return "decoder" if isinstance(obj, Decoder) else None


#: packages and modules whose *classes* an env state may name (task envs, wrappers, spaces, specs, SB3's Monitor);
#: their functions are never allowed, nor are classes that start processes, write files or load code when built
ALLOWED_CLASS_MODULES = (
    "lpds_envs.envs",
    "lpds_envs.wrappers",
    "lpds_envs.vector",
    "lpds_envs.codec",
    "lpds_envs.subspace",
    "algorithms.residual_action",
    "gymnasium",
    "gymnasium_robotics.envs",
    "stable_baselines3.common.monitor",
    "collections",
)
DENIED_CLASS_MODULES = (
    "gymnasium.vector",
    "gymnasium.wrappers.rendering",
    "gymnasium.wrappers.vector",
    "gymnasium.utils",
)

#: the functions an env state may name: numpy's array, scalar and RNG reconstructors and copyreg's object rebuilder
ALLOWED_FUNCTIONS = frozenset(
    {
        ("copyreg", "_reconstructor"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.random._pickle", "__generator_ctor"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "slice"),
        ("builtins", "complex"),
        ("builtins", "bytearray"),
        ("builtins", "object"),
    }
)


def _in_modules(module: str, packages: tuple[str, ...]) -> bool:
    """``module`` is one of ``packages`` or inside one of them."""
    return any(module == p or module.startswith(p + ".") for p in packages)


def _allowed_numpy_class(obj: Any) -> bool:
    """numpy's data classes (``ndarray`` itself, dtypes, scalars) and RNG classes; not ``memmap`` and the like."""
    if obj is np.ndarray or obj is np.random.Generator or obj is np.random.RandomState:
        return True
    return isinstance(obj, type) and issubclass(
        obj, (np.dtype, np.generic, np.random.BitGenerator, np.random.SeedSequence)
    )


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles an env state naming only allow-listed globals (see :data:`ALLOWED_FUNCTIONS` and
    :data:`ALLOWED_CLASS_MODULES`); anything else raises :class:`pickle.UnpicklingError` before it is called.

    :param file: the binary file to read
    :param decoder: the frozen decoder put back where the state referenced one
    """

    def __init__(self, file: Any, decoder: Decoder | None) -> None:
        super().__init__(file)
        self.decoder = decoder

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_FUNCTIONS:
            return super().find_class(module, name)
        if module.split(".")[0] == "numpy":
            obj = super().find_class(module, name)
            if _allowed_numpy_class(obj):
                return obj
        elif _in_modules(module, ALLOWED_CLASS_MODULES) and not _in_modules(module, DENIED_CLASS_MODULES):
            obj = super().find_class(module, name)
            if isinstance(obj, type):
                return obj
        raise pickle.UnpicklingError(
            f"the saved env state names {module}.{name}, which is not an allowed env, wrapper, space or RNG class"
        )

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
    state = RestrictedUnpickler(io.BytesIO(blob), _env_decoder(venv)).load()
    if len(state["wrappers"]) != len(wrappers):
        raise ValueError("the saved env state does not match this env's wrappers")
    for key in DUMMY_VEC_ENV_STATE:
        if key in state["inner"]:
            setattr(inner, key, state["inner"][key])
    for w, saved in zip(wrappers, state["wrappers"]):
        if hasattr(w, "_obs"):
            w._obs = saved["_obs"]


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

    Returns the model (replay buffer, RNG streams and env state restored) and the caller's ``run_state`` with two
    added entries: ``missing``, the parts the checkpoint does not hold (``"env state"``: the envs are reset instead;
    ``"replay buffer"``: it starts empty), and ``env_state_refused``, why a saved env state was not loaded (it names
    a class outside :class:`RestrictedUnpickler`'s allow-list), or ``None``. The resume is exact when ``missing`` is
    empty.

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
    return model, {**state["run"], "missing": missing, "env_state_refused": refused}
