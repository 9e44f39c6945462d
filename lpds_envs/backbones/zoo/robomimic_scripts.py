"""Scripted controllers for the robomimic tasks (``lift``, ``can``, ``square``) that read robosuite's privileged state.

Each controller drives the OSC_POSE action ``(dx, dy, dz, dax, day, daz, gripper)`` of
:class:`~lpds_envs.envs.robomimic.RobomimicEnv` through a small phase machine of waypoints (object, handle, peg and
bin poses read from the simulator every step), turning position and yaw errors into clipped delta actions. Every
episode draws a style (how the object is approached and grasped, the path to the goal) and perturbed parameters
(heights, offsets, speeds, grasp yaw), and the actions carry temporally correlated (Ornstein-Uhlenbeck) noise, so
the demonstrations are competent, imperfect and multimodal like robomimic's multi-human data. A missed grasp or a
dropped object sends the controller back to its approach phase (at most ``max_retries`` times).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

#: straight-down gripper orientation with the gripper's x axis along world x (columns: x, y, z axes)
R_DOWN = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])


#: largest gripper turn a controller plans at once: the rotation action takes the shortest way round, so a turn near
#: 180 degrees could go the other way (and into the wrist's joint limit)
MAX_TURN = 0.85 * np.pi


def wrap(angle: float, period: float = 2 * np.pi) -> float:
    """``angle`` wrapped to ``[-period / 2, period / 2)``."""
    return float((angle + period / 2) % period - period / 2)


def rot_z(angle: float) -> np.ndarray:
    """Rotation matrix about the world z axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def yaw_of(v: np.ndarray) -> float:
    """Yaw of the horizontal part of vector ``v``."""
    return float(np.arctan2(v[1], v[0]))


