"""The training envs' state in a checkpoint: pickled with the frozen decoder left out, and read back by an
unpickler restricted to an allow-list of env, wrapper, space and RNG classes (:class:`RestrictedUnpickler`), so a
file naming anything else (``os.system``, ``builtins.eval``, ...) is refused before anything runs.
"""

from __future__ import annotations

import io
import pickle
import warnings
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper

from algorithms.steering import resolve_decoder

from ..decoders.base import Decoder


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
