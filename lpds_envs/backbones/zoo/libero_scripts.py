"""A scripted controller for ``lpds/LiberoCreamCheese-v0`` (LIBERO-90 task 57) that reads privileged object poses.

The cream cheese lies flat on the table (a box of about 8 x 4.3 x 1.8 cm); the controller grasps it from above with
the fingers closing across its narrow horizontal side, carries it over the wooden tray and drops it in. Like the
robomimic controllers (:mod:`lpds_envs.backbones.zoo.robomimic_scripts`, whose pose helpers it shares) it is a small
phase machine of waypoints read from the simulator every step (cheese box pose from its collision geom, tray from
its ``contain_region`` site), turned into clipped delta actions of LIBERO's OSC controller. Every episode draws a
style and perturbed parameters (hover height, grasp offsets, speeds, carry height, release point), and the arm's
actions carry temporally correlated (Ornstein-Uhlenbeck) noise. A missed grasp or a dropped box sends the controller
back to its approach (at most ``max_retries`` times).

Styles:

- ``hover``: above the box, then straight down, grasp at its centre, high carry;
- ``diagonal``: straight to just above the grasp point, grasp at its centre, low carry;
- ``offset``: hover, grasp off-centre along the box's long side (1.5-2.5 cm either way), high carry.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from lpds_envs.backbones.zoo.robomimic_scripts import MAX_TURN, R_DOWN, rot_z, wrap, yaw_of

CHEESE_GEOM = "cream_cheese_1_g1"  # the box's collision geom
TRAY_REGION = "wooden_tray_1_contain_region"  # the site LIBERO's In(cream_cheese_1, tray region) checks


class CreamCheeseController:
    """Pick up the cream cheese and put it in the tray (see the module docstring).

    :param noise: stationary std of the OU action noise on the arm's 6 dims (actions are in [-1, 1]); each episode
        draws its own scale in ``[0.5, 1.5] * noise``
    :param styles: styles to draw from (default: all of :attr:`STYLES`)
    :param max_retries: how often a failed grasp or a drop restarts the approach
    """

    STYLES: tuple[str, ...] = ("hover", "diagonal", "offset")

    def __init__(self, noise: float = 0.1, styles: tuple[str, ...] | None = None, max_retries: int = 2) -> None:
        self.noise = float(noise)
        self.styles = tuple(styles) if styles is not None else self.STYLES
        unknown = set(self.styles) - set(self.STYLES)
        if unknown or not self.styles:
            raise ValueError(f"styles must be a non-empty subset of {self.STYLES}, got {self.styles}")
        self.max_retries = int(max_retries)
        self.rng = np.random.default_rng()
        self.style = self.styles[0]
        self.phase, self.t, self.phase_t, self.retries = "approach", 0, 0, 0

    # ------------------------------------------------------------------------------------------ privileged state
    def reset(self, env, rng: np.random.Generator) -> None:
        """Start an episode on ``env`` (a :class:`~lpds_envs.envs.libero.LiberoEnv`, possibly wrapped, already
        reset); ``rng`` draws the style, the parameters and the noise."""
        self.env = env.unwrapped
        self.sim = self.env.sim
        robot = self.env.libero_env.robots[0]
        self.eef_sid = int(robot.eef_site_id)
        self.rng = rng
        self.style = self.styles[int(rng.integers(len(self.styles)))]
        self.phase, self.t, self.phase_t, self.retries = "approach", 0, 0, 0
        self.sigma = self.noise * rng.uniform(0.5, 1.5)
        self._ou = np.zeros(6)
        left = self.sim.data.body_xpos[self.sim.model.body_name2id("gripper0_leftfinger")]
        right = self.sim.data.body_xpos[self.sim.model.body_name2id("gripper0_rightfinger")]
        axis = self.eef_mat.T @ (left - right)
        self.finger_local = axis / np.linalg.norm(axis)
        self.params = self.draw_params(rng)
        self.yaw = self.gripper_yaw

    @property
    def eef_pos(self) -> np.ndarray:
        return self.sim.data.site_xpos[self.eef_sid].copy()

    @property
    def eef_mat(self) -> np.ndarray:
        return self.sim.data.site_xmat[self.eef_sid].reshape(3, 3).copy()

    @property
    def gripper_yaw(self) -> float:
        """Yaw of the gripper's x axis (the ``yaw`` of :meth:`move` when pointing down)."""
        return yaw_of(self.eef_mat[:, 0])

    @property
    def finger_yaw(self) -> float:
        """Current yaw of the finger closing axis (defined modulo pi)."""
        return yaw_of(self.eef_mat @ self.finger_local)

    @property
    def gripper_width(self) -> float:
        """Finger opening (m): about 0.077 open, about 0.043 closed on the box, 0 closed on nothing."""
        return float(np.sum(np.abs(self.env._raw_obs["robot0_gripper_qpos"])))

    def cheese(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The box's centre, unit vector of its long horizontal side, and unit vector of its narrow one."""
        g = self.sim.model.geom_name2id(CHEESE_GEOM)
        mat = self.sim.data.geom_xmat[g].reshape(3, 3)
        half = self.sim.model.geom_size[g]
        horizontal = [i for i in range(3) if abs(mat[2, i]) < 0.7]  # the axes lying in the table plane
        long_i = max(horizontal, key=lambda i: half[i])
        narrow_i = min(horizontal, key=lambda i: half[i])
        long_v, narrow_v = mat[:, long_i].copy(), mat[:, narrow_i].copy()
        long_v[2] = narrow_v[2] = 0.0
        return (
            self.sim.data.geom_xpos[g].copy(),
            long_v / np.linalg.norm(long_v),
            narrow_v / np.linalg.norm(narrow_v),
        )

    def tray(self) -> np.ndarray:
        return self.sim.data.site_xpos[self.sim.model.site_name2id(TRAY_REGION)].copy()

    # -------------------------------------------------------------------------------------------------- actions
    def move(self, target: np.ndarray, yaw: float, gripper: float, speed: float, gain: float = 3.0) -> np.ndarray:
        """Action towards ``target`` (grip site position) with the gripper pointing down at ``yaw``: position part
        ``gain * error / 5 cm`` with its norm clipped to ``speed``, rotation part the axis-angle error over 0.5 rad."""
        dpos = gain * (np.asarray(target) - self.eef_pos) / 0.05
        norm = np.linalg.norm(dpos)
        if norm > speed:
            dpos *= speed / norm
        r_err = Rotation.from_matrix(rot_z(yaw) @ R_DOWN @ self.eef_mat.T).as_rotvec()
        drot = np.clip(1.5 * r_err / 0.5, -1.0, 1.0)
        return np.concatenate([dpos, drot, [gripper]])

    def yaw_error(self, yaw: float) -> float:
        return float(np.linalg.norm(Rotation.from_matrix(rot_z(yaw) @ R_DOWN @ self.eef_mat.T).as_rotvec()))

    def grasp_yaw(self, narrow: np.ndarray) -> float:
        """Gripper yaw whose fingers close along ``narrow`` (modulo pi), by the smallest turn."""
        turn = wrap(yaw_of(narrow) - self.finger_yaw, np.pi)
        turn = turn if abs(turn) < MAX_TURN else turn - np.sign(turn) * np.pi
        return self.gripper_yaw + turn

    def goto(self, phase: str) -> None:
        self.phase, self.phase_t = phase, 0

    def draw_params(self, rng: np.random.Generator) -> dict[str, float]:
        u = rng.uniform
        return {
            "hover": u(0.06, 0.12),
            "grasp_dz": u(-0.002, 0.006),
            "grasp_dn": u(-0.004, 0.004),  # across the box
            "grasp_dl": (1 if rng.random() < 0.5 else -1) * u(0.015, 0.025)
            if self.style == "offset"
            else u(-0.006, 0.006),
            "speed": u(0.7, 1.0),
            "close_steps": int(rng.integers(6, 12)),
            "carry_z": u(0.62, 0.70) if self.style != "diagonal" else u(0.54, 0.58),
            "carry_speed": u(0.8, 1.0),
            "place_dx": u(-0.02, 0.02),
            "place_dy": u(-0.035, 0.035),
            "release_z": u(0.50, 0.54),
            "open_steps": int(rng.integers(5, 10)),
        }

    def retry(self) -> None:
        """Back to the approach after a miss or a drop, if retries are left (else keep going as is)."""
        if self.retries < self.max_retries:
            self.retries += 1
            self.params = self.draw_params(self.rng)
            self.goto("approach")

    def act(self) -> np.ndarray:
        """The action for the current state, noise included (float32, in [-1, 1])."""
        action = self.plan()
        self._ou = 0.85 * self._ou + np.sqrt(1 - 0.85**2) * self.sigma * self.rng.standard_normal(6)
        action[:6] += self._ou
        self.t += 1
        self.phase_t += 1
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def plan(self) -> np.ndarray:
        """Noise-free action of the current phase."""
        p = self.params
        center, long_v, narrow_v = self.cheese()
        grasp = center + p["grasp_dl"] * long_v + p["grasp_dn"] * narrow_v + np.array([0.0, 0.0, p["grasp_dz"]])
        if self.phase == "approach":
            if self.phase_t == 0:
                self.yaw = self.grasp_yaw(narrow_v)
            target = grasp + np.array([0.0, 0.0, 0.025 if self.style == "diagonal" else p["hover"]])
            if (np.linalg.norm(target - self.eef_pos) < 0.015 and self.yaw_error(self.yaw) < 0.08) or self.phase_t > 80:
                self.goto("descend")
            return self.move(target, self.yaw, -1.0, p["speed"])
        if self.phase == "descend":
            if np.linalg.norm(grasp - self.eef_pos) < 0.008 or self.phase_t > 40:
                self.goto("close")
            return self.move(grasp, self.yaw, -1.0, 0.6 * p["speed"])
        if self.phase == "close":
            if self.phase_t >= p["close_steps"]:
                self.goto("lift")
            return self.move(grasp, self.yaw, 1.0, 0.3)
        holding = self.gripper_width > 0.01 and np.linalg.norm(center - self.eef_pos) < 0.06
        if self.phase in ("lift", "carry", "lower") and self.phase_t > 8 and not holding:
            self.retry()
            return self.move(self.eef_pos + np.array([0.0, 0.0, 0.02]), self.yaw, -1.0, 0.3)
        tray = self.tray()
        place = np.array([tray[0] + p["place_dx"], tray[1] + p["place_dy"], p["release_z"]])
        if self.phase == "lift":
            target = np.array([*self.eef_pos[:2], p["carry_z"]])
            if self.eef_pos[2] > min(p["carry_z"] - 0.02, 0.52) or self.phase_t > 40:
                self.goto("carry")
            return self.move(target, self.yaw, 1.0, p["carry_speed"])
        if self.phase == "carry":
            target = np.array([place[0], place[1], p["carry_z"]])
            if np.linalg.norm(target[:2] - self.eef_pos[:2]) < 0.02 or self.phase_t > 120:
                self.goto("lower")
            return self.move(target, self.yaw, 1.0, p["carry_speed"])
        if self.phase == "lower":
            if abs(self.eef_pos[2] - place[2]) < 0.015 or self.phase_t > 40:
                self.goto("release")
            return self.move(place, self.yaw, 1.0, 0.7 * p["carry_speed"])
        if self.phase == "release":
            if self.phase_t >= p["open_steps"]:
                self.goto("retreat")
            return self.move(self.eef_pos, self.yaw, -1.0, 0.2)
        return self.move(self.eef_pos + np.array([0.0, 0.0, 0.05]), self.yaw, -1.0, 0.6)
