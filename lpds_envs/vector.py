"""Batched latent-steering envs: one decoder call decodes the latents of all sub-envs.

- :class:`VecLatentSteeringWrapper`: an SB3 ``VecEnvWrapper`` (what the learners train on).
- :class:`LatentSteeringVectorWrapper`: the same over a Gymnasium ``VectorEnv``.
- :func:`make_latent_vec_env` / :func:`make_latent_vector_env`: build them like SB3's ``make_vec_env`` /
  ``gym.make_vec``, from an ``LPDS-*-v0`` id (shipped backbone) or any id plus ``decoder=``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecEnvWrapper

from .codec import DEFAULT_LATENT_BOUND
from .decoders.base import Decoder
from .registration import default_subspace, raw_task_kwargs, resolve_lpds_id
from .subspace import SubspaceCodec, make_codec
from .wrappers import ChunkedActionWrapper


class VecLatentSteeringWrapper(VecEnvWrapper):
    """SB3 ``VecEnvWrapper``: latents for N sub-envs decoded in one batched decoder call.

    The sub-envs must take chunks, i.e. be :class:`ChunkedActionWrapper` envs (``make_latent_vec_env`` builds
    this). With the same seeds and latents it reproduces N :class:`LatentSteeringWrapper` envs exactly.

    :param venv: an SB3 VecEnv of chunked envs
    :param decoder: the frozen decoder
    :param latent_bound: bound of the latent box; ``None`` = unbounded
    :param latent_subspace: exact-prior subspace steering, as in :class:`LatentSteeringWrapper` (``None``: the full
        latent; ``"chunk_constant"``, a :class:`~lpds_envs.subspace.LatentSubspace` or a ``(D, k)`` matrix). Each
        sub-env has its own complement-noise stream: a reset that seeds sub-env ``i`` with ``s_i`` (SB3's
        ``seed(s)`` on this wrapper gives ``s_i = s + i``, as ``make_latent_vec_env(seed=s)`` does) restarts stream ``i`` from
        ``s_i`` exactly as ``LatentSteeringWrapper.reset(seed=s_i)`` does, and automatic resets continue it, so
        sub-env ``i`` reproduces a single wrapper seeded with ``s_i``. ``infos[i]["full_latent"]`` is ``z``.
    """

    action_space: spaces.Box  # the latent box

    def __init__(
        self,
        venv: VecEnv,
        decoder: Decoder,
        latent_bound: float | None = DEFAULT_LATENT_BOUND,
        latent_subspace: Any = None,
    ) -> None:
        codec = make_codec(decoder, latent_bound, latent_subspace, n_streams=venv.num_envs)
        if venv.action_space.shape != decoder.action_shape:
            raise ValueError(
                f"sub-envs take actions of shape {venv.action_space.shape}, but the decoder produces chunks of shape "
                f"{decoder.action_shape}; wrap each sub-env in ChunkedActionWrapper(env, {decoder.chunk_size}) "
                "or build the VecEnv with make_latent_vec_env"
            )
        super().__init__(venv, action_space=codec.action_space)
        self.codec = codec
        self.metadata = _latent_metadata(getattr(venv, "metadata", {}), decoder)  # VecVideoRecorder reads render_fps
        self.latent_subspace = None if latent_subspace is None else cast(SubspaceCodec, codec).subspace
        self._obs: Any = None
        self._pending: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
        # the seeds of the next reset (not _reset_seeds, which would shadow that VecEnv method)
        self._next_reset_seeds: list[int | None] = [None] * self.num_envs

    @property
    def decoder(self) -> Decoder:
        return self.codec.decoder

    @property
    def latent_bound(self) -> float | None:
        return self.codec.latent_bound

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed the sub-envs' next reset (SB3: sub-env ``i`` gets ``seed + i``) and, with a subspace, the complement
        noise streams of that reset."""
        seeds = list(self.venv.seed(seed))
        self._next_reset_seeds = seeds if len(seeds) == self.num_envs else [None] * self.num_envs
        return seeds

    def reset(self):
        if self.latent_subspace is not None:
            # the seeds this reset passes to the sub-envs (recorded by seed(), consumed by this reset)
            cast(SubspaceCodec, self.codec).seed(self._next_reset_seeds)
        self._next_reset_seeds = [None] * self.num_envs
        self._obs = self.venv.reset()
        return self._obs

    def step_async(self, actions: np.ndarray) -> None:
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        w, chunks = self.codec.decode(self._obs, actions, n=self.num_envs)
        full = cast(SubspaceCodec, self.codec).last_full_latent if self.latent_subspace is not None else None
        self._pending = (w, chunks, full)
        self.venv.step_async(chunks)

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        w, chunks, full = self._pending
        for i, info in enumerate(infos):
            info["latent"], info["decoded_action"] = w[i], chunks[i]
            if full is not None:
                info["full_latent"] = full[i]
        self._obs = obs
        return obs, rewards, dones, infos


