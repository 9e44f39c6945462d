"""The deployment variant of the Franka tasks (paper Sec. 5.7: adapt in the nominal simulator, deploy in a shifted one):
``gym.make(env_id, shift="deployment")``, or a dict of the perturbations below.

A :class:`SimShift` is fixed per env: its magnitudes are constants (the same for every episode and every seed), given
by the preset or the dict, never drawn at random. The only random part is the depth noise, which the env draws from its
``np_random`` (so from the reset seed): the same seed and actions repeat a shifted episode as they repeat a nominal one.

=================  ===========  ==============  ============  ====================================================
key                nominal      ``deployment``  ``mild``      what it does
=================  ===========  ==============  ============  ====================================================
``friction``       1.0          0.5             0.75          friction coefficient of the manipulated object (the
                                                              cube, the mug and its handle; ``robotic``'s frame
                                                              attribute ``friction``, 1 when unset); PhysX
                                                              averages it with the surface it touches
``mass``           1.0          1.5             1.25          factor on the object's mass (cube 0.1 kg -> 0.15 kg,
                                                              mug 0.15 kg -> 0.225 kg under ``deployment``)
``joint_gain``     1.0          0.85            0.925         fraction of each commanded joint delta the
                                                              controller tracks: the step's joint target is
                                                              ``q + joint_gain * max_joint_delta * a[:7]``
``latency``        0            1               1             steps of action delay: step ``t`` executes the
                                                              action given at step ``t - latency`` (the first
                                                              steps after a reset hold the arm still with the
                                                              gripper open)
``camera_offset``  (0, 0, 0)    (0.02,          (0.01,        metres added to the depth camera's position
                                -0.02, 0.015)   -0.01,        (pick-and-place only); it still looks at the same
                                                0.0075)       point, so it also turns (2.8 degrees under
                                                              ``deployment``)
``depth_noise``    0.0          0.005           0.0025        standard deviation (m) of Gaussian noise added to
                                                              every valid depth pixel of each observation
                                                              (pick-and-place only), drawn from the env's
                                                              ``np_random``
=================  ===========  ==============  ============  ====================================================

``mild`` is ``deployment`` at half the magnitude of every continuous perturbation (the latency stays one step, the
smallest there is).

A dict overrides the *nominal* values of the keys it names (``shift={"latency": 1}`` only adds the latency); the
mug-hanging task has no camera, so its ``"deployment"`` and ``"mild"`` presets leave ``camera_offset`` and
``depth_noise`` nominal and a dict that sets them is an error there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

#: the keys a shift dict may set
SHIFT_KEYS = ("friction", "mass", "joint_gain", "latency", "camera_offset", "depth_noise")
#: keys that only the pick-and-place task (which has the depth camera) accepts
CAMERA_KEYS = ("camera_offset", "depth_noise")


@dataclass(frozen=True)
class SimShift:
    """One fixed simulator perturbation (see the module docstring for each field's meaning and units)."""

    friction: float = 1.0
    mass: float = 1.0
    joint_gain: float = 1.0
    latency: int = 0
    camera_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    depth_noise: float = 0.0

    @property
    def is_nominal(self) -> bool:
        """Whether this shift changes nothing."""
        return self == SimShift()

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (``camera_offset`` as a list), e.g. for an env's ``info`` or a results file."""
        out = asdict(self)
        out["camera_offset"] = list(self.camera_offset)
        return out


#: the deployment presets: ``"deployment"`` for each task (the mug task has no camera)
DEPLOYMENT = SimShift(
    friction=0.5, mass=1.5, joint_gain=0.85, latency=1, camera_offset=(0.02, -0.02, 0.015), depth_noise=0.005
)
#: ``"mild"``: the deployment shift at half the magnitude of each continuous perturbation (latency stays 1 step)
MILD = SimShift(
    friction=0.75, mass=1.25, joint_gain=0.925, latency=1, camera_offset=(0.01, -0.01, 0.0075), depth_noise=0.0025
)
#: the named presets (for a task with the camera; :func:`without_camera` for one without)
PRESETS = {"deployment": DEPLOYMENT, "mild": MILD}


def without_camera(shift: SimShift) -> SimShift:
    """``shift`` with the camera perturbations nominal (the mug task's version of a preset)."""
    return replace(shift, camera_offset=(0.0, 0.0, 0.0), depth_noise=0.0)


DEPLOYMENT_NO_CAMERA = without_camera(DEPLOYMENT)
_BAD_SHIFT = f"shift must be None, 'nominal', {', '.join(map(repr, PRESETS))} or a dict of {SHIFT_KEYS}, got {{!r}}"


def _positive(key: str, value: Any, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"shift[{key!r}] must be a number, got {value!r}")
    if not 0 < float(value) <= high:
        raise ValueError(f"shift[{key!r}] must be in (0, {high}], got {value}")
    return float(value)


def make_shift(shift: None | str | dict[str, Any] | SimShift, has_camera: bool) -> SimShift:
    """Check ``shift`` (an env's ``shift=`` argument) and return it as a :class:`SimShift`.

    :param shift: ``None`` or ``"nominal"`` (no shift), ``"deployment"`` or ``"mild"`` (the presets of the module
        docstring), a dict of some of :data:`SHIFT_KEYS` (the others stay nominal), or a :class:`SimShift`
    :param has_camera: whether the task has the depth camera (``camera_offset`` and ``depth_noise`` need it)
    :return: the shift, with every value checked
    :raises ValueError: naming the key and the allowed values when something is wrong
    """
    if shift is None or (isinstance(shift, str) and shift == "nominal"):
        return SimShift()
    if isinstance(shift, str):
        if shift not in PRESETS:
            raise ValueError(_BAD_SHIFT.format(shift))
        return PRESETS[shift] if has_camera else without_camera(PRESETS[shift])
    if isinstance(shift, SimShift):
        shift = shift.as_dict()
    if not isinstance(shift, dict):
        raise ValueError(_BAD_SHIFT.format(shift))
    unknown = sorted(set(shift) - set(SHIFT_KEYS))
    if unknown:
        raise ValueError(f"unknown shift keys {unknown}: the keys are {list(SHIFT_KEYS)}")
    values: dict[str, Any] = {}
    for key in ("friction", "mass"):
        if key in shift:
            values[key] = _positive(key, shift[key], 10.0)
    if "joint_gain" in shift:
        values["joint_gain"] = _positive("joint_gain", shift["joint_gain"], 2.0)
    if "latency" in shift:
        latency = shift["latency"]
        if isinstance(latency, bool) or not isinstance(latency, (int, np.integer)) or not 0 <= int(latency) <= 10:
            raise ValueError(f"shift['latency'] must be an integer number of steps in 0-10, got {latency!r}")
        values["latency"] = int(latency)
    if "camera_offset" in shift:
        try:
            offset = np.asarray(shift["camera_offset"], dtype=np.float64)
        except (TypeError, ValueError):
            offset = np.full(1, np.nan)
        if offset.shape != (3,) or not np.all(np.isfinite(offset)) or np.linalg.norm(offset) > 0.2:
            raise ValueError(
                f"shift['camera_offset'] must be 3 finite numbers (x, y, z in m, at most 0.2 m long), "
                f"got {shift['camera_offset']!r}"
            )
        values["camera_offset"] = tuple(float(v) for v in offset)
    if "depth_noise" in shift:
        noise = shift["depth_noise"]
        if isinstance(noise, bool) or not isinstance(noise, (int, float, np.integer, np.floating)):
            raise ValueError(f"shift['depth_noise'] must be a number (m), got {noise!r}")
        if not 0 <= float(noise) <= 0.1:
            raise ValueError(f"shift['depth_noise'] must be in [0, 0.1] m, got {noise}")
        values["depth_noise"] = float(noise)
    result = SimShift(**values)
    if not has_camera and (result.camera_offset != (0.0, 0.0, 0.0) or result.depth_noise != 0.0):
        raise ValueError(
            f"this task has no camera: shift keys {list(CAMERA_KEYS)} apply to lpds/FrankaPickPlace-v0 only"
        )
    return result
