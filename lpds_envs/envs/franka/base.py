"""The shared base of the Franka tasks: one Franka Panda (``robotic``'s ``scenarios/pandaSingle.g``: the arm on a table,
parallel gripper, frame names prefixed ``l_``) simulated with PhysX, joint-space control at 10 Hz, Dict observations.

- control: ``action`` in ``[-1, 1]^8``. ``action[:7]`` are joint position deltas, scaled by ``max_joint_delta``
  (default 0.1 rad per 0.1 s step, i.e. at most 1 rad/s, half the Panda's joint speed limits); the target
  ``q + delta`` (clipped to the joint limits) is reached by linear interpolation over the step's 10 physics steps of
  10 ms under ``robotic``'s position control. ``action[7] > 0`` closes the gripper, ``<= 0`` opens it (a command
  given when it changes, at ``gripper_speed``); the gripper closes until it holds what is between its fingers.
- observation (Dict, float32): ``"joint_pos"`` (7, rad), ``"joint_vel"`` (7, rad/s) and ``"gripper"`` (1, the
  finger opening in m as ``robotic`` reports it: 0.04 fully open, 0 closed), plus the task's own keys.
- reward: ``1[success] - reward_offset`` per step; the episode ends at success (``terminate_on_success``).
- seeding: the same seed gives the same first observation (bit-identical). Each env keeps one PhysX simulation and
  every reset moves it to the new state at rest, so an episode repeated with the same seed and actions agrees to
  about 1e-5 (PhysX keeps contact caches across resets), not bit for bit; a fresh env repeats exactly.
- deployment shift: ``shift="deployment"`` (or a dict) perturbs the object's friction and mass, the joint-delta
  tracking, adds action latency and, for the pick-and-place camera, shifts its pose and adds depth noise; the
  magnitudes are fixed per env (the depth noise is drawn from the reset seed): :mod:`.shift` has the table.
- rendering: ``render_mode="rgb_array"`` renders a fixed view camera at ``render_size``; it needs an X server
  (:func:`~lpds_envs.envs.franka.simulator.ensure_display`).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .shift import SimShift, make_shift
from .simulator import ensure_display, import_robotic, keep_alive

#: seconds per env step (10 Hz control) and per physics step
CONTROL_DT = 0.1
SIM_DT = 0.01
#: height of the table top in world coordinates (m)
TABLE_TOP = 0.65
#: the Panda's home joint configuration (``pandaSingle.g``'s initial pose)
HOME_QPOS = np.array([0.0, -0.5, 0.0, -2.0, 0.0, 2.0, -0.5])
#: frame names in ``pandaSingle.g``
GRIPPER = "l_gripper"
#: finger opening (m, as ``robotic`` reports it) of the open gripper, and the least opening that counts as "released"
GRIPPER_OPEN = 0.04
#: ``moveGripper`` takes the width between the fingers (twice the opening it reports)
GRIPPER_OPEN_WIDTH = 2 * GRIPPER_OPEN
GRIPPER_RELEASED = 0.035
#: the action a delayed controller executes before the first real one arrives: hold still, gripper open
HOLD_ACTION = np.array([0, 0, 0, 0, 0, 0, 0, -1], dtype=np.float64)


def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Quaternion ``(w, x, y, z)`` (``robotic``'s order) of a camera at ``position`` looking at ``target``: ``robotic``
    cameras look along their z axis with x to the right and y down the image, which stays upright here."""
    forward = np.asarray(target, float) - np.asarray(position, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward], axis=1)
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(rot).as_quat()
    return np.array([w, x, y, z])