def _latent_metadata(metadata: dict[str, Any], decoder: Decoder) -> dict[str, Any]:
    """The raw envs' metadata with ``render_fps`` per latent step (one rendered frame per chunk: real-time videos)."""
    metadata = dict(metadata)
    if metadata.get("render_fps") is not None:
        metadata["render_fps"] = metadata["render_fps"] / decoder.action_shape[0]
    return metadata


class LatentSteeringVectorWrapper(VectorWrapper):
    """Gymnasium-native vector version: wraps a ``gymnasium.vector.VectorEnv`` of chunked envs.

    ``infos["latent"]`` and ``infos["decoded_action"]`` hold the whole batch (and ``infos["full_latent"]`` the
    decoder's latents ``z`` with a subspace).

    :param env: a VectorEnv whose sub-envs take chunks (:class:`ChunkedActionWrapper`)
    :param decoder: the frozen decoder
    :param latent_bound: bound of the latent box; ``None`` = unbounded
    :param latent_subspace: exact-prior subspace steering, as in :class:`VecLatentSteeringWrapper`: sub-env ``i``
        has its own complement-noise stream, restarted from ``s_i`` by a reset that seeds it with ``s_i``
        (``reset(seed=s)`` seeds sub-env ``i`` with ``s + i``, as Gymnasium's vector envs do)
    """

    def __init__(
        self,
        env: VectorEnv,
        decoder: Decoder,
        latent_bound: float | None = DEFAULT_LATENT_BOUND,
        latent_subspace: Any = None,
    ) -> None:
        super().__init__(env)
        self.codec = make_codec(decoder, latent_bound, latent_subspace, n_streams=env.num_envs)
        self.latent_subspace = None if latent_subspace is None else cast(SubspaceCodec, self.codec).subspace
        if env.single_action_space.shape != decoder.action_shape:
            raise ValueError(
                f"sub-envs take actions of shape {env.single_action_space.shape}, but the decoder produces chunks "
                f"of shape {decoder.action_shape}; wrap each sub-env in ChunkedActionWrapper"
            )
        self.single_action_space = self.codec.action_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.metadata = _latent_metadata(env.metadata, decoder)
        self._obs: Any = None
        self._autoreset = np.zeros(self.num_envs, dtype=bool)  # sub-envs that the next step resets

    @property
    def decoder(self) -> Decoder:
        return self.codec.decoder

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        # VectorEnv.reset is typed seed: int | None; Sync/AsyncVectorEnv take a list of seeds too
        obs, infos = self.env.reset(seed=seed, options=options)  # type: ignore[arg-type]
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        if self.latent_subspace is not None:  # the seeds the sub-envs got (Gymnasium: seed + i for an int)
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else seed
            cast(SubspaceCodec, self.codec).seed([None] * self.num_envs if seeds is None else list(seeds))
        self._obs = obs
        return obs, infos

    def step(self, actions):
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        if self.latent_subspace is None:
            w, chunks = self.codec.decode(self._obs, actions, n=self.num_envs)
        else:
            # sub-envs that ended last step are reset by this one and ignore their action (Gymnasium's next-step
            # autoreset): their complement-noise streams must not advance, as a single env's would not
            rngs = cast(SubspaceCodec, self.codec).rngs
            kept = {i: rngs[i].bit_generator.state for i in np.flatnonzero(self._autoreset)}
            w, chunks = self.codec.decode(self._obs, actions, n=self.num_envs)
            for i, state in kept.items():
                rngs[i].bit_generator.state = state
        obs, rewards, terminations, truncations, infos = self.env.step(chunks)
        infos = dict(infos)
        infos["latent"], infos["decoded_action"] = w, chunks
        if self.latent_subspace is not None:
            infos["full_latent"] = cast(SubspaceCodec, self.codec).last_full_latent
        mode = self.metadata.get("autoreset_mode")  # absent before Gymnasium 1.1: next-step autoreset
        if mode is None or getattr(mode, "value", mode) == "NextStep":
            self._autoreset = np.logical_or(terminations, truncations)
        self._obs = obs
        return obs, rewards, terminations, truncations, infos


