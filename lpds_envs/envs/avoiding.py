"""D3IL's Avoiding task (Jia et al. 2024), re-implemented as a kinematic planar end-effector with collision checks.

Facts taken from the public D3IL code (github ALRhub/d3il, commit 0046bec), files read:

- ``environments/d3il/envs/gym_avoiding_env/gym_avoiding/envs/objects/avoiding_objects.py``: the six cylinders
  (centre x 0.5, level spacing 0.075 in x and 0.18 in y from y = -0.1; radius 0.03 for the first, 0.025 for the
  others), the finish line at y = -0.1 + 2.5 * 0.18 = 0.35, the start ``init_end_eff_pos = (0.525, -0.28)``;
- ``environments/d3il/envs/gym_avoiding_env/gym_avoiding/envs/avoiding.py``: the observation (end-effector x, y),
  ``max_steps_per_episode = 250``, success (``y > 0.35``, which ends the episode), failure (contact between the rod
  and any obstacle, which ends the episode), the deterministic reset, the mode encoding of the route (2 + 3 + 4
  bits, one per level; read at the first step within 0.03 of levels 1 and 2 and the first step at or past level 3)
  and ``mode_decoding``: the behaviour entropy with log base 24;
- ``environments/d3il/models/mj/robot/panda_rod_invisible.xml``: the rod that touches the obstacles, radius 0.01;
- ``environments/dataset/avoiding_dataset.py`` and ``configs/avoiding_config.yaml``: the state-based policy sees
  ``obs_dim = 4`` (desired x, y then actual x, y of the end effector) and acts with ``action_dim = 2``: the change of
  the desired position (``des_pos[t+1] - des_pos[t]``), which ``simulation/avoiding_sim.py`` adds to the previous
  desired position;
- ``environments/d3il/d3il_sim/gyms/gym_env_wrapper.py``: the episode ends after ``max_steps_per_episode`` steps;
  a workspace clip ``x in [0.3, 0.8], y in [-0.45, 0.45]`` is present but commented out.

Deviations from D3IL, and why:

- **no MuJoCo / Panda**: D3IL's simulator is not installable here. The end effector is kinematic: the desired
  position moves by the action and the actual position tracks it with gain ``tracking_gain`` (1 = exact tracking,
  the default; D3IL's Cartesian controller tracks its set point within each 35 ms step). Contact only ends the
  episode in D3IL, so no contact dynamics are needed: a collision is the rod's disc (radius 0.01) touching an
  obstacle's disc anywhere along the segment the end effector swept during the step (no tunnelling).
- **bounded spaces**: D3IL declares no action space and no workspace. Here an action is clipped to
  ``[-max_step, max_step]`` per axis (0.01 m per step by default; D3IL's human demonstrations move a few mm per
  step) and the desired position to ``x in [0.2, 0.8], y in [-0.45, 0.45]`` (D3IL's commented-out y range; x
  symmetric about the obstacle column and wide enough for the outermost routes).
- **reward**: D3IL defines none (``get_reward`` returns ``None``). Here the reward is 1 on the step that crosses
  the finish line and 0 otherwise, so the return is the success indicator.
- **observation timing**: D3IL's wrapper reads the observation before stepping the physics, one control step
  late; here the observation is the state after the step.
- **start**: D3IL always starts at (0.525, -0.28) (the default here, ``start_noise=0``); ``start_noise > 0`` adds
  a seeded uniform offset in ``[-start_noise, start_noise]^2``.

Routes: levels 1, 2, 3 split the plane at x = 0.5; 0.425 / 0.575; 0.35 / 0.5 / 0.65 into 2, 3 and 4 gaps, and the
route index is ``12 * i1 + 4 * i2 + i3`` (``i`` counts gaps from small x), 24 routes in all, as D3IL counts them.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

#: obstacle centres (x, y) and radii, D3IL's order: l1, l2 top, l2 bottom, l3 top, l3 mid, l3 bottom
OBSTACLES = np.array(
    [[0.5, -0.1], [0.425, 0.08], [0.575, 0.08], [0.35, 0.26], [0.5, 0.26], [0.65, 0.26]], dtype=np.float64
)
OBSTACLE_RADII = np.array([0.03, 0.025, 0.025, 0.025, 0.025, 0.025], dtype=np.float64)
ROD_RADIUS = 0.01
START = np.array([0.525, -0.28], dtype=np.float64)
GOAL_Y = 0.35
#: y of the three obstacle rows and the x boundaries that split each row into gaps (D3IL's ``check_mode``)
LEVEL_Y = (-0.1, 0.08, 0.26)
LEVEL_SPLITS = ((0.5,), (0.425, 0.575), (0.35, 0.5, 0.65))
LEVEL_WINDOW = 0.03
N_ROUTES = 24
WORKSPACE_LOW = np.array([0.2, -0.45], dtype=np.float64)
WORKSPACE_HIGH = np.array([0.8, 0.45], dtype=np.float64)
MAX_EPISODE_STEPS = 250


def route_index(gaps: tuple[int, int, int] | list[int]) -> int:
    """Route number ``12 * i1 + 4 * i2 + i3`` of the gaps ``(i1, i2, i3)`` taken at levels 1-3 (each counted from small x)."""
    i1, i2, i3 = (int(g) for g in gaps)
    if not (0 <= i1 < 2 and 0 <= i2 < 3 and 0 <= i3 < 4):
        raise ValueError(f"gaps must be (0..1, 0..2, 0..3), got {gaps}")
    return 12 * i1 + 4 * i2 + i3


def route_gaps(route: int) -> tuple[int, int, int]:
    """Inverse of :func:`route_index`."""
    if not 0 <= route < N_ROUTES:
        raise ValueError(f"route must be in [0, {N_ROUTES}), got {route}")
    return route // 12, (route % 12) // 4, route % 4


def _gap(level: int, x: float) -> int:
    return int(np.searchsorted(np.asarray(LEVEL_SPLITS[level]), x, side="right"))


def segment_hits_obstacle(p: np.ndarray, q: np.ndarray) -> int:
    """Index of the first obstacle whose disc (radius + rod radius) the segment ``p -> q`` touches, or -1."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    d = q - p
    length2 = float(d @ d)
    t = np.zeros(len(OBSTACLES)) if length2 == 0.0 else np.clip((OBSTACLES - p) @ d / length2, 0.0, 1.0)
    closest = p[None, :] + t[:, None] * d[None, :]
    hit = np.linalg.norm(OBSTACLES - closest, axis=1) < OBSTACLE_RADII + ROD_RADIUS
    return int(np.argmax(hit)) if hit.any() else -1


