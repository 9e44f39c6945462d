"""The LIBERO task lpds/LiberoCreamCheese-v0 (LIBERO-90 task 57), its scripted controller and demo files.

Everything but the registration checks needs the ``libero`` extra (LIBERO with its scene assets, robosuite 1.4.0) and
is skipped with the reason when it is missing; run them in the environment docs/compatibility.md describes
(``.venv-libero`` in the README's test command). One env is built for the module (building the scene takes seconds).
"""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np
import pytest

import lpds_envs  # noqa: F401
from lpds_envs.envs.libero import CAMERAS, MAX_EPISODE_STEPS, MISSING_EXTRA, STATE_KEYS, TASKS
from lpds_envs.wrappers import ChunkedActionWrapper

HAS_LIBERO = importlib.util.find_spec("libero") is not None
needs_libero = pytest.mark.skipif(not HAS_LIBERO, reason="lpds/LiberoCreamCheese-v0 needs the 'libero' extra")
ENV_ID = "lpds/LiberoCreamCheese-v0"


def test_raw_id_is_registered_with_openpis_libero_90_limit():
    spec = gym.spec(ENV_ID)
    assert spec.kwargs == {"task": "cream_cheese"}
    assert spec.max_episode_steps == MAX_EPISODE_STEPS["libero_90"] == 400
    task = TASKS["cream_cheese"]
    assert (task.suite, task.index) == ("libero_90", 57)
    assert task.instruction == "pick up the cream cheese and put it in the tray"


@pytest.mark.skipif(HAS_LIBERO, reason="LIBERO is installed")
def test_missing_extra_is_one_line_naming_it():
    with pytest.raises(ImportError, match=r"lpds\[libero\]") as err:
        gym.make(ENV_ID)
    assert str(err.value) == MISSING_EXTRA and "\n" not in MISSING_EXTRA


@pytest.fixture(scope="module")
def env():
    e = gym.make(ENV_ID, render_mode="rgb_array")
    yield e
    e.close()


def _same(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


@needs_libero
def test_env_api_and_both_check_envs(env):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    raw = env.unwrapped
    assert raw.instruction == "pick up the cream cheese and put it in the tray"
    assert len(raw.init_states) == 50
    space = env.observation_space
    assert set(space.spaces) == {*CAMERAS, *STATE_KEYS}
    for key in CAMERAS:
        assert space[key].shape == (64, 64, 3) and space[key].dtype == np.uint8
    assert [space[k].shape for k in STATE_KEYS] == [(3,), (4,), (2,), (8,)]
    assert env.action_space.shape == (7,) and np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    obs, info = env.reset(seed=0)
    assert info == {"success": False, "init_state": 0}
    assert obs["agentview_image"].std() > 5 and obs["eye_in_hand_image"].std() > 5  # real renders, not blank
    np.testing.assert_allclose(obs["state"][:3], obs["eef_pos"])
    np.testing.assert_allclose(obs["state"][6:], obs["gripper_qpos"])
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert reward == 0.0 and not terminated and not truncated
    assert info == {"success": False, "cameras_rendered": True}
    frame = env.render()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(6))
    check_env(raw, skip_render_check=True)  # render() is checked above; the render check would build new envs
    sb3_check_env(raw, warn=False)


@needs_libero
def test_seeded_resets_repeat_and_map_seeds_to_init_states(env):
    first, info = env.reset(seed=3)
    assert info["init_state"] == 3
    for a in np.random.default_rng(0).uniform(-1, 1, size=(5, 7)):
        env.step(a)
    again, _ = env.reset(seed=3)
    assert _same(first, again)  # images included
    assert env.reset(seed=53)[1]["init_state"] == 3 and _same(first, env.reset(seed=53)[0])
    other, _ = env.reset(seed=4)
    assert not np.allclose(first["eef_pos"], other["eef_pos"]) or not np.array_equal(
        first["agentview_image"], other["agentview_image"]
    )
    assert env.reset(options={"init_state": 7})[1]["init_state"] == 7
    with pytest.raises(ValueError, match="init_state"):
        env.reset(options={"init_state": 50})
    # unseeded resets follow from the last seed
    env.reset(seed=11)
    a, ia = env.reset()
    env.reset(seed=11)
    b, ib = env.reset()
    assert ia == ib and _same(a, b)
    # the same actions from the same seed give the same trajectory
    actions = np.random.default_rng(1).uniform(-1, 1, size=(8, 7))
    trajs = []
    for _ in range(2):
        env.reset(seed=5)
        trajs.append([env.step(act)[0]["state"] for act in actions])
    np.testing.assert_array_equal(np.array(trajs[0]), np.array(trajs[1]))


