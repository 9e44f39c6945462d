"""Scripted Adroit controllers that read the simulator's privileged state (object, target and site poses, MuJoCo
Jacobians of the arm) and write normalised joint-position targets, the action space of gymnasium-robotics'
``AdroitHand*-v1`` tasks.

Each controller is a small state machine (reach, grasp, manipulate) over a :class:`AdroitSim` view of the raw env.
Per episode it draws a *style* (different approach or manipulation strategies, so the data are multimodal) and
perturbed parameters (offsets, gains, timings); per step it adds temporally correlated action noise. The result
is competent but imperfect behaviour, which is what a behaviour-cloned backbone that steering can improve needs.
"""

from __future__ import annotations

import numpy as np

from lpds_envs.backbones.zoo.adroit_sim import ScriptedController, rot_y, rot_z


class DoorController(ScriptedController):
    """``AdroitHandDoor-v1``: grasp the lever from above, turn it down along its arc (forearm roll follows the
    latch), pull the door open along the hinge arc, then either let go and sweep the door open from its free edge
    (``"sweep"``) or keep pulling the handle as far as the arm reaches (``"hold"``, succeeds less often).
    """

    STYLES = ("sweep", "hold")
    STYLE_WEIGHTS = (0.75, 0.25)

    def draw_params(self, rng: np.random.Generator) -> dict[str, float]:
        s = self.sim
        self.pos_arm = s.index(["ARTz", "ARRx", "ARRy"])
        self.full_arm = s.index(["ARTz", "ARRx", "ARRy", "ARRz", "WRJ1", "WRJ0"])
        self.roll = s.index(["ARRz"])[0]
        self.wrist = s.index(["WRJ1", "WRJ0"])
        self.fingers = s.index([n for n in s.joint_names if n[:2] in ("FF", "MF", "RF", "LF") and n[-1] in "012"])
        self.thumb = s.index(["THJ4", "THJ3", "THJ2", "THJ1", "THJ0"])
        self.hinge_jid = s.model.joint("door_hinge").id
        return {
            "above": self._u(0.045, 0.075),
            "grasp_dx": self._u(-0.025, 0.025),
            "grasp_dz": self._u(-0.02, 0.0),
            "precurl": self._u(0.2, 0.4),
            "close": self._u(0.9, 1.05),
            "approach_gain": self._u(2.6, 3.2),
            "turn_gain": self._u(3.0, 4.0),
            "turn_lead": self._u(0.5, 0.7),
            "latch_open": self._u(1.3, 1.45),
            "pull_lead": self._u(0.4, 0.6),
            "pull_gain": self._u(2.2, 2.8),
            "release": self._u(0.8, 0.92),
            "sweep_n": self._u(0.18, 0.26),
            "edge_n": self._u(0.02, 0.08),
        }

    def targets(self) -> np.ndarray:
        s, P = self.sim, self.params
        q = s.q
        qt = q.copy()
        h, p, latch_c = s.site("S_handle"), s.site("S_grasp"), s.body("latch")
        latch, hinge = s.joint("latch"), s.joint("door_hinge")
        hinge_pos = s.data.xanchor[self.hinge_jid].copy()
        handle = h + np.array([P["grasp_dx"], 0.0, 0.0])
        roll, close, gain, full = 0.0, P["precurl"], P["approach_gain"], False
        if self.phase == "start":
            self.phase = "above"
        if self.phase == "above":
            tgt = handle + np.array([0.0, 0.0, P["above"]])
            if np.linalg.norm(p - tgt) < 0.02:
                self.phase = "descend"
        if self.phase == "descend":
            tgt = handle + np.array([0.0, 0.0, P["grasp_dz"]])
            stalled = self.t > 10 and np.abs(s.data.qvel[:3]).max() < 0.01
            if np.linalg.norm(p - tgt) < 0.015 or latch > 0.15 or stalled:
                self.phase, self.t_phase = "grasp", self.t
        if self.phase == "re_front":
            tgt, close, roll = h + np.array([0.0, -0.07, 0.0]), 0.0, latch
            if np.linalg.norm(p - tgt) < 0.03:
                self.phase, self.t_phase = "re_in", self.t
        if self.phase == "re_in":
            tgt, close, roll = h.copy(), 0.0, latch
            stalled = np.abs(s.data.qvel[:3]).max() < 0.01 or self.t - self.t_phase > 12
            if np.linalg.norm(p - tgt) < 0.02 or stalled:
                self.phase, self.t_phase = "grasp", self.t
        if self.phase == "grasp":
            tgt = handle + np.array([0.0, 0.0, P["grasp_dz"] if latch < 0.5 else 0.0])
            close = P["precurl"] + (1.0 - P["precurl"]) * min(1.0, (self.t - self.t_phase) / 6)
            roll = 0.0 if latch < 0.5 else latch
            if self.t - self.t_phase > 8:
                self.phase = "turn" if latch < P["latch_open"] else "pull"
        if self.phase == "turn":
            tgt = latch_c + rot_y(h - latch_c, P["turn_lead"]) + np.array([0.0, 0.0, -0.03])
            close, roll, gain = 1.0, latch + 0.3, P["turn_gain"]
            if latch > P["latch_open"]:
                self.phase = "pull"
            elif np.linalg.norm(p - h) > 0.06:
                self.phase = "re_front"
        if self.phase == "pull":
            tgt = hinge_pos + rot_z(h - hinge_pos, P["pull_lead"])
            close, gain = 1.0, P["pull_gain"]
            if hinge < 0.35:
                tgt = tgt + (latch_c + rot_y(h - latch_c, 0.25) - h)
                roll = latch + 0.3
            else:
                tgt[2] = max(tgt[2], 0.16)
                full = True
            if np.linalg.norm(p - h) > 0.06 and hinge < P["release"]:
                self.phase = "re_front"
            elif hinge > P["release"] and self.style == "sweep":
                self.phase, self.z_sweep = "release", p[2] + 0.03
        if self.phase in ("release", "edge", "behind", "push"):
            e_r = np.array([-np.cos(hinge), -np.sin(hinge), 0.0])
            e_n = np.array([np.sin(hinge), -np.cos(hinge), 0.0])
            r, n = {
                "release": (0.45, P["sweep_n"]),
                "edge": (0.78, P["edge_n"]),
                "behind": (0.72, -0.17),
                "push": (0.42, 0.15),
            }[self.phase]
            tgt = hinge_pos + r * e_r + n * e_n
            tgt[2] = self.z_sweep
            close, roll, gain = 0.0, 0.3, 3.0 if self.phase != "push" else P["turn_gain"]
            nxt = {"release": "edge", "edge": "behind", "behind": "push"}
            if self.phase in nxt and np.linalg.norm((p - tgt)[:2]) < 0.04:
                self.phase = nxt[self.phase]
        if full:
            qt[self.full_arm] = q[self.full_arm] + s.ik_step("S_grasp", tgt, self.full_arm, gain=gain)
        else:
            qt[self.wrist] = 0.0
            qt[self.roll] = roll
            qt[self.pos_arm] = q[self.pos_arm] + s.ik_step("S_grasp", tgt, self.pos_arm, gain=gain, max_step=0.5)
        qt[self.fingers] = 1.5 * close * P["close"]
        qt[self.thumb] = np.array([0.3, 1.2, 0.1, 0.4, -0.8]) * close * P["close"]
        return qt