class AvoidingEnv(gym.Env, gym.utils.RecordConstructorArgs):
    """D3IL's Avoiding: move the end effector from (0.525, -0.28) past three rows of obstacles to the line y = 0.35.

    - observation ``(desired x, desired y, actual x, actual y)`` in metres (D3IL's state-based ``obs_dim = 4``);
    - action: change of the desired position, clipped to ``[-max_step, max_step]^2``; the desired position is
      clipped to the workspace ``x in [0.2, 0.8], y in [-0.45, 0.45]``; the actual position moves
      ``tracking_gain`` of the way to it;
    - the episode terminates on success (actual y > 0.35; reward 1) or on a collision of the rod (radius 0.01) with
      an obstacle along the step's segment (reward 0), and is truncated after 250 steps (registered limit);
    - ``info``: ``success``, ``collision``, ``route`` (0..23 once all three rows are passed, else -1),
      ``gaps`` (the gap taken at each row so far, -1 = not yet) and ``mode_encoding`` (D3IL's 9 bits).

    See the module docstring for the sources in D3IL's code and every deviation from it.

    :param max_step: largest change of the desired position per step and axis (m)
    :param tracking_gain: fraction of the way from the actual to the desired position moved each step, in (0, 1]
    :param start_noise: half-width of a seeded uniform offset of the start (m); 0 = D3IL's fixed start
    :param render_mode: ``"rgb_array"`` draws the obstacles, the finish line and the path so far

    Example::

        >>> import gymnasium as gym, lpds_envs
        >>> env = gym.make("lpds/Avoiding-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs, r, terminated, truncated, info = env.step(env.action_space.sample())
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 28}  # D3IL: 35 substeps of 1 ms per step

    def __init__(
        self,
        max_step: float = 0.01,
        tracking_gain: float = 1.0,
        start_noise: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, max_step=max_step, tracking_gain=tracking_gain, start_noise=start_noise, render_mode=render_mode
        )
        if not max_step > 0:
            raise ValueError(f"max_step must be > 0 (metres per step), got {max_step}")
        if not 0 < tracking_gain <= 1:
            raise ValueError(f"tracking_gain must be in (0, 1], got {tracking_gain}")
        if not 0 <= start_noise <= 0.05:
            raise ValueError(f"start_noise must be in [0, 0.05] m (the start must stay clear), got {start_noise}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.max_step, self.tracking_gain, self.start_noise = float(max_step), float(tracking_gain), float(start_noise)
        self.render_mode = render_mode
        low = np.concatenate([WORKSPACE_LOW, WORKSPACE_LOW]).astype(np.float32)
        high = np.concatenate([WORKSPACE_HIGH, WORKSPACE_HIGH]).astype(np.float32)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = spaces.Box(-self.max_step, self.max_step, shape=(2,), dtype=np.float32)
        self._des = START.copy()
        self._pos = START.copy()
        self._gaps = [-1, -1, -1]
        self._success = self._collision = False
        self._path: list[np.ndarray] = []

    # -- state -------------------------------------------------------------------------------------------------

    def _obs(self) -> np.ndarray:
        return np.concatenate([self._des, self._pos]).astype(np.float32)

    def _route(self) -> int:
        return route_index(self._gaps) if min(self._gaps) >= 0 else -1

    def _info(self) -> dict[str, Any]:
        encoding = np.zeros(9, dtype=np.int8)
        for offset, gap in zip((0, 2, 5), self._gaps):
            if gap >= 0:
                encoding[offset + gap] = 1
        return {
            "success": self._success,
            "collision": self._collision,
            "route": self._route(),
            "gaps": tuple(self._gaps),
            "mode_encoding": encoding,
        }

    def _check_mode(self) -> None:
        """D3IL's ``check_mode``: levels 1 and 2 are read at the first step within 0.03 of their row, level 3 at the
        first step at or past its row."""
        x, y = self._pos
        for level in (0, 1):
            if self._gaps[level] < 0 and abs(y - LEVEL_Y[level]) <= LEVEL_WINDOW:
                self._gaps[level] = _gap(level, x)
        if self._gaps[2] < 0 and y >= LEVEL_Y[2]:
            self._gaps[2] = _gap(2, x)

    # -- gym API -----------------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        start = START.copy()
        if self.start_noise > 0:
            start = start + self.np_random.uniform(-self.start_noise, self.start_noise, size=2)
        self._des, self._pos = start.copy(), start.copy()
        self._gaps = [-1, -1, -1]
        self._success = self._collision = False
        self._path = [self._pos.copy()]
        return self._obs(), self._info()

    def step(self, action):
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (2,):
            raise ValueError(f"action has shape {np.shape(action)}, expected (2,): the change of the desired (x, y)")
        if not np.isfinite(a).all():
            raise ValueError(f"action must be finite, got {a}")
        if self._success or self._collision:
            raise RuntimeError("the episode has terminated; call reset() before step()")
        self._des = np.clip(self._des + np.clip(a, -self.max_step, self.max_step), WORKSPACE_LOW, WORKSPACE_HIGH)
        prev = self._pos
        self._pos = prev + self.tracking_gain * (self._des - prev)
        self._path.append(self._pos.copy())
        self._collision = segment_hits_obstacle(prev, self._pos) >= 0
        self._check_mode()
        self._success = not self._collision and bool(self._pos[1] > GOAL_Y)
        reward = 1.0 if self._success else 0.0
        return self._obs(), reward, self._success or self._collision, False, self._info()

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return render_paths([np.asarray(self._path)])


# -- drawing (numpy only) ----------------------------------------------------------------------------------------

#: the drawn window (x, y), a margin around the obstacles, start and finish line
VIEW_LOW = np.array([0.2, -0.32])
VIEW_HIGH = np.array([0.8, 0.40])


def render_paths(
    paths: list[np.ndarray], size: int = 256, colors: list[tuple[int, int, int]] | None = None
) -> np.ndarray:
    """Rasterise end-effector paths ``(T, 2)`` over the Avoiding scene as an RGB uint8 image (x to the right, y up):
    obstacles red (the rod radius drawn as a pale rim), the finish line green, the start a black dot.

    :param paths: positions ``(T, 2)`` (or observations ``(T, 4)``: the last two columns are used)
    :param size: image height in pixels (the width follows the view's aspect ratio)
    :param colors: one RGB colour per path (default blue)
    """
    span = VIEW_HIGH - VIEW_LOW
    height = int(size)
    width = int(round(size * span[0] / span[1]))
    scale = (height - 1) / span[1]
    img = np.full((height, width, 3), 255, dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    wx = VIEW_LOW[0] + xx / scale
    wy = VIEW_HIGH[1] - yy / scale
    for (cx, cy), r in zip(OBSTACLES, OBSTACLE_RADII):
        d2 = (wx - cx) ** 2 + (wy - cy) ** 2
        img[d2 <= (r + ROD_RADIUS) ** 2] = (250, 200, 200)
        img[d2 <= r**2] = (210, 40, 40)
    img[np.abs(wy - GOAL_Y) <= 1.5 / scale] = (60, 180, 60)
    img[(wx - START[0]) ** 2 + (wy - START[1]) ** 2 <= (3 / scale) ** 2] = (0, 0, 0)
    for k, path in enumerate(paths):
        p = np.asarray(path, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] not in (2, 4):
            raise ValueError(f"each path must have shape (T, 2) or (T, 4), got {p.shape}")
        p = p[:, -2:]
        color = colors[k] if colors is not None else (40, 60, 200)
        if len(p) == 1:
            p = np.repeat(p, 2, axis=0)
        for a, b in zip(p[:-1], p[1:]):
            n = max(2, int(np.ceil(np.abs(b - a).max() * scale)) + 1)
            seg = a[None] + np.linspace(0.0, 1.0, n)[:, None] * (b - a)[None]
            cols = np.clip(np.round((seg[:, 0] - VIEW_LOW[0]) * scale).astype(int), 0, width - 1)
            rows = np.clip(np.round((VIEW_HIGH[1] - seg[:, 1]) * scale).astype(int), 0, height - 1)
            img[rows, cols] = color
    return img
