"""Raw task environments defined by lpds (no decoder attached)."""

from .avoiding import AvoidingEnv
from .multigoal import GOAL_RADIUS, GOALS, MultiGoalEnv

__all__ = ["AvoidingEnv", "GOALS", "GOAL_RADIUS", "MultiGoalEnv"]
