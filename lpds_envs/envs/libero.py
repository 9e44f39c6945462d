"""LIBERO tasks as Gymnasium envs: ``lpds/LiberoCreamCheese-v0`` is LIBERO-90 task 57, "pick up the cream cheese and
put it in the tray" (scene ``LIVING_ROOM_SCENE3``; paper Sec. 5.6, Fig. 8).

- simulator: LIBERO's own scene, BDDL task file, init states and success predicate (``libero.libero``), on robosuite
  1.4.0 with one Panda on LIBERO's ``OSC_POSE`` controller at 20 Hz.
- action: LIBERO's 7-D action ``(dx, dy, dz, dax, day, daz, gripper)`` in ``[-1, 1]^7``: delta end-effector position
  and axis-angle rotation (scaled by robosuite to at most 5 cm and 0.5 rad per step), gripper ``-1`` open, ``+1``
  closed.
- observation: a Dict of uint8 camera images ``(image_size, image_size, 3)`` (default 64 px) from LIBERO's
  ``agentview`` (``"agentview_image"``) and wrist (``robot0_eye_in_hand``, ``"eye_in_hand_image"``) cameras, turned
  by 180 degrees as openpi's LIBERO client does (robosuite renders them upside down), and float32 robot state:
  ``"eef_pos"`` (3), ``"eef_quat"`` (4, x y z w, robosuite's), ``"gripper_qpos"`` (2) and ``"state"`` (8), openpi's
  LIBERO state vector ``(eef_pos, eef axis-angle, gripper_qpos)`` that pi0 LIBERO policies take.
- language: ``env.unwrapped.instruction`` is the task's instruction from its BDDL file.
- reward and success: ``info["success"]`` is LIBERO's goal predicate (``(In cream_cheese_1 wooden_tray_1_contain_region)``)
  on the current state; the reward is ``1[success] - reward_offset``. Episodes end at success
  (``terminate_on_success=True``, as LIBERO's evaluation, whose env reports ``done`` at success) and are truncated
  after 400 steps: the ``max_steps`` of openpi's ``examples/libero/main.py`` for ``libero_90`` ("longest training demo
  has 373 steps"), see :data:`MAX_EPISODE_STEPS`. As there, every reset first runs :data:`SETTLE_STEPS` (10) steps of
  the "do nothing, gripper open" action so that the objects settle; they are not counted.
- seeding: the task's 50 fixed init states (LIBERO's evaluation episodes) are the initial states. ``reset(seed=s)``
  starts from init state ``s % 50`` (so seeds 0-49 are LIBERO's 50 evaluation episodes), ``reset()`` from one drawn
  by ``self.np_random``, ``reset(options={"init_state": i})`` from state ``i``; the same init state always gives the
  same observation.
- rendering: ``render_mode="rgb_array"`` renders the agentview camera at ``render_size``. One camera render costs as
  much as several physics steps, so the cameras are rendered only for observations somebody looks at:
  :class:`~lpds_envs.wrappers.ChunkedActionWrapper` (and so every latent steering wrapper) calls
  :meth:`LiberoEnv.skip_next_observation` before each raw step of a chunk but the last, and those steps return black
  images (``info["cameras_rendered"]`` is ``False``); the chunk's returned observation is always rendered. A
  per-step policy on the raw env sees every image.

Needs the ``libero`` extra (``pip install 'lpds[libero]'``, in its own environment: docs/compatibility.md); LIBERO is
imported when an env is made, never by ``import lpds_envs``.

Example::

    >>> import gymnasium as gym, lpds_envs
    >>> env = gym.make("lpds/LiberoCreamCheese-v0")
    >>> obs, info = env.reset(seed=0)            # init state 0 of the task
    >>> obs["agentview_image"].shape, obs["state"].shape
    ((64, 64, 3), (8,))
    >>> env.unwrapped.instruction
    'pick up the cream cheese and put it in the tray'
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

MISSING_EXTRA = (
    "the LIBERO tasks need LIBERO with its scene assets: pip install 'lpds[libero]' (in its own environment)"
)

#: episode limits (raw steps, after the settle steps) of openpi's LIBERO evaluation, ``examples/libero/main.py``
#: of github.com/Physical-Intelligence/openpi (``max_steps`` by task suite)
MAX_EPISODE_STEPS: dict[str, int] = {
    "libero_spatial": 220,
    "libero_object": 280,
    "libero_goal": 300,
    "libero_10": 520,
    "libero_90": 400,
}
#: steps of :data:`SETTLE_ACTION` run at every reset (openpi's ``num_steps_wait``), not counted in the episode
SETTLE_STEPS = 10
#: "do nothing, gripper open" (openpi's ``LIBERO_DUMMY_ACTION``)
SETTLE_ACTION = np.array([0.0] * 6 + [-1.0])
#: observation key -> LIBERO camera name
CAMERAS: dict[str, str] = {"agentview_image": "agentview", "eye_in_hand_image": "robot0_eye_in_hand"}
#: the robot-state keys of the observation (``state`` is openpi's 8-D LIBERO state)
STATE_KEYS: tuple[str, ...] = ("eef_pos", "eef_quat", "gripper_qpos", "state")


@dataclass(frozen=True)
class LiberoTask:
    """One LIBERO task: its suite, index in the suite and (checked when the env is built) language instruction."""

    suite: str
    index: int
    instruction: str

    @property
    def max_episode_steps(self) -> int:
        return MAX_EPISODE_STEPS[self.suite]


#: the LIBERO tasks lpds registers, by name
TASKS: dict[str, LiberoTask] = {
    "cream_cheese": LiberoTask("libero_90", 57, "pick up the cream cheese and put it in the tray"),
}


def import_libero():
    """Import LIBERO's benchmark module and env class quietly, or raise a one-line error naming the extra.

    Sets ``MUJOCO_GL=egl`` (headless offscreen rendering) unless the variable is already set.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    logging.getLogger("robosuite_logs").addFilter(lambda record: record.levelno >= logging.ERROR)
    try:
        from libero.libero import benchmark, get_libero_path
        from libero.libero.envs.env_wrapper import ControlEnv
    except ImportError as exc:
        raise ImportError(MISSING_EXTRA) from exc
    return benchmark, get_libero_path, ControlEnv


