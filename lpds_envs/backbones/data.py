"""Turning demonstrations into ``(obs_t, a_t .. a_{t+Ta-1})`` training pairs, from Minari datasets or npz files.

This is written once here for every task: each trajectory of length L gives L pairs; chunks that run past
the episode end are padded by repeating the last action (``pad="last"``, as diffusion-policy and DPPO do)
or with zeros (``pad="zero"``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

PAD_MODES = ("last", "zero")


@dataclass
class ChunkDataset:
    """Behaviour-cloning pairs: ``obs (N, obs_dim)`` and action chunks ``actions (N, Ta, act_dim)``, float32."""

    obs: np.ndarray
    actions: np.ndarray

    def __post_init__(self) -> None:
        self.obs = np.asarray(self.obs, dtype=np.float32)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        if self.obs.ndim != 2:
            raise ValueError(f"obs must have shape (N, obs_dim), got {self.obs.shape}")
        if self.actions.ndim != 3:
            raise ValueError(f"actions must have shape (N, Ta, act_dim), got {self.actions.shape}")
        if len(self.obs) != len(self.actions):
            raise ValueError(f"obs has {len(self.obs)} rows but actions has {len(self.actions)}")
        if len(self.obs) == 0:
            raise ValueError("the dataset is empty")
        if not (np.isfinite(self.obs).all() and np.isfinite(self.actions).all()):
            raise ValueError("the dataset contains NaN or inf values")

    def __len__(self) -> int:
        return len(self.obs)

    @property
    def obs_dim(self) -> int:
        return self.obs.shape[1]

    @property
    def chunk_size(self) -> int:
        return self.actions.shape[1]

    @property
    def action_dim(self) -> int:
        return self.actions.shape[2]


def chunk_trajectory(obs: np.ndarray, actions: np.ndarray, chunk_size: int, pad: str = "last") -> ChunkDataset:
    """Chunk one trajectory. ``obs`` may have L or L+1 rows (the final observation is dropped)."""
    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    actions = np.asarray(actions, dtype=np.float32)
    obs = np.asarray(obs, dtype=np.float32)
    if actions.ndim == 1:
        actions = actions[:, None]
    L = len(actions)
    if L == 0:
        raise ValueError("a trajectory has no actions")
    if len(obs) not in (L, L + 1):
        raise ValueError(f"a trajectory has {len(obs)} observations for {L} actions; expected {L} or {L + 1}")
    fill = actions[-1:] if pad == "last" else np.zeros_like(actions[-1:])
    padded = np.concatenate([actions, np.repeat(fill, chunk_size - 1, axis=0)], axis=0)
    idx = np.arange(L)[:, None] + np.arange(chunk_size)[None, :]
    return ChunkDataset(obs[:L].reshape(L, -1), padded[idx])


def make_chunks(
    trajectories: Iterable[tuple[np.ndarray, np.ndarray]], chunk_size: int, pad: str = "last"
) -> ChunkDataset:
    """Chunk every ``(observations, actions)`` trajectory and concatenate the pairs."""
    parts = [chunk_trajectory(o, a, chunk_size, pad) for o, a in trajectories]
    if not parts:
        raise ValueError("no trajectories given")
    return ChunkDataset(np.concatenate([p.obs for p in parts]), np.concatenate([p.actions for p in parts]))


def split_episodes(
    observations: np.ndarray, actions: np.ndarray, episode_ends: Sequence[int]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split flat arrays into trajectories; ``episode_ends[i]`` is one past the last index of episode i."""
    ends = np.asarray(episode_ends, dtype=np.int64)
    if len(ends) == 0 or np.any(np.diff(ends) <= 0) or ends[0] <= 0 or ends[-1] != len(actions):
        raise ValueError(
            f"episode_ends must be strictly increasing, positive and end at len(actions)={len(actions)}; got {ends[:5]}..."
        )
    starts = np.concatenate([[0], ends[:-1]])
    return [(observations[s:e], actions[s:e]) for s, e in zip(starts, ends)]


