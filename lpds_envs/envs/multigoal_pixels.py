"""The multi-goal toy (paper App. B) observed through a small camera: a Dict observation for VLA backbones."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .multigoal import GOAL_RADIUS, GOALS, MultiGoalEnv

#: the language instruction of the task (what a PI0 backbone is conditioned on)
INSTRUCTION = "reach one of the four goals"
GOAL_COLOR = (60, 200, 60)
AGENT_COLOR = (220, 40, 40)
BACKGROUND = 255


class MultiGoalPixelsEnv(MultiGoalEnv):
    """:class:`~lpds_envs.envs.multigoal.MultiGoalEnv` with a Dict observation: a rendered camera image and the state.

    ``obs = {"image": uint8 (image_size, image_size, 3), "state": float32 (2,)}``. The image shows the task square
    (white), the four goal regions (green discs) and the agent (red disc, radius ``agent_radius`` in task units),
    with the y axis pointing up. Dynamics, reward, horizon and ``info`` are those of the state-based task.

    :param image_size: camera resolution (square)
    :param agent_radius: radius of the agent's disc, in task units (the square is ``[-2, 2]^2``)
    :param horizon: steps per episode
    :param start: ``"origin"`` or ``"uniform"``
    :param render_mode: ``"rgb_array"`` renders the path view of the state-based task

    Example::

        >>> env = MultiGoalPixelsEnv()
        >>> obs, info = env.reset(seed=0)
        >>> obs["image"].shape, obs["image"].dtype, obs["state"]
        ((64, 64, 3), dtype('uint8'), array([0., 0.], dtype=float32))
    """

    def __init__(
        self,
        image_size: int = 64,
        agent_radius: float = 0.15,
        horizon: int = 20,
        start: str = "origin",
        render_mode: str | None = None,
    ) -> None:
        super().__init__(horizon=horizon, start=start, render_mode=render_mode)
        gym.utils.RecordConstructorArgs.__init__(
            self,
            image_size=image_size,
            agent_radius=agent_radius,
            horizon=horizon,
            start=start,
            render_mode=render_mode,
        )
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {image_size}")
        self.image_size, self.agent_radius = int(image_size), float(agent_radius)
        self.instruction = INSTRUCTION
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8),
                "state": spaces.Box(-2.0, 2.0, (2,), np.float32),
            }
        )
        size = self.image_size
        centers = (np.arange(size) + 0.5) / size * 4.0 - 2.0  # pixel centres in task units
        self._px = centers
        x, y = np.meshgrid(centers, centers[::-1])  # row 0 is the top (y = +2)
        background = np.full((size, size, 3), BACKGROUND, np.uint8)
        for g in GOALS:
            background[(x - g[0]) ** 2 + (y - g[1]) ** 2 <= GOAL_RADIUS**2] = GOAL_COLOR
        self._background = background

    def observe(self, state: np.ndarray) -> dict[str, np.ndarray]:
        """The Dict observation of a state ``(x, y)``."""
        img = self._background.copy()
        r = self.agent_radius
        cols = np.nonzero(np.abs(self._px - state[0]) <= r)[0]
        rows = np.nonzero(np.abs(self._px[::-1] - state[1]) <= r)[0]
        if len(cols) and len(rows):
            dx = self._px[cols][None, :] - state[0]
            dy = self._px[::-1][rows][:, None] - state[1]
            block = img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            block[dx**2 + dy**2 <= r * r] = AGENT_COLOR
        return {"image": img, "state": np.asarray(state, np.float32).copy()}

    def observe_batch(self, states: np.ndarray) -> dict[str, np.ndarray]:
        """Dict observations of a batch of states ``(B, 2)``, identical to :meth:`observe` row by row."""
        states = np.asarray(states, np.float32).reshape(-1, 2)
        dx = self._px[None, None, :] - states[:, 0, None, None]  # (B, 1, W)
        dy = self._px[::-1][None, :, None] - states[:, 1, None, None]  # (B, H, 1)
        r = self.agent_radius
        # the same two-sided test as observe(): inside the bounding box and the disc
        mask = (np.abs(dx) <= r) & (np.abs(dy) <= r) & (dx**2 + dy**2 <= r * r)
        images = np.repeat(self._background[None], len(states), axis=0)
        images[mask] = AGENT_COLOR
        return {"image": images, "state": states.copy()}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        state, info = super().reset(seed=seed, options=options)
        return self.observe(state), info

    def step(self, action):
        state, reward, terminated, truncated, info = super().step(action)
        return self.observe(state), reward, terminated, truncated, info
