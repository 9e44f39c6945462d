"""Gymnasium wrappers that turn an environment plus a frozen decoder into a latent-action MDP.

One latent step: ``w`` (flat, clipped to ``latent_bound``) -> ``chunk = Phi(w; obs)`` -> up to ``Ta`` env steps
(stopping at termination or truncation) -> last observation, summed reward.

- :class:`ChunkedActionWrapper`: the action is a whole chunk ``(Ta, act_dim)``.
- :class:`LatentSteeringWrapper`: the action is a latent ``w``; single env.

The batched versions (SB3 ``VecEnv`` and Gymnasium ``VectorEnv``) are in :mod:`lpds_envs.vector`. All latent
wrappers share one :class:`~lpds_envs.codec.LatentCodec` (validation, clipping, decoding), so for the same seeds
and latents they produce the same trajectories.

Unlike the DSRL reference code we never keep stepping a finished episode inside a chunk, and a chunk cut by
a time limit is reported as ``truncated=True`` (not ``terminated``), so SB3 bootstraps through time limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec

from .codec import DEFAULT_LATENT_BOUND
from .decoders.base import Decoder
from .subspace import SubspaceCodec, make_codec

SUCCESS_KEYS = ("success", "is_success")


def _step_success(info: dict[str, Any]) -> bool | None:
    for key in SUCCESS_KEYS:
        if key in info:
            value = info[key]
            return bool(value) if isinstance(value, (bool, np.bool_, int, float)) else bool(np.any(value))
    return None


def executed_steps(infos: Sequence[dict[str, Any]]) -> int:
    """Raw env steps behind a batch of step ``infos``: ``info["executed_steps"]`` of each chunk (1 for an env that
    takes single actions). The one way every learner, run and evaluation counts raw env steps (paper App. A.4: one
    executed action = one step)."""
    return int(sum(info.get("executed_steps", 1) for info in infos))


def _lazy_observer(env: gym.Env) -> Any:
    """The raw env when it can skip rendering an observation its caller discards (it has ``skip_next_observation``
    and ``complete_observation``, e.g. :class:`~lpds_envs.envs.libero.LiberoEnv`); else ``None``."""
    raw = env.unwrapped
    if callable(getattr(raw, "skip_next_observation", None)) and callable(getattr(raw, "complete_observation", None)):
        return raw
    return None


class ChunkedActionWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Execute an action chunk ``(Ta, act_dim)`` as up to ``Ta`` env steps.

    Stops early at termination or truncation, returns the last observation, the undiscounted sum of
    the rewards, ``info["executed_steps"]`` and, when the task reports it (``info["success"]`` or
    ``info["is_success"]``), ``info["success"]`` = success at any executed step. The rest of ``info`` is
    the last step's.

    Envs whose observations are expensive to render (camera images) can skip the ones nobody sees: when the raw env
    has ``skip_next_observation()`` and ``complete_observation(obs)`` (:class:`~lpds_envs.envs.libero.LiberoEnv`),
    each raw step but the chunk's last is told to skip them, and a chunk cut short by termination or truncation
    has its last observation completed, so the returned observation is always the full one.

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
        lazy = _lazy_observer(self.env)
        for i, a in enumerate(chunk):
            if lazy is not None and i < len(chunk) - 1:
                lazy.skip_next_observation()  # an intermediate observation: discarded, so not rendered
            obs, reward, terminated, truncated, info = self.env.step(a)
            total += float(reward)
            executed += 1
            s = _step_success(info)
            if s is not None:
                success = bool(success) or s
            if terminated or truncated:
                break
        if lazy is not None and executed < len(chunk):  # stopped early: that step's cameras were skipped
            obs = lazy.complete_observation(obs)
        info = dict(info)
        info["executed_steps"] = executed
        if success is not None:
            info["success"] = success
        return obs, total, terminated, truncated, info


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
        self,
        env: gym.Env,
        decoder: Decoder,
        latent_bound: float | None = DEFAULT_LATENT_BOUND,
        latent_subspace: Any = None,
    ) -> None:
        # no deepcopy: the recorded decoder is the frozen decoder itself (a copy of a pi0 would double its memory)
        gym.utils.RecordConstructorArgs.__init__(
            self, decoder=decoder, latent_bound=latent_bound, latent_subspace=latent_subspace, _disable_deepcopy=True
        )
        codec = make_codec(decoder, latent_bound, latent_subspace)
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
        self.latent_subspace = None if latent_subspace is None else cast(SubspaceCodec, codec).subspace
        self.action_space = codec.action_space
        self._obs: Any = None
        #: set by the ``LPDS-*-v0`` entry point, which builds this wrapper itself: the registered spec alone then
        #: describes the env, so ``gym.make(env.spec)`` (as Gymnasium's ``check_env`` does) rebuilds it
        self.spec_from_entry_point = False

    # gymnasium's Wrapper turns Env's spec attribute into a read-only property the same way
    @property
    def spec(self) -> EnvSpec | None:  # type: ignore[override]
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
            cast(SubspaceCodec, self.codec).seed(seed)
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
