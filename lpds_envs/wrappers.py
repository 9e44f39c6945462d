"""Gymnasium and SB3 wrappers that turn an environment plus a frozen decoder into a latent-action MDP.

One latent step: ``w`` (flat, clipped to ``latent_bound``) -> ``chunk = Phi(w; obs)`` -> up to ``Ta`` env steps
(stopping at termination or truncation) -> last observation, summed reward.

- :class:`ChunkedActionWrapper`: the action is a whole chunk ``(Ta, act_dim)``.
- :class:`LatentSteeringWrapper`: the action is a latent ``w``; single env.
- :class:`VecLatentSteeringWrapper`: SB3 ``VecEnvWrapper``, one batched decoder call for all sub-envs.
- :class:`LatentSteeringVectorWrapper`: the same over a Gymnasium ``VectorEnv``.

All three latent wrappers share :class:`LatentCodec` (validation, clipping, decoding), so for the same seeds
and latents they produce the same trajectories.

Unlike the DSRL reference code we never keep stepping a finished episode inside a chunk, and a chunk cut by
a time limit is reported as ``truncated=True`` (not ``terminated``), so SB3 bootstraps through time limits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec
from gymnasium.vector import VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from .decoders.base import Decoder

SUCCESS_KEYS = ("success", "is_success")


def _step_success(info: dict[str, Any]) -> bool | None:
    for key in SUCCESS_KEYS:
        if key in info:
            value = info[key]
            return bool(value) if isinstance(value, (bool, np.bool_, int, float)) else bool(np.any(value))
    return None


class ChunkedActionWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Execute an action chunk ``(Ta, act_dim)`` as up to ``Ta`` env steps.

    Stops early at termination or truncation, returns the last observation, the undiscounted sum of
    the rewards, ``info["executed_steps"]`` and, when the task reports it (``info["success"]`` or
    ``info["is_success"]``), ``info["success"]`` = success at any executed step. The rest of ``info`` is
    the last step's.

    :param env: an env with a ``Box`` action space
    :param chunk_size: Ta

    Example::

        >>> import gymnasium as gym, numpy as np, lpds_envs
        >>> env = ChunkedActionWrapper(gym.make("lpds/MultiGoal-v0"), chunk_size=4)
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(np.zeros((4, 2), np.float32))
        >>> info["executed_steps"]
        4
    """

    def __init__(self, env: gym.Env, chunk_size: int) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, chunk_size=chunk_size)
        gym.Wrapper.__init__(self, env)
        if not isinstance(env.action_space, spaces.Box):
            raise TypeError(f"ChunkedActionWrapper needs a Box action space, got {env.action_space}")
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size = int(chunk_size)
        box = env.action_space
        self.action_space = spaces.Box(
            np.broadcast_to(box.low, (self.chunk_size, *box.shape)).copy(),
            np.broadcast_to(box.high, (self.chunk_size, *box.shape)).copy(),
            dtype=box.dtype,
        )

    def step(self, action):
        chunk = np.asarray(action)
        expected = self.action_space.shape
        if chunk.shape != expected:
            if chunk.size == int(np.prod(expected)):
                chunk = chunk.reshape(expected)
            else:
                raise ValueError(f"action chunk has shape {chunk.shape}, expected {expected}")
        total, success, info = 0.0, None, {}
        terminated = truncated = False
        obs = None
        executed = 0
        for a in chunk:
            obs, reward, terminated, truncated, info = self.env.step(a)
            total += float(reward)
            executed += 1
            s = _step_success(info)
            if s is not None:
                success = bool(success) or s
            if terminated or truncated:
                break
        info = dict(info)
        info["executed_steps"] = executed
        if success is not None:
            info["success"] = success
        return obs, total, terminated, truncated, info


