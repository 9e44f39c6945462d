"""Diversity metrics of paper App. B and C: k-NN (Kozachenko-Leonenko) entropy, the action entropy of a (steered)
generative policy, trajectory-level mode coverage, and D3IL's route classifier and behaviour entropy (Avoiding).

Example::

    >>> import numpy as np
    >>> from lpds_envs.metrics import knn_entropy, mode_coverage
    >>> x = np.random.default_rng(0).standard_normal((4000, 2))
    >>> round(knn_entropy(x), 1)  # N(0, I_2) has entropy log(2 pi e) = 2.84 nats
    2.8
    >>> mode_coverage(np.array([[1.0, 1.0], [0.9, 1.1], [0.0, 0.0]]), goals=[(1, 1), (-1, -1)], radius=0.2)
    array([0.66666667, 0.        ])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln

#: ``f(obs batch) -> latents (N, latent_dim)``; the batch is a tensor, or a dict of tensors for Dict observations
LatentSampler = Callable[[Any], torch.Tensor]


def log_unit_ball_volume(dim: int) -> float:
    """``log c_D``: the log volume of the unit ball in ``dim`` dimensions, ``(D/2) log pi - log Gamma(D/2 + 1)``."""
    return 0.5 * dim * np.log(np.pi) - float(gammaln(0.5 * dim + 1.0))


def knn_entropy(samples: np.ndarray, k: int = 3, eps: float = 1e-10) -> float:
    """Kozachenko-Leonenko differential entropy estimate in nats (paper App. C, eq. 12).

    ``H = -psi(k) + psi(K) + log c_D + (D / K) sum_i log(rho_i + eps)``, where ``rho_i`` is the Euclidean distance
    from sample ``i`` to its ``k``-th nearest other sample (scipy ``cKDTree``). ``eps`` keeps repeated samples
    (``rho_i = 0``) finite; a fully collapsed distribution therefore gets a very negative, not ``-inf``, entropy.

    :param samples: ``(K, D)`` array (a 1-D array is read as ``K`` scalar samples)
    :param k: neighbour order, ``1 <= k < K``
    :param eps: small constant added to every distance
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"samples must have shape (K, D), got {x.shape}; flatten each sample first")
    n, dim = x.shape
    if not 1 <= k < n:
        raise ValueError(f"need 1 <= k < number of samples, got k={k} with {n} samples")
    if not np.isfinite(x).all():
        raise ValueError("samples contain NaN or inf")
    # query k + 1 neighbours: the nearest one is the point itself (distance 0)
    dist, _ = cKDTree(x).query(x, k=k + 1)
    rho = dist[:, k]
    return float(-digamma(k) + digamma(n) + log_unit_ball_volume(dim) + dim * np.mean(np.log(rho + eps)))


def _batch_len(obs: Any) -> int:
    """Rows of a batch of observations (a tensor or array, or a dict of them for Dict observations)."""
    return len(next(iter(obs.values()))) if isinstance(obs, dict) else len(obs)


def _rows(rows: slice) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda v: v[rows]


