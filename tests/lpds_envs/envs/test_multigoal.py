import gymnasium as gym
import numpy as np
import pytest

from lpds_envs.backbones.zoo.toy import multigoal_expert_dataset
from lpds_envs.envs import GOALS, MultiGoalEnv
from lpds_envs.evaluation import multigoal_coverage
from lpds_envs.registration import task_decoder


def test_dynamics_and_clipping():
    env = MultiGoalEnv()
    obs, info = env.reset(seed=0)
    assert np.array_equal(obs, [0, 0]) and info == {"goal": -1, "success": False}
    obs, *_ = env.step(np.array([1.0, -0.4], np.float32))
    np.testing.assert_allclose(obs, [0.5, -0.2])
    obs, *_ = env.step(np.array([5.0, -5.0], np.float32))  # action clipped to [-1, 1]
    np.testing.assert_allclose(obs, [1.0, -0.7])
    for _ in range(4):
        obs, *_ = env.step(np.array([1.0, 1.0], np.float32))
    np.testing.assert_allclose(obs, [2.0, 1.3])  # state clipped to [-2, 2]


def test_reward_goal_and_horizon():
    env = MultiGoalEnv()
    env.reset(seed=0)
    _, r, *_ = env.step(np.array([1.0, 1.0], np.float32))  # (0.5, 0.5): distance to (1, 1) is 0.707
    assert r == pytest.approx(-np.sqrt(0.5), rel=1e-6)
    _, r, terminated, truncated, info = env.step(np.array([1.0, 1.0], np.float32))  # at (1, 1)
    assert r == pytest.approx(10.0) and info["goal"] == 1 and info["success"] and not terminated
    _, r, *_, info = env.step(np.array([-1.0, -1.0], np.float32))  # leaves the goal
    assert r == pytest.approx(-np.sqrt(0.5), rel=1e-6) and info["goal"] == 1  # first goal entered sticks
    for t in range(17):
        *_, truncated, _ = env.step(np.zeros(2, np.float32))
        assert truncated == (t == 16)


def test_goal_order_is_bl_tr_tl_br():
    assert GOALS.tolist() == [[-1, -1], [1, 1], [-1, 1], [1, -1]]
    env = MultiGoalEnv()
    for g, direction in enumerate(GOALS):
        env.reset(seed=0)
        env.step(direction)
        *_, info = env.step(direction)
        assert info["goal"] == g


def test_uniform_start_is_seeded():
    env = gym.make("lpds/MultiGoal-v0", start="uniform")
    a, _ = env.reset(seed=7)
    b, _ = env.reset(seed=7)
    c, _ = env.reset(seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert gym.make("lpds/MultiGoal-v0").spec.max_episode_steps == 20
    with pytest.raises(ValueError, match="start"):
        MultiGoalEnv(start="corner")


def test_expert_dataset_follows_app_b():
    data = multigoal_expert_dataset(n=20_000, sigma=0.1, seed=0)
    assert data.obs.shape == (20_000, 2) and data.actions.shape == (20_000, 1, 2)
    s, a = data.obs, data.actions[:, 0]
    assert s.min() >= -2 and s.max() <= 2 and a.min() >= -1 and a.max() <= 1
    nearest = GOALS[np.linalg.norm(s[:, None] - GOALS[None], axis=2).argmin(1)]
    a_star = np.clip(nearest - s, -1, 1)
    interior = (np.abs(a_star) < 0.7).all(axis=1)  # no re-clipping of the noise there
    noise = (a - a_star)[interior]
    assert abs(noise.mean()) < 0.01 and noise.std() == pytest.approx(0.1, rel=0.05)


def test_shipped_backbone_reaches_all_four_goals():
    cov = multigoal_coverage(task_decoder("MultiGoal"), n_rollouts=1000, seed=0)
    fractions = np.array(cov["goal_fractions"])
    assert (fractions >= 0.1).all(), fractions  # all four modes, each with real mass
    assert fractions.sum() >= 0.9  # and nearly every rollout reaches a goal


def test_registered_steering_env():
    env = gym.make("LPDS-MultiGoal-v0")
    assert isinstance(env.unwrapped, MultiGoalEnv)
    assert env.action_space.shape == (2,) and env.action_space.high[0] == 2.5
    assert gym.make("LPDS-MultiGoal-v0", latent_bound=1.5).action_space.high[0] == 1.5
    obs, _ = env.reset(seed=0)
    total, steps = 0.0, 0
    while True:
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        total += r
        steps += info["executed_steps"]
        if term or trunc:
            break
    assert steps == 20 and trunc
    with pytest.raises(ValueError, match="flow"):
        gym.make("LPDS-MultiGoal-v0", backbone="flow")
