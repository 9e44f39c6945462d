import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from lpds_envs import metrics
from lpds_envs.envs import AvoidingEnv
from lpds_envs.envs import avoiding as av


def drive(env: AvoidingEnv, waypoints, step: float = 0.008):
    """Follow straight lines through ``waypoints`` at ``step`` m per step; returns the last step's outputs and the
    observations."""
    obs, info = env.reset(seed=0)
    observations, out = [obs], None
    pos = obs[2:].astype(np.float64)
    for target in waypoints:
        target = np.asarray(target, dtype=np.float64)
        while np.linalg.norm(target - pos) > 1e-9:
            delta = target - pos
            n = np.linalg.norm(delta)
            a = delta if n <= step else delta / n * step
            out = env.step(a)
            observations.append(out[0])
            pos = pos + a
            if out[2] or out[3]:
                return out, np.stack(observations)
    return out, np.stack(observations)


# the gaps' centres (x) per row, counted from small x
CENTRES = ((0.42, 0.58), (0.35, 0.5, 0.65), (0.27, 0.425, 0.575, 0.73))


def route_waypoints(gaps):
    pts = []
    for level, gap in enumerate(gaps):
        x = CENTRES[level][gap]
        pts += [(x, av.LEVEL_Y[level] - 0.05), (x, av.LEVEL_Y[level] + 0.04)]
    return pts + [(pts[-1][0], 0.36)]


def test_both_env_checkers_pass():
    gym_check_env(gym.make("lpds/Avoiding-v0").unwrapped)
    gym_check_env(gym.make("lpds/Avoiding-v0", start_noise=0.01).unwrapped)
    sb3_check_env(AvoidingEnv())


def test_registration_and_d3il_constants():
    env = gym.make("lpds/Avoiding-v0")
    assert env.spec.max_episode_steps == 250  # D3IL's max_steps_per_episode
    obs, info = env.reset(seed=0)
    np.testing.assert_allclose(obs, [0.525, -0.28, 0.525, -0.28], atol=1e-7)  # D3IL's init_end_eff_pos
    assert info == {**info, "success": False, "collision": False, "route": -1, "gaps": (-1, -1, -1)}
    assert av.GOAL_Y == pytest.approx(-0.1 + 2.5 * 0.18)
    np.testing.assert_allclose(av.OBSTACLES[:, 1], [-0.1, 0.08, 0.08, 0.26, 0.26, 0.26])
    np.testing.assert_allclose(av.OBSTACLES[:, 0], [0.5, 0.425, 0.575, 0.35, 0.5, 0.65])
    # metrics' route rule and the env's are the same numbers (they live in modules that do not import each other)
    assert metrics.AVOIDING_LEVEL_Y == av.LEVEL_Y and metrics.AVOIDING_LEVEL_SPLITS == av.LEVEL_SPLITS
    assert metrics.AVOIDING_LEVEL_WINDOW == av.LEVEL_WINDOW and metrics.AVOIDING_N_ROUTES == av.N_ROUTES == 24


def test_seeded_resets():
    env = AvoidingEnv(start_noise=0.01)
    a, _ = env.reset(seed=3)
    b, _ = env.reset(seed=3)
    c, _ = env.reset(seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.abs(a[2:] - av.START).max() <= 0.01
    fixed = AvoidingEnv()
    assert np.array_equal(fixed.reset(seed=1)[0], fixed.reset(seed=2)[0])  # D3IL: one fixed start
    # same seed and actions -> same episode
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.01, 0.01, size=(30, 2)).astype(np.float32)
    runs = []
    for _ in range(2):
        env.reset(seed=5)
        runs.append(np.stack([env.step(a)[0] for a in actions]))
    assert np.array_equal(runs[0], runs[1])


def test_kinematics_clipping_and_tracking():
    env = AvoidingEnv()
    env.reset(seed=0)
    obs, *_ = env.step(np.array([0.05, -0.003]))  # x clipped to max_step
    np.testing.assert_allclose(obs, [0.535, -0.283, 0.535, -0.283], atol=1e-7)
    lag = AvoidingEnv(tracking_gain=0.5)
    lag.reset(seed=0)
    obs, *_ = lag.step(np.array([0.01, 0.0]))
    np.testing.assert_allclose(obs, [0.535, -0.28, 0.53, -0.28], atol=1e-7)
    big = AvoidingEnv(max_step=1.0)
    big.reset(seed=0)
    obs, *_ = big.step(np.array([-0.9, -0.9]))  # desired position clipped to the workspace (no obstacle crossed)
    np.testing.assert_allclose(obs[:2], [0.2, -0.45], atol=1e-7)