def _resolve_target(
    env_id: Any,
    decoder: Decoder | None,
    latent_bound: Any,
    backbone: str | None,
    device: Any,
    env_kwargs: dict[str, Any],
) -> tuple[Any, Decoder, float | None, dict[str, Any]]:
    """``LPDS-*`` id -> (raw task id, shipped decoder unless one is given, task bound unless one is given, the raw
    task's ``gym.make`` defaults under ``env_kwargs``, as ``gym.make(id)`` builds it)."""
    resolved = (
        resolve_lpds_id(env_id, backbone=backbone, device=device, load_decoder=decoder is None)
        if isinstance(env_id, str)
        else None
    )
    if resolved is not None:
        env_kwargs = {**raw_task_kwargs(env_id), **env_kwargs}
        env_id, task_decoder, task_bound = resolved
        decoder = decoder if decoder is not None else task_decoder
        latent_bound = task_bound if latent_bound == "default" else latent_bound
    if decoder is None:
        raise ValueError(f"{env_id!r} is not an LPDS-*-v0 id; pass decoder= (the frozen policy to steer)")
    return env_id, decoder, DEFAULT_LATENT_BOUND if latent_bound == "default" else latent_bound, env_kwargs


def make_latent_vec_env(
    env_id: str | Callable[[], gym.Env],
    n_envs: int = 1,
    seed: int | None = None,
    decoder: Decoder | None = None,
    latent_bound: float | None | str = "default",
    backbone: str | None = None,
    device: str | torch.device = "cpu",
    env_kwargs: dict[str, Any] | None = None,
    vec_env_cls: type[DummyVecEnv] | type[SubprocVecEnv] | None = None,
    vec_env_kwargs: dict[str, Any] | None = None,
    monitor_dir: str | None = None,
    latent_subspace: Any = "default",
) -> VecLatentSteeringWrapper:
    """Build a batched latent VecEnv like SB3's ``make_vec_env``.

    For an ``LPDS-*-v0`` id the raw task and its shipped backbone are used (``backbone`` picks one, the
    task's ``latent_bound`` is the default); for any other id or env factory pass ``decoder=``. Each sub-env
    is ``ChunkedActionWrapper(Monitor(raw_env))``: the Monitor counts raw env steps.

    :param env_id: an ``LPDS-*-v0`` id, a raw Gymnasium id, or a callable returning an env
    :param n_envs: number of sub-envs
    :param seed: sub-env ``i`` is reset with ``seed + i`` (as SB3)
    :param decoder: the frozen decoder (required unless ``env_id`` is an LPDS id)
    :param latent_bound: latent box bound; ``"default"`` takes the LPDS task's (2.5 otherwise)
    :param vec_env_cls: ``DummyVecEnv`` (default) or ``SubprocVecEnv``
    :param latent_subspace: exact-prior subspace steering (e.g. ``"chunk_constant"``), see
        :class:`VecLatentSteeringWrapper`; sub-env ``i``'s complement noise is seeded with ``seed + i``;
        ``"default"``: an ``LPDS-*`` task's own (:func:`~lpds_envs.registration.default_subspace`), else ``None``
    """
    latent_subspace = default_subspace(env_id, latent_subspace)
    env_id, decoder, latent_bound, env_kwargs = _resolve_target(
        env_id, decoder, latent_bound, backbone, device, dict(env_kwargs or {})
    )
    venv = make_vec_env(
        env_id,
        n_envs=n_envs,
        seed=seed,
        env_kwargs=env_kwargs,
        vec_env_cls=vec_env_cls,
        vec_env_kwargs=vec_env_kwargs,
        monitor_dir=monitor_dir,
        wrapper_class=partial(ChunkedActionWrapper, chunk_size=decoder.chunk_size),
    )
    wrapped = VecLatentSteeringWrapper(venv, decoder, latent_bound, latent_subspace=latent_subspace)
    if seed is not None:
        wrapped.seed(seed)  # the same seeds make_vec_env gave the sub-envs, now also known to the wrapper
    return wrapped


