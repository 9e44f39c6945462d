"""Reading and writing robomimic's HDF5 dataset layout with h5py (no robomimic install needed).

The layout (robomimic's ``docs/datasets/overview``), so that robomimic's own tools can read our files::

    data/                       attrs: total (samples), env_args (JSON: env_name, env_version, type, env_kwargs)
      demo_0/                   attrs: num_samples, model_file (MuJoCo XML); lpds adds seed, style, success
        obs/<key>               (T, d) observations before each action
        next_obs/<key>          (T, d) observations after each action
        actions                 (T, 7)
        rewards                 (T,)  sparse success reward
        dones                   (T,)  1 at the last step
        states                  (T, S) flattened MuJoCo state (time, qpos, qvel) before each action
      demo_1/ ...
    mask/successful, mask/failed   demo names (robomimic filter keys)

:func:`load_robomimic_chunks` turns a file into behaviour-cloning chunks with the observation flattened in the
order of :data:`lpds_envs.envs.robomimic.OBS_KEYS`, exactly as the Gymnasium env returns it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lpds_envs.backbones.data import ChunkDataset, make_chunks
from lpds_envs.envs.robomimic import OBS_KEYS


@dataclass
class RobomimicDemo:
    """One demonstration: per-key observations (T, d) before and after each action, and per-step arrays."""

    obs: dict[str, np.ndarray]
    next_obs: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    states: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)  # seed, style, success, model_file, ...

    def __len__(self) -> int:
        return len(self.actions)

    def flat_obs(self, keys: Sequence[str] = OBS_KEYS) -> np.ndarray:
        """Observations (T + 1, obs_dim), the last row the final next observation, keys in ``keys`` order."""
        before = np.concatenate([self.obs[k] for k in keys], axis=1)
        last = np.concatenate([self.next_obs[k][-1:] for k in keys], axis=1)
        return np.concatenate([before, last]).astype(np.float32)


def _demo_names(data) -> list[str]:
    return sorted((k for k in data.keys() if k.startswith("demo_")), key=lambda k: int(k.split("_")[1]))


def open_writer(path: str | Path, env_args: dict[str, Any], config: dict[str, Any] | None = None):
    """Open (or create) a robomimic HDF5 file for appending demos; returns the open ``h5py.File``.

    :param env_args: robomimic's ``env_args`` record, stored as JSON in ``data.attrs["env_args"]``
    :param config: how the demos are made (stored in ``data.attrs["lpds_config"]``); an existing file made with
        another config raises instead of mixing data
    """
    import h5py

    f = h5py.File(path, "a")
    data = f.require_group("data")
    cfg = json.dumps(config or {}, sort_keys=True)
    if "lpds_config" in data.attrs and data.attrs["lpds_config"] != cfg:
        old = data.attrs["lpds_config"]
        f.close()
        raise ValueError(f"{path} was recorded with {old}, not {cfg}; delete it to record anew")
    data.attrs["lpds_config"] = cfg
    data.attrs["env_args"] = json.dumps(env_args)
    # a demo whose write was interrupted has no "complete" mark: drop it so that it is recorded again
    for name in _demo_names(data):
        if not data[name].attrs.get("complete", False):
            del data[name]
    data.attrs["total"] = int(sum(data[n].attrs["num_samples"] for n in _demo_names(data)))
    return f


def count_demos(f) -> int:
    """Number of complete demos in an open file."""
    return len(_demo_names(f["data"])) if "data" in f else 0


def write_demo(f, index: int, demo: RobomimicDemo, compression: str | None = "gzip") -> None:
    """Write ``demo`` as ``data/demo_<index>`` into the open file ``f`` and mark it complete (flushes)."""
    data = f["data"]
    name = f"demo_{index}"
    if name in data:
        del data[name]
    g = data.create_group(name)
    for group, values in (("obs", demo.obs), ("next_obs", demo.next_obs)):
        sub = g.create_group(group)
        for key, arr in values.items():
            sub.create_dataset(key, data=np.asarray(arr), compression=compression)
    g.create_dataset("actions", data=np.asarray(demo.actions, dtype=np.float64), compression=compression)
    g.create_dataset("rewards", data=np.asarray(demo.rewards, dtype=np.float64))
    g.create_dataset("dones", data=np.asarray(demo.dones, dtype=np.int64))
    g.create_dataset("states", data=np.asarray(demo.states, dtype=np.float64), compression=compression)
    for key, value in demo.attrs.items():
        g.attrs[key] = value
    g.attrs["num_samples"] = len(demo)
    g.attrs["complete"] = True
    data.attrs["total"] = int(data.attrs.get("total", 0)) + len(demo)
    f.flush()


def write_masks(f) -> None:
    """Write robomimic filter keys ``mask/successful`` and ``mask/failed`` from the demos' ``success`` attrs."""
    data = f["data"]
    names = _demo_names(data)
    mask = f.require_group("mask")
    for key, want in (("successful", True), ("failed", False)):
        if key in mask:
            del mask[key]
        chosen = [n for n in names if bool(data[n].attrs.get("success", True)) == want]
        mask.create_dataset(key, data=np.array(chosen, dtype="S"))


