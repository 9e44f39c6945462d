"""Raw task environments defined by lpds (no decoder attached)."""

from .multigoal import GOAL_RADIUS, GOALS, MultiGoalEnv

__all__ = ["GOALS", "GOAL_RADIUS", "MultiGoalEnv"]