def make_latent_vector_env(
    env_id: str,
    num_envs: int = 1,
    decoder: Decoder | None = None,
    latent_bound: float | None | str = "default",
    backbone: str | None = None,
    device: str | torch.device = "cpu",
    vectorization_mode: str = "sync",
    latent_subspace: Any = "default",
    **env_kwargs: Any,
) -> LatentSteeringVectorWrapper:
    """Gymnasium counterpart of :func:`make_latent_vec_env` (``gym.make_vec`` + one batched decoder).

    ``gym.make_vec("LPDS-<Task>-v0", num_envs=N)`` builds this too (the ids' ``vector_entry_point``,
    :func:`make_steering_vector_env`).

    :param env_id: an ``LPDS-*-v0`` id (shipped backbone), or any id plus ``decoder=``
    :param num_envs: number of sub-envs
    :param vectorization_mode: ``"sync"`` or ``"async"``, how the raw sub-envs run (decoding is batched either way)
    :param latent_subspace: exact-prior subspace steering, see :class:`LatentSteeringVectorWrapper` (``"default"``:
        an ``LPDS-*`` task's own, else ``None``)
    :param env_kwargs: passed to ``gym.make`` of the raw task (over an LPDS task's defaults)
    """
    latent_subspace = default_subspace(env_id, latent_subspace)
    env_id, decoder, latent_bound, env_kwargs = _resolve_target(
        env_id, decoder, latent_bound, backbone, device, env_kwargs
    )
    chunk = decoder.chunk_size
    venv = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode=vectorization_mode,
        wrappers=[lambda e: ChunkedActionWrapper(e, chunk)],
        **env_kwargs,
    )
    return LatentSteeringVectorWrapper(venv, decoder, latent_bound, latent_subspace=latent_subspace)


def make_steering_vector_env(
    task: str,
    num_envs: int = 1,
    backbone: str | None = None,
    latent_bound: float | None | str = "default",
    device: str | torch.device = "cpu",
    decoder: Decoder | None = None,
    latent_subspace: Any = "default",
    vectorization: str = "sync",
    **task_kwargs: Any,
) -> LatentSteeringVectorWrapper:
    """``vector_entry_point`` of every ``LPDS-*-v0`` id: ``gym.make_vec("LPDS-<Task>-v0", num_envs=N, **kwargs)``
    decodes the latents of all N sub-envs in one batched decoder call (:class:`LatentSteeringVectorWrapper`), with the
    keyword arguments of ``gym.make`` (:func:`~lpds_envs.registration.make_steering_env`). With the same seeds and
    latents, sub-env ``i`` follows ``gym.make("LPDS-<Task>-v0")`` reset with ``seed + i``.

    ``gym.make_vec(..., vectorization_mode="sync")`` (or ``"async"``) instead vectorizes N single envs, each
    decoding on its own; that mode is also the one that accepts ``wrappers=``.

    :param task: key of :data:`~lpds_envs.registration.TASKS`
    :param num_envs: number of sub-envs
    :param vectorization: ``"sync"`` or ``"async"``, how the raw sub-envs run
    """
    return make_latent_vector_env(
        f"LPDS-{task}-v0",
        num_envs=num_envs,
        decoder=decoder,
        latent_bound=latent_bound,
        backbone=backbone,
        device=device,
        vectorization_mode=vectorization,
        latent_subspace=latent_subspace,
        **task_kwargs,
    )