def _map_batch(obs: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    return {key: fn(v) for key, v in obs.items()} if isinstance(obs, dict) else fn(obs)


def prior_sampler(latent_dim: int, bound: float | None = None, generator: torch.Generator | None = None):
    """``w ~ N(0, I)`` per observation row (clipped to ``bound`` as the env would): the frozen backbone's policy."""

    def sample(obs: Any) -> torch.Tensor:
        w = torch.randn(_batch_len(obs), latent_dim, generator=generator)
        return w if bound is None else w.clamp(-bound, bound)

    return sample


def model_sampler(model: Any, deterministic: bool = False) -> LatentSampler:
    """Latents of a trained SB3 model on a latent env, exactly as it acts: ``model.predict`` (which applies SB3's
    unscaling/clipping to the latent box), then the env's clip. Works for LagrangianSAC (``eps + Delta(s)``),
    DSRLNA and plain SB3 SAC (DSRL-SAC)."""
    high = np.asarray(model.action_space.high, dtype=np.float32)

    def sample(obs: Any) -> torch.Tensor:
        arrays = {k: v.cpu().numpy() for k, v in obs.items()} if isinstance(obs, dict) else obs.cpu().numpy()
        w, _ = model.predict(arrays, deterministic=deterministic)
        return torch.as_tensor(np.clip(w, -high, high), dtype=torch.float32)

    return sample


def action_entropy(
    decoder: Any,
    obs_batch: Any,
    latent_sampler: LatentSampler | None = None,
    n_samples: int = 256,
    k: int = 3,
    max_batch: int = 8192,
) -> float:
    """Conditional action entropy ``H(A | S)`` of eq. 11: the mean over probe states of :func:`knn_entropy` of
    ``n_samples`` decoded chunks per state (chunks flattened to ``Ta * act_dim``).

    :param decoder: a frozen :class:`~lpds_envs.decoders.Decoder`
    :param obs_batch: ``B`` probe observations, ``(B, *obs_shape)`` (array or tensor), or for Dict observations a
        dict of such batches
    :param latent_sampler: ``f(obs (N, ...)) -> latents (N, latent_dim)``, one latent per row; default the prior
        ``N(0, I)`` (the backbone); :func:`model_sampler` for a trained steering policy
    :param n_samples: ``K`` decoded samples per probe state
    :param k: neighbour order of the estimator
    :param max_batch: most latents decoded in one decoder call
    """
    if isinstance(obs_batch, dict):  # Dict observations (images keep their dtype, e.g. uint8)
        obs: Any = {
            key: torch.as_tensor(np.asarray(v) if not torch.is_tensor(v) else v) for key, v in obs_batch.items()
        }
        lengths = {len(v) if v.ndim else -1 for v in obs.values()}
        if len(lengths) != 1 or min(lengths) < 1:
            shapes = {key: tuple(v.shape) for key, v in obs.items()}
            raise ValueError(f"obs_batch must hold one non-empty batch (B, ...) per key, got shapes {shapes}")
    else:
        obs = torch.as_tensor(np.asarray(obs_batch) if not torch.is_tensor(obs_batch) else obs_batch)
        obs = obs.to(torch.float32)
        if obs.ndim < 2 or len(obs) == 0:
            raise ValueError(f"obs_batch must be a non-empty batch (B, *obs_shape), got shape {tuple(obs.shape)}")
    if n_samples <= k:
        raise ValueError(f"n_samples must exceed k, got n_samples={n_samples}, k={k}")
    latent_dim = int(np.prod(decoder.latent_shape))
    sampler = latent_sampler or prior_sampler(latent_dim)
    # every probe state's K copies in as few decoder calls as max_batch allows (batched decoding is much cheaper)
    n_obs = _batch_len(obs)
    rep = _map_batch(obs, lambda v: v.repeat_interleave(n_samples, dim=0))
    chunks = []
    for start in range(0, n_obs * n_samples, max_batch):
        o = _map_batch(rep, _rows(slice(start, start + max_batch)))
        n = _batch_len(o)
        w = torch.as_tensor(sampler(o), dtype=torch.float32).reshape(n, *decoder.latent_shape)
        chunks.append(decoder(o, w).reshape(n, -1).cpu().numpy())
    per_state = np.concatenate(chunks).reshape(n_obs, n_samples, -1)
    entropies = [knn_entropy(a, k=k) for a in per_state]
    return float(np.mean(entropies))


def mode_coverage(
    final_positions: np.ndarray, goals: np.ndarray | Sequence[Sequence[float]], radius: float | None = None
) -> np.ndarray:
    """Fraction of trajectories per goal (paper App. B, Fig. 10).

    A trajectory counts for the goal whose region (distance ``< radius``) holds its final position; with
    ``radius=None`` it counts for the nearest goal. Fractions sum to 1 minus the share that reached no goal.

    :param final_positions: ``(N, dim)`` final positions of ``N`` trajectories
    :param goals: ``(G, dim)`` goal centres
    :param radius: goal-region radius, or ``None`` for nearest-goal assignment
    """
    pos = np.asarray(final_positions, dtype=np.float64)
    g = np.asarray(goals, dtype=np.float64)
    if pos.ndim != 2 or g.ndim != 2 or pos.shape[1] != g.shape[1]:
        raise ValueError(f"final_positions (N, dim) and goals (G, dim) must agree, got {pos.shape} and {g.shape}")
    if len(pos) == 0:
        raise ValueError("final_positions is empty")
    dist = np.linalg.norm(pos[:, None, :] - g[None, :, :], axis=-1)
    nearest = dist.argmin(axis=1)
    if radius is not None:
        nearest = np.where(dist.min(axis=1) < radius, nearest, -1)
    return np.array([np.mean(nearest == j) for j in range(len(g))])


# ---------------------------------------------------------------------------------------------------------------
# D3IL Avoiding (Jia et al. 2024): routes and behaviour entropy. The rows and splits are those of D3IL's
# ``ObstacleAvoidanceEnv.check_mode`` (ALRhub/d3il, environments/d3il/envs/gym_avoiding_env/gym_avoiding/envs/
# avoiding.py), the same as ``lpds_envs.envs.avoiding.LEVEL_Y`` / ``LEVEL_SPLITS`` (a test checks they agree; the
# two modules sit side by side in the layer contract and do not import each other).

AVOIDING_LEVEL_Y = (-0.1, 0.08, 0.26)
AVOIDING_LEVEL_SPLITS = ((0.5,), (0.425, 0.575), (0.35, 0.5, 0.65))
AVOIDING_LEVEL_WINDOW = 0.03
AVOIDING_N_ROUTES = 24


def avoiding_route(path: np.ndarray) -> int:
    """The Avoiding route (0..23) of an end-effector path, or -1 when it did not pass all three obstacle rows.

    D3IL's rule, applied to the positions in order: rows 1 and 2 are read at the first position within 0.03 of the
    row's y, row 3 at the first position with y at or past its row; the gap is counted from small x (row 1: 2 gaps
    split at x = 0.5; row 2: 3 split at 0.425, 0.575; row 3: 4 split at 0.35, 0.5, 0.65), and the route is
    ``12 * gap1 + 4 * gap2 + gap3``.

    :param path: positions ``(T, 2)``, or Avoiding observations ``(T, 4)`` (desired x, y, actual x, y: the actual
        position is used)
    """
    p = np.asarray(path, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] not in (2, 4) or len(p) == 0:
        raise ValueError(f"path must have shape (T, 2) or (T, 4) with T >= 1, got {p.shape}")
    x, y = p[:, -2], p[:, -1]
    gaps = []
    for level, (row_y, splits) in enumerate(zip(AVOIDING_LEVEL_Y, AVOIDING_LEVEL_SPLITS)):
        inside = (np.abs(y - row_y) <= AVOIDING_LEVEL_WINDOW) if level < 2 else (y >= row_y)
        if not inside.any():
            return -1
        gaps.append(int(np.searchsorted(np.asarray(splits), x[int(np.argmax(inside))], side="right")))
    return 12 * gaps[0] + 4 * gaps[1] + gaps[2]


def behaviour_entropy(
    modes: Sequence[int] | np.ndarray, success: Sequence[bool] | np.ndarray | None = None, n_modes: int = 24
) -> float:
    """D3IL's behaviour entropy ``-sum_b p(b) log_{n_modes} p(b)`` of the empirical distribution of the modes (routes)
    of the successful rollouts: 0 when every success takes the same route (or none succeeds), 1 when the
    successes are spread evenly over all ``n_modes`` (D3IL's ``mode_decoding``; Avoiding: 24 routes).

    :param modes: one mode label per rollout (negative = none)
    :param success: which rollouts succeeded (default: those with a mode label >= 0)
    :param n_modes: number of possible modes (the log base)
    """
    m = np.asarray(modes).reshape(-1)
    if n_modes < 2:
        raise ValueError(f"n_modes must be >= 2, got {n_modes}")
    ok = m >= 0 if success is None else np.asarray(success, dtype=bool).reshape(-1)
    if ok.shape != m.shape:
        raise ValueError(f"success has {ok.size} entries for {m.size} modes")
    kept = m[ok]
    if (kept < 0).any() or (kept >= n_modes).any():
        raise ValueError(f"successful rollouts must have modes in [0, {n_modes}), got {np.unique(kept)}")
    if kept.size == 0:
        return 0.0
    _, counts = np.unique(kept, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum() / np.log(n_modes)) + 0.0  # + 0.0: no -0.0 for a single mode