class RelocateController(ScriptedController):
    """``AdroitHandRelocate-v1``: reach above the ball, descend with pre-curled fingers, close fingers and thumb
    around it, and carry it to the target with a speed-capped Cartesian motion: straight (``"direct"``), lifted
    first and then moved (``"lift"``), or through a raised via point (``"arc"``). Re-grasps when the ball drops.
    """

    STYLES = ("direct", "lift", "arc")

    def draw_params(self, rng: np.random.Generator) -> dict[str, float]:
        s = self.sim
        self.arm = s.index(["ARTx", "ARTy", "ARTz", "ARRx", "ARRy", "ARRz"])
        self.wrist = s.index(["WRJ1", "WRJ0"])
        self.fingers = s.index([n for n in s.joint_names if n[:2] in ("FF", "MF", "RF", "LF") and n[-1] in "012"])
        self.thumb = s.index(["THJ4", "THJ3", "THJ2", "THJ1", "THJ0"])
        return {
            "above": self._u(0.05, 0.09),
            "dx": self._u(-0.015, 0.015),
            "dy": self._u(-0.03, -0.01),
            "dz": self._u(-0.005, 0.01),
            "precurl": self._u(0.25, 0.5),
            "gain": self._u(1.6, 2.4),
            "close_steps": self._u(5, 10),
            "carry_gain": self._u(1.6, 2.4),
            "vmax": self._u(0.06, 0.12),
            "approach_vmax": self._u(0.08, 0.12),
            "lift": self._u(0.12, 0.2),
            "via": self._u(0.05, 0.12),
            "j2": self._u(1.1, 1.3),
            "j1": self._u(1.1, 1.3),
            "j0": self._u(0.7, 0.9),
            "settle": self._u(0.0, 0.02),
            "kv": self._u(0.1, 0.18),
        }

    def targets(self) -> np.ndarray:
        s, P = self.sim, self.params
        q = s.q
        qt = q.copy()
        obj, p, goal = s.body("Object"), s.site("S_grasp"), s.site("target")
        grasp = obj + np.array([P["dx"], P["dy"], P["dz"]])
        close, gain = P["precurl"], P["gain"]
        if self.phase == "start":
            self.phase = "above"
        if self.phase == "above":
            d = grasp + np.array([0.0, 0.0, P["above"]]) - p
            tgt = p + d * min(1.0, P["approach_vmax"] / max(float(np.linalg.norm(d)), 1e-9))
            slow = np.linalg.norm(s.site_velocity("S_grasp", self.arm)) < 0.15
            if np.linalg.norm(p - tgt) < 0.02 and slow:
                self.phase, self.t_phase = "descend", self.t
        if self.phase == "descend":
            d = grasp - p
            tgt = p + d * min(1.0, 0.03 / max(float(np.linalg.norm(d)), 1e-9))
            if np.linalg.norm(d) < 0.012 or self.t - self.t_phase > 30:
                self.phase, self.t_phase = "grasp", self.t
        if self.phase == "grasp":
            tgt = grasp
            close = P["precurl"] + (1.0 - P["precurl"]) * min(1.0, (self.t - self.t_phase) / P["close_steps"])
            if self.t - self.t_phase > P["close_steps"] + 2:
                self.phase, self.offset, self.start = "carry", p - obj, obj.copy()
        if self.phase == "carry":
            close, gain = 1.0, P["carry_gain"]
            goal_obj = goal + np.array([0.0, 0.0, -P["settle"]])
            if self.style == "lift" and obj[2] < self.start[2] + P["lift"] - 0.02 and np.linalg.norm(obj - goal) > 0.1:
                goal_obj = np.array([obj[0], obj[1], self.start[2] + P["lift"]])
            elif self.style == "arc" and np.linalg.norm((obj - goal)[:2]) > 0.08:
                goal_obj = 0.5 * (self.start + goal) + np.array([0.0, 0.0, P["via"]])
                if np.linalg.norm(obj - goal_obj) < 0.05 or np.linalg.norm(goal - obj) < np.linalg.norm(goal_obj - obj):
                    goal_obj = goal
            d = goal_obj + self.offset - p
            tgt = p + d * min(1.0, P["vmax"] / max(float(np.linalg.norm(d)), 1e-9))
            if np.linalg.norm(p - obj) > 0.08:
                self.phase = "above"
        kv = 0.0 if self.phase == "carry" else P["kv"]
        qt[self.arm] = q[self.arm] + s.ik_step("S_grasp", tgt, self.arm, gain=gain, max_step=0.5, kv=kv)
        qt[self.wrist] = 0.0
        qt[self.fingers] = np.tile([P["j2"], P["j1"], P["j0"]], 4) * close
        qt[self.thumb] = np.array([0.4, 1.2, 0.15, 0.4, -0.6]) * (0.3 + 0.7 * close)
        return qt


