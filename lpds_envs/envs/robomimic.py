"""The robomimic tasks ``Lift``, ``Can`` (``PickPlaceCan``) and ``Square`` (``NutAssemblySquare``) as Gymnasium envs
over robosuite (paper Sec. 5.1, App. A.1; settings of DSRL's and DPPO's robomimic configs).

- robot and control: one Panda with robosuite's ``OSC_POSE`` arm controller at 20 Hz, as in DPPO's
  ``cfg/robomimic/env_meta/<task>.json``: action ``(dx, dy, dz, dax, day, daz, gripper)`` in ``[-1, 1]^7``, scaled to
  at most 5 cm and 0.5 rad per step (delta position and axis-angle rotation in the robot base frame, which has the
  world's orientation here), gripper ``-1`` open and ``+1`` closed; kp 150, critically damped.
- observation: robomimic's low-dim keys of DSRL's configs, flattened in the fixed order of :data:`OBS_KEYS`
  (``robot0_eef_pos`` 3, ``robot0_eef_quat`` 4 (x, y, z, w), ``robot0_gripper_qpos`` 2, ``object``), float32. The
  ``object`` vector is assembled from robosuite's named object observables in the order of robomimic's datasets
  (:data:`TASKS`), not taken from robosuite's ``object-state``, whose order changed between robosuite versions:
  Lift 19 dims (``cube_pos, cube_quat, gripper_to_cube_pos``), Can and Square 23 dims
  (``<obj>_pos, <obj>_quat, <obj>_to_robot0_eef_pos, <obj>_to_robot0_eef_quat``).
- reward: the sparse success reward ``1[success] - reward_offset`` at every step (``reward_offset=0`` gives robosuite's
  sparse reward; DSRL's configs use ``reward_offset=1``, i.e. ``-1`` per step until success). Episodes never
  terminate on success unless ``terminate_on_success=True`` (DPPO and DSRL run to the time limit) and are truncated
  by the registered ``max_episode_steps`` (DSRL: Lift 300, Can 300, Square 400). ``info["success"]`` is the
  task's success check at the current step.
- seeding: ``reset(seed=s)`` reseeds robosuite's object placement and robot initialisation noise, so the same seed
  gives the same initial state in any env instance (the scene itself, e.g. Lift's cube size, is built from the fixed
  ``model_seed``); without a seed, each reset draws a fresh placement seed from ``self.np_random``.

Needs the ``robomimic`` extra (``pip install 'lpds[robomimic]'``: robosuite 1.5.2 on mujoco 3.3.7-3.9.0); robosuite is
imported when an env is made, never by ``import lpds_envs``.

Example::

    >>> import gymnasium as gym, lpds_envs
    >>> env = gym.make("lpds/Lift-v0")
    >>> obs, info = env.reset(seed=0)          # obs.shape == (19,)
    >>> obs, r, terminated, truncated, info = env.step(env.action_space.sample())
    >>> info["success"], env.unwrapped.suite_env  # the robosuite env, for privileged state
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

MISSING_EXTRA = "the robomimic tasks need robosuite 1.5.2 on mujoco 3.3.7-3.9.0: pip install 'lpds[robomimic]'"

#: the flattened observation: robomimic's low-dim keys in DSRL's order
OBS_KEYS: tuple[str, ...] = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object")
#: further proprioceptive keys the demo recorder stores next to :data:`OBS_KEYS` (robomimic's datasets have them too)
EXTRA_OBS_KEYS: tuple[str, ...] = (
    "robot0_joint_pos",
    "robot0_joint_vel",
    "robot0_gripper_qvel",
    "robot0_eef_quat_site",
)


@dataclass(frozen=True)
class RobomimicTask:
    """One robomimic task: its robosuite env, object observables and DSRL/DPPO settings."""

    env_name: str  # robosuite env class
    object_keys: tuple[str, ...]  # robosuite observables concatenated into "object", in robomimic's order
    max_episode_steps: int  # DSRL cfg/robomimic/dsrl_<task>.yaml env.max_episode_steps
    chunk_size: int = 4  # act_steps
    denoising_steps: int = 20  # DPPO pretraining (DDIM sampling uses ddim_steps)
    ddim_steps: int = 8


TASKS: dict[str, RobomimicTask] = {
    "lift": RobomimicTask("Lift", ("cube_pos", "cube_quat", "gripper_to_cube_pos"), 300),
    "can": RobomimicTask(
        "PickPlaceCan", ("Can_pos", "Can_quat", "Can_to_robot0_eef_pos", "Can_to_robot0_eef_quat"), 300
    ),
    "square": RobomimicTask(
        "NutAssemblySquare",
        ("SquareNut_pos", "SquareNut_quat", "SquareNut_to_robot0_eef_pos", "SquareNut_to_robot0_eef_quat"),
        400,
        denoising_steps=100,
    ),
}

#: OSC_POSE settings of DPPO's ``env_meta/<task>.json`` (robosuite 1.4 names mapped to 1.5's)
OSC_POSE: dict[str, Any] = {
    "type": "OSC_POSE",
    "input_max": 1,
    "input_min": -1,
    "output_max": [0.05, 0.05, 0.05, 0.5, 0.5, 0.5],
    "output_min": [-0.05, -0.05, -0.05, -0.5, -0.5, -0.5],
    "kp": 150,
    "damping_ratio": 1,
    "impedance_mode": "fixed",
    "kp_limits": [0, 300],
    "damping_ratio_limits": [0, 10],
    "position_limits": None,
    "orientation_limits": None,
    "uncouple_pos_ori": True,
    "input_type": "delta",
    "input_ref_frame": "base",
    "interpolation": None,
    "ramp_ratio": 0.2,
    "gripper": {"type": "GRIP"},
}


def import_robosuite():
    """Import robosuite quietly (its import-time warnings muted) or raise a one-line error naming the extra (also when
    the installed mujoco is one robosuite 1.5.2 fails on, e.g. after another extra upgraded it)."""
    logging.getLogger("robosuite_logs").addFilter(lambda record: record.levelno >= logging.ERROR)
    try:
        import mujoco
        import robosuite
    except ImportError as exc:
        raise ImportError(MISSING_EXTRA) from exc
    major, minor = (int(x) for x in mujoco.__version__.split(".")[:2])
    if (major, minor) >= (3, 10):
        raise ImportError(
            f"{MISSING_EXTRA} (this environment has mujoco {mujoco.__version__}; robosuite.make fails "
            "on it: use a separate environment for the robomimic extra)"
        )
    return robosuite


def controller_config() -> dict[str, Any]:
    """robosuite 1.5 composite controller config: Panda arm on :data:`OSC_POSE`."""
    return {"type": "BASIC", "body_parts": {"right": dict(OSC_POSE)}}


def suite_kwargs(task: str) -> dict[str, Any]:
    """Keyword arguments of ``robosuite.make`` for ``task`` (also written to the demo files' ``env_args``)."""
    return {
        "robots": "Panda",
        "controller_configs": controller_config(),
        "has_renderer": False,
        "has_offscreen_renderer": False,
        "ignore_done": True,
        "use_object_obs": True,
        "use_camera_obs": False,
        "control_freq": 20,
        "reward_shaping": False,
        "hard_reset": False,
    }


def env_args(task: str) -> dict[str, Any]:
    """robomimic's ``env_args`` record (``env_name``, ``type`` 1 = robosuite, ``env_kwargs``, ``env_version``)."""
    import importlib.metadata as md

    try:
        version = md.version("robosuite")
    except md.PackageNotFoundError:
        version = "unknown"
    return {"env_name": TASKS[task].env_name, "env_version": version, "type": 1, "env_kwargs": suite_kwargs(task)}


class RobomimicEnv(gym.Env, gym.utils.RecordConstructorArgs):
    """A robomimic task (``lift``, ``can`` or ``square``) on robosuite; see the module docstring.

    :param task: ``"lift"``, ``"can"`` or ``"square"``
    :param reward_offset: subtracted from the sparse success reward every step (DSRL: 1)
    :param terminate_on_success: end the episode (``terminated=True``) at the first successful step
    :param render_mode: ``"rgb_array"`` renders the ``agentview`` camera offscreen (needs an OpenGL backend)
    :param render_size: (height, width) of rendered frames
    :param model_seed: seed of robosuite's model construction, which draws e.g. Lift's cube size once per env
        instance (the model is not rebuilt at reset); fixed so that every instance builds the same scene
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        task: str = "lift",
        reward_offset: float = 0.0,
        terminate_on_success: bool = False,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (256, 256),
        model_seed: int = 0,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self,
            task=task,
            reward_offset=reward_offset,
            terminate_on_success=terminate_on_success,
            render_mode=render_mode,
            render_size=render_size,
            model_seed=model_seed,
        )
        if task not in TASKS:
            raise ValueError(f"unknown robomimic task {task!r}; known: {sorted(TASKS)}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        suite = import_robosuite()
        self.task, self.spec_task = task, TASKS[task]
        self.reward_offset = float(reward_offset)
        self.terminate_on_success = bool(terminate_on_success)
        self.render_mode, self.render_size = render_mode, tuple(render_size)
        kwargs = suite_kwargs(task)
        if render_mode == "rgb_array":
            kwargs.update(has_offscreen_renderer=True)
        self.suite_env = suite.make(self.spec_task.env_name, seed=int(model_seed), **kwargs)
        self._raw_obs: dict[str, np.ndarray] = self.suite_env.reset()
        obs = self._flatten(self._raw_obs)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=obs.shape, dtype=np.float32)
        low, high = self.suite_env.action_spec
        self.action_space = spaces.Box(np.asarray(low, np.float32), np.asarray(high, np.float32), dtype=np.float32)

    # ----------------------------------------------------------------------------------------------- observations
    def observation_dict(self) -> dict[str, np.ndarray]:
        """The current observation by robomimic key: :data:`OBS_KEYS` plus :data:`EXTRA_OBS_KEYS` (float64)."""
        raw = self._raw_obs
        out = {k: np.asarray(raw[k], dtype=np.float64).copy() for k in OBS_KEYS[:-1] + EXTRA_OBS_KEYS}
        out["object"] = np.concatenate([np.asarray(raw[k], dtype=np.float64) for k in self.spec_task.object_keys])
        return out

    def _flatten(self, raw: dict[str, np.ndarray]) -> np.ndarray:
        parts = [raw[k] for k in OBS_KEYS[:-1]] + [raw[k] for k in self.spec_task.object_keys]
        return np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in parts]).astype(np.float32)

    @property
    def obs_layout(self) -> dict[str, slice]:
        """Slices of the flat observation by key (``object`` included)."""
        sizes = {k: np.asarray(self._raw_obs[k]).size for k in OBS_KEYS[:-1]}
        sizes["object"] = sum(np.asarray(self._raw_obs[k]).size for k in self.spec_task.object_keys)
        out, start = {}, 0
        for k in OBS_KEYS:
            out[k] = slice(start, start + sizes[k])
            start += sizes[k]
        return out

    # ---------------------------------------------------------------------------------------------------- gym API
    def is_success(self) -> bool:
        """The task's success check on the current simulator state."""
        return bool(self.suite_env._check_success())

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        placement_seed = int(self.np_random.integers(2**63 - 1))
        # robosuite's placement samplers and robot init noise share this Generator object: reseed it in place
        self.suite_env.rng.bit_generator.state = np.random.default_rng(placement_seed).bit_generator.state
        self._raw_obs = self.suite_env.reset()
        return self._flatten(self._raw_obs), {"success": self.is_success()}

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), self.action_space.low, self.action_space.high)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action has shape {action.shape}, expected {self.action_space.shape}")
        self._raw_obs, _, _, _ = self.suite_env.step(action)
        success = self.is_success()
        reward = float(success) - self.reward_offset
        terminated = bool(success and self.terminate_on_success)
        return self._flatten(self._raw_obs), reward, terminated, False, {"success": success}

    def get_state(self) -> np.ndarray:
        """The flattened MuJoCo state (time, qpos, qvel), robomimic's ``states`` entry."""
        return np.asarray(self.suite_env.sim.get_state().flatten(), dtype=np.float64)

    def model_xml(self) -> str:
        """The robosuite model XML of the current episode (robomimic's per-demo ``model_file`` attribute)."""
        return self.suite_env.sim.model.get_xml()

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        h, w = self.render_size
        frame = self.suite_env.sim.render(height=h, width=w, camera_name="agentview")
        return np.ascontiguousarray(frame[::-1])

    def close(self) -> None:
        env = getattr(self, "suite_env", None)
        if env is not None:
            env.close()
            self.suite_env = None


def make_robomimic_task(task: str, **kwargs: Any) -> RobomimicEnv:
    """Entry point of the raw ids ``lpds/Lift-v0``, ``lpds/Can-v0``, ``lpds/Square-v0``."""
    return RobomimicEnv(task=task, **kwargs)


def env_args_json(task: str) -> str:
    """:func:`env_args` as the JSON string robomimic stores in ``data.attrs["env_args"]``."""
    return json.dumps(env_args(task))
