"""Privileged-state helpers for scripted Adroit controllers: :class:`AdroitSim` (named sites and joints, MuJoCo
Jacobians, damped least-squares IK, joint targets -> normalised actions) and :class:`ScriptedController`, the
base class of the controllers in :mod:`lpds_envs.backbones.zoo.adroit_scripts` (per-episode style and parameters,
temporally correlated action noise).
"""

from __future__ import annotations

import mujoco
import numpy as np


class AdroitSim:
    """Privileged view of an Adroit env: named sites and joints, Jacobians, and joint targets -> actions.

    :param env: a gymnasium-robotics ``AdroitHand*-v1`` env (wrapped or not)
    """

    def __init__(self, env) -> None:
        self.raw = env.unwrapped
        self.model = self.raw.model
        self.data = self.raw.data
        m = self.model
        self.act_joint = m.actuator_trnid[:, 0].copy()
        self.act_qadr = m.jnt_qposadr[self.act_joint]
        self.act_dadr = m.jnt_dofadr[self.act_joint]
        gain, bias = m.actuator_gainprm[:, 0], m.actuator_biasprm[:, 1]
        self.ctrl_per_q = -bias / gain  # position servo: force = gain * ctrl + bias * q  ->  q_eq = ctrl * gain / -bias
        self.act_mean = m.actuator_ctrlrange.mean(axis=1)
        self.act_rng = 0.5 * (m.actuator_ctrlrange[:, 1] - m.actuator_ctrlrange[:, 0])
        self.joint_names = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in self.act_joint]
        self.joint_range = m.jnt_range[self.act_joint].copy()
        self._jac = np.zeros((3, m.nv))

    def site(self, name: str) -> np.ndarray:
        """World position of site ``name``."""
        return self.data.site_xpos[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, name)].copy()

    def body(self, name: str) -> np.ndarray:
        """World position of body ``name``."""
        return self.data.xpos[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)].copy()

    def body_mat(self, name: str) -> np.ndarray:
        """World rotation matrix (3, 3) of body ``name``."""
        return self.data.xmat[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)].reshape(3, 3).copy()

    def joint(self, name: str) -> float:
        """Position of (scalar) joint ``name``."""
        return float(
            self.data.qpos[self.model.jnt_qposadr[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, name)]]
        )

    def index(self, names: list[str]) -> np.ndarray:
        """Actuator indices of the actuated joints ``names``."""
        return np.array([self.joint_names.index(n) for n in names])

    @property
    def q(self) -> np.ndarray:
        """Current positions of the actuated joints, in actuator order."""
        return self.data.qpos[self.act_qadr].copy()

    def site_velocity(self, name: str, actuators: np.ndarray) -> np.ndarray:
        """World velocity (3,) of site ``name`` due to the joints of ``actuators``."""
        return self.site_jacobian(name, actuators) @ self.data.qvel[self.act_dadr[actuators]]

    def site_jacobian(self, name: str, actuators: np.ndarray) -> np.ndarray:
        """Translational Jacobian (3, k) of site ``name`` w.r.t. the joints of ``actuators``."""
        sid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, name)
        mujoco.mj_jacSite(self.model, self.data, self._jac, None, sid)
        return self._jac[:, self.act_dadr[actuators]].copy()

    def ik_step(
        self,
        name: str,
        target: np.ndarray,
        actuators: np.ndarray,
        gain: float = 1.0,
        damping: float = 0.05,
        max_step: float = 0.3,
        kv: float = 0.0,
    ) -> np.ndarray:
        """Damped least-squares joint step (k,) that moves site ``name`` towards world point ``target``.

        ``kv`` (seconds) subtracts ``kv`` times the site's current velocity from the error (Cartesian damping).

        Joints that the step would push past their range are pinned at the limit and the rest re-solved, so a
        saturated joint hands its share of the motion to the others.
        """
        jac = self.site_jacobian(name, actuators)
        err = gain * (np.asarray(target) - self.site(name))
        if kv:
            err = err - kv * jac @ self.data.qvel[self.act_dadr[actuators]]
        q = self.q[actuators]
        lo, hi = self.joint_range[actuators, 0], self.joint_range[actuators, 1]
        free = np.ones(len(actuators), dtype=bool)
        dq = np.zeros(len(actuators))
        for _ in range(3):
            j = jac[:, free]
            dq[free] = j.T @ np.linalg.solve(j @ j.T + damping**2 * np.eye(3), err)
            pinned = free & ((((q + dq) > hi) & (dq > 0)) | (((q + dq) < lo) & (dq < 0)))
            if not pinned.any():
                break
            dq[pinned] = np.clip(dq[pinned], lo[pinned] - q[pinned], hi[pinned] - q[pinned])
            err = err - jac[:, pinned] @ dq[pinned]
            free &= ~pinned
            if not free.any():
                break
        return np.clip(dq, -max_step, max_step)

    def point_jacobian(self, body: str, point: np.ndarray, actuators: np.ndarray) -> np.ndarray:
        """Translational Jacobian (3, k) of world point ``point`` taken as rigidly attached to ``body``, w.r.t. the
        joints of ``actuators`` (e.g. the head of a tool held in the palm)."""
        jac = np.zeros((3, self.model.nv))
        mujoco.mj_jac(
            self.model,
            self.data,
            jac,
            None,
            np.asarray(point, dtype=float),
            mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, body),
        )
        return jac[:, self.act_dadr[actuators]]

    def ik_point_step(
        self,
        body: str,
        point: np.ndarray,
        target: np.ndarray,
        actuators: np.ndarray,
        gain: float = 1.0,
        damping: float = 0.05,
        max_step: float = 0.3,
        weights: np.ndarray | None = None,
        task: np.ndarray | None = None,
    ) -> np.ndarray:
        """Weighted damped least-squares joint step (k,) that moves ``point`` (attached to ``body``) towards
        ``target``; joint ``i`` takes a share of the motion proportional to ``weights[i]`` (default: equal).

        ``task`` (m, 3) restricts the solve to the components of the error along its rows (their norms weight
        them), e.g. to give up a direction the joints cannot reach rather than trade other directions for it.
        As in :meth:`ik_step`, joints that the step would push past their range are pinned at the limit and the
        rest re-solved.
        """
        jac = self.point_jacobian(body, point, actuators)
        err = gain * (np.asarray(target) - np.asarray(point))
        if task is not None:
            jac, err = task @ jac, task @ err
        w = np.ones(len(actuators)) if weights is None else np.asarray(weights, dtype=float)
        q = self.q[actuators]
        lo, hi = self.joint_range[actuators, 0], self.joint_range[actuators, 1]
        free = np.ones(len(actuators), dtype=bool)
        dq = np.zeros(len(actuators))
        for _ in range(3):
            j, wf = jac[:, free], w[free]
            dq[free] = wf * (j.T @ np.linalg.solve((j * wf) @ j.T + damping**2 * np.eye(len(err)), err))
            pinned = free & ((((q + dq) > hi) & (dq > 0)) | (((q + dq) < lo) & (dq < 0)))
            if not pinned.any():
                break
            dq[pinned] = np.clip(dq[pinned], lo[pinned] - q[pinned], hi[pinned] - q[pinned])
            err = err - jac[:, pinned] @ dq[pinned]
            free &= ~pinned
            if not free.any():
                break
        return np.clip(dq, -max_step, max_step)

    def action(self, q_target: np.ndarray, gravity_compensation: bool = True) -> np.ndarray:
        """Normalised action in [-1, 1] whose position servos hold the actuated joints at ``q_target``.

        :param q_target: joint targets (nu,) in actuator order
        :param gravity_compensation: add the current gravity and Coriolis torques (``qfrc_bias``) to the servo
            set-points, so that targets are reached without sagging
        """
        ctrl = np.asarray(q_target) * self.ctrl_per_q
        if gravity_compensation:
            ctrl = ctrl + self.data.qfrc_bias[self.act_dadr] / self.model.actuator_gainprm[:, 0]
        return np.clip((ctrl - self.act_mean) / self.act_rng, -1.0, 1.0).astype(np.float32)