class PenController(ScriptedController):
    """``AdroitHandPen-v1`` (partial): keep the fingers in a perturbed resting grip and turn the pen towards the
    target orientation with the two wrist joints, by damped least squares on the pen axis (treating the pen as
    rigidly held); both axes together (``"joint"``) or flexion first, then deviation (``"sequential"``). No finger
    gaiting: orientations the wrist cannot reach stay unsolved, so the success rate is partial by design.
    """

    STYLES = ("joint", "sequential")

    def draw_params(self, rng: np.random.Generator) -> dict[str, float]:
        s = self.sim
        self.wrist = s.index(["WRJ1", "WRJ0"])
        self.rest = s.act_mean / s.ctrl_per_q + rng.normal(0.0, 0.02, s.model.nu)
        self.rest[self.wrist] = s.act_mean[self.wrist] / s.ctrl_per_q[self.wrist]
        return {
            "gain": self._u(0.15, 0.5),
            "damping": self._u(0.02, 0.08),
            "switch": self._u(0.02, 0.08),
            "delay": float(rng.integers(0, 15)),
        }

    def _axis(self, top: str, bottom: str) -> np.ndarray:
        v = self.sim.site(top) - self.sim.site(bottom)
        return v / np.linalg.norm(v)

    def targets(self) -> np.ndarray:
        s, P = self.sim, self.params
        qt = self.rest.copy()
        qt[self.wrist] = s.q[self.wrist]
        self.phase = "wait" if self.t < P["delay"] else "turn"
        if self.phase == "turn":
            pen, goal = self._axis("object_top", "object_bottom"), self._axis("target_top", "target_bottom")
            jac = np.stack([np.cross(s.data.xaxis[s.act_joint[a]], pen) for a in self.wrist], axis=1)
            if self.style == "sequential":
                first = np.linalg.norm(goal - pen) > P["switch"] and self.t < P["delay"] + 60
                jac = jac * np.array([1.0, 0.0]) if first else jac
            dq = jac.T @ np.linalg.solve(jac @ jac.T + P["damping"] * np.eye(3), goal - pen)
            qt[self.wrist] = s.q[self.wrist] + P["gain"] * dq
        return qt