def read_demos(path: str | Path, filter_key: str | None = None, limit: int | None = None) -> list[RobomimicDemo]:
    """Read the demos of a robomimic HDF5 file (optionally only those of ``mask/<filter_key>``)."""
    import h5py

    with h5py.File(path, "r") as f:
        data = f["data"]
        names = _demo_names(data)
        if filter_key is not None:
            chosen = {n.decode() if isinstance(n, bytes) else str(n) for n in f["mask"][filter_key][()]}
            names = [n for n in names if n in chosen]
        demos = []
        for name in names[:limit]:
            g = data[name]
            demos.append(
                RobomimicDemo(
                    obs={k: g["obs"][k][()] for k in g["obs"]},
                    next_obs={k: g["next_obs"][k][()] for k in g["next_obs"]} if "next_obs" in g else {},
                    actions=g["actions"][()],
                    rewards=g["rewards"][()],
                    dones=g["dones"][()],
                    states=g["states"][()] if "states" in g else np.zeros((len(g["actions"]), 0)),
                    attrs=dict(g.attrs.items()),
                )
            )
        return demos


def read_env_args(path: str | Path) -> dict[str, Any]:
    """``data.attrs["env_args"]`` of a robomimic HDF5 file, parsed."""
    import h5py

    with h5py.File(path, "r") as f:
        return json.loads(f["data"].attrs["env_args"])


def load_robomimic_chunks(
    path: str | Path,
    chunk_size: int,
    filter_key: str | None = None,
    keys: Sequence[str] = OBS_KEYS,
    pad: str = "last",
    max_demos: int | None = None,
) -> ChunkDataset:
    """Behaviour-cloning pairs ``(obs_t, a_t .. a_{t+Ta-1})`` from a robomimic HDF5 file, observations flattened in
    ``keys`` order (the env's order by default); ``max_demos`` keeps the first demos of the (filtered) list only."""
    if max_demos is not None and max_demos < 1:
        raise ValueError(f"max_demos must be >= 1 (or None for all demos), got {max_demos}")
    demos = read_demos(path, filter_key=filter_key)
    if not demos:
        raise ValueError(f"{path} holds no demos{'' if filter_key is None else f' in mask/{filter_key}'}")
    if max_demos is not None:
        if max_demos > len(demos):
            raise ValueError(
                f"max_demos={max_demos} but {path} holds only {len(demos)} demos"
                f"{'' if filter_key is None else f' in mask/{filter_key}'}; lower it or record more"
            )
        demos = demos[:max_demos]
    return make_chunks([(d.flat_obs(keys), d.actions) for d in demos], chunk_size, pad=pad)