def test_collision_ends_the_episode_without_reward():
    env = AvoidingEnv()
    (obs, r, terminated, truncated, info), _ = drive(env, [(0.525, 0.3)])  # straight up into the first cylinder
    assert terminated and not truncated and r == 0.0 and info["collision"] and not info["success"]
    # contact at rod radius + cylinder radius: 0.04 from (0.5, -0.1), reached at y = -0.1 - sqrt(0.04^2 - 0.025^2)
    assert obs[3] == pytest.approx(-0.1 - np.sqrt(0.04**2 - 0.025**2), abs=0.008)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2))
    # passing 0.041 from the centre is free, 0.039 is a collision
    for dx, hit in ((0.041, False), (0.039, True)):
        (_, _, _, _, info), _ = drive(AvoidingEnv(), [(0.5 + dx, -0.2), (0.5 + dx, 0.0)])
        assert info["collision"] == hit
    # the whole segment of a step is checked: a long step that jumps over an obstacle still hits it
    jump = AvoidingEnv(max_step=0.5)
    jump.reset(seed=0)
    *_, info = jump.step(np.array([-0.025, 0.3]))
    assert info["collision"]
    assert av.segment_hits_obstacle(np.array([0.5, -0.2]), np.array([0.5, 0.0])) == 0
    assert av.segment_hits_obstacle(np.array([0.3, -0.2]), np.array([0.3, 0.0])) == -1


@pytest.mark.parametrize("route", [0, 5, 11, 13, 18, 23])
def test_success_and_route_on_hand_made_paths(route):
    gaps = av.route_gaps(route)
    env = AvoidingEnv()
    (obs, r, terminated, truncated, info), observations = drive(env, route_waypoints(gaps))
    assert terminated and r == 1.0 and info["success"] and not info["collision"]
    assert info["route"] == route and info["gaps"] == gaps
    assert obs[3] > av.GOAL_Y
    assert metrics.avoiding_route(observations) == route  # metrics' classifier agrees with the env
    assert metrics.avoiding_route(observations[:, 2:]) == route
    bits = np.zeros(9, dtype=np.int8)
    bits[[gaps[0], 2 + gaps[1], 5 + gaps[2]]] = 1
    assert np.array_equal(info["mode_encoding"], bits)  # D3IL's 2 + 3 + 4 encoding


def test_truncation_at_250_steps():
    env = gym.make("lpds/Avoiding-v0")
    env.reset(seed=0)
    for _ in range(250):
        *_, terminated, truncated, info = env.step(np.array([0.0, 0.0]))
        assert not terminated
    assert truncated and not info["success"]


def test_bad_input_is_named():
    env = AvoidingEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([np.nan, 0.0]))
    for kwargs, word in (
        ({"max_step": 0}, "max_step"),
        ({"tracking_gain": 1.5}, "tracking_gain"),
        ({"start_noise": 0.2}, "start_noise"),
        ({"render_mode": "human"}, "render_mode"),
    ):
        with pytest.raises(ValueError, match=word):
            AvoidingEnv(**kwargs)
    with pytest.raises(ValueError, match="route"):
        av.route_gaps(24)
    with pytest.raises(ValueError, match="gaps"):
        av.route_index((2, 0, 0))


def test_render_shows_obstacles_goal_and_path():
    env = AvoidingEnv(render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[0] == 256
    red = (first[..., 0] == 210) & (first[..., 1] == 40)
    green = (first[..., 0] == 60) & (first[..., 1] == 180)
    assert red.sum() > 6 * 50 and green.sum() > first.shape[1]  # six discs and the finish line
    for _ in range(10):
        env.step(np.array([-0.008, 0.006]))
    blue = lambda img: ((img[..., 0] == 40) & (img[..., 2] == 200)).sum()  # noqa: E731
    assert blue(env.render()) > blue(first) + 10
    assert AvoidingEnv().render() is None


def test_route_index_round_trip():
    assert [av.route_index(av.route_gaps(r)) for r in range(24)] == list(range(24))
    assert av.route_index((1, 2, 3)) == 23 and av.route_index((0, 0, 0)) == 0
