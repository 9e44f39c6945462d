"""The latent env as the learners see it: its frozen decoder, and an unbounded latent box made acceptable to SB3."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper

from lpds_envs.decoders.base import Decoder
from lpds_envs.vector import VecLatentSteeringWrapper


def resolve_decoder(env: VecEnv | None, decoder: Decoder | None) -> Decoder | None:
    """The frozen decoder: ``decoder`` if given, else the one of the latent env (batched or per sub-env).

    :param env: the learner's (vectorised) env, or ``None``
    :param decoder: an explicit decoder, which takes precedence over the env's
    :return: the decoder, or ``None`` when there is neither an env nor ``decoder``
    """
    if decoder is not None:
        if not isinstance(decoder, Decoder):
            raise TypeError(f"decoder must be an lpds_envs.decoders.Decoder, got {type(decoder).__name__}")
        return decoder
    if env is None:
        return None
    venv: Any = env
    while isinstance(venv, VecEnvWrapper):
        if isinstance(venv, VecLatentSteeringWrapper):
            return venv.decoder
        venv = venv.venv
    try:
        found = env.get_attr("decoder")[0]
    except AttributeError:
        found = None
    if not isinstance(found, Decoder):
        raise ValueError(
            "the env is not a latent steering env (no .decoder): wrap it with LatentSteeringWrapper, build it with "
            "make_latent_vec_env or gym.make('LPDS-...'), or pass decoder= explicitly"
        )
    return found


#: SB3 insists on finite Box bounds; an unbounded latent env (``latent_bound=None``) is shown to SB3 with this stand-in
UNBOUNDED_STANDIN = 1e6


class _FiniteBoundsView(VecEnvWrapper):
    """Presents an unbounded latent box as ``[-1e6, 1e6]`` so SB3 accepts it; latents pass through unchanged.

    :param venv: the latent vec env with an unbounded action box
    """

    def __init__(self, venv: VecEnv) -> None:
        box = cast(spaces.Box, venv.action_space)  # _accept_unbounded wraps Box action spaces only
        super().__init__(venv, action_space=spaces.Box(-UNBOUNDED_STANDIN, UNBOUNDED_STANDIN, box.shape, box.dtype))

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        return self.venv.step_wait()


def _accept_unbounded(env: Any, verbose: int) -> Any:
    """``env`` itself or, when its latent box is unbounded, the env vectorised and seen through ``_FiniteBoundsView``."""
    if env is None or isinstance(env, str):
        return env
    box = env.action_space
    if isinstance(box, spaces.Box) and not np.all(np.isfinite(np.concatenate([box.low, box.high]))):
        return _FiniteBoundsView(env if isinstance(env, VecEnv) else _vectorize(env, verbose))
    return env


def _vectorize(env: Any, verbose: int) -> VecEnv:
    """A single env as SB3 vectorises it (``Monitor`` unless already monitored, then ``DummyVecEnv``).

    SB3 transposes channel-last images itself (``VecTransposeImage``) when the algorithm wraps the resulting VecEnv.
    """
    if not is_wrapped(env, Monitor):
        if verbose >= 1:
            print("Wrapping the env with a `Monitor` wrapper")
        env = Monitor(env)
    if verbose >= 1:
        print("Wrapping the env in a DummyVecEnv.")
    return DummyVecEnv([lambda: env])
