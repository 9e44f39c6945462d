"""Raw Adroit task envs ``lpds/Adroit<Task>-v0``: gymnasium-robotics' ``AdroitHand<Task>-v1`` (dense reward,
200-step episodes), imported only when an env is made, so ``import lpds_envs`` never needs the ``adroit`` extra."""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

MISSING_EXTRA = "the Adroit tasks need gymnasium-robotics: pip install 'lpds[adroit]'"


def require_gymnasium_robotics() -> None:
    """Import gymnasium-robotics (registering its ids) or raise a one-line error naming the extra."""
    try:
        import gymnasium_robotics  # the optional adroit extra
    except ImportError as exc:
        raise ImportError(MISSING_EXTRA) from exc
    gym.register_envs(gymnasium_robotics)


#: task name -> gymnasium-robotics class (``module:Class`` under ``gymnasium_robotics.envs.adroit_hand``)
ENV_CLASSES = {
    "door": "adroit_door:AdroitHandDoorEnv",
    "hammer": "adroit_hammer:AdroitHandHammerEnv",
    "pen": "adroit_pen:AdroitHandPenEnv",
    "relocate": "adroit_relocate:AdroitHandRelocateEnv",
}


def make_adroit_task(task: str, reward_type: str = "dense", **kwargs: Any):
    """Entry point of the raw ids ``lpds/Adroit<Task>-v0``: gymnasium-robotics' ``AdroitHand<Task>-v1`` class
    (dense reward), imported only when an env is made, so the ``adroit`` extra stays optional.

    :param task: ``door``, ``hammer``, ``pen`` or ``relocate``
    :param reward_type: ``"dense"`` (the v1 default) or ``"sparse"``
    :param kwargs: passed to the env class (``render_mode``, ...)
    """
    require_gymnasium_robotics()
    if task not in ENV_CLASSES:
        raise ValueError(f"unknown Adroit task {task!r}; known: {sorted(ENV_CLASSES)}")
    module, cls = ENV_CLASSES[task].split(":")
    env_cls = getattr(importlib.import_module(f"gymnasium_robotics.envs.adroit_hand.{module}"), cls)
    return env_cls(reward_type=reward_type, **kwargs)