class RobomimicController:
    """Base class: privileged reads, waypoint-to-action conversion, styles, per-episode parameters and noise.

    :param noise: stationary std of the OU action noise on the arm's 6 dims (actions are in [-1, 1]); each episode
        draws its own scale in ``[0.5, 1.5] * noise``
    :param styles: styles to draw from (default: all of :attr:`STYLES`)
    :param max_retries: how often a failed grasp or a drop restarts the approach
    """

    STYLES: tuple[str, ...] = ("default",)

    def __init__(self, noise: float = 0.1, styles: tuple[str, ...] | None = None, max_retries: int = 2) -> None:
        self.noise = float(noise)
        self.styles = tuple(styles) if styles is not None else self.STYLES
        unknown = set(self.styles) - set(self.STYLES)
        if unknown:
            raise ValueError(f"unknown styles {sorted(unknown)} for {type(self).__name__}; known: {self.STYLES}")
        self.max_retries = int(max_retries)
        self.rng = np.random.default_rng()
        self.style = self.styles[0]
        self.phase, self.t, self.phase_t, self.retries = "approach", 0, 0, 0

    # ------------------------------------------------------------------------------------------ privileged state
    def reset(self, env, rng: np.random.Generator) -> None:
        """Start an episode on ``env`` (a :class:`RobomimicEnv`, possibly wrapped, already reset)."""
        self.env = env.unwrapped
        self.suite = self.env.suite_env
        self.sim = self.suite.sim
        self.eef_sid = self.suite.robots[0].eef_site_id["right"]
        self.rng = rng
        self.style = self.styles[int(rng.integers(len(self.styles)))]
        self.phase, self.t, self.phase_t, self.retries = "approach", 0, 0, 0
        self.sigma = self.noise * rng.uniform(0.5, 1.5)
        self._ou = np.zeros(6)
        # finger closing axis in the gripper frame (from the two finger bodies), to aim grasps by yaw
        left = self.sim.data.body_xpos[self.sim.model.body_name2id("gripper0_right_leftfinger")]
        right = self.sim.data.body_xpos[self.sim.model.body_name2id("gripper0_right_rightfinger")]
        axis = self.eef_mat.T @ (left - right)
        self.finger_local = axis / np.linalg.norm(axis)
        self.finger_offset = yaw_of(R_DOWN @ self.finger_local)  # finger yaw minus gripper yaw when pointing down
        self.params = self.draw_params(rng)

    @property
    def eef_pos(self) -> np.ndarray:
        return self.sim.data.site_xpos[self.eef_sid].copy()

    @property
    def eef_mat(self) -> np.ndarray:
        return self.sim.data.site_xmat[self.eef_sid].reshape(3, 3).copy()

    @property
    def finger_yaw(self) -> float:
        """Current yaw of the finger closing axis (defined modulo pi)."""
        return yaw_of(self.eef_mat @ self.finger_local)

    def body_pos(self, name: str) -> np.ndarray:
        return self.sim.data.body_xpos[self.sim.model.body_name2id(name)].copy()

    def body_mat(self, name: str) -> np.ndarray:
        return self.sim.data.body_xmat[self.sim.model.body_name2id(name)].reshape(3, 3).copy()

    def site_pos(self, name: str) -> np.ndarray:
        return self.sim.data.site_xpos[self.sim.model.site_name2id(name)].copy()

    @property
    def gripper_width(self) -> float:
        """Finger opening (m): about 0.08 open, 0 closed on nothing."""
        return float(np.sum(np.abs(self.env.observation_dict()["robot0_gripper_qpos"])))

    @property
    def wrist(self) -> float:
        """Position of the Panda's last joint (it turns the gripper about its axis; range about +-2.9 rad)."""
        return float(self.env.observation_dict()["robot0_joint_pos"][-1])

    @property
    def gripper_yaw(self) -> float:
        """Yaw of the gripper's x axis (the ``yaw`` of :meth:`move` when pointing down)."""
        return yaw_of(self.eef_mat[:, 0])

    def wrist_ok(self, turn: float, margin: float = 2.6) -> bool:
        """Whether turning the gripper by ``turn`` (rad, about world z) keeps the last joint inside ``+-margin``
        (a positive yaw turns that joint negatively when the gripper points down)."""
        return abs(self.wrist - turn) < margin

    def grasp_yaw(self, object_yaw: float, period: float) -> float:
        """Gripper yaw whose fingers close along ``object_yaw`` (modulo ``period``), nearest the current one."""
        current = self.finger_yaw
        turns = [wrap(object_yaw - current, period) + k * period for k in range(-3, 4)]
        ok = [t for t in turns if self.wrist_ok(t) and abs(t) < MAX_TURN] or turns
        return self.gripper_yaw + min(ok, key=abs)

    # -------------------------------------------------------------------------------------------------- actions
    def move(self, target: np.ndarray, yaw: float, gripper: float, speed: float, gain: float = 3.0) -> np.ndarray:
        """Action towards ``target`` (position of the grip site) and gripper ``yaw`` (straight down), gripper command.

        The position part is ``gain * error / 5 cm`` with its norm clipped to ``speed``; the rotation part the
        axis-angle error over 0.5 rad, clipped to ``[-1, 1]``.
        """
        dpos = gain * (np.asarray(target) - self.eef_pos) / 0.05
        norm = np.linalg.norm(dpos)
        if norm > speed:
            dpos *= speed / norm
        r_err = Rotation.from_matrix(rot_z(yaw) @ R_DOWN @ self.eef_mat.T).as_rotvec()
        drot = np.clip(1.5 * r_err / 0.5, -1.0, 1.0)
        return np.concatenate([dpos, drot, [gripper]])

    def yaw_error(self, yaw: float) -> float:
        return float(np.linalg.norm(Rotation.from_matrix(rot_z(yaw) @ R_DOWN @ self.eef_mat.T).as_rotvec()))

    def goto(self, phase: str) -> None:
        self.phase, self.phase_t = phase, 0

    def act(self) -> np.ndarray:
        """The action for the current state, noise included (float32, in [-1, 1])."""
        action = self.plan()
        self._ou = 0.85 * self._ou + np.sqrt(1 - 0.85**2) * self.sigma * self.rng.standard_normal(6)
        action[:6] += self._ou
        self.t += 1
        self.phase_t += 1
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def draw_params(self, rng: np.random.Generator) -> dict[str, float]:
        """Per-episode parameters (subclasses)."""
        return {}

    def plan(self) -> np.ndarray:
        """Noise-free action of the current phase (subclasses)."""
        raise NotImplementedError

    def _u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def retry(self) -> None:
        """Back to the approach after a miss or a drop, if retries are left (else keep going as is)."""
        if self.retries < self.max_retries:
            self.retries += 1
            self.params = self.draw_params(self.rng) | {"style_retry": 1.0}
            self.goto("approach")


