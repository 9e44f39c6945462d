"""Exact-prior subspace steering: act on a k-dim latent ``u``, feed the decoder ``z = P u + (I - P P^T) eps``.

A decoder latent can be large (pi0: 50 x 32 = 1600 numbers), a poor action space for RL. Repeating a short noise
over the chunk (what public pi0 steering forks do) feeds the model noise that is no longer ``N(0, I)``. Instead,
fix a lift ``P`` (``D x k``, orthonormal columns) and complete ``P u`` with fresh prior noise in the orthogonal
complement::

    z = P u + (I - P P^T) eps_full,    eps_full ~ N(0, I_D)

If ``u ~ N(Delta, I_k)`` then ``z ~ N(P Delta, I_D)`` *exactly* (``P u`` and the complement noise are independent
Gaussians on orthogonal subspaces whose covariances add up to ``P P^T + (I - P P^T) = I``). The frozen model always
sees its training prior, shifted by ``P Delta``, and ``KL(N(P Delta, I) || N(0, I)) = ||Delta||^2 / 2`` still holds,
so the LP-DS trust region keeps its meaning. ``P^T z = u``: the agent's latent is recovered from what was decoded.

- :class:`LatentSubspace`: the lift ``P`` (default for chunked decoders: :meth:`LatentSubspace.chunk_constant`, one
  chunk-constant direction per used action dimension).
- :class:`SubspaceDecoder`: a :class:`~lpds_envs.decoders.Decoder` with latent ``u`` of shape ``(k,)``; the
  complement noise is passed in, or drawn from torch's global RNG (what learners' training decodes use).
- :class:`SubspaceCodec`: the :class:`~lpds_envs.codec.LatentCodec` of
  ``LatentSteeringWrapper(..., latent_subspace=...)``; it draws the complement noise from its own generator, seeded
  by ``reset(seed=...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .codec import DEFAULT_LATENT_BOUND, LatentCodec, check_finite_chunks, check_finite_obs, to_batch
from .decoders.base import Decoder

#: spawn key separating the complement-noise stream from every other use of an episode seed
COMPLEMENT_STREAM = 0x5EED5


class LatentSubspace:
    """A fixed lift ``P`` (``D x k``, orthonormal columns) from a k-dim steering latent into a decoder's latent.

    :param basis: ``(D, k)`` matrix with orthonormal columns (checked to 1e-4), or any full-column-rank matrix
        with ``orthonormalize=True`` (then its QR ``Q`` factor is used)
    :param latent_shape: shape of the decoder latent ``D`` belongs to (default ``(D,)``)
    :param orthonormalize: replace ``basis`` by an orthonormal basis of its column span

    Example::

        >>> import torch
        >>> from lpds_envs.subspace import LatentSubspace
        >>> sub = LatentSubspace.chunk_constant((50, 32), dims=range(7))   # pi0: 7 used action dims
        >>> sub.dim, sub.latent_dim
        (7, 1600)
        >>> z = sub.lift(torch.zeros(3, 7), torch.randn(3, 1600))         # prior noise outside span(P)
        >>> torch.allclose(sub.project(z), torch.zeros(3, 7), atol=1e-5)
        True
    """

    def __init__(self, basis: Any, latent_shape: Sequence[int] | None = None, orthonormalize: bool = False) -> None:
        p = torch.as_tensor(np.asarray(basis, dtype=np.float64))
        if p.ndim != 2 or p.shape[1] < 1 or p.shape[1] > p.shape[0]:
            raise ValueError(f"basis must be a (D, k) matrix with 1 <= k <= D, got shape {tuple(p.shape)}")
        if orthonormalize:
            q, r = torch.linalg.qr(p)
            if bool((r.diagonal().abs() < 1e-8).any()):
                raise ValueError("basis columns are linearly dependent; cannot orthonormalize them")
            p = q
        err = float((p.T @ p - torch.eye(p.shape[1], dtype=p.dtype)).abs().max())
        if err > 1e-4:
            raise ValueError(
                f"basis columns are not orthonormal (max |P^T P - I| = {err:.3g}); pass orthonormalize=True "
                "to use an orthonormal basis of their span"
            )
        self.latent_shape = (p.shape[0],) if latent_shape is None else tuple(int(s) for s in latent_shape)
        if int(np.prod(self.latent_shape)) != p.shape[0]:
            raise ValueError(f"basis has {p.shape[0]} rows, but latent_shape {self.latent_shape} has a different size")
        self.basis = p.float().contiguous()

    @property
    def dim(self) -> int:
        """k, the size of the steering latent ``u``."""
        return int(self.basis.shape[1])

    @property
    def latent_dim(self) -> int:
        """D, the size of the decoder latent ``z``."""
        return int(self.basis.shape[0])

    @classmethod
    def chunk_constant(cls, latent_shape: Sequence[int], dims: Sequence[int] | None = None) -> LatentSubspace:
        """One direction per action dimension ``j`` in ``dims``: ``1 / sqrt(T)`` at every chunk step of column ``j``.

        ``u_j`` then moves the noise of action dimension ``j`` by ``u_j / sqrt(T)`` at every step of the chunk,
        while each step keeps its own prior noise around that shift.

        :param latent_shape: ``(T, A)``, the decoder's latent shape (pi0: ``(chunk_size, max_action_dim)``)
        :param dims: the steered action dimensions (default all ``A``)
        """
        shape = tuple(int(s) for s in latent_shape)
        if len(shape) != 2:
            raise ValueError(f"chunk_constant needs a (T, A) latent, got shape {shape}; pass an explicit basis")
        steps, width = shape
        dims = list(range(width)) if dims is None else [int(d) for d in dims]
        if not dims or len(set(dims)) != len(dims) or not all(0 <= d < width for d in dims):
            raise ValueError(f"dims must be distinct indices in [0, {width}), got {dims}")
        basis = np.zeros((steps, width, len(dims)))
        for col, d in enumerate(dims):
            basis[:, d, col] = 1.0 / np.sqrt(steps)
        return cls(basis.reshape(steps * width, len(dims)), latent_shape=shape)

    @classmethod
    def for_decoder(cls, decoder: Decoder) -> LatentSubspace:
        """The default lift of a chunked decoder: :meth:`chunk_constant` over its used action dimensions.

        The used dimensions are ``decoder.used_action_dims`` when the decoder has it (a
        :class:`~lpds_envs.decoders.Pi0Decoder` uses the first ``action_dim`` of ``max_action_dim``), else all.
        """
        dims = getattr(decoder, "used_action_dims", None)
        return cls.chunk_constant(decoder.latent_shape, dims)

    def lift(self, u: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``z = P u + (I - P P^T) eps`` for batches ``u (B, k)`` and ``eps (B, D)``; returns ``(B, D)``."""
        p = self.basis.to(device=u.device)
        eps = eps.to(device=u.device, dtype=p.dtype)
        return u.to(p.dtype) @ p.T + eps - (eps @ p) @ p.T

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """``P^T z`` for a batch ``z (B, D)``: the steering latent a decoder latent carries."""
        return z.reshape(z.shape[0], -1).to(self.basis) @ self.basis

    def __repr__(self) -> str:
        return f"LatentSubspace(k={self.dim}, latent_shape={self.latent_shape})"


