"""The Avoiding zoo: scripted planner demonstrations of every D3IL route, and the shipped backbone's route coverage."""

import gymnasium as gym
import numpy as np
import pytest

from lpds_envs.backbones import load_npz
from lpds_envs.backbones.zoo import avoiding as zoo
from lpds_envs.decoders import FlowDecoder
from lpds_envs.envs.avoiding import GOAL_Y, MAX_EPISODE_STEPS, AvoidingEnv, segment_hits_obstacle
from lpds_envs.metrics import avoiding_route, behaviour_entropy
from lpds_envs.registration import TASKS, task_decoder


def test_planner_covers_every_route(tmp_path):
    demos, stats = zoo.make_demos(per_route=2, seed=1)
    routes = [d["route"] for d in demos]
    assert sorted(set(routes)) == list(range(24)) and zoo.route_histogram(routes) == [2] * 24
    assert behaviour_entropy(routes) == pytest.approx(1.0)
    for d in demos:
        assert d["success"] and not d["collision"] and d["route"] == d["planned_route"]
        assert avoiding_route(d["observations"]) == d["route"]
        pos = d["observations"][:, 2:]
        assert pos[-1, 1] > GOAL_Y and len(d["actions"]) < MAX_EPISODE_STEPS
        assert all(segment_hits_obstacle(p, q) < 0 for p, q in zip(pos[:-1], pos[1:]))
        assert np.abs(d["actions"]).max() <= 0.01 + 1e-7
    # human-like variation: two demonstrations of one route differ in length and shape
    first = [d for d in demos if d["route"] == 7]
    assert len(first[0]["actions"]) != len(first[1]["actions"]) or not np.allclose(
        first[0]["observations"][:50], first[1]["observations"][:50]
    )
    # stored in lpds's npz layout, loadable as chunks
    zoo.save_demos(demos, tmp_path / "demos.npz")
    data = load_npz(tmp_path / "demos.npz", chunk_size=8)
    assert data.obs.shape == (sum(len(d["actions"]) for d in demos), 4) and data.actions.shape[1:] == (8, 2)
    with np.load(tmp_path / "demos.npz") as f:
        assert f["routes"].tolist() == routes


def test_planner_is_seeded():
    a, _ = zoo.make_demos(per_route=1, seed=3)
    b, _ = zoo.make_demos(per_route=1, seed=3)
    assert all(np.array_equal(x["actions"], y["actions"]) for x, y in zip(a, b))


def test_replay_matches_the_registered_env():
    path = zoo.plan_path(5, np.random.default_rng(0))
    rec = zoo.replay(path)
    env = gym.make("lpds/Avoiding-v0")
    env.reset(seed=0)
    for a in rec["actions"]:
        obs, *_, info = env.step(a)
    assert np.array_equal(obs, rec["observations"][-1]) and info["route"] == rec["route"]
    assert isinstance(env.unwrapped, AvoidingEnv)


def test_registered_steering_env():
    env = gym.make("LPDS-Avoiding-v0")
    assert isinstance(env.unwrapped, AvoidingEnv)
    assert env.action_space.shape == (16,)  # chunks of 8 steps x 2
    assert env.spec.max_episode_steps == 32  # ceil(250 / 8) latent steps
    assert TASKS["Avoiding"].latent_bound == 2.5


# fixed-seed coverage of the shipped backbone's prior rollouts (card: lpds_envs/backbones/checkpoints/avoiding-diffusion)
MIN_ROUTES = 14  # measured 18 (card: 22 of 24 over 500 rollouts)
MIN_SUCCESS = 0.45  # measured 0.56


def test_shipped_backbone_prior_rollouts_cover_many_routes():
    cov = zoo.avoiding_coverage(task_decoder("Avoiding"), n_rollouts=200, seed=0)
    assert cov["routes_hit"] >= MIN_ROUTES, cov["route_histogram"]
    assert cov["success_rate"] >= MIN_SUCCESS
    assert cov["behaviour_entropy"] > 0.65  # measured 0.76


def test_shipped_flow_backbone_prior_rollouts_cover_many_routes():
    """The flow backbone (card: lpds_envs/backbones/checkpoints/avoiding-flow), same demonstrations and settings."""
    env = gym.make("LPDS-Avoiding-v0", backbone="flow")
    assert isinstance(env.unwrapped, AvoidingEnv)
    assert isinstance(env.get_wrapper_attr("decoder"), FlowDecoder)
    env.close()
    cov = zoo.avoiding_coverage(task_decoder("Avoiding", "flow"), n_rollouts=200, seed=0)
    assert cov["routes_hit"] >= 16, cov["route_histogram"]  # measured 20 (card: 23 of 24 over 500 rollouts)
    assert cov["success_rate"] >= 0.75  # measured 0.88
    assert cov["behaviour_entropy"] > 0.75  # measured 0.85