def quat_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """Axis-angle (3,) of a unit quaternion ``(x, y, z, w)`` (robosuite's convention, as openpi's LIBERO state)."""
    q = np.asarray(quat, dtype=np.float64)
    w = float(np.clip(q[3], -1.0, 1.0))
    den = np.sqrt(1.0 - w * w)
    if den < 1e-12:
        return np.zeros(3)
    return q[:3] * 2.0 * np.arccos(w) / den


class LiberoEnv(gym.Env, gym.utils.RecordConstructorArgs):
    """A LIBERO task with camera and robot-state observations; see the module docstring.

    :param task: key of :data:`TASKS`
    :param image_size: side of the square camera images in the observation (pixels)
    :param reward_offset: subtracted from the sparse success reward every step
    :param terminate_on_success: end the episode (``terminated=True``) at the first successful step
    :param render_mode: ``"rgb_array"`` renders the agentview camera (upright) at ``render_size``
    :param render_size: (height, width) of rendered frames
    :param settle_steps: "do nothing" steps run at every reset before the first observation
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        task: str = "cream_cheese",
        image_size: int = 64,
        reward_offset: float = 0.0,
        terminate_on_success: bool = True,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (256, 256),
        settle_steps: int = SETTLE_STEPS,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self,
            task=task,
            image_size=image_size,
            reward_offset=reward_offset,
            terminate_on_success=terminate_on_success,
            render_mode=render_mode,
            render_size=render_size,
            settle_steps=settle_steps,
        )
        if task not in TASKS:
            raise ValueError(f"unknown LIBERO task {task!r}; known: {sorted(TASKS)}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        if int(image_size) < 8:
            raise ValueError(f"image_size must be >= 8 pixels, got {image_size}")
        if int(settle_steps) < 0:
            raise ValueError(f"settle_steps must be >= 0, got {settle_steps}")
        benchmark, get_libero_path, control_env = import_libero()
        self.task_name, self.task = task, TASKS[task]
        self.image_size = int(image_size)
        self.reward_offset = float(reward_offset)
        self.terminate_on_success = bool(terminate_on_success)
        self.render_mode, self.render_size = render_mode, (int(render_size[0]), int(render_size[1]))
        self.settle_steps = int(settle_steps)

        with contextlib.redirect_stdout(io.StringIO()):  # LIBERO prints its task order on every benchmark built
            suite = benchmark.get_benchmark_dict()[self.task.suite]()
        libero_task = suite.get_task(self.task.index)
        if libero_task.language != self.task.instruction:
            raise RuntimeError(
                f"{self.task.suite} task {self.task.index} is {libero_task.language!r} in this LIBERO install, "
                f"expected {self.task.instruction!r}; install the version of the libero extra lpds pins"
            )
        #: the task's language instruction (from its BDDL file)
        self.instruction: str = libero_task.language
        #: LIBERO's fixed init states of the task (flattened MuJoCo states), one per evaluation episode
        self.init_states: np.ndarray = np.asarray(suite.get_task_init_states(self.task.index))
        self.bddl_file = os.path.join(get_libero_path("bddl_files"), libero_task.problem_folder, libero_task.bddl_file)
        # cameras are rendered here, on demand (use_camera_obs=False), so that steps nobody looks at cost no render
        self.libero_env = control_env(
            bddl_file_name=self.bddl_file,
            use_camera_obs=False,
            has_renderer=False,
            has_offscreen_renderer=True,
            ignore_done=True,
            hard_reset=False,
            horizon=10**9,
            control_freq=20,
        )
        self.init_state_index = 0
        self._skip_next = False
        self._raw_obs: dict[str, np.ndarray] = {}

        img = spaces.Box(0, 255, shape=(self.image_size, self.image_size, 3), dtype=np.uint8)
        sizes = {"eef_pos": 3, "eef_quat": 4, "gripper_qpos": 2, "state": 8}
        self.observation_space = spaces.Dict(
            {
                **{key: img for key in CAMERAS},
                **{k: spaces.Box(-np.inf, np.inf, shape=(n,), dtype=np.float32) for k, n in sizes.items()},
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, shape=(7,), dtype=np.float32)

    # ------------------------------------------------------------------------------------------ simulator access
    @property
    def sim(self):
        """robosuite's ``MjSim`` of the scene (privileged state: body poses, contacts)."""
        return self.libero_env.sim

    def is_success(self) -> bool:
        """LIBERO's success predicate (the task's BDDL goal) on the current state."""
        return bool(self.libero_env.check_success())

    def get_state(self) -> np.ndarray:
        """The flattened MuJoCo state (time, qpos, qvel), as LIBERO's init states and datasets store it."""
        return np.asarray(self.libero_env.get_sim_state(), dtype=np.float64)

    def model_xml(self) -> str:
        """The MuJoCo XML of the scene (robomimic's per-demo ``model_file`` attribute)."""
        return self.sim.model.get_xml()

    # ---------------------------------------------------------------------------------------------- observations
    def render_camera(self, camera: str, height: int, width: int) -> np.ndarray:
        """One upright uint8 ``(height, width, 3)`` frame of a LIBERO camera (e.g. ``"agentview"``)."""
        context = self.sim._render_context_offscreen
        if context is not None:
            # robosuite renders into whichever GL context is current: make this env's current, so that several envs
            # in one process (or one closed next to this one) never render into, or from, another's context
            context.gl_ctx.make_current()
        frame = self.sim.render(camera_name=camera, height=int(height), width=int(width))
        return np.ascontiguousarray(frame[::-1, ::-1])

    def _observation(self, render: bool) -> dict[str, np.ndarray]:
        raw = self._raw_obs
        pos = np.asarray(raw["robot0_eef_pos"], dtype=np.float64)
        quat = np.asarray(raw["robot0_eef_quat"], dtype=np.float64)
        grip = np.asarray(raw["robot0_gripper_qpos"], dtype=np.float64)
        obs: dict[str, np.ndarray] = {}
        for key, camera in CAMERAS.items():
            if render:
                obs[key] = self.render_camera(camera, self.image_size, self.image_size)
            else:
                obs[key] = np.zeros((self.image_size, self.image_size, 3), dtype=np.uint8)
        obs["eef_pos"] = pos.astype(np.float32)
        obs["eef_quat"] = quat.astype(np.float32)
        obs["gripper_qpos"] = grip.astype(np.float32)
        obs["state"] = np.concatenate([pos, quat_to_axis_angle(quat), grip]).astype(np.float32)
        return obs

    def skip_next_observation(self) -> None:
        """Do not render the cameras for the next :meth:`step` only: its observation's images are black and its
        ``info["cameras_rendered"]`` is ``False``. For callers that discard that observation, such as the raw steps
        inside an action chunk (:class:`~lpds_envs.wrappers.ChunkedActionWrapper` calls this)."""
        self._skip_next = True

    def complete_observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``obs`` (the last step's observation) with its camera images rendered for the current state: equal to the
        observation that step returns without :meth:`skip_next_observation`."""
        out = dict(obs)
        for key, camera in CAMERAS.items():
            out[key] = self.render_camera(camera, self.image_size, self.image_size)
        return out

    # ------------------------------------------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        n = len(self.init_states)
        if options is not None and "init_state" in options:
            index = int(options["init_state"])
            if not 0 <= index < n:
                raise ValueError(f"options['init_state'] must be in [0, {n}), got {index}")
        elif seed is not None:
            index = int(seed) % n
        else:
            index = int(self.np_random.integers(n))
        self.init_state_index = index
        # robosuite's reset samples a placement from numpy's global generator before the init state overwrites it:
        # seed it for this call only, so that nothing else depends on (or changes) the global stream
        saved = np.random.get_state()
        try:
            np.random.seed(index)
            self.libero_env.reset()
        finally:
            np.random.set_state(saved)
        # a soft reset keeps the gripper's integrated command (robosuite rebuilds it only on a hard reset): restart it
        # as a freshly built scene does, so that an init state always gives the same episode
        for robot in self.libero_env.robots:
            robot.gripper.current_action = np.zeros_like(robot.gripper.current_action)
        self._raw_obs = self.libero_env.set_init_state(self.init_states[index])
        for _ in range(self.settle_steps):
            self._raw_obs, _, _, _ = self.libero_env.step(SETTLE_ACTION)
        self._skip_next = False
        return self._observation(render=True), {"success": self.is_success(), "init_state": index}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action has shape {action.shape}, expected {self.action_space.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action has non-finite entries: {action}")
        action = np.clip(action, -1.0, 1.0)
        render, self._skip_next = not self._skip_next, False
        self._raw_obs, _, _, _ = self.libero_env.step(action)
        success = self.is_success()
        reward = float(success) - self.reward_offset
        terminated = bool(success and self.terminate_on_success)
        info = {"success": success, "cameras_rendered": render}
        return self._observation(render=render), reward, terminated, False, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return self.render_camera("agentview", *self.render_size)

    def close(self) -> None:
        env = getattr(self, "libero_env", None)
        if env is not None:
            env.close()
            self.libero_env = None


def make_libero_task(task: str, **kwargs: Any) -> LiberoEnv:
    """Entry point of the raw LIBERO ids (``lpds/LiberoCreamCheese-v0``)."""
    return LiberoEnv(task=task, **kwargs)
