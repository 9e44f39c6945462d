"""The ``LPDS-*`` ids' specs: the episode limit in latent steps, and the late-import id form."""

import importlib.util
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

import lpds_envs  # noqa: F401  (registers the ids)
from lpds_envs import CallableDecoder, make_latent_vec_env
from lpds_envs.registration import latent_horizon


def test_latent_horizon_is_ceil_of_raw_steps_over_chunk():
    assert latent_horizon(1000, 4) == 250
    assert latent_horizon(20, 3) == 7
    assert latent_horizon(20, 1) == 20
    assert latent_horizon(None, 4) is None


def test_spec_counts_latent_steps_and_the_episode_ends_there():
    # a chunk of 3 on the 20-step toy: 6 full chunks and a last one cut at raw step 20 -> 7 latent steps
    decoder = CallableDecoder(lambda obs, w: torch.tanh(w), latent_shape=(3, 2), action_shape=(3, 2))
    env = gym.make("LPDS-MultiGoal-v0", decoder=decoder)
    assert env.spec.max_episode_steps == 7
    env.reset(seed=0)
    latent_steps, raw_steps, truncated, terminated = 0, 0, False, False
    while not (truncated or terminated):
        _, _, terminated, truncated, info = env.step(np.zeros(env.action_space.shape, np.float32))
        latent_steps += 1
        raw_steps += info["executed_steps"]
    assert (latent_steps, raw_steps, terminated) == (7, 20, False)  # zero actions: the toy's point stays put
    assert gym.make("LPDS-MultiGoal-v0").spec.max_episode_steps == 20  # the shipped toy backbone: chunks of 1
    assert gym.make(env.spec).spec.max_episode_steps == 7  # a re-make from the spec keeps it (check_env does this)


def test_render_fps_is_per_latent_step():
    decoder = CallableDecoder(lambda obs, w: torch.tanh(w), latent_shape=(4, 2), action_shape=(4, 2))
    raw_fps = gym.make("lpds/MultiGoal-v0").metadata["render_fps"]
    env = gym.make("LPDS-MultiGoal-v0", decoder=decoder, render_mode="rgb_array")
    assert env.metadata["render_fps"] == raw_fps / 4  # one frame per chunk of 4: a recorder plays in real time
    env.reset(seed=0)
    assert env.render().ndim == 3
    assert gym.make("LPDS-MultiGoal-v0").metadata["render_fps"] == raw_fps  # chunks of 1: unchanged
    # the batched envs too (SB3's VecVideoRecorder and Gymnasium's vector recorders read it from them)
    venv = make_latent_vec_env("LPDS-MultiGoal-v0", n_envs=2, decoder=decoder)
    assert venv.metadata["render_fps"] == raw_fps / 4 and "render_modes" in venv.metadata
    assert gym.make_vec("LPDS-MultiGoal-v0", num_envs=2, decoder=decoder).metadata["render_fps"] == raw_fps / 4


@pytest.mark.skipif(importlib.util.find_spec("mujoco") is None, reason='needs MuJoCo: pip install "lpds[locomotion]"')
def test_hopper_spec_is_250_latent_steps():
    env = gym.make("LPDS-Hopper-v0")
    assert env.spec.max_episode_steps == 250  # 1000 raw steps in chunks of 4 (what TimeFeatureWrapper reads)
    assert env.metadata["render_fps"] == 125 / 4  # Hopper-v5 renders at 125 fps
    assert env.unwrapped.spec.id == "LPDS-Hopper-v0"
    env.close()


def test_late_import_id_form_registers_in_a_fresh_process():
    """``"lpds_envs:LPDS-..."`` imports lpds_envs first (what SubprocVecEnv workers need when it is imported late)."""
    code = "import gymnasium as gym; print(gym.make('lpds_envs:LPDS-MultiGoal-v0').spec.max_episode_steps)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "20"


def _rollout(venv, steps, seed=3):
    rng = np.random.default_rng(0)
    out = [venv.reset(seed=seed)[0]]
    for _ in range(steps):
        obs, reward, terminated, truncated, infos = venv.step(rng.standard_normal(venv.action_space.shape))
        out += [obs, reward, terminated, truncated]
    return out, infos


@pytest.mark.parametrize("subspace", [None, "chunk_constant"])
def test_make_vec_decodes_in_one_batch_and_matches_single_envs(subspace):
    from lpds_envs.vector import LatentSteeringVectorWrapper

    # chunks of 3 on the 20-step toy: 7 latent steps per episode, so 16 steps cross two automatic resets
    decoder = CallableDecoder(lambda obs, w: torch.tanh(w), latent_shape=(3, 2), action_shape=(3, 2))
    kwargs = {"decoder": decoder, "latent_subspace": subspace}
    batched = gym.make_vec("LPDS-MultiGoal-v0", num_envs=3, **kwargs)  # the ids' vector_entry_point
    single = gym.make_vec("LPDS-MultiGoal-v0", num_envs=3, vectorization_mode="sync", **kwargs)  # 3 gym.make envs
    assert isinstance(batched, LatentSteeringVectorWrapper) and not isinstance(single, LatentSteeringVectorWrapper)
    assert batched.single_action_space == single.single_action_space
    calls = []
    decoder.register_forward_hook(lambda module, args, out: calls.append(out.shape[0]))
    (got, infos), (want, _) = _rollout(batched, 16), _rollout(single, 16)
    assert set(calls[:16]) == {3}  # one decoder call per vector step, for all 3 sub-envs
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=1e-6)
    if subspace is not None:  # complement noise per sub-env, seeded like gym.make's envs reset with seed + i
        assert infos["full_latent"].shape == (3, 6) and batched.single_action_space.shape == (2,)
    batched.close()
    single.close()
