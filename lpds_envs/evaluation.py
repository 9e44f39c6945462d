"""Batched evaluation of latent policies on a :class:`~lpds_envs.wrappers.VecLatentSteeringWrapper`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .wrappers import VecLatentSteeringWrapper

LatentFn = Callable[[np.ndarray], np.ndarray]


def prior_latents(decoder_latent_dim: int, seed: int | None = None) -> LatentFn:
    """A latent policy that draws ``w ~ N(0, I)`` (the frozen backbone itself)."""
    rng = np.random.default_rng(seed)

    def draw(obs: Any) -> np.ndarray:
        n = len(next(iter(obs.values()))) if isinstance(obs, dict) else len(obs)  # Dict observations: one per env
        return rng.standard_normal((n, decoder_latent_dim)).astype(np.float32)

    return draw


@dataclass
class EpisodeBatch:
    """One finished episode per sub-env."""

    returns: np.ndarray  # (N,) undiscounted return
    lengths: np.ndarray  # (N,) raw env steps
    success: np.ndarray  # (N,) bool, False where the task reports none
    final_infos: list[dict] = field(default_factory=list)
    paths: list[np.ndarray] = field(default_factory=list)  # observations visited, (T+1, obs_dim) each


def run_episodes(venv: VecLatentSteeringWrapper, latent_fn: LatentFn, max_latent_steps: int = 100_000) -> EpisodeBatch:
    """Reset ``venv`` and run until each sub-env has finished one episode; later episodes are ignored."""
    n = venv.num_envs
    obs = venv.reset()
    returns, lengths = np.zeros(n), np.zeros(n, dtype=np.int64)
    success = np.zeros(n, dtype=bool)
    done_mask = np.zeros(n, dtype=bool)
    final_infos: list[dict] = [{} for _ in range(n)]
    paths: list[list[np.ndarray]] = [[np.array(o, copy=True)] for o in obs]
    for _ in range(max_latent_steps):
        with torch.inference_mode():
            latents = latent_fn(obs)
        obs, rewards, dones, infos = venv.step(latents)
        for i in np.flatnonzero(~done_mask):
            returns[i] += rewards[i]
            lengths[i] += infos[i].get("executed_steps", 1)
            success[i] |= bool(infos[i].get("success", False))
            paths[i].append(np.array(infos[i]["terminal_observation"] if dones[i] else obs[i], copy=True))
            if dones[i]:
                done_mask[i] = True
                final_infos[i] = infos[i]
        if done_mask.all():
            break
    else:
        raise RuntimeError(f"episodes did not finish within {max_latent_steps} latent steps")
    return EpisodeBatch(returns, lengths, success, final_infos, [np.stack(p) for p in paths])


def prior_episodes(
    env: str | Callable, decoder: torch.nn.Module, episodes: int, seed: int, n_envs: int = 10,
    latent_bound: float | None = None,
) -> EpisodeBatch:
    """``episodes`` full episodes of the frozen ``decoder`` with prior latents ``w ~ N(0, I)`` (clipped to
    ``latent_bound``), ``n_envs`` at a time: sub-env ``i`` of the round starting at episode ``k`` resets with seed
    ``seed + k + i`` and the round's latents are drawn with seed ``seed + k``. ``env``: an id or a raw-env factory."""
    from .wrappers import make_latent_vec_env

    latent_dim = int(np.prod(decoder.latent_shape))
    batches = []
    for k in range(0, episodes, n_envs):
        venv = make_latent_vec_env(env, n_envs=min(n_envs, episodes - k), seed=seed + k, decoder=decoder,
                                   latent_bound=latent_bound)
        batches.append(run_episodes(venv, prior_latents(latent_dim, seed=seed + k)))
        venv.close()
    return EpisodeBatch(
        np.concatenate([b.returns for b in batches]), np.concatenate([b.lengths for b in batches]),
        np.concatenate([b.success for b in batches]), [i for b in batches for i in b.final_infos],
        [q for b in batches for q in b.paths],
    )


def multigoal_coverage(
    decoder: torch.nn.Module, n_rollouts: int = 1000, seed: int = 0, latent_fn: LatentFn | None = None
) -> dict:
    """Per-goal fractions of ``n_rollouts`` MultiGoal episodes from the origin (prior latents by default)."""
    from .envs.multigoal import GOALS
    from .wrappers import make_latent_vec_env

    venv = make_latent_vec_env("lpds/MultiGoal-v0", n_envs=n_rollouts, seed=seed, decoder=decoder)
    batch = run_episodes(venv, latent_fn or prior_latents(decoder.latent_dim, seed))
    venv.close()
    goals = np.array([info["goal"] for info in batch.final_infos])
    fractions = [float(np.mean(goals == g)) for g in range(len(GOALS))]
    return {
        "n_rollouts": n_rollouts,
        "goal_fractions": fractions,
        "no_goal": float(np.mean(goals < 0)),
        "mean_return": float(batch.returns.mean()),
        "return_std": float(batch.returns.std()),
        "goals": goals.tolist(),
        "paths": [p.tolist() for p in batch.paths[:200]],
    }
