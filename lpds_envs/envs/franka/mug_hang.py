"""``lpds/FrankaMugHang-v0``: grasp a mug and hang it by its handle on the peg of a mug holder (paper Sec. 5.7, App. G,
Table 6), observed through joint state and gripper only (the paper's mug policy sees no camera).

- objects (built from primitives here, world coordinates in m; table top at z = 0.65, robot base at (0, -0.2) facing
  +y): a mug (cylinder, radius 3 cm, height 9 cm, 150 g) with a rectangular handle on its +x side whose opening is
  3 cm (radially) by 5 cm (vertically), 1.2 cm thick, standing upright at (-0.10, 0.35) with the handle towards the
  holder; a holder at (0.22, 0.50): a base plate, a 32 cm post and a peg (radius 6 mm, 10 cm long) that points from the
  post towards the robot (-y), tilted 25 degrees up so that a hung mug slides towards the post, not off the tip.
- reset: the mug's x and y get uniform noise of ``+-position_noise`` and its rotation about the vertical
  ``+-yaw_noise``; the holder is fixed.
- observation: the base keys ``"joint_pos"`` (7), ``"joint_vel"`` (7), ``"gripper"`` (1).
- success: the centre of the handle's opening is within 2 cm of the peg's axis and between its root and tip, the mug
  hangs clear of the table (its centre at least 2 cm above its standing height), it is at rest (moved under 1 cm in
  the last step) and the gripper has released it (commanded open, fingers opened past the mug).
- deployment shift (``shift="deployment"``, :mod:`.shift`): mug friction 1 -> 0.5, mug mass 0.15 -> 0.225 kg, 85%
  joint-delta tracking and one step of action latency (no camera, so no camera keys), fixed per env.
- time limit: 200 steps (20 s at 10 Hz), registered as the id's ``max_episode_steps``.

Needs the ``franka`` extra (``pip install 'lpds[franka]'``; Debian's liblapack3); an X server only for
``render_mode="rgb_array"``.

Example::

    >>> import gymnasium as gym, lpds_envs
    >>> env = gym.make("lpds/FrankaMugHang-v0")
    >>> obs, info = env.reset(seed=0)
    >>> sorted(obs), info["success"]
    (['gripper', 'joint_pos', 'joint_vel'], False)
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from .base import TABLE_TOP, FrankaEnv

#: the mug: body radius, height (m), mass (kg) and where it stands (x, y)
MUG_RADIUS = 0.03
MUG_HEIGHT = 0.09
MUG_MASS = 0.15
MUG_XY = (-0.10, 0.35)
#: handle bars in the mug's frame (centre, size; the mug's axis is z, the handle on +x): top, bottom, outer
HANDLE_BARS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "mug_handle_top": ((0.045, 0.0, 0.03), (0.04, 0.012, 0.01)),
    "mug_handle_bottom": ((0.045, 0.0, -0.03), (0.04, 0.012, 0.01)),
    "mug_handle_outer": ((0.065, 0.0, 0.0), (0.01, 0.012, 0.07)),
}
#: centre of the handle's opening in the mug's frame
HANDLE_HOLE = (0.045, 0.0, 0.0)
#: the holder: where it stands (x, y), post height, peg radius, length, tilt and height of its root (m, rad)
HOLDER_XY = (0.22, 0.50)
POST_SIZE = (0.025, 0.025, 0.32)
PEG_RADIUS = 0.006
PEG_LENGTH = 0.10
PEG_TILT = np.deg2rad(25.0)
PEG_ROOT_HEIGHT = 0.86
#: success tolerances (m): handle opening to peg axis, clearance above the table, motion in the last step
HOLE_TO_PEG = 0.02
HANG_CLEARANCE = 0.02
AT_REST = 0.01


def peg_pose() -> tuple[np.ndarray, np.ndarray]:
    """Centre (world, m) and quaternion ``(w, x, y, z)`` of the peg, a cylinder along its local z."""
    direction = np.array([0.0, -np.cos(PEG_TILT), np.sin(PEG_TILT)])
    root = np.array([HOLDER_XY[0], HOLDER_XY[1] - POST_SIZE[1] / 2, PEG_ROOT_HEIGHT])
    angle = np.pi / 2 - PEG_TILT  # rotation about x that turns z into `direction`
    return root + direction * PEG_LENGTH / 2, np.array([np.cos(angle / 2), np.sin(angle / 2), 0.0, 0.0])


class FrankaMugHangEnv(FrankaEnv):
    """Mug hanging on a holder's peg; see the module docstring.

    :param position_noise: uniform noise (m) on the mug's x and y
    :param yaw_noise: uniform noise (rad) on the mug's rotation about the vertical
    :param kwargs: :class:`~lpds_envs.envs.franka.base.FrankaEnv`'s (``max_joint_delta``, ``render_mode``,
        ``shift``, ...)
    """

    SHIFTED_FRAMES = ("mug", *HANDLE_BARS)

    def __init__(self, position_noise: float = 0.01, yaw_noise: float = np.deg2rad(10.0), **kwargs: Any) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, position_noise=position_noise, yaw_noise=yaw_noise, **kwargs)
        if not 0 <= float(position_noise) <= 0.05:
            raise ValueError(f"position_noise must be in [0, 0.05] m, got {position_noise}")
        if not float(yaw_noise) >= 0:
            raise ValueError(f"yaw_noise must be >= 0 rad, got {yaw_noise}")
        self.position_noise, self.yaw_noise = float(position_noise), float(yaw_noise)
        self._last_mug_position = np.zeros(3)
        self._mug_motion = 0.0
        super().__init__(**kwargs)

    # ------------------------------------------------------------------------------------------------ scene
    def _build_scene(self, config: Any) -> None:
        ry = self.ry
        grey = [0.55, 0.45, 0.35]
        plate = config.addFrame("holder_base", "world").setShape(ry.ST.ssBox, [0.14, 0.14, 0.02, 0.004])
        plate.setPosition([*HOLDER_XY, TABLE_TOP + 0.01]).setColor(grey).setContact(1)
        post = config.addFrame("holder_post", "world").setShape(ry.ST.ssBox, [*POST_SIZE, 0.004])
        post.setPosition([*HOLDER_XY, TABLE_TOP + POST_SIZE[2] / 2]).setColor(grey).setContact(1)
        centre, quat = peg_pose()
        peg = config.addFrame("holder_peg", "world").setShape(ry.ST.cylinder, [PEG_LENGTH, PEG_RADIUS])
        peg.setPosition(list(centre)).setQuaternion(list(quat)).setColor(grey).setContact(1)

        mug = config.addFrame("mug").setShape(ry.ST.cylinder, [MUG_HEIGHT, MUG_RADIUS])
        mug.setColor([0.2, 0.4, 0.8]).setMass(MUG_MASS).setContact(1)
        mug.setPosition([*MUG_XY, TABLE_TOP + MUG_HEIGHT / 2])
        for name, (centre_in_mug, size) in HANDLE_BARS.items():
            bar = config.addFrame(name, "mug").setShape(ry.ST.ssBox, [*size, 0.002])
            bar.setRelativePosition(list(centre_in_mug)).setColor([0.2, 0.4, 0.8]).setContact(1)
        config.addFrame("mug_handle_hole", "mug").setShape(ry.ST.marker, [0.01]).setRelativePosition(list(HANDLE_HOLE))

    def _place_objects(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        dx, dy = rng.uniform(-self.position_noise, self.position_noise, 2)
        yaw = rng.uniform(-self.yaw_noise, self.yaw_noise)
        self.place_mug([MUG_XY[0] + dx, MUG_XY[1] + dy, TABLE_TOP + MUG_HEIGHT / 2], yaw=yaw, push=False)

    def place_mug(self, xyz: Any, yaw: float = 0.0, push: bool = True) -> None:
        """Put the upright mug's centre at ``xyz`` (world, m), turned by ``yaw`` about the vertical (0: handle
        towards +x); ``push`` moves it in the running simulation too (for scripted checks and tests)."""
        mug = self.config.getFrame("mug")
        mug.setPosition(list(np.asarray(xyz, dtype=float)))
        mug.setQuaternion([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
        self._last_mug_position, self._mug_motion = np.asarray(xyz, dtype=float), 0.0
        if push:
            self.sim.pushConfigToSim()

    def hanging_mug_position(self) -> np.ndarray:
        """Where :meth:`place_mug` puts an upright mug (yaw 0) so that its handle's top bar rests on the peg's middle."""
        centre, _ = peg_pose()
        top_bar_inside = HANDLE_BARS["mug_handle_top"][0][2] - HANDLE_BARS["mug_handle_top"][1][2] / 2
        hole = centre - np.array([0.0, 0.0, top_bar_inside - PEG_RADIUS - 0.002])
        return hole - np.asarray(HANDLE_HOLE)

    # ---------------------------------------------------------------------------------------------- success
    def hole_in_peg_frame(self) -> np.ndarray:
        """The handle opening's centre in the peg's frame (z along the peg from its middle, m)."""
        peg = self.config.getFrame("holder_peg")
        rot = np.asarray(peg.getRotationMatrix())
        return rot.T @ (self.frame_position("mug_handle_hole") - np.asarray(peg.getPosition()))

    def _after_physics(self) -> None:
        position = self.frame_position("mug")
        self._mug_motion = float(np.linalg.norm(position - self._last_mug_position))
        self._last_mug_position = position

    def _is_success(self) -> bool:
        hole = self.hole_in_peg_frame()
        on_peg = np.linalg.norm(hole[:2]) <= HOLE_TO_PEG and abs(hole[2]) <= PEG_LENGTH / 2
        clear = self.frame_position("mug")[2] >= TABLE_TOP + MUG_HEIGHT / 2 + HANG_CLEARANCE
        return bool(on_peg and clear and self._mug_motion <= AT_REST and self.gripper_released())

    def _task_info(self) -> dict[str, Any]:
        hole = self.hole_in_peg_frame()
        return {"hole_to_peg_axis": float(np.linalg.norm(hole[:2])), "mug_height": float(self.frame_position("mug")[2])}


def make_mug_hang(**kwargs: Any) -> FrankaMugHangEnv:
    """Entry point of ``lpds/FrankaMugHang-v0``."""
    return FrankaMugHangEnv(**kwargs)