class LiftController(RobomimicController):
    """Lift the cube: approach (hover-then-descend or diagonal), grasp across a face (the nearest face pair or the
    other one), lift to a drawn height.

    Styles: ``hover`` (above the cube, then straight down), ``diagonal`` (straight to the grasp point),
    ``hover_rotated`` (hover, grasping across the other face pair: a 90 degree different wrist).
    """

    STYLES = ("hover", "diagonal", "hover_rotated")

    def draw_params(self, rng):
        return {
            "hover": self._u(0.05, 0.12),
            "grasp_dz": self._u(-0.008, 0.008),
            "dx": self._u(-0.008, 0.008),
            "dy": self._u(-0.008, 0.008),
            "speed": self._u(0.6, 1.0),
            "close_steps": int(rng.integers(5, 12)),
            "lift": self._u(0.1, 0.22),
            "lift_speed": self._u(0.5, 1.0),
        }

    def plan(self):
        p = self.params
        cube = self.body_pos("cube_main")
        cube_yaw = yaw_of(self.body_mat("cube_main")[:, 0])
        if self.phase == "approach" and self.phase_t == 0:
            extra = np.pi / 2 if self.style == "hover_rotated" else 0.0
            self.yaw = self.grasp_yaw(cube_yaw, np.pi / 2) + extra
        grasp = cube + np.array([p["dx"], p["dy"], p["grasp_dz"]])
        if self.phase == "approach":
            if self.style == "diagonal":
                target = grasp + np.array([0.0, 0.0, 0.02])
            else:
                target = grasp + np.array([0.0, 0.0, p["hover"]])
            if (np.linalg.norm(target - self.eef_pos) < 0.015 and self.yaw_error(self.yaw) < 0.08) or self.phase_t > 80:
                self.goto("descend")
            return self.move(target, self.yaw, -1.0, p["speed"])
        if self.phase == "descend":
            if np.linalg.norm(grasp - self.eef_pos) < 0.008 or self.phase_t > 40:
                self.goto("close")
            return self.move(grasp, self.yaw, -1.0, 0.7 * p["speed"])
        if self.phase == "close":
            if self.phase_t >= p["close_steps"]:
                self.goto("lift")
                self.lift_from = self.eef_pos
            return self.move(grasp, self.yaw, 1.0, 0.3)
        # lift
        target = self.lift_from + np.array([0.0, 0.0, p["lift"]])
        if self.phase_t > 15 and self.gripper_width < 0.01:  # fingers closed on nothing: missed or dropped
            self.retry()
        return self.move(target, self.yaw, 1.0, p["lift_speed"])


