"""``lpds/FrankaPickPlace-v0``: pick a 5 cm cube from one cell of a 2x4 grid and place it on a target pad (paper
Sec. 5.7, App. G, Table 5), observed through joint state, gripper and a small depth image from a RealSense-like camera.

- grid (world coordinates, m; the table top is at z = 0.65, the robot base at (0, -0.2) facing +y): seen from behind
  the robot, the top row (far from the robot, y = 0.42) holds positions 7, 5, 3, 1 from left to right and the bottom
  row (y = 0.30) positions 8, 6, 4, 2, as in the paper's Table 5 (position 1 top right, 8 bottom left); the columns
  are 10 cm apart at x = -0.25, -0.15, -0.05, 0.05. The target pad (8 cm square) is at (0.22, 0.30), right of the grid.
- reset: the cube starts at grid cell ``position`` (1-8; ``None`` draws one uniformly each reset, and
  ``reset(options={"position": k})`` overrides it for one episode) plus uniform noise of ``+-position_noise`` (m) in x
  and y and ``+-yaw_noise`` (rad) about the vertical; ``info["position"]`` is the cell.
- observation: the base keys (``"joint_pos"``, ``"joint_vel"``, ``"gripper"``) and ``"depth"``, a float32
  ``(image_size, image_size)`` depth image in metres from a fixed camera across the table looking at the workspace
  (58 degree vertical field of view, the depth field of view of an Intel RealSense D435 cut to a square; range
  0.2-3 m, 0 where nothing is in range, as the RealSense reports invalid depth).
- success: the cube rests on the table (centre within 1 cm of its resting height) with its centre within 3 cm (x-y)
  of the pad's centre, and the gripper has released it (commanded open, fingers opened past the cube).
- deployment shift (``shift="deployment"``, :mod:`.shift`): cube friction 1 -> 0.5, cube mass 0.1 -> 0.15 kg,
  85% joint-delta tracking, one step of action latency, depth camera moved by (+2, -2, +1.5) cm (still aimed at the
  same point) and Gaussian depth noise of 5 mm on valid pixels (drawn from the reset seed; the camera's own
  :meth:`FrankaPickPlaceEnv.depth_image` stays noise-free). The magnitudes are fixed per env, the same every episode.
- time limit: 150 steps (15 s at 10 Hz), registered as the id's ``max_episode_steps``.
- rendering cost: a depth image costs as much as many physics steps, so (as :class:`~lpds_envs.envs.libero.LiberoEnv`)
  the env renders it only for observations somebody looks at: :class:`~lpds_envs.wrappers.ChunkedActionWrapper` calls
  :meth:`FrankaPickPlaceEnv.skip_next_observation` before each raw step of a chunk but the last, and those
  observations carry a zero depth image (``info["depth_rendered"]`` is ``False``).

Needs the ``franka`` extra (``pip install 'lpds[franka]'``; Debian's liblapack3) and, for the depth image, an X server
(``DISPLAY``, or Xvfb, which lpds starts when ``DISPLAY`` is unset: docs/compatibility.md).

Example::

    >>> import gymnasium as gym, lpds_envs
    >>> env = gym.make("lpds/FrankaPickPlace-v0", position=3)
    >>> obs, info = env.reset(seed=0)
    >>> obs["depth"].shape, obs["joint_pos"].shape, info["position"]
    ((64, 64), (7,), 3)
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .base import TABLE_TOP, FrankaEnv

#: grid position (1-8, paper Table 5) -> cube centre (x, y) in world coordinates (m)
GRID: dict[int, tuple[float, float]] = {
    **{pos: (x, 0.42) for pos, x in zip((7, 5, 3, 1), (-0.25, -0.15, -0.05, 0.05))},
    **{pos: (x, 0.30) for pos, x in zip((8, 6, 4, 2), (-0.25, -0.15, -0.05, 0.05))},
}
#: centre (x, y) of the target pad and its side (m)
TARGET_XY = (0.22, 0.30)
TARGET_SIZE = 0.08
#: cube side (m) and mass (kg)
CUBE_SIZE = 0.05
CUBE_MASS = 0.1
#: success tolerances (m): x-y distance of the cube to the pad centre, and height above its resting height
SUCCESS_RADIUS = 0.03
REST_TOLERANCE = 0.01
#: the depth camera: pose, vertical field of view (as robotic's focal length, in image heights) and range (m)
DEPTH_CAMERA_POSITION = (0.0, 0.85, 1.05)
DEPTH_CAMERA_TARGET = (-0.05, 0.35, 0.65)
DEPTH_FOCAL_LENGTH = 0.9  # 1 / (2 tan(29 deg)): the D435's 58 degree vertical depth field of view
DEPTH_RANGE = (0.2, 3.0)


def check_position(position: Any) -> int | None:
    """``position`` as a grid cell 1-8 (or ``None``), or a ``ValueError`` saying what is allowed."""
    if position is None:
        return None
    if isinstance(position, bool) or not isinstance(position, (int, np.integer)) or int(position) not in GRID:
        raise ValueError(f"position must be a grid cell 1-8 (paper Table 5) or None (random), got {position!r}")
    return int(position)


class FrankaPickPlaceEnv(FrankaEnv):
    """Spatial pick-and-place on a 2x4 grid; see the module docstring.

    :param position: grid cell 1-8 the cube starts at (``None``: a random cell each reset)
    :param position_noise: uniform noise (m) on the cube's x and y
    :param yaw_noise: uniform noise (rad) on the cube's rotation about the vertical
    :param image_size: side of the square depth image (pixels)
    :param kwargs: :class:`~lpds_envs.envs.franka.base.FrankaEnv`'s (``max_joint_delta``, ``render_mode``,
        ``shift``, ...)
    """

    SHIFTED_FRAMES = ("cube",)
    HAS_CAMERA = True

    def __init__(
        self,
        position: int | None = None,
        position_noise: float = 0.01,
        yaw_noise: float = np.deg2rad(15.0),
        image_size: int = 64,
        **kwargs: Any,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, position=position, position_noise=position_noise, yaw_noise=yaw_noise, image_size=image_size, **kwargs
        )
        self.position = check_position(position)
        if not 0 <= float(position_noise) <= 0.04:
            raise ValueError(
                f"position_noise must be in [0, 0.04] m (grid cells are 10 cm apart), got {position_noise}"
            )
        if not float(yaw_noise) >= 0:
            raise ValueError(f"yaw_noise must be >= 0 rad, got {yaw_noise}")
        if int(image_size) < 8:
            raise ValueError(f"image_size must be >= 8 pixels, got {image_size}")
        self.position_noise, self.yaw_noise = float(position_noise), float(yaw_noise)
        self.image_size = int(image_size)
        self.episode_position: int = self.position or 1
        self._skip_next = False
        self._depth_rendered = False
        super().__init__(**kwargs)

    # ------------------------------------------------------------------------------------------------ scene
    def _build_scene(self, config: Any) -> None:
        ry = self.ry
        pad = config.addFrame("target", "world")
        pad.setShape(ry.ST.ssBox, [TARGET_SIZE, TARGET_SIZE, 0.002, 0.0]).setColor([0.2, 0.8, 0.2])
        pad.setPosition([TARGET_XY[0], TARGET_XY[1], TABLE_TOP + 0.001])
        cube = config.addFrame("cube")
        cube.setShape(ry.ST.ssBox, [CUBE_SIZE, CUBE_SIZE, CUBE_SIZE, 0.004]).setColor([0.9, 0.5, 0.1])
        cube.setMass(CUBE_MASS).setContact(1)
        cube.setPosition([*GRID[1], TABLE_TOP + CUBE_SIZE / 2])
        size = (self.image_size, self.image_size)
        position = tuple(np.add(DEPTH_CAMERA_POSITION, self.shift.camera_offset))
        self._add_camera("depth_camera", position, DEPTH_CAMERA_TARGET, size, DEPTH_FOCAL_LENGTH, DEPTH_RANGE)

    def _place_objects(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        position = check_position(options.get("position", self.position))
        if position is None:
            position = int(rng.integers(1, 9))
        self.episode_position = position
        dx, dy = rng.uniform(-self.position_noise, self.position_noise, 2)
        yaw = rng.uniform(-self.yaw_noise, self.yaw_noise)
        x, y = GRID[position]
        cube = self.config.getFrame("cube")
        cube.setPosition([x + dx, y + dy, TABLE_TOP + CUBE_SIZE / 2])
        cube.setQuaternion([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])

    def place_cube(self, xyz: np.ndarray, quaternion: np.ndarray | None = None) -> None:
        """Move the cube to ``xyz`` (world, m) in the running simulation (for scripted checks and tests)."""
        cube = self.config.getFrame("cube")
        cube.setPosition(list(np.asarray(xyz, dtype=float)))
        if quaternion is not None:
            cube.setQuaternion(list(np.asarray(quaternion, dtype=float)))
        self.sim.pushConfigToSim()

    # ---------------------------------------------------------------------------------------------- observe
    def _task_observation_space(self) -> dict[str, spaces.Space]:
        return {"depth": spaces.Box(0.0, DEPTH_RANGE[1], (self.image_size, self.image_size), np.float32)}

    def _task_observation(self) -> dict[str, np.ndarray]:
        if self._skip_next:
            self._skip_next, self._depth_rendered = False, False
            return {"depth": np.zeros((self.image_size, self.image_size), np.float32)}
        self._depth_rendered = True
        return {"depth": self._observed_depth()}

    def depth_image(self) -> np.ndarray:
        """The depth camera's current image (float32 m, 0 where nothing is in range)."""
        depth = self.render_camera("depth_camera")[1]
        return np.clip(np.where(depth > 0, depth, 0.0), 0.0, DEPTH_RANGE[1]).astype(np.float32)

    def _observed_depth(self) -> np.ndarray:
        """The depth image an observation carries: :meth:`depth_image` plus the shift's depth noise, if any."""
        depth = self.depth_image()
        if self.shift.depth_noise > 0:
            noise = self.np_random.normal(0.0, self.shift.depth_noise, depth.shape)
            depth = np.where(depth > 0, np.clip(depth + noise, 0.0, DEPTH_RANGE[1]), 0.0).astype(np.float32)
        return depth

    def skip_next_observation(self) -> None:
        """Do not render the depth image for the next :meth:`step` only (its observation's ``"depth"`` is zeros and
        ``info["depth_rendered"]`` is ``False``): for callers that discard that observation, such as the raw steps
        inside an action chunk (:class:`~lpds_envs.wrappers.ChunkedActionWrapper` calls this)."""
        self._skip_next = True

    def complete_observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``obs`` with its depth image rendered for the current state (what the step returns unskipped)."""
        return {**obs, "depth": self._observed_depth()}

    # ---------------------------------------------------------------------------------------------- success
    def cube_to_target(self) -> float:
        """x-y distance (m) of the cube's centre to the pad's centre."""
        return float(np.linalg.norm(self.frame_position("cube")[:2] - np.asarray(TARGET_XY)))

    def _is_success(self) -> bool:
        resting = abs(self.frame_position("cube")[2] - (TABLE_TOP + CUBE_SIZE / 2)) <= REST_TOLERANCE
        return bool(self.cube_to_target() <= SUCCESS_RADIUS and resting and self.gripper_released())

    def _task_info(self) -> dict[str, Any]:
        return {
            "position": self.episode_position,
            "cube_to_target": self.cube_to_target(),
            "depth_rendered": self._depth_rendered,
        }


def make_pick_place(**kwargs: Any) -> FrankaPickPlaceEnv:
    """Entry point of ``lpds/FrankaPickPlace-v0``."""
    return FrankaPickPlaceEnv(**kwargs)