class LatentCodec:
    """The core shared by all latent wrappers: the flat latent space, input checks, clipping and decoding.

    :param decoder: a frozen :class:`~lpds_envs.decoders.Decoder`
    :param latent_bound: symmetric bound of the latent box (``None`` = unbounded)
    """

    def __init__(self, decoder: Decoder, latent_bound: float | None = 2.5) -> None:
        if not isinstance(decoder, Decoder):
            raise TypeError(
                f"decoder must be an lpds_envs.decoders.Decoder, got {type(decoder).__name__}; "
                "wrap a plain function with CallableDecoder(fn, latent_shape, action_shape)"
            )
        if latent_bound is not None and not (np.isfinite(latent_bound) and latent_bound > 0):
            raise ValueError(f"latent_bound must be a positive number or None, got {latent_bound}")
        self.decoder = decoder
        self.latent_bound = None if latent_bound is None else float(latent_bound)
        self.latent_dim = decoder.latent_dim
        b = np.inf if latent_bound is None else self.latent_bound
        self.action_space = spaces.Box(-b, b, shape=(self.latent_dim,), dtype=np.float32)

    def check(self, latents: Any, n: int | None) -> np.ndarray:
        """Validate latents and return float32 ``(n, latent_dim)`` (``n=None``: one latent, no batch axis)."""
        w = latents.detach().cpu().numpy() if isinstance(latents, torch.Tensor) else np.asarray(latents)
        if not np.issubdtype(w.dtype, np.floating):
            raise TypeError(f"latent has dtype {w.dtype}, expected a floating-point array (float32)")
        d = self.latent_dim
        if n is None:
            if w.size != d or (w.ndim != 1 and w.shape != self.decoder.latent_shape):
                raise ValueError(f"latent has shape {w.shape}, expected ({d},)")
        elif w.shape not in ((n, d), (n, *self.decoder.latent_shape)):
            raise ValueError(f"latents have shape {w.shape}, expected ({n}, {d}): one flat latent per sub-env")
        w = w.reshape(-1, d).astype(np.float32, copy=False)
        if not np.isfinite(w).all():
            raise ValueError("latent contains NaN or inf; latents must be finite")
        return w

    def clip(self, w: np.ndarray) -> np.ndarray:
        if self.latent_bound is None:
            return w.copy()  # never alias the caller's array in info["latent"]
        return np.clip(w, -self.latent_bound, self.latent_bound)

    def decode(self, obs: Any, latents: Any, n: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Check and clip ``latents``, decode them at ``obs`` (batched), return ``(w (n, d), chunks (n, Ta, A))``."""
        w = self.clip(self.check(latents, n))
        chunks = self.decoder(_to_batch(obs, single=n is None), torch.from_numpy(w))
        return w, chunks.detach().cpu().numpy()


def _to_batch(obs: Any, single: bool) -> Any:
    """Observation(s) -> float32 tensor (or dict of tensors), with a batch axis."""
    if isinstance(obs, dict):
        return {k: _to_batch(v, single) for k, v in obs.items()}
    arr = np.asarray(obs)
    t = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    if t.dtype == torch.float64:
        t = t.float()
    return t.unsqueeze(0) if single else t


class LatentSteeringWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Expose a frozen generative policy as a latent-action MDP: the action is the decoder's input noise.

    ``step(w)`` clips the flat latent ``w`` to ``[-latent_bound, latent_bound]``, decodes
    ``chunk = Phi(w; obs)`` and runs the chunk (see :class:`ChunkedActionWrapper`, added automatically when
    ``env`` takes single actions). ``info["latent"]`` is the clipped latent, ``info["decoded_action"]`` the
    decoded chunk. An episode's step count in raw env steps is the sum of ``info["executed_steps"]``.

    :param env: the task env (per-step ``Box`` actions, or already chunked)
    :param decoder: the frozen decoder (:class:`~lpds_envs.decoders.Decoder`)
    :param latent_bound: bound of the latent box; ``None`` = unbounded
    :param latent_subspace: ``None`` (default): the action is the full flat latent. Otherwise exact-prior subspace
        steering (:mod:`lpds_envs.subspace`): the action is a k-dim ``u`` (bounded by ``latent_bound``), the decoder
        gets ``z = P u + (I - P P^T) eps_full``, ``eps_full ~ N(0, I)``, so ``u ~ N(Delta, I_k)`` means
        ``z ~ N(P Delta, I)`` exactly. ``"chunk_constant"`` (one chunk-constant direction per used action dimension),
        a :class:`~lpds_envs.subspace.LatentSubspace` or a ``(D, k)`` orthonormal matrix. ``info["full_latent"]`` is
        ``z`` (flat); ``.decoder`` is then a :class:`~lpds_envs.subspace.SubspaceDecoder` (latent ``u``), so learners
        train on ``u`` unchanged. The complement noise has its own generator: ``reset(seed=s)`` restarts it (derived
        from ``s``, separate from the task's ``np_random``), ``reset()`` continues it, so seeded episodes repeat.

    Example::

        >>> import gymnasium as gym, lpds_envs
        >>> from lpds_envs.decoders import CallableDecoder
        >>> import torch
        >>> dec = CallableDecoder(lambda obs, w: torch.tanh(w), latent_shape=(2, 2), action_shape=(2, 2))
        >>> env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), dec, latent_bound=2.5)
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        >>> info["decoded_action"].shape, info["executed_steps"]
        ((2, 2), 2)
        >>> sub_env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), dec, latent_subspace="chunk_constant")
        >>> sub_env.action_space.shape  # one chunk-constant direction per action dimension
        (2,)
    """

    def __init__(
        self, env: gym.Env, decoder: Decoder, latent_bound: float | None = 2.5, latent_subspace: Any = None
    ) -> None:
        # no deepcopy: the recorded decoder is the frozen decoder itself (a copy of a pi0 would double its memory)
        gym.utils.RecordConstructorArgs.__init__(
            self, decoder=decoder, latent_bound=latent_bound, latent_subspace=latent_subspace, _disable_deepcopy=True
        )
        if latent_subspace is None:
            codec = LatentCodec(decoder, latent_bound)
        else:
            from .subspace import SubspaceCodec

            codec = SubspaceCodec(decoder, latent_subspace, latent_bound)
        shape = getattr(env.action_space, "shape", None)
        if shape == decoder.action_shape[1:]:
            env = ChunkedActionWrapper(env, decoder.chunk_size)
        elif shape != decoder.action_shape:
            raise ValueError(
                f"env action space has shape {shape}, but the decoder produces chunks of shape {decoder.action_shape}; "
                f"expected per-step actions of shape {decoder.action_shape[1:]}"
            )
        gym.Wrapper.__init__(self, env)
        self.codec = codec
        self.latent_subspace = None if latent_subspace is None else codec.subspace
        self.action_space = codec.action_space
        self._obs: Any = None
        #: set by the ``LPDS-*-v0`` entry point, which builds this wrapper itself: the registered spec alone then
        #: describes the env, so ``gym.make(env.spec)`` (as Gymnasium's ``check_env`` does) rebuilds it
        self.spec_from_entry_point = False

    @property
    def spec(self) -> EnvSpec | None:
        if self.spec_from_entry_point:
            # the ids' entry point adds ChunkedActionWrapper and this wrapper; recording them as additional
            # wrappers (with the decoder object as a kwarg) would make a re-make compare unequal specs
            return self.env.unwrapped.spec
        return super().spec

    @property
    def decoder(self) -> Decoder:
        return self.codec.decoder

    @property
    def latent_bound(self) -> float | None:
        return self.codec.latent_bound

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        if self.latent_subspace is not None:
            self.codec.seed(seed)
        self._obs = obs
        return obs, info

    def step(self, action):
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        w, chunks = self.codec.decode(self._obs, action, n=None)
        obs, reward, terminated, truncated, info = self.env.step(chunks[0])
        self._obs = obs
        info["latent"], info["decoded_action"] = w[0], chunks[0]
        if self.latent_subspace is not None:
            info["full_latent"] = self.codec.last_full_latent[0]
        return obs, reward, terminated, truncated, info


class VecLatentSteeringWrapper(VecEnvWrapper):
    """SB3 ``VecEnvWrapper``: latents for N sub-envs decoded in one batched decoder call.

    The sub-envs must take chunks, i.e. be :class:`ChunkedActionWrapper`s (``make_latent_vec_env`` builds
    this). With the same seeds and latents it reproduces N :class:`LatentSteeringWrapper`s exactly.

    :param venv: an SB3 VecEnv of chunked envs
    :param decoder: the frozen decoder
    :param latent_bound: bound of the latent box; ``None`` = unbounded
    :param latent_subspace: exact-prior subspace steering, as in :class:`LatentSteeringWrapper` (``None``: the full
        latent; ``"chunk_constant"``, a :class:`~lpds_envs.subspace.LatentSubspace` or a ``(D, k)`` matrix). Each
        sub-env has its own complement-noise stream: a reset that seeds sub-env ``i`` with ``s_i`` (SB3's
        ``venv.seed(s)`` gives ``s_i = s + i``, as ``make_latent_vec_env(seed=s)`` does) restarts stream ``i`` from
        ``s_i`` exactly as ``LatentSteeringWrapper.reset(seed=s_i)`` does, and automatic resets continue it, so
        sub-env ``i`` reproduces a single wrapper seeded with ``s_i``. ``infos[i]["full_latent"]`` is ``z``.
    """

    def __init__(
        self, venv: VecEnv, decoder: Decoder, latent_bound: float | None = 2.5, latent_subspace: Any = None
    ) -> None:
        if latent_subspace is None:
            codec = LatentCodec(decoder, latent_bound)
        else:
            from .subspace import SubspaceCodec

            codec = SubspaceCodec(decoder, latent_subspace, latent_bound, n_streams=venv.num_envs)
        if venv.action_space.shape != decoder.action_shape:
            raise ValueError(
                f"sub-envs take actions of shape {venv.action_space.shape}, but the decoder produces chunks of shape "
                f"{decoder.action_shape}; wrap each sub-env in ChunkedActionWrapper(env, {decoder.chunk_size}) "
                "or build the VecEnv with make_latent_vec_env"
            )
        super().__init__(venv, action_space=codec.action_space)
        self.codec = codec
        self.latent_subspace = None if latent_subspace is None else codec.subspace
        self._obs: Any = None
        self._pending: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None

    @property
    def decoder(self) -> Decoder:
        return self.codec.decoder

    @property
    def latent_bound(self) -> float | None:
        return self.codec.latent_bound

    def reset(self):
        if self.latent_subspace is not None:
            # the seeds this reset passes to the sub-envs (set by venv.seed(), consumed by the reset)
            pending = list(getattr(self.venv.unwrapped, "_seeds", None) or [None] * self.num_envs)
            self.codec.seed(pending if len(pending) == self.num_envs else [None] * self.num_envs)
        self._obs = self.venv.reset()
        return self._obs

    def step_async(self, actions: np.ndarray) -> None:
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        w, chunks = self.codec.decode(self._obs, actions, n=self.num_envs)
        full = self.codec.last_full_latent if self.latent_subspace is not None else None
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


class LatentSteeringVectorWrapper(VectorWrapper):
    """Gymnasium-native vector version: wraps a ``gymnasium.vector.VectorEnv`` of chunked envs.

    ``infos["latent"]`` and ``infos["decoded_action"]`` hold the whole batch.

    :param env: a VectorEnv whose sub-envs take chunks (:class:`ChunkedActionWrapper`)
    :param decoder: the frozen decoder
    :param latent_bound: bound of the latent box; ``None`` = unbounded
    """

    def __init__(self, env: VectorEnv, decoder: Decoder, latent_bound: float | None = 2.5) -> None:
        super().__init__(env)
        self.codec = LatentCodec(decoder, latent_bound)
        if env.single_action_space.shape != decoder.action_shape:
            raise ValueError(
                f"sub-envs take actions of shape {env.single_action_space.shape}, but the decoder produces chunks "
                f"of shape {decoder.action_shape}; wrap each sub-env in ChunkedActionWrapper"
            )
        self.single_action_space = self.codec.action_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._obs: Any = None

    @property
    def decoder(self) -> Decoder:
        return self.codec.decoder

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        obs, infos = self.env.reset(seed=seed, options=options)
        self._obs = obs
        return obs, infos

    def step(self, actions):
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        w, chunks = self.codec.decode(self._obs, actions, n=self.num_envs)
        obs, rewards, terminations, truncations, infos = self.env.step(chunks)
        infos = dict(infos)
        infos["latent"], infos["decoded_action"] = w, chunks
        self._obs = obs
        return obs, rewards, terminations, truncations, infos


def _resolve_target(
    env_id: Any, decoder: Decoder | None, latent_bound: Any, backbone: str | None, device: Any,
    env_kwargs: dict[str, Any],
) -> tuple[Any, Decoder, float | None, dict[str, Any]]:
    """``LPDS-*`` id -> (raw task id, shipped decoder unless one is given, task bound unless one is given, the raw
    task's ``gym.make`` defaults under ``env_kwargs``, as ``gym.make(id)`` builds it)."""
    from .registration import raw_task_kwargs, resolve_lpds_id

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
    return env_id, decoder, 2.5 if latent_bound == "default" else latent_bound, env_kwargs


def make_latent_vec_env(
    env_id: str | Callable[[], gym.Env],
    n_envs: int = 1,
    seed: int | None = None,
    decoder: Decoder | None = None,
    latent_bound: float | None | str = "default",
    backbone: str | None = None,
    device: str | torch.device = "cpu",
    env_kwargs: dict[str, Any] | None = None,
    vec_env_cls: type[VecEnv] | None = None,
    vec_env_kwargs: dict[str, Any] | None = None,
    monitor_dir: str | None = None,
    latent_subspace: Any = None,
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
        :class:`VecLatentSteeringWrapper`; sub-env ``i``'s complement noise is seeded with ``seed + i``
    """
    from functools import partial

    from stable_baselines3.common.env_util import make_vec_env

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
    return VecLatentSteeringWrapper(venv, decoder, latent_bound, latent_subspace=latent_subspace)


def make_latent_vector_env(
    env_id: str,
    num_envs: int = 1,
    decoder: Decoder | None = None,
    latent_bound: float | None | str = "default",
    backbone: str | None = None,
    device: str | torch.device = "cpu",
    vectorization_mode: str = "sync",
    **env_kwargs: Any,
) -> LatentSteeringVectorWrapper:
    """Gymnasium counterpart of :func:`make_latent_vec_env` (``gym.make_vec`` + one batched decoder)."""
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
    return LatentSteeringVectorWrapper(venv, decoder, latent_bound)