class CanController(RobomimicController):
    """Pick the can from the left bin and place it in its quadrant of the right bin.

    Styles: ``arc`` (lift high, carry over, lower), ``direct`` (lift low and carry diagonally), ``turned`` (arc, with
    the wrist turned by a drawn yaw before grasping).
    """

    STYLES = ("arc", "direct", "turned")

    def draw_params(self, rng):
        return {
            "hover": self._u(0.08, 0.13),
            "grasp_dz": self._u(-0.015, 0.01),
            "speed": self._u(0.7, 1.0),
            "close_steps": int(rng.integers(5, 10)),
            "carry_z": self._u(1.04, 1.12),
            "low_z": self._u(1.0, 1.04),
            "place_dx": self._u(0.035, 0.08),
            "place_dy": self._u(0.035, 0.1),
            "release_z": self._u(0.91, 0.95),
            "turn": self._u(-1.2, 1.2),
            "carry_speed": self._u(0.8, 1.0),
            "open_steps": int(rng.integers(4, 8)),
        }

    def place_target(self) -> np.ndarray:
        """Release point: inside the can's quadrant of the goal bin, near its corner closest to the robot."""
        s, i = self.suite, self.suite.object_to_id["can"]
        x_low = s.bin2_pos[0] - (s.bin_size[0] / 2 if i in (0, 2) else 0.0)
        y_low = s.bin2_pos[1] - (s.bin_size[1] / 2 if i < 2 else 0.0)
        return np.array([x_low + self.params["place_dx"], y_low + self.params["place_dy"], self.params["release_z"]])

    def plan(self):
        p = self.params
        can = self.body_pos("Can_main")
        if self.phase == "approach" and self.phase_t == 0:
            self.yaw = self.finger_yaw - self.finger_offset + (p["turn"] if self.style == "turned" else 0.0)
        grasp = can + np.array([0.0, 0.0, p["grasp_dz"]])
        if self.phase == "approach":
            target = grasp + np.array([0.0, 0.0, p["hover"]])
            if (np.linalg.norm(target - self.eef_pos) < 0.015 and self.yaw_error(self.yaw) < 0.1) or self.phase_t > 80:
                self.goto("descend")
            return self.move(target, self.yaw, -1.0, p["speed"])
        if self.phase == "descend":
            if np.linalg.norm(grasp - self.eef_pos) < 0.01 or self.phase_t > 40:
                self.goto("close")
            return self.move(grasp, self.yaw, -1.0, 0.7 * p["speed"])
        if self.phase == "close":
            if self.phase_t >= p["close_steps"]:
                self.goto("lift")
            return self.move(grasp, self.yaw, 1.0, 0.3)
        place = self.place_target()
        holding = self.gripper_width > 0.01 and np.linalg.norm(can - self.eef_pos) < 0.06
        if self.phase in ("lift", "carry", "lower") and self.phase_t > 10 and not holding:
            self.retry()
            return self.move(self.eef_pos, self.yaw, -1.0, 0.3)
        z_carry = p["carry_z"] if self.style != "direct" else p["low_z"]
        if self.phase == "lift":
            target = np.array([*self.eef_pos[:2], z_carry])
            if self.style == "direct" and self.eef_pos[2] > 0.98:  # clear of the bin walls: head for the goal
                target[:2] = place[:2]
            if self.eef_pos[2] > z_carry - 0.02 or self.phase_t > 60:
                self.goto("carry")
            return self.move(target, self.yaw, 1.0, p["carry_speed"])
        if self.phase == "carry":
            target = np.array([place[0], place[1], z_carry])
            if np.linalg.norm(target[:2] - self.eef_pos[:2]) < 0.02 or self.phase_t > 100:
                self.goto("lower")
            return self.move(target, self.yaw, 1.0, p["carry_speed"])
        if self.phase == "lower":
            if (
                np.linalg.norm(place[:2] - self.eef_pos[:2]) < 0.03 and self.eef_pos[2] < place[2] + 0.02
            ) or self.phase_t > 40:
                self.goto("release")
            return self.move(place, self.yaw, 1.0, 0.7 * p["carry_speed"])
        if self.phase == "release":
            if self.phase_t >= p["open_steps"]:
                self.goto("retreat")
            return self.move(place, self.yaw, -1.0, 0.3)
        return self.move(place + np.array([0.0, 0.0, 0.15]), self.yaw, -1.0, 0.8)


