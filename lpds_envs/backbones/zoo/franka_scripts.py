"""KOMO-planned scripted controllers for the Franka tasks (the demonstrators of :mod:`.franka`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lpds_envs.envs.franka.base import GRIPPER, FrankaEnv
from lpds_envs.envs.franka.mug_hang import HANDLE_HOLE, MUG_HEIGHT, FrankaMugHangEnv, peg_pose
from lpds_envs.envs.franka.pick_place import FrankaPickPlaceEnv

#: pick-and-place grasp styles: KOMO's top grasp with the fingers closing along the cube's y axis ("yz") or its x axis
#: ("xz"), i.e. the hand turned by 90 degrees
PICK_STYLES = ("yz", "xz")


#: mug grasp styles: a top grasp of the body with the fingers closing across the handle's direction, low on the body
#: ("across"), or turned by 25 degrees and nearer the rim ("turned")
MUG_STYLES = ("across", "turned")
#: per mug style: rotation of the fingers' closing axis from the mug's y axis (rad) and height of the grasp point
#: above the mug's centre (m)
MUG_GRASPS: dict[str, tuple[float, float]] = {"across": (0.0, 0.025), "turned": (np.deg2rad(25.0), 0.012)}


@dataclass
class Keyframe:
    """One segment of a scripted plan: drive the arm to ``q`` with the gripper ``closed`` (or open), then wait
    ``hold`` steps."""

    q: np.ndarray
    closed: bool
    hold: int = 0


def planning_config(env: FrankaEnv) -> Any:
    """A copy of the env's current configuration for KOMO to plan in."""
    ry = env.ry
    config = ry.Config()
    config.addConfigurationCopy(env.config)
    return config