class HammerController(ScriptedController):
    """``AdroitHandHammer-v1``: with the hand turned slightly inwards, come down on the hammer handle, close fingers
    and thumb around it, lift (slowly at first) until the hammer's striking face is level with the nail head,
    bring the face (tracked as a point rigidly attached to the palm, mostly moved by the shoulder, the weak wrist
    yaw taking a smaller share) in front of the nail head on the nail's axis, then drive the nail in along that
    axis: one steady press (``"press"``) or repeated strikes, drawing back and swinging in (``"strike"``). Arm
    set-points are accumulated while the hammer is carried, so that its weight and the nail's reaction do not make
    the arm sag. Lets go and grasps again when the hammer does not come up with the hand or is dropped.
    """

    STYLES = ("press", "strike")

    def draw_params(self, rng: np.random.Generator) -> dict[str, float]:
        s = self.sim
        self.arm = s.index(["ARRx", "ARRy"])
        self.arm3 = s.index(["ARRx", "ARRy", "WRJ1"])
        self.flex, self.yaw = s.index(["WRJ0"])[0], s.index(["WRJ1"])[0]
        self.fingers = s.index([n for n in s.joint_names if n[:2] in ("FF", "MF", "RF", "LF") and n[-1] in "012"])
        self.thumb = s.index(["THJ4", "THJ3", "THJ2", "THJ1", "THJ0"])
        self.nail_axis = -s.body_mat("nail_board")[:, 2]  # the direction that drives the nail in
        side = np.cross(np.array([0.0, 0.0, 1.0]), self.nail_axis)
        # while driving the nail: follow the axis and the height; the sideways error (which the hand reaches
        # worst) only weakly, rather than trade the other two for it
        self.drive_task = np.stack([self.nail_axis, np.array([0.0, 0.0, 1.0]), 0.3 * side])
        self.q_cmd = None
        return {
            "dx": self._u(-0.012, 0.004),
            "dy": self._u(-0.038, -0.02),
            "dz": self._u(-0.016, -0.002),
            "wflex": self._u(0.08, 0.22),
            "pre_yaw": self._u(0.1, 0.17),
            "reach_gain": self._u(0.8, 1.2),
            "close": self._u(0.95, 1.05),
            "close_steps": self._u(7, 11),
            "lift_ramp": self._u(5, 10),
            "lift_v": self._u(0.025, 0.045),
            "clear": self._u(0.02, 0.04),
            "align_v": self._u(0.03, 0.05),
            "pre": self._u(0.03, 0.06),
            "dzh": self._u(-0.01, 0.01),
            "yaw_w": self._u(0.2, 0.5),
            "press_v": self._u(0.025, 0.05),
            "depth": self._u(0.1, 0.14),
            "back": self._u(0.03, 0.07),
            "swing_v": self._u(0.06, 0.1),
            "swing_steps": self._u(8, 14),
        }

    def _face(self) -> np.ndarray:
        """The hammer's striking face (the env's ``tool`` site)."""
        return self.sim.site("tool")

    @staticmethod
    def _toward(p: np.ndarray, goal: np.ndarray, vmax: float) -> np.ndarray:
        d = goal - p
        return p + d * min(1.0, vmax / max(float(np.linalg.norm(d)), 1e-9))

    def targets(self) -> np.ndarray:
        s, P = self.sim, self.params
        q = s.q
        qt = np.zeros(s.model.nu)
        handle, grasp, nail, face = s.body("Object"), s.site("S_grasp"), s.site("S_target"), self._face()
        strike_at = nail + np.array([0.0, 0.0, P["dzh"]])
        close, yaw, arm_tgt, face_tgt = 0.0, P["pre_yaw"], None, None
        if self.phase == "start":
            self.phase, self.t_phase = "reach", self.t
        if self.phase == "release":  # open the hand and back off upwards before grasping again
            arm_tgt = self.grasp_at + np.array([0.0, 0.0, 0.05])
            if self.t - self.t_phase > 8:
                self.phase, self.t_phase = "reach", self.t
        if self.phase == "reach":
            arm_tgt = handle + np.array([P["dx"], P["dy"], P["dz"]])
            err = grasp - arm_tgt
            if (np.linalg.norm(err[:2]) < 0.04 and err[2] < 0.015) or self.t - self.t_phase > 30:
                self.phase, self.t_phase, self.grasp_at = "grasp", self.t, arm_tgt
        if self.phase == "grasp":  # hold the hand where the reach ended (pressing down) while the fingers close
            arm_tgt = self.grasp_at - np.array([0.0, 0.0, 0.01])
            close = min(1.0, (self.t - self.t_phase) / P["close_steps"])
            if self.t - self.t_phase > P["close_steps"] + 2:
                self.phase, self.t_phase, self.lift_from = "lift", self.t, (grasp[2], handle[2])
        if self.phase not in ("reach", "grasp", "release"):
            close, yaw = 1.0, q[self.yaw]
            slipped = (
                self.phase == "lift"
                and self.t - self.t_phase == 15
                and handle[2] - self.lift_from[1] < 0.4 * (grasp[2] - self.lift_from[0])
            )
            if slipped or np.linalg.norm(grasp - handle) > 0.08:  # not holding the hammer: grasp again
                self.phase, self.t_phase, self.grasp_at = "release", self.t, grasp
                arm_tgt, close, yaw = grasp + np.array([0.0, 0.0, 0.05]), 0.0, P["pre_yaw"]
        if self.phase == "lift":
            ramp = min(1.0, (self.t - self.t_phase + 1) / P["lift_ramp"])  # slowly at first: fingers wrap under
            arm_tgt = self._toward(
                grasp, grasp + np.array([0.0, 0.0, strike_at[2] + P["clear"] - face[2]]), P["lift_v"] * ramp
            )
            if face[2] > strike_at[2] - 0.01 or self.t - self.t_phase > 40:
                self.phase, self.t_phase = "align", self.t
        if self.phase == "align":
            goal = strike_at - P["pre"] * self.nail_axis
            face_tgt = self._toward(face, goal, P["align_v"])
            if np.linalg.norm(goal - face) < 0.015 or self.t - self.t_phase > 40:
                self.phase, self.t_phase = ("press" if self.style == "press" else "swing"), self.t
        if self.phase == "windup":
            goal = strike_at - P["back"] * self.nail_axis
            face_tgt = self._toward(face, goal, P["align_v"])
            if np.linalg.norm(goal - face) < 0.02 or self.t - self.t_phase > 20:
                self.phase, self.t_phase = "swing", self.t
        if self.phase in ("press", "swing"):
            v = P["press_v"] if self.phase == "press" else P["swing_v"]
            d = strike_at + P["depth"] * self.nail_axis - face  # stay on the axis, advance along it at speed v
            along = float(d @ self.nail_axis)
            face_tgt = face + d - along * self.nail_axis + min(along, v) * self.nail_axis
            if self.phase == "swing" and (self.t - self.t_phase > P["swing_steps"] or along < 0.3 * P["depth"]):
                self.phase, self.t_phase = "windup", self.t
        if arm_tgt is not None:
            self.q_cmd = None
            qt[self.arm] = q[self.arm] + s.ik_step("S_grasp", arm_tgt, self.arm, gain=P["reach_gain"], max_step=0.5)
            qt[self.yaw] = yaw
        else:
            task = self.drive_task if self.phase in ("press", "swing") else None
            dq = s.ik_point_step("palm", face, face_tgt, self.arm3, weights=np.array([1.0, 1.0, P["yaw_w"]]), task=task)
            base = q[self.arm3] if self.q_cmd is None else self.q_cmd
            self.q_cmd = np.clip(base + dq, q[self.arm3] - 0.15, q[self.arm3] + 0.15)
            qt[self.arm3] = self.q_cmd
        qt[self.flex] = P["wflex"]
        qt[self.fingers] = np.tile([1.4, 1.4, 1.0], 4) * close * P["close"]
        qt[self.thumb] = np.array([1.0, 1.2, 0.2, 0.5, -0.6]) * close * P["close"]
        return qt
