"""The Franka zoo: KOMO-planned scripted demonstrators, their training pairs, and the shipped steering ids.

Needs the ``franka`` extra (robotic, with Debian's liblapack3; Xvfb for the depth images) and skips without it; the
argument checks run everywhere.
"""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import lpds_envs  # noqa: F401
from lpds_envs.backbones.shipped import CHECKPOINT_DIR, load_backbone, shipped_backbones
from lpds_envs.backbones.zoo import franka
from lpds_envs.backbones.zoo.franka_scripts import MUG_STYLES, PICK_STYLES, SCRIPTS
from lpds_envs.registration import TASKS

HAS_ROBOTIC = importlib.util.find_spec("robotic") is not None
needs_robotic = pytest.mark.skipif(not HAS_ROBOTIC, reason="needs the franka extra (robotic)")
STEERING = {"FrankaPickPlace": "franka-pick-place-flow", "FrankaMugHang": "franka-mug-hang-flow"}


def test_steering_ids_are_registered_with_their_backbones_and_extra():
    for name, checkpoint in STEERING.items():
        task = TASKS[name]
        assert task.backbones == {"flow": checkpoint} and task.default_backbone == "flow"
        assert task.extra == "franka" and task.raw_id == f"lpds/{name}-v0"
        assert f"LPDS-{name}-v0" in gym.registry


def test_bad_task_and_style_are_clear_errors():
    with pytest.raises(ValueError, match="task must be one of"):
        franka.record_demos("stack", 1)
    with pytest.raises(ValueError, match="episodes and render_every must be >= 1"):
        franka.record_demos("mug_hang", 0)
    assert SCRIPTS["pick_place"].styles == PICK_STYLES and SCRIPTS["mug_hang"].styles == MUG_STYLES
    assert len(PICK_STYLES) >= 2 and len(MUG_STYLES) >= 2  # more than one grasp style per task


@needs_robotic
@pytest.mark.parametrize("task", ["pick_place", "mug_hang"])
def test_scripted_demonstrators_succeed_in_both_grasp_styles(task, tmp_path):
    arrays, report = franka.record_demos(task, episodes=2, seed=0, render_every=4, progress=False)
    assert report["episodes"] == 2 and report["successes"] == 2, report
    if task == "mug_hang":  # episodes alternate the styles
        assert sorted(report["per_style"]) == sorted(MUG_STYLES) and sorted(arrays["styles"].tolist()) == [0, 1]
    else:  # cells 1-8 in the first style, then again in the second: try the second directly
        assert report["per_style"] == {PICK_STYLES[0]: [2, 2]}
        env = gym.make("lpds/FrankaPickPlace-v0")
        obs, info = env.reset(seed=5, options={"position": 8})
        policy = SCRIPTS[task].controller(env.unwrapped, PICK_STYLES[1], obs, np.random.default_rng(0))
        for _ in range(150):
            obs, _, terminated, _, info = env.step(policy(obs))
            if terminated:
                break
        assert info["success"], info
        env.close()
    ends = arrays["episode_ends"]
    assert arrays["observations"].shape == (ends[-1], 15) and arrays["actions"].shape == (ends[-1], 8)
    assert np.abs(arrays["actions"]).max() <= 1.0
    np.savez(tmp_path / "demos.npz", **arrays)
    data = franka.demo_dataset(tmp_path / "demos.npz", task, chunk_size=8)
    assert data.chunk_size == 8 and data.action_dim == 8
    if task == "pick_place":
        assert report["per_position"]["1"] == [1, 1] and report["per_position"]["2"] == [1, 1]
        steps = arrays["depth_steps"]
        assert arrays["depth"].shape == (len(steps), 64, 64) and np.all(np.diff(steps) > 0)
        # pairs only where depth was rendered; the backbone reads joint_pos and gripper (no joint velocities)
        columns = np.r_[0:7, 14]
        assert list(franka.decoder_columns(task)) == list(columns)
        assert data.obs_dim == 8 + 64 * 64 and len(data) == len(steps)
        np.testing.assert_array_equal(data.obs[:, 8:], arrays["depth"].astype(np.float32).reshape(len(steps), -1))
        np.testing.assert_array_equal(data.obs[:, :8], arrays["observations"][steps][:, columns])
        np.testing.assert_array_equal(data.actions[:, 0], arrays["actions"][steps])
        assert arrays["depth"].astype(np.float32).max() > 0.3  # real depth images, not the skipped zeros
        # the first steps' pairs repeated: all pairs once, then those of steps < 30 three more times
        early = franka.demo_dataset(tmp_path / "demos.npz", task, 8, early_steps=30, early_factor=4)
        starts = np.concatenate([[0], ends[:-1]])
        n_early = int(np.sum(steps - starts[np.searchsorted(ends, steps, side="right")] < 30))
        assert 0 < n_early < len(steps) and len(early) == len(steps) + 3 * n_early
        np.testing.assert_array_equal(early.obs[: len(steps)], data.obs)
        with pytest.raises(ValueError, match="early_factor >= 1"):
            franka.demo_dataset(tmp_path / "demos.npz", task, 8, early_steps=30, early_factor=0)
    else:
        assert data.obs_dim == 15 and len(data) == ends[-1]


@pytest.mark.parametrize("name", sorted(STEERING.values()))
def test_shipped_franka_backbones_load_bit_exactly(name):
    if name not in shipped_backbones():
        pytest.fail(f"{name} is not shipped in {CHECKPOINT_DIR}")
    decoder = load_backbone(name, verify=True)  # the files match their fingerprint
    stored = load_file(str(CHECKPOINT_DIR / name / "model.safetensors"))
    state = decoder.state_dict()
    assert set(stored) == set(state) and all(torch.equal(state[k], v) for k, v in stored.items())
    assert decoder.action_shape == (franka.CHUNK_SIZE, 8)
    if name == "franka-pick-place-flow":  # reads the Dict observation, the depth image through its CNN
        assert decoder.get_config()["image_key"] == "depth" and decoder.net.obs_encoder is not None


@needs_robotic
@pytest.mark.parametrize("name", sorted(STEERING))
def test_steering_envs_pass_check_env(name):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(f"LPDS-{name}-v0")
    assert env.spec.nondeterministic  # as the raw task (PhysX caches), so the checker skips its determinism check
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False, skip_render_check=True)
    assert env.action_space.shape == (franka.CHUNK_SIZE * 8,)
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(np.zeros(env.action_space.shape, np.float32))
    assert info["executed_steps"] == franka.CHUNK_SIZE and info["decoded_action"].shape == (franka.CHUNK_SIZE, 8)
    env.close()