def solve_ik(env: FrankaEnv, config: Any, q0: np.ndarray, position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Joint angles (KOMO inverse kinematics from ``q0``, collision-free, within the joint limits) that put the
    gripper frame at ``position`` with its x and z axes those of ``rotation`` (3x3)."""
    ry = env.ry
    config.setJointState(q0)
    komo = ry.KOMO(config, 1, 1, 0, True)
    komo.addControlObjective([], 0, 1e-1)
    komo.addObjective([], ry.FS.accumulatedCollisions, [], ry.OT.eq, [1e0])
    komo.addObjective([], ry.FS.jointLimits, [], ry.OT.ineq, [1e0])
    komo.addObjective([], ry.FS.position, [GRIPPER], ry.OT.eq, [1e1], list(position))
    komo.addObjective([], ry.FS.vectorZ, [GRIPPER], ry.OT.eq, [1e0], list(rotation[:, 2]))
    komo.addObjective([], ry.FS.vectorX, [GRIPPER], ry.OT.eq, [1e0], list(rotation[:, 0]))
    ry.NLP_Solver(komo.nlp(), verbose=0).solve()
    return np.asarray(komo.getPath()[0], dtype=np.float64)


def gripper_pose(config: Any, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gripper position and rotation matrix at joint angles ``q`` (forward kinematics in ``config``)."""
    config.setJointState(q)
    frame = config.getFrame(GRIPPER)
    return np.asarray(frame.getPosition(), dtype=np.float64), np.asarray(frame.getRotationMatrix(), dtype=np.float64)


def plan_pick_place(env: FrankaPickPlaceEnv, style: str, rng: np.random.Generator) -> list[Keyframe]:
    """Keyframes of one pick-and-place: KOMO's two-phase plan (top grasp in ``style``, place on the pad) gives the
    grasp and place configurations; inverse kinematics adds the approach above the cube, the lift, the approach above
    the pad and the retreat. Human-like variation from ``rng``: grasp height and place point jitter, approach and
    lift heights, and short hesitations."""
    if style not in PICK_STYLES:
        raise ValueError(f"style must be one of {PICK_STYLES}, got {style!r}")
    ry = env.ry
    config = planning_config(env)
    helper = ry.KOMO_ManipulationHelper()
    helper.setup_pick_and_place_waypoints(config, GRIPPER, "cube", homing_scale=1e-1)
    helper.grasp_top_box(1.0, GRIPPER, "cube", style)
    helper.place_box(2.0, "cube", "target", "l_palm", "z")
    place_xy = list(rng.uniform(-0.008, 0.008, 2))
    helper.target_relative_xy_position(2.0, "cube", "target", place_xy)
    ret = helper.solve(0)
    if not ret.feasible or helper.path is None:
        raise RuntimeError("KOMO found no feasible pick-and-place plan")
    q_grasp, q_place = (np.asarray(q, dtype=np.float64) for q in helper.path)
    grasp_pos, grasp_rot = gripper_pose(config, q_grasp)
    place_pos, place_rot = gripper_pose(config, q_place)
    grasp_pos = grasp_pos + np.array([0.0, 0.0, rng.uniform(-0.005, 0.01)])
    place_pos = place_pos + np.array([0.0, 0.0, 0.004])
    above, lift = rng.uniform(0.08, 0.13), rng.uniform(0.10, 0.15)
    q_pre = solve_ik(env, config, q_grasp, grasp_pos + [0, 0, above], grasp_rot)
    q_grasp = solve_ik(env, config, q_pre, grasp_pos, grasp_rot)
    q_lift = solve_ik(env, config, q_grasp, grasp_pos + [0, 0, lift], grasp_rot)
    q_preplace = solve_ik(env, config, q_place, place_pos + [0, 0, lift], place_rot)
    q_place = solve_ik(env, config, q_preplace, place_pos, place_rot)
    q_retreat = solve_ik(env, config, q_place, place_pos + [0, 0, 0.08], place_rot)
    hesitate = int(rng.integers(0, 3))
    return [
        Keyframe(q_pre, False, hesitate),
        Keyframe(q_grasp, False, 1),
        Keyframe(q_grasp, True, 4),
        Keyframe(q_lift, True),
        Keyframe(q_preplace, True, hesitate),
        Keyframe(q_place, True, 1),
        Keyframe(q_place, False, 3),
        Keyframe(q_retreat, False, 5),
    ]


def top_down_rotation(yaw: float) -> np.ndarray:
    """Gripper rotation pointing down (its z axis up, as ``robotic``'s top grasps) with the fingers closing along
    ``(cos yaw, sin yaw, 0)``."""
    x = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    z = np.array([0.0, 0.0, 1.0])
    return np.stack([x, np.cross(z, x), z], axis=1)


def plan_mug_hang(env: FrankaMugHangEnv, style: str, rng: np.random.Generator) -> list[Keyframe]:
    """Keyframes of one mug hanging, each solved by KOMO inverse kinematics: above the mug, a top grasp of the body in
    ``style``, lift while turning the mug so its handle faces +x (the holder), bring the handle's opening in front of
    the peg's tip on the peg's axis, slide it along the axis onto the peg, lower it until the handle's top bar rests on
    the peg, release and retreat upwards. Human-like variation from ``rng``: grasp height, approach and lift heights,
    how far in front of the tip the slide starts, and hesitations."""
    if style not in MUG_STYLES:
        raise ValueError(f"style must be one of {MUG_STYLES}, got {style!r}")
    config = planning_config(env)
    q0 = np.asarray(config.getJointState(), dtype=np.float64)
    mug = env.config.getFrame("mug")
    w, _, _, z = mug.getQuaternion()
    mug_yaw = 2 * np.arctan2(z, w)
    centre = np.asarray(mug.getPosition(), dtype=np.float64)
    turn, height = MUG_GRASPS[style]
    height += rng.uniform(-0.004, 0.004)
    grasp_rot = top_down_rotation(mug_yaw + np.pi / 2 + turn)
    carry_rot = top_down_rotation(np.pi / 2 + turn)  # the mug at yaw 0: handle towards +x
    grasp = centre + [0.0, 0.0, height]
    q_pre = solve_ik(env, config, q0, grasp + [0, 0, rng.uniform(0.08, 0.12)], grasp_rot)
    q_grasp = solve_ik(env, config, q_pre, grasp, grasp_rot)
    q_lift = solve_ik(env, config, q_grasp, grasp + [0, 0, rng.uniform(0.22, 0.26)], carry_rot)
    # the gripper's target for a handle opening at `hole`, with the mug upright at yaw 0
    offset = np.array([0.0, 0.0, height]) - np.asarray(HANDLE_HOLE)
    peg_centre, _ = peg_pose()
    axis = np.array([0.0, -np.cos(np.deg2rad(25.0)), np.sin(np.deg2rad(25.0))])  # from the post out to the tip
    start = peg_centre + axis * rng.uniform(0.10, 0.13)
    on_peg = peg_centre + axis * rng.uniform(-0.01, 0.01)
    hang = np.asarray(env.hanging_mug_position()) + np.asarray(HANDLE_HOLE) + [0.0, 0.0, 0.004]
    q_start = solve_ik(env, config, q_lift, start + offset, carry_rot)
    q_on = solve_ik(env, config, q_start, on_peg + offset, carry_rot)
    q_hang = solve_ik(env, config, q_on, hang + offset, carry_rot)
    q_retreat = solve_ik(env, config, q_hang, hang + offset + [0.0, 0.0, MUG_HEIGHT + 0.04], carry_rot)
    hesitate = int(rng.integers(0, 3))
    return [
        Keyframe(q_pre, False, hesitate),
        Keyframe(q_grasp, False, 1),
        Keyframe(q_grasp, True, 4),
        Keyframe(q_lift, True),
        Keyframe(q_start, True, hesitate),
        Keyframe(q_on, True),
        Keyframe(q_hang, True, 2),
        Keyframe(q_hang, False, 4),
        Keyframe(q_retreat, False, 10),
    ]


class KeyframeController:
    """Tracks keyframes in joint space with human-like noise: each segment's reference moves from the last keyframe
    to the next along a smooth (minimum-jerk) profile at a speed drawn per demonstration, the action is a
    proportional correction towards the reference (``gain``) plus Ornstein-Uhlenbeck noise, and the gripper command
    switches at the segment's start.

    :param keyframes: the plan
    :param q0: joint angles at the start
    :param max_joint_delta: the env's ``max_joint_delta`` (rad per unit action)
    :param rng: draws the speed and the noise
    :param gain: proportional gain on the reference error (the simulated arm tracks about 37% of a joint delta per step)
    :param noise: stationary standard deviation of the action noise (in action units)
    """

    def __init__(
        self,
        keyframes: list[Keyframe],
        q0: np.ndarray,
        max_joint_delta: float,
        rng: np.random.Generator,
        gain: float = 2.5,
        noise: float = 0.05,
    ) -> None:
        self.rng, self.gain, self.noise, self.max_joint_delta = rng, gain, noise, max_joint_delta
        speed = rng.uniform(0.022, 0.032)  # rad per step of the fastest joint
        self.reference: list[tuple[np.ndarray, bool]] = []
        q_prev = np.asarray(q0, dtype=np.float64)
        for kf in keyframes:
            n = max(1, int(np.ceil(np.abs(kf.q - q_prev).max() / speed)))
            s = np.arange(1, n + 1) / n
            s = 10 * s**3 - 15 * s**4 + 6 * s**5
            self.reference += [(q_prev + (kf.q - q_prev) * si, kf.closed) for si in s]
            self.reference += [(kf.q, kf.closed)] * kf.hold
            q_prev = kf.q
        self.t = 0
        self._ou = np.zeros(7)

    def done(self) -> bool:
        """Whether the reference has been played to its end (the arm may still be settling)."""
        return self.t >= len(self.reference)

    def __call__(self, q: np.ndarray) -> np.ndarray:
        q_ref, closed = self.reference[min(self.t, len(self.reference) - 1)]
        self.t += 1
        theta = 0.3
        self._ou += -theta * self._ou + self.noise * np.sqrt(2 * theta) * self.rng.normal(size=7)
        a = self.gain * (q_ref - np.asarray(q, dtype=np.float64)) / self.max_joint_delta + self._ou
        return np.concatenate([np.clip(a, -1.0, 1.0), [1.0 if closed else -1.0]]).astype(np.float32)


@dataclass(frozen=True)
class Script:
    """A task's scripted demonstrator: its grasp styles and ``controller(env, style, first_obs, rng)``, which plans
    the episode and returns a policy ``obs -> action``."""

    styles: tuple[str, ...]
    controller: Callable[[Any, str, dict[str, np.ndarray], np.random.Generator], Callable[[dict], np.ndarray]]


def pick_place_controller(
    env: FrankaPickPlaceEnv, style: str, obs: dict[str, np.ndarray], rng: np.random.Generator
) -> Callable[[dict], np.ndarray]:
    """Plan a pick-and-place in ``style`` from the env's current state and return its noisy tracker."""
    tracker = KeyframeController(plan_pick_place(env, style, rng), obs["joint_pos"], env.max_joint_delta, rng)
    return lambda o: tracker(o["joint_pos"])


def mug_hang_controller(
    env: FrankaMugHangEnv, style: str, obs: dict[str, np.ndarray], rng: np.random.Generator
) -> Callable[[dict], np.ndarray]:
    """Plan a mug hanging in ``style`` from the env's current state and return its noisy tracker."""
    tracker = KeyframeController(plan_mug_hang(env, style, rng), obs["joint_pos"], env.max_joint_delta, rng)
    return lambda o: tracker(o["joint_pos"])


#: task name (as :data:`lpds_envs.backbones.zoo.franka.TASKS`) -> its demonstrator
SCRIPTS: dict[str, Script] = {
    "pick_place": Script(PICK_STYLES, pick_place_controller),
    "mug_hang": Script(MUG_STYLES, mug_hang_controller),
}