def load_npz(path: str | os.PathLike, chunk_size: int | None = None, pad: str = "last") -> ChunkDataset:
    """Load BC data from an ``.npz`` file.

    Two layouts are accepted:

    - already paired: ``obs (N, obs_dim)`` and ``actions (N, Ta, act_dim)`` or ``(N, act_dim)`` (then Ta = 1);
    - trajectories: ``observations (M, obs_dim)``, ``actions (M, act_dim)`` and ``episode_ends (E,)``,
      chunked here with ``chunk_size``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"dataset file {str(path)!r} does not exist")
    with np.load(path) as data:
        keys = set(data.files)
        if {"obs", "actions"} <= keys:
            actions = data["actions"]
            if actions.ndim == 2:
                actions = actions[:, None, :]
            ds = ChunkDataset(data["obs"], actions)
            if chunk_size is not None and ds.chunk_size != chunk_size:
                raise ValueError(f"{path} holds chunks of {ds.chunk_size} steps, but chunk_size={chunk_size} was asked")
            return ds
        if {"observations", "actions", "episode_ends"} <= keys:
            if chunk_size is None:
                raise ValueError(f"{path} holds trajectories; pass chunk_size to chunk them")
            return make_chunks(
                split_episodes(data["observations"], data["actions"], data["episode_ends"]), chunk_size, pad
            )
    raise ValueError(
        f"{path} has arrays {sorted(keys)}; expected 'obs' + 'actions', or 'observations' + 'actions' + 'episode_ends'"
    )


def load_minari(dataset_id: str, chunk_size: int, pad: str = "last", obs_key: str | None = None) -> ChunkDataset:
    """Load a *local* Minari dataset (``minari.load_dataset``, no download) and chunk its episodes.

    Dict observations are flattened in sorted key order unless ``obs_key`` picks one entry.
    """
    try:
        import minari
    except ImportError as exc:  # pragma: no cover - minari is a core dependency
        raise ImportError("load_minari needs the 'minari' package: pip install minari") from exc
    try:
        dataset = minari.load_dataset(dataset_id, download=False)
    except Exception as exc:
        raise FileNotFoundError(
            f"Minari dataset {dataset_id!r} is not available locally ({exc}); create it with minari.DataCollector "
            "or set MINARI_DATASETS_PATH to the folder that holds it"
        ) from exc
    trajectories = []
    for episode in dataset.iterate_episodes():
        obs = episode.observations
        if isinstance(obs, dict):
            if obs_key is not None:
                obs = obs[obs_key]
            else:
                obs = np.concatenate([np.asarray(obs[k]).reshape(len(obs[k]), -1) for k in sorted(obs)], axis=1)
        trajectories.append((np.asarray(obs), np.asarray(episode.actions)))
    return make_chunks(trajectories, chunk_size, pad)


@dataclass
class Episode:
    """One recorded episode: ``observations`` has one more row than ``actions``."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    seed: int | None = None


def save_minari(dataset_id: str, episodes: Sequence[Episode], env, **metadata) -> object:
    """Write episodes as a local Minari dataset (``MINARI_DATASETS_PATH``).

    Uses ``minari.create_dataset_from_buffers``, which, unlike ``minari.DataCollector``, does not need jax.
    ``metadata`` goes to Minari (``algorithm_name``, ``author``, ``description``, ...).
    """
    import minari
    from minari.data_collector import EpisodeBuffer

    buffers = []
    for i, ep in enumerate(episodes):
        if len(ep.observations) != len(ep.actions) + 1:
            raise ValueError(
                f"episode {i} has {len(ep.observations)} observations for {len(ep.actions)} actions; "
                "Minari expects one more observation than actions"
            )
        buffers.append(
            EpisodeBuffer(
                id=i,
                seed=ep.seed,
                observations=np.asarray(ep.observations),
                actions=np.asarray(ep.actions),
                rewards=np.asarray(ep.rewards),
                terminations=np.asarray(ep.terminations, dtype=bool),
                truncations=np.asarray(ep.truncations, dtype=bool),
                infos={},
            )
        )
    return minari.create_dataset_from_buffers(dataset_id, buffers, env=env, **metadata)
