"""Exact-prior subspace steering on the batched SB3 wrapper: same draws as N single wrappers, z ~ N(P Delta, I)."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from lpds_envs import LatentSteeringWrapper, VecLatentSteeringWrapper, make_latent_vec_env
from lpds_envs.decoders import CallableDecoder
from lpds_envs.subspace import LatentSubspace, SubspaceCodec, SubspaceDecoder
from tests.conftest import small_decoder

ENV_KWARGS = {"start": "uniform"}  # random initial states: the task's own stream is compared too


def _decoder():
    return small_decoder("flow", obs_dim=2, action_dim=2, chunk_size=4)


def _actions(n_steps, n_envs, k=2, seed=0):
    return np.random.default_rng(seed).normal(0.2, 1.0, (n_steps, n_envs, k)).astype(np.float32)


def _single_run(dec, seed, actions, **kw):
    """One LatentSteeringWrapper seeded once, reset without a seed at each episode end (as a VecEnv auto-resets)."""
    env = LatentSteeringWrapper(
        gym.make("lpds/MultiGoal-v0", **ENV_KWARGS), dec, latent_subspace="chunk_constant", **kw
    )
    obs, _ = env.reset(seed=seed)
    out = []
    for u in actions:
        obs, reward, terminated, truncated, info = env.step(u)
        out.append((info["decoded_action"], info["full_latent"], reward, terminated or truncated))
        if terminated or truncated:
            obs, _ = env.reset()
        out[-1] += (obs,)
    return out


@pytest.mark.parametrize("n_envs", [1, 3])
def test_vec_wrapper_reproduces_single_wrappers_seeded_per_sub_env(n_envs):
    dec = _decoder()
    venv = make_latent_vec_env(
        "lpds/MultiGoal-v0", n_envs=n_envs, seed=5, decoder=dec, env_kwargs=ENV_KWARGS, latent_subspace="chunk_constant"
    )
    assert isinstance(venv.decoder, SubspaceDecoder) and venv.decoder.base is dec
    assert venv.action_space.shape == (2,) and venv.latent_bound == 2.5
    assert isinstance(venv.latent_subspace, LatentSubspace) and venv.latent_subspace.dim == 2
    actions = _actions(12, n_envs)  # 12 latent steps of 4 raw steps: the 20-step episodes end twice
    venv.reset()
    vec = []
    for a in actions:
        obs, rewards, dones, infos = venv.step(a)
        vec.append((infos, rewards, dones, obs))
    assert sum(bool(d[0]) for _, _, d, _ in vec) == 2
    for i in range(n_envs):
        single = _single_run(dec, 5 + i, actions[:, i])  # make_latent_vec_env seeds sub-env i with seed + i
        for (infos, rewards, dones, obs), (chunk, z, reward, done, next_obs) in zip(vec, single):
            np.testing.assert_array_equal(infos[i]["full_latent"], z)
            np.testing.assert_allclose(infos[i]["decoded_action"], chunk, atol=1e-5, rtol=0)  # batched vs single
            assert rewards[i] == pytest.approx(reward, abs=1e-4) and bool(dones[i]) == done
            np.testing.assert_allclose(obs[i], next_obs, atol=1e-5, rtol=0)
    if n_envs > 1:  # each sub-env has its own complement-noise stream
        assert not np.array_equal(vec[0][0][0]["full_latent"], vec[0][0][1]["full_latent"])
    # re-seeding restarts the streams: the same seed gives the same complement noise again
    venv.seed(5)
    venv.reset()
    again = venv.step(actions[0])[3]
    for i in range(n_envs):
        np.testing.assert_array_equal(again[i]["full_latent"], vec[0][0][i]["full_latent"])


def test_vec_wrapper_without_a_subspace_is_unchanged():
    dec = _decoder()
    venv = make_latent_vec_env("lpds/MultiGoal-v0", n_envs=2, seed=0, decoder=dec)
    assert venv.latent_subspace is None and venv.decoder is dec and venv.action_space.shape == (8,)
    obs = venv.reset()
    w = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    infos = venv.step(w)[3]
    assert "full_latent" not in infos[0]
    np.testing.assert_array_equal(np.stack([i["decoded_action"] for i in infos]), dec(obs, w).numpy())


def test_vec_lifted_latents_are_the_shifted_prior():
    """Pooled over sub-envs and steps, z = P u + (I - P P^T) eps with u ~ N(Delta, I) is N(P Delta, I)."""
    dec = CallableDecoder(lambda obs, w: w.clamp(-1, 1), latent_shape=(4, 2), action_shape=(4, 2))
    n_envs, n_steps = 40, 300
    venv = make_latent_vec_env(
        "lpds/MultiGoal-v0", n_envs=n_envs, seed=0, decoder=dec, latent_bound=None, latent_subspace="chunk_constant"
    )
    p = venv.latent_subspace.basis.double()
    delta = np.array([0.8, -0.5], np.float32)
    u = delta + np.random.default_rng(1).standard_normal((n_steps, n_envs, 2)).astype(np.float32)
    venv.reset()
    zs = []
    for a in u:
        infos = venv.step(a)[3]
        zs.append(np.stack([info["full_latent"] for info in infos]))
        np.testing.assert_allclose(venv.latent_subspace.project(torch.from_numpy(zs[-1])).numpy(), a, atol=1e-5)
    z = torch.from_numpy(np.concatenate(zs)).double()  # (12000, 8)
    # standard error of each mean ~ 1 / sqrt(12000) = 0.009, of each covariance entry <= 0.013
    torch.testing.assert_close(z.mean(0), p @ torch.from_numpy(delta).double(), atol=0.045, rtol=0)
    cov = torch.cov(z.T)
    assert float((cov - torch.eye(8, dtype=cov.dtype)).abs().max()) < 0.065


def test_vec_wrapper_seeds_from_the_pending_vec_env_seeds():
    from stable_baselines3.common.vec_env import DummyVecEnv

    from lpds_envs import ChunkedActionWrapper

    dec = _decoder()
    venv = DummyVecEnv([lambda: ChunkedActionWrapper(gym.make("lpds/MultiGoal-v0"), 4)] * 2)
    wrapped = VecLatentSteeringWrapper(venv, dec, latent_subspace="chunk_constant")
    assert isinstance(wrapped.codec, SubspaceCodec) and len(wrapped.codec.rngs) == 2
    wrapped.seed(11)  # SB3: sub-env i gets 11 + i at the next reset
    wrapped.reset()
    z = [info["full_latent"] for info in wrapped.step(np.zeros((2, 2), np.float32))[3]]
    for i in range(2):
        np.testing.assert_array_equal(z[i], _single_run(dec, 11 + i, np.zeros((1, 2), np.float32))[0][1])
    with pytest.raises(ValueError, match="latents have shape"):
        wrapped.step(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="3 complement-noise seeds for 2 streams"):
        wrapped.codec.seed([1, 2, 3])


def test_learner_on_the_vec_subspace_env_and_the_registered_id_kwarg():
    from algorithms import LagrangianSAC

    venv = make_latent_vec_env(
        "lpds/MultiGoal-v0", n_envs=2, seed=0, decoder=_decoder(), latent_subspace="chunk_constant"
    )
    model = LagrangianSAC(
        "MlpPolicy", venv, learning_starts=20, batch_size=16, policy_kwargs={"net_arch": [16]}, seed=0
    )
    model.learn(40)
    assert model.decoder.latent_shape == (2,) and model.replay_buffer.actions.shape[-2:] == (2, 2)
    # gym.make of an LPDS id passes latent_subspace through to the wrapper
    env = gym.make("LPDS-MultiGoal-v0", latent_subspace="chunk_constant")
    assert env.action_space.shape == (2,) and isinstance(env.get_wrapper_attr("decoder"), SubspaceDecoder)


@pytest.mark.filterwarnings("ignore:.*(image|channel).*")
def test_registered_pi0_task_batched_matches_single():
    pytest.importorskip("transformers", minversion="5")
    venv = make_latent_vec_env("LPDS-MultiGoalPi0-v0", n_envs=2, seed=3, latent_subspace="chunk_constant")
    assert venv.action_space.shape == (2,) and venv.decoder.base.used_action_dims == (0, 1)
    actions = _actions(3, 2, seed=4)
    venv.reset()
    vec = [venv.step(a)[3] for a in actions]
    for i in range(2):
        env = gym.make("LPDS-MultiGoalPi0-v0", latent_subspace="chunk_constant")
        env.reset(seed=3 + i)
        for step, a in enumerate(actions[:, i]):
            info = env.step(a)[4]
            np.testing.assert_array_equal(vec[step][i]["full_latent"], info["full_latent"])
            np.testing.assert_allclose(vec[step][i]["decoded_action"], info["decoded_action"], atol=1e-4, rtol=0)
