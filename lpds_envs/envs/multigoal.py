"""The symmetric multi-goal navigation task of the LP-DS paper (Appendix B)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

#: goal order used everywhere (info["goal"], mode coverage, figures): bottom-left, top-right, top-left, bottom-right
GOALS = np.array([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]], dtype=np.float32)
GOAL_RADIUS = 0.2


class MultiGoalEnv(gym.Env, gym.utils.RecordConstructorArgs):
    """2-D point navigation with four corner goals.

    - state ``s = (x, y)`` in ``[-2, 2]^2``; action ``a`` in ``[-1, 1]^2``;
    - ``s' = clip(s + 0.5 clip(a, -1, 1), -2, 2)``;
    - reward on arrival in ``s'``: ``r = -min_g ||s' - g|| + 10 * 1[min_g ||s' - g|| < 0.2]``;
    - goals ``(±1, ±1)`` in the order of :data:`GOALS`; episodes never terminate and are truncated after
      ``horizon`` (20) steps;
    - ``info["goal"]``: index of the first goal region entered this episode, or -1;
      ``info["success"]``: whether a goal region has been entered.

    :param horizon: steps per episode
    :param start: ``"origin"`` (the paper's evaluation) or ``"uniform"`` over the whole square
    :param render_mode: ``"rgb_array"`` draws the square, goals and the path so far

    Example::

        >>> import gymnasium as gym, lpds_envs
        >>> env = gym.make("lpds/MultiGoal-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs, r, terminated, truncated, info = env.step(env.action_space.sample())
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, horizon: int = 20, start: str = "origin", render_mode: str | None = None) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, horizon=horizon, start=start, render_mode=render_mode)
        if start not in ("origin", "uniform"):
            raise ValueError(f"start must be 'origin' or 'uniform', got {start!r}")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.horizon, self.start, self.render_mode = int(horizon), start, render_mode
        self.observation_space = spaces.Box(-2.0, 2.0, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.goals = GOALS.copy()
        self._state = np.zeros(2, dtype=np.float32)
        self._t = 0
        self._goal = -1
        self._path: list[np.ndarray] = []

    def _info(self) -> dict[str, Any]:
        return {"goal": self._goal, "success": self._goal >= 0}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        start = (options or {}).get("start", self.start)
        if start == "uniform":
            self._state = self.np_random.uniform(-2.0, 2.0, size=2).astype(np.float32)
        elif start == "origin":
            self._state = np.zeros(2, dtype=np.float32)
        else:
            raise ValueError(f"options['start'] must be 'origin' or 'uniform', got {start!r}")
        self._t, self._goal = 0, -1
        self._path = [self._state.copy()]
        return self._state.copy(), self._info()

    def step(self, action):
        a = np.asarray(action, dtype=np.float32).reshape(-1)
        if a.shape != (2,):
            raise ValueError(f"action has shape {np.shape(action)}, expected (2,)")
        if not np.isfinite(a).all():
            raise ValueError(f"action must be finite, got {a}")
        self._state = np.clip(self._state + 0.5 * np.clip(a, -1.0, 1.0), -2.0, 2.0).astype(np.float32)
        dists = np.linalg.norm(self.goals - self._state, axis=1)
        nearest = float(dists.min())
        in_goal = nearest < GOAL_RADIUS
        if in_goal and self._goal < 0:
            self._goal = int(dists.argmin())
        reward = -nearest + 10.0 * float(in_goal)
        self._t += 1
        self._path.append(self._state.copy())
        return self._state.copy(), reward, False, self._t >= self.horizon, self._info()

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return render_paths([np.asarray(self._path)], size=256)


def render_paths(paths: list[np.ndarray], size: int = 256) -> np.ndarray:
    """Rasterise 2-D paths on the task square (goals in green) as an RGB uint8 image; no plotting library needed."""
    img = np.full((size, size, 3), 255, dtype=np.uint8)

    def to_px(p: np.ndarray) -> np.ndarray:
        return np.clip(((p + 2.0) / 4.0 * (size - 1)).round().astype(int), 0, size - 1)

    yy, xx = np.mgrid[0:size, 0:size]
    for g in GOALS:
        cx, cy = to_px(g)
        r = GOAL_RADIUS / 4.0 * size
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = (150, 220, 150)
    for path in paths:
        for p, q in zip(path[:-1], path[1:]):
            for s in np.linspace(0.0, 1.0, 12):
                x, y = to_px(p + s * (q - p))
                img[y, x] = (40, 60, 200)
    return img[::-1].copy()  # y axis up