class RepeatedNoise(LatentSubspace):
    """DSRL-pi0's parameterisation, for comparison: the agent's latent is the noise of the first ``steps`` chunk steps
    ``u (steps, A)``; the last of those rows is repeated over the rest of the chunk, and nothing else is drawn.

    ``z = R u`` with ``z[t] = u[min(t, steps - 1)]``. Unlike :class:`LatentSubspace`, this is *not* exact-prior:
    with ``u ~ N(0, I)`` the repeated rows of ``z`` are perfectly correlated, so the frozen model is fed noise it never
    saw in training, and ``||Delta||^2`` in ``u`` is not the KL of the decoder's latent. It is here so that users
    can compare the public DSRL-pi0 code's choice (its agent outputs a few rows of pi0's 50 x 32 noise and repeats the
    last) with exact-prior subspace steering on the same backbone. :meth:`project` is the least-squares inverse
    (the mean of the repeated rows).

    :param latent_shape: ``(T, A)``, the decoder's latent shape
    :param steps: how many leading chunk steps the agent sets (1 = one ``A``-dim noise repeated over the chunk)
    """

    def __init__(self, latent_shape: Sequence[int], steps: int = 1) -> None:
        shape = tuple(int(s) for s in latent_shape)
        if len(shape) != 2:
            raise ValueError(f"repeated noise needs a (T, A) latent, got shape {shape}")
        horizon, width = shape
        if not 1 <= int(steps) <= horizon:
            raise ValueError(f"steps must be in [1, {horizon}] for a chunk of {horizon}, got {steps}")
        self.steps = int(steps)
        rows = np.minimum(np.arange(horizon), self.steps - 1)
        lift = np.zeros((horizon, width, self.steps, width), dtype=np.float64)
        for t, r in enumerate(rows):
            lift[t, :, r, :] = np.eye(width)
        self.latent_shape = shape
        self.basis = torch.as_tensor(lift.reshape(horizon * width, self.steps * width)).float().contiguous()
        self._pinv = torch.linalg.pinv(self.basis.double()).float()

    def lift(self, u: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``z = R u`` for a batch ``u (B, steps * A)``; ``eps`` is ignored (nothing outside ``R u`` is drawn)."""
        r = self.basis.to(device=u.device)
        return u.to(r.dtype) @ r.T

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """The ``u`` whose lift is nearest to ``z`` (for a lifted ``z``, exactly its ``u``)."""
        return z.reshape(z.shape[0], -1).to(self._pinv) @ self._pinv.T

    def __repr__(self) -> str:
        return f"RepeatedNoise(steps={self.steps}, latent_shape={self.latent_shape})"


#: the named parameterisations ``latent_subspace=`` accepts
SUBSPACE_NAMES = ("chunk_constant", "repeat")


def resolve_subspace(latent_subspace: Any, decoder: Decoder) -> LatentSubspace:
    """``"chunk_constant"`` -> :meth:`LatentSubspace.for_decoder`; ``"repeat"`` -> :class:`RepeatedNoise` with one
    row; a matrix -> :class:`LatentSubspace`; checked against the decoder's latent."""
    if isinstance(latent_subspace, str):
        if latent_subspace not in SUBSPACE_NAMES:
            raise ValueError(
                f"latent_subspace must be one of {SUBSPACE_NAMES}, a LatentSubspace or a (D, k) matrix, got "
                f"{latent_subspace!r}"
            )
        sub: LatentSubspace
        if latent_subspace == "repeat":
            sub = RepeatedNoise(decoder.latent_shape, steps=1)
        else:
            sub = LatentSubspace.for_decoder(decoder)
    elif isinstance(latent_subspace, LatentSubspace):
        sub = latent_subspace
    else:
        sub = LatentSubspace(latent_subspace)
    if sub.latent_dim != decoder.latent_dim:
        raise ValueError(
            f"latent_subspace lifts into {sub.latent_dim} dims, but the decoder's latent {decoder.latent_shape} has "
            f"{decoder.latent_dim}"
        )
    return sub


class SubspaceDecoder(Decoder):
    """``u -> Phi(P u + (I - P P^T) eps; s)``: a decoder whose latent is the k-dim steering latent ``u``.

    Deterministic given ``complement_noise``; without it, ``eps ~ N(0, I_D)`` comes from torch's global RNG (how a
    learner's training decodes sample it). ``u ~ N(0, I_k)`` then gives exactly the base decoder's prior.

    :param decoder: the frozen base decoder
    :param subspace: the lift (``"chunk_constant"``, a :class:`LatentSubspace` or a ``(D, k)`` matrix)
    """

    def __init__(self, decoder: Decoder, subspace: Any = "chunk_constant") -> None:
        if not isinstance(decoder, Decoder):
            raise TypeError(f"decoder must be an lpds_envs.decoders.Decoder, got {type(decoder).__name__}")
        sub = resolve_subspace(subspace, decoder)
        super().__init__((sub.dim,), decoder.action_shape, decoder.obs_shape)
        self.base, self.subspace = decoder, sub

    @property
    def device(self) -> torch.device:
        return self.base.device

    def full_latent(self, u: Any, complement_noise: Any = None) -> torch.Tensor:
        """The decoder latent ``z (B, *base.latent_shape)`` for steering latents ``u (B, k)``."""
        u_t = self.check_latent(u)
        if complement_noise is None:
            eps = torch.randn((u_t.shape[0], self.subspace.latent_dim), device=u_t.device)
        else:
            eps = self.base.check_latent(complement_noise, batch_size=u_t.shape[0]).reshape(u_t.shape[0], -1)
        return self.subspace.lift(u_t, eps).reshape(u_t.shape[0], *self.base.latent_shape)

    def forward(self, obs: Any, w: Any, complement_noise: Any = None) -> torch.Tensor:
        """Decode steering latents ``w = u (B, k)`` at ``obs``; ``complement_noise (B, *base.latent_shape)`` optional."""
        return self.base(obs, self.full_latent(w, complement_noise))


class SubspaceCodec(LatentCodec):
    """The codec of ``LatentSteeringWrapper(..., latent_subspace=...)`` (and of the batched wrappers): clips ``u``,
    lifts it, decodes.

    Complement noise comes from ``numpy`` generators owned by the codec, one stream per (sub-)env: :meth:`seed`
    (called by the wrapper's ``reset(seed=s)``) restarts stream ``i`` from
    ``SeedSequence(s_i, spawn_key=(COMPLEMENT_STREAM,))``, and a reset without a seed continues it, exactly like an
    env's ``np_random``. Each step draws one latent's worth of noise from each stream (row ``i`` of a batch from
    stream ``i``), so a batched wrapper whose sub-env ``i`` is reset with seed ``s_i`` draws exactly what a single
    wrapper reset with ``s_i`` draws. The task's own random stream is never touched, so switching the subspace on
    does not change the task's initial states, and ``reset(seed=s)`` + the same actions reproduce an episode bit for
    bit. Before any seed, every stream starts from fresh OS entropy.

    :param decoder: the frozen base decoder
    :param latent_subspace: ``"chunk_constant"``, a :class:`LatentSubspace` or a ``(D, k)`` matrix
    :param latent_bound: bound of the box of ``u`` (``None`` = unbounded)
    :param n_streams: number of complement-noise streams: 1 for a single env, ``num_envs`` for a batched wrapper
    """

    decoder: SubspaceDecoder

    def __init__(
        self,
        decoder: Decoder,
        latent_subspace: Any,
        latent_bound: float | None = DEFAULT_LATENT_BOUND,
        n_streams: int = 1,
    ) -> None:
        super().__init__(SubspaceDecoder(decoder, latent_subspace), latent_bound)
        if int(n_streams) < 1:
            raise ValueError(f"n_streams must be >= 1, got {n_streams}")
        self.rngs: list[np.random.Generator] = [np.random.default_rng() for _ in range(int(n_streams))]
        self.last_full_latent: np.ndarray | None = None

    @property
    def subspace(self) -> LatentSubspace:
        return self.decoder.subspace

    @property
    def rng(self) -> np.random.Generator:
        """The complement-noise generator of a single env (stream 0)."""
        return self.rngs[0]

    def seed(self, seed: int | None | Sequence[int | None]) -> None:
        """Restart complement-noise streams: an int (or ``None``) for a single stream, else one entry per stream.

        ``None`` entries keep their stream's current state.
        """
        seeds = [seed] if seed is None or isinstance(seed, (int, np.integer)) else list(seed)
        if len(seeds) != len(self.rngs):
            raise ValueError(f"got {len(seeds)} complement-noise seeds for {len(self.rngs)} streams (one per env)")
        for i, s in enumerate(seeds):
            if s is not None:
                self.rngs[i] = complement_rng(int(s))

    def decode(self, obs: Any, latents: Any, n: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Check and clip ``u``, lift it with fresh complement noise, decode; ``last_full_latent`` keeps ``z``."""
        u = self.clip(self.check(latents, n))
        check_finite_obs(obs)
        if u.shape[0] != len(self.rngs):
            raise ValueError(f"{u.shape[0]} latents for {len(self.rngs)} complement-noise streams (one per env)")
        d = self.subspace.latent_dim
        eps = np.stack([rng.standard_normal(d, dtype=np.float32) for rng in self.rngs])
        z = self.decoder.full_latent(torch.from_numpy(u), torch.from_numpy(eps))
        chunks = self.decoder.base(to_batch(obs, single=n is None), z)
        self.last_full_latent = z.reshape(u.shape[0], -1).cpu().numpy()
        return u, check_finite_chunks(chunks.detach().cpu().numpy())


def complement_rng(seed: int) -> np.random.Generator:
    """The complement-noise generator of episode seed ``seed`` (independent of the task's ``np_random``)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=(COMPLEMENT_STREAM,))))


def make_codec(
    decoder: Decoder, latent_bound: float | None = DEFAULT_LATENT_BOUND, latent_subspace: Any = None, n_streams: int = 1
) -> LatentCodec:
    """The codec of a latent wrapper: the full latent (``latent_subspace=None``) or exact-prior subspace steering."""
    if latent_subspace is None:
        return LatentCodec(decoder, latent_bound)
    return SubspaceCodec(decoder, latent_subspace, latent_bound, n_streams=n_streams)