class FrankaEnv(gym.Env, gym.utils.RecordConstructorArgs):
    """A Franka Panda task in ``robotic``'s simulator; see the module docstring. Subclasses add the objects
    (:meth:`_build_scene`), place them at reset (:meth:`_place_objects`) and define success (:meth:`_is_success`).

    :param max_joint_delta: joint position change (rad) of a full action ``+-1`` in one 0.1 s step
    :param init_joint_noise: uniform noise (rad) added to each home joint angle at reset
    :param gripper_speed: finger speed of the gripper commands (``robotic``'s ``moveGripper``)
    :param reward_offset: subtracted from the sparse success reward every step
    :param terminate_on_success: end the episode at the first successful step
    :param render_mode: ``"rgb_array"`` renders the view camera
    :param render_size: (height, width) of rendered frames
    :param shift: ``None`` (nominal), ``"deployment"`` or a dict of perturbations (:mod:`.shift`)
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": round(1 / CONTROL_DT)}
    #: where the rendering camera sits and what it looks at (world coordinates)
    VIEW_POSITION = (1.3, 1.2, 1.6)
    VIEW_TARGET = (0.0, 0.15, 0.8)
    #: frames whose friction and mass a shift perturbs, and whether the task has the depth camera
    SHIFTED_FRAMES: tuple[str, ...] = ()
    HAS_CAMERA = False

    def __init__(
        self,
        max_joint_delta: float = 0.1,
        init_joint_noise: float = 0.02,
        gripper_speed: float = 0.3,
        reward_offset: float = 0.0,
        terminate_on_success: bool = True,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (240, 320),
        shift: None | str | dict[str, Any] | SimShift = None,
    ) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        if not float(max_joint_delta) > 0:
            raise ValueError(f"max_joint_delta must be > 0 rad, got {max_joint_delta}")
        if not float(init_joint_noise) >= 0:
            raise ValueError(f"init_joint_noise must be >= 0 rad, got {init_joint_noise}")
        self.shift = make_shift(shift, has_camera=self.HAS_CAMERA)
        self.ry = import_robotic()
        self.max_joint_delta = float(max_joint_delta)
        self.init_joint_noise = float(init_joint_noise)
        self.gripper_speed = float(gripper_speed)
        self.reward_offset = float(reward_offset)
        self.terminate_on_success = bool(terminate_on_success)
        self.render_mode, self.render_size = render_mode, (int(render_size[0]), int(render_size[1]))

        ry = self.ry
        self.config = keep_alive(ry.Config())
        self.config.addFile(ry.raiPath("scenarios/pandaSingle.g"))
        self._build_scene(self.config)
        self._apply_shift(self.config)
        if render_mode is not None:
            h, w = self.render_size
            self._add_camera("view_camera", self.VIEW_POSITION, self.VIEW_TARGET, (h, w), 0.9, (0.1, 5.0))
        self._initial_frames = self.config.getFrameState().copy()
        limits = np.asarray(self.config.getJointLimits(), dtype=np.float64)
        self.joint_low, self.joint_high = limits[0], limits[1]
        self.sim: Any = None
        self._cameras: dict[str, Any] = {}
        self._gripper_closed: bool | None = None
        self._closed = False
        self._at_rest = True
        self._pending_actions: deque[np.ndarray] = deque()

        self.action_space = spaces.Box(-1.0, 1.0, (8,), np.float32)
        self.observation_space = spaces.Dict(
            {
                "joint_pos": spaces.Box(-np.pi, np.pi, (7,), np.float32),
                "joint_vel": spaces.Box(-np.inf, np.inf, (7,), np.float32),
                "gripper": spaces.Box(0.0, GRIPPER_OPEN, (1,), np.float32),
                **self._task_observation_space(),
            }
        )

    # ------------------------------------------------------------------------------------------ for subclasses
    def _build_scene(self, config: Any) -> None:
        """Add the task's objects to ``config`` (called once, in ``__init__``)."""

    def _place_objects(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        """Set the objects' initial poses in ``self.config`` for a new episode."""

    def _task_observation_space(self) -> dict[str, spaces.Space]:
        return {}

    def _task_observation(self) -> dict[str, np.ndarray]:
        return {}

    def _is_success(self) -> bool:
        raise NotImplementedError

    def _task_info(self) -> dict[str, Any]:
        return {}

    # ---------------------------------------------------------------------------------------------- helpers
    def _apply_shift(self, config: Any) -> None:
        """Scale the friction and mass of :attr:`SHIFTED_FRAMES` by the shift (nothing when it is nominal)."""
        if self.shift.friction == 1.0 and self.shift.mass == 1.0:
            return
        for name in self.SHIFTED_FRAMES:
            frame = config.getFrame(name)
            frame.setAttributes({"friction": self.shift.friction})
            if frame.getMass() > 0:
                frame.setMass(frame.getMass() * self.shift.mass)

    def _add_camera(
        self,
        name: str,
        position: tuple[float, ...],
        target: tuple[float, ...],
        size: tuple[int, int],
        focal_length: float,
        z_range: tuple[float, float],
    ) -> None:
        """A camera frame (``robotic``'s convention: ``focalLength`` in units of the image height)."""
        h, w = size
        args = f"shape: camera, size: [.05], focalLength: {focal_length}, width: {w}, height: {h}, zRange: [{z_range[0]}, {z_range[1]}]"
        frame = self.config.addFrame(name, "world", args)
        frame.setPosition(list(position)).setQuaternion(list(look_at(np.array(position), np.array(target))))

    def _camera(self, name: str) -> Any:
        """An offscreen ``CameraView`` of the camera frame ``name`` (made on first use, after an X server is up)."""
        if name not in self._cameras:
            ensure_display()
            view = keep_alive(self.ry.CameraView(self.config, True))
            view.setCamera(self.config.getFrame(name))
            self._cameras[name] = view
        return self._cameras[name]

    def render_camera(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """RGB (uint8, (H, W, 3)) and depth (float32 m, (H, W), ``-1`` where nothing is in range) of camera ``name``."""
        rgb, depth = self._camera(name).computeImageAndDepth(self.config)
        return np.asarray(rgb, dtype=np.uint8), np.asarray(depth, dtype=np.float32)

    def frame_position(self, name: str) -> np.ndarray:
        """World position of frame ``name`` (current simulation state)."""
        return np.asarray(self.config.getFrame(name).getPosition(), dtype=np.float64)

    def gripper_opening(self) -> float:
        """Finger opening (m) as ``robotic`` reports it (0.04 fully open)."""
        return float(self.sim.getGripperWidth(GRIPPER))

    def gripper_released(self) -> bool:
        """The gripper is commanded open and has opened (nothing is held between its fingers)."""
        return self._gripper_closed is not True and self.gripper_opening() >= GRIPPER_RELEASED

    def _observation(self) -> dict[str, np.ndarray]:
        q = np.asarray(self.sim.get_q(), dtype=np.float64)
        qd = np.asarray(self.sim.get_qDot(), dtype=np.float64)
        if self._at_rest or qd.shape != (7,):  # robotic reports the last step's velocities until the next step
            qd = np.zeros(7)
        return {
            "joint_pos": np.clip(q, -np.pi, np.pi).astype(np.float32),
            "joint_vel": qd.astype(np.float32),
            "gripper": np.clip([self.gripper_opening()], 0.0, GRIPPER_OPEN).astype(np.float32),
            **self._task_observation(),
        }

    # ------------------------------------------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if self._closed:
            raise RuntimeError("this env was closed: make a new one")
        options = dict(options or {})
        self.config.setFrameState(self._initial_frames)
        noise = self.np_random.uniform(-self.init_joint_noise, self.init_joint_noise, 7)
        self.config.setJointState(np.clip(HOME_QPOS + noise, self.joint_low, self.joint_high))
        self._place_objects(self.np_random, options)
        if self.sim is None:
            self.sim = keep_alive(self.ry.Simulation(self.config, self.ry.SimulationEngine.physx, 0))
        else:
            # one simulation per env, for its lifetime (robotic 0.4.2 crashes when it destroys simulations, see
            # keep_alive): resets move it to the new state, at rest with the gripper open
            frames = self.config.getFrameState().copy()
            q = self.config.getJointState()
            # open the gripper fully first (its controller keeps its own state), then restore the new state
            self.sim.moveGripper(GRIPPER, GRIPPER_OPEN_WIDTH, 10.0)
            for _ in range(20):
                self.sim.step(q, SIM_DT, self.ry.ControlMode.position)
            self.config.setFrameState(frames)
            free = len(self.sim.getFreeFrames())
            self.sim.pushConfigToSim(np.zeros((free, 2, 3)), np.zeros(7))
            self.sim.resetSplineRef()
        # None: the first step sends its gripper command whatever it is (robotic's gripper keeps its own state)
        self._gripper_closed, self._at_rest = None, True
        self._pending_actions = deque(HOLD_ACTION.copy() for _ in range(self.shift.latency))
        return self._observation(), {"success": False, **self._task_info()}

    def step(self, action):
        if self.sim is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action has shape {a.shape}, expected {self.action_space.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action must be finite, got {a}")
        a = np.clip(a, -1.0, 1.0)
        if self.shift.latency:  # the controller executes the action given `latency` steps ago
            self._pending_actions.append(a)
            a = self._pending_actions.popleft()
        close = bool(a[7] > 0)
        if close != self._gripper_closed:
            self.sim.moveGripper(GRIPPER, 0.0 if close else GRIPPER_OPEN_WIDTH, self.gripper_speed)
            self._gripper_closed = close
        q0 = np.asarray(self.sim.get_q(), dtype=np.float64)
        target = np.clip(q0 + self.shift.joint_gain * a[:7] * self.max_joint_delta, self.joint_low, self.joint_high)
        substeps = round(CONTROL_DT / SIM_DT)
        for i in range(1, substeps + 1):
            self.sim.step(q0 + (target - q0) * (i / substeps), SIM_DT, self.ry.ControlMode.position)
        self._at_rest = False
        self._after_physics()
        success = self._is_success()
        reward = float(success) - self.reward_offset
        terminated = success and self.terminate_on_success
        return self._observation(), reward, terminated, False, {"success": success, **self._task_info()}

    def _after_physics(self) -> None:
        """Hook run after each step's physics, before success is checked."""

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return self.render_camera("view_camera")[0]

    def close(self) -> None:
        """Drop the simulation and cameras (``robotic`` frees them only at process exit: see ``keep_alive``)."""
        self._cameras.clear()
        self.sim = None
        self._closed = True