class SquareController(RobomimicController):
    """Pick the square nut by its handle and drop it over the square peg.

    The nut is steered closed-loop on its own pose: the gripper moves so that the nut's centre is above the peg and
    turns the nut so that its sides line up with the peg's (modulo 90 degrees), choosing among the four aligned
    orientations the one that points the handle where the style wants it (towards the robot, or sideways, which
    keeps the far peg within the arm's reach) and keeps the wrist joint inside its range; then it lowers the nut and
    lets go.

    Styles: ``hover`` (above the handle, then down), ``diagonal`` (straight to the handle), ``align_early`` (turn the
    nut while lifting it, not above the peg), ``side`` (hover; handle left or right of the peg at the end).
    """

    STYLES = ("hover", "diagonal", "align_early", "side")

    def draw_params(self, rng):
        return {
            "hover": self._u(0.04, 0.1),
            "grasp_dz": self._u(-0.006, 0.006),
            "grasp_dr": self._u(-0.01, 0.01),
            "speed": self._u(0.6, 1.0),
            "close_steps": int(rng.integers(6, 12)),
            "carry_z": self._u(1.0, 1.08),
            "carry_speed": self._u(0.6, 1.0),
            "release_dz": self._u(0.0, 0.02),
            "open_steps": int(rng.integers(4, 10)),
        }

    def handle_dir(self) -> np.ndarray:
        nut = self.body_pos("SquareNut_main")
        along = self.site_pos("SquareNut_handle_site") - nut
        along[2] = 0.0
        return along / max(np.linalg.norm(along), 1e-6)

    def align_turn(self) -> float:
        """Gripper turn that lines the nut up with the peg, handle where the style wants it."""
        peg_yaw = yaw_of(self.body_mat("peg1")[:, 0])
        nut_yaw = yaw_of(self.body_mat("SquareNut_main")[:, 0])
        handle_yaw = yaw_of(self.handle_dir())
        want = (np.pi / 2, -np.pi / 2) if self.style == "side" else (np.pi,)
        base = wrap(peg_yaw - nut_yaw, np.pi / 2)
        turns = [base + k * np.pi / 2 for k in range(-4, 5)]
        ok = [t for t in turns if self.wrist_ok(t) and abs(t) < MAX_TURN] or turns

        def cost(t):
            return min(abs(wrap(handle_yaw + t - w)) for w in want) + 0.1 * abs(t)

        return min(ok, key=cost)

    def plan(self):
        p = self.params
        nut = self.body_pos("SquareNut_main")
        along = self.handle_dir()
        grasp = self.site_pos("SquareNut_handle_site") + p["grasp_dr"] * along + np.array([0.0, 0.0, p["grasp_dz"]])
        if self.phase == "approach" and self.phase_t == 0:
            self.yaw = self.grasp_yaw(yaw_of(along) + np.pi / 2, np.pi)  # fingers across the handle
        if self.phase == "approach":
            target = grasp + np.array([0.0, 0.0, 0.02 if self.style == "diagonal" else p["hover"]])
            if (np.linalg.norm(target - self.eef_pos) < 0.012 and self.yaw_error(self.yaw) < 0.08) or self.phase_t > 80:
                self.goto("descend")
            return self.move(target, self.yaw, -1.0, p["speed"])
        if self.phase == "descend":
            if np.linalg.norm(grasp - self.eef_pos) < 0.007 or self.phase_t > 40:
                self.goto("close")
            return self.move(grasp, self.yaw, -1.0, 0.7 * p["speed"])
        if self.phase == "close":
            if self.phase_t >= p["close_steps"]:
                self.goto("lift")
                self.lift_from = self.eef_pos
                self.carry_yaw = None
            return self.move(grasp, self.yaw, 1.0, 0.3)
        if self.phase in ("lift", "carry", "lower") and self.phase_t > 10 and self.gripper_width < 0.005:
            self.retry()
            return self.move(self.eef_pos, self.yaw, -1.0, 0.3)
        peg = self.body_pos("peg1")
        xy_err = peg[:2] - nut[:2]
        if self.carry_yaw is None and (self.style == "align_early" or self.phase == "carry"):
            self.carry_yaw = self.gripper_yaw + self.align_turn()
        yaw = self.yaw if self.carry_yaw is None else self.carry_yaw
        if self.phase == "lift":
            target = np.array([*self.lift_from[:2], p["carry_z"]])
            if self.eef_pos[2] > p["carry_z"] - 0.02 or self.phase_t > 60:
                self.goto("carry")
            return self.move(target, yaw, 1.0, p["carry_speed"])
        if self.phase == "carry":
            target = np.array([*(self.eef_pos[:2] + xy_err), p["carry_z"]])
            if (np.linalg.norm(xy_err) < 0.006 and self.yaw_error(yaw) < 0.05) or self.phase_t > 150:
                self.goto("lower")
            return self.move(target, yaw, 1.0, p["carry_speed"])
        if self.phase == "lower":  # small closed-loop yaw corrections as the nut settles in the grasp
            fine = self.gripper_yaw + wrap(
                yaw_of(self.body_mat("peg1")[:, 0]) - yaw_of(self.body_mat("SquareNut_main")[:, 0]), np.pi / 2
            )
            target = np.array([*(self.eef_pos[:2] + xy_err), self.eef_pos[2] - 0.03])
            if nut[2] < peg[2] + p["release_dz"] or self.phase_t > 60:
                self.goto("release")
            return self.move(target, fine, 1.0, 0.4)
        if self.phase == "release":
            if self.phase_t >= p["open_steps"]:
                self.goto("retreat")
            return self.move(self.eef_pos, self.gripper_yaw, -1.0, 0.2)
        return self.move(self.eef_pos + np.array([0.0, 0.0, 0.05]), self.gripper_yaw, -1.0, 0.6)


#: task name -> controller class
CONTROLLERS: dict[str, type[RobomimicController]] = {
    "lift": LiftController,
    "can": CanController,
    "square": SquareController,
}