def rot_y(v: np.ndarray, angle: float) -> np.ndarray:
    """``v`` rotated by ``angle`` about the world y axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * v[0] + s * v[2], v[1], -s * v[0] + c * v[2]])


def rot_z(v: np.ndarray, angle: float) -> np.ndarray:
    """``v`` rotated by ``angle`` about the world z axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1], v[2]])


class ScriptedController:
    """Base class: a per-episode ``reset`` that draws a style and parameters, and a per-step ``act``.

    :param noise: scale of the temporally correlated (Ornstein-Uhlenbeck, stationary std ``noise``) action noise;
        1 is ~0.5 rad on a hinge joint's target and ~0.1 m on a slide's, whatever the actuator's range; each
        episode draws its own scale in ``[0.5, 1.5] * noise``
    :param styles: the styles to draw from (default: all of the controller's :attr:`STYLES`)
    """

    STYLES: tuple[str, ...] = ("default",)
    STYLE_WEIGHTS: tuple[float, ...] | None = None

    def __init__(self, noise: float = 0.05, styles: tuple[str, ...] | None = None) -> None:
        self.noise = float(noise)
        self.styles = tuple(styles) if styles is not None else self.STYLES
        unknown = set(self.styles) - set(self.STYLES)
        if unknown:
            raise ValueError(f"unknown styles {sorted(unknown)} for {type(self).__name__}; known: {self.STYLES}")
        self.sim: AdroitSim | None = None
        self.rng = np.random.default_rng()
        self.style = self.styles[0]
        self.phase = "start"
        self.t = 0

    def reset(self, env, rng: np.random.Generator) -> None:
        """Start an episode on ``env`` (already reset): draw the style, the parameters and the noise scale."""
        self.sim = AdroitSim(env)
        self.rng = rng
        if self.STYLE_WEIGHTS is not None and self.styles == self.STYLES:
            w = np.asarray(self.STYLE_WEIGHTS, dtype=float)
            self.style = self.styles[int(rng.choice(len(self.styles), p=w / w.sum()))]
        else:
            self.style = self.styles[int(rng.integers(len(self.styles)))]
        self.t = 0
        self.phase = "start"
        self.sigma = self.noise * rng.uniform(0.5, 1.5)
        self._ou = np.zeros(self.sim.model.nu)
        # noise of 1 unit moves a hinge target by ~0.5 rad and a slide target by ~0.1 m, whatever the actuator range
        joint_per_unit = self.sim.act_rng / self.sim.ctrl_per_q
        slide = self.sim.model.jnt_type[self.sim.act_joint] == mujoco.mjtJoint.mjJNT_SLIDE
        self._noise_scale = np.where(slide, 0.1, 0.5) / joint_per_unit
        self.params = self.draw_params(rng)

    def draw_params(self, rng: np.random.Generator) -> dict[str, float]:
        """Per-episode parameters (subclasses)."""
        return {}

    def targets(self) -> np.ndarray:
        """Joint targets (nu,) for the current step (subclasses)."""
        raise NotImplementedError

    def act(self) -> np.ndarray:
        """The normalised action for the current state, noise included."""
        q_target = self.targets()
        action = self.sim.action(q_target)
        self._ou = 0.8 * self._ou + 0.6 * self.sigma * self.rng.standard_normal(len(self._ou))
        self.t += 1
        return np.clip(action + self._noise_scale * self._ou, -1.0, 1.0).astype(np.float32)

    def _u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))