@needs_libero
def test_chunks_render_only_the_observation_they_return(env):
    raw = env.unwrapped
    chunk = np.random.default_rng(2).uniform(-1, 1, size=(5, 7)).astype(np.float32)
    env.reset(seed=1)
    eager = [env.step(a) for a in chunk]
    assert all(step[4]["cameras_rendered"] for step in eager)

    chunked = ChunkedActionWrapper(env, chunk_size=5)
    chunked.reset(seed=1)
    seen = []
    step = raw.step

    def spy(action):
        out = step(action)
        seen.append(out[4]["cameras_rendered"])
        return out

    raw.step = spy
    try:
        obs, _, _, _, info = chunked.step(chunk)
    finally:
        del raw.step
    assert seen == [False, False, False, False, True] and info["executed_steps"] == 5
    assert _same(obs, eager[-1][0])

    # a chunk cut short by a time limit still returns the full (rendered) observation
    short = ChunkedActionWrapper(gym.wrappers.TimeLimit(raw, max_episode_steps=3), chunk_size=5)
    short.reset(seed=1)
    obs, _, _, truncated, info = short.step(chunk)
    assert truncated and info["executed_steps"] == 3
    assert _same(obs, eager[2][0])


@needs_libero
@pytest.mark.parametrize("style", ["hover", "diagonal", "offset"])
def test_scripted_controller_reaches_libero_success(env, style):
    from lpds_envs.backbones.zoo.libero_scripts import CreamCheeseController

    raw = env.unwrapped
    controller = CreamCheeseController(noise=0.1, styles=(style,))
    env.reset(seed=0)
    controller.reset(env, np.random.default_rng(0))
    for t in range(env.spec.max_episode_steps):  # noqa: B007 (t is read after the loop)
        raw.skip_next_observation()  # the controller reads the simulator, not the cameras
        _, reward, terminated, truncated, info = env.step(controller.act())
        if terminated or truncated:
            break
    assert info["success"] and terminated and reward == 1.0 and controller.style == style
    assert raw.is_success()
    assert t < 250  # well inside the 400-step limit (the controller needs about 90-140 steps)


@needs_libero
def test_demo_files_round_trip_and_resume(env, tmp_path):
    from lpds_envs.backbones.zoo.libero import load_demos, record_demos, summarize

    path = record_demos(tmp_path, 1, seed=20, styles=("diagonal",), env=env, progress=False)
    demos = load_demos(path)
    assert len(demos) == 1
    d = demos[0]
    assert set(d.obs) == {*CAMERAS, *STATE_KEYS} and set(d.next_obs) == set(STATE_KEYS)
    n = len(d)
    for key in CAMERAS:
        assert d.obs[key].shape == (n, 64, 64, 3) and d.obs[key].dtype == np.uint8
    assert d.actions.shape == (n, 7) and np.all(np.abs(d.actions) <= 1)
    assert d.states.shape[0] == n and d.dones[-1] == 1 and d.dones[:-1].sum() == 0
    np.testing.assert_array_equal(d.obs["state"][1:], d.next_obs["state"][:-1])
    assert d.attrs["seed"] == 20 and d.attrs["init_state"] == 20 and d.attrs["style"] == "diagonal"
    assert bool(d.attrs["success"]) == bool(d.rewards[-1] == 1.0)
    # the first recorded observation is the env's reset observation for that seed
    obs, _ = env.reset(seed=20)
    for key in obs:
        np.testing.assert_array_equal(d.obs[key][0], obs[key])
    # resume: asking for 2 keeps the first demo and adds one (seed 21)
    record_demos(tmp_path, 2, seed=20, styles=("diagonal",), env=env, progress=False)
    again = load_demos(path)
    assert len(again) == 2 and again[1].attrs["seed"] == 21
    np.testing.assert_array_equal(again[0].actions, d.actions)
    meta = summarize(path)
    assert meta["episodes"] == 2 and meta["style_counts"] == {"diagonal": 2}
    # another recipe into the same file is refused instead of mixing data
    with pytest.raises(ValueError, match="delete it"):
        record_demos(tmp_path, 3, seed=20, noise=0.3, styles=("diagonal",), env=env, progress=False)
