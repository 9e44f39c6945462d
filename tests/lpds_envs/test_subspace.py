"""Exact-prior subspace steering: z = P u + (I - P P^T) eps is N(P Delta, I) when u ~ N(Delta, I)."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from lpds_envs import LatentSteeringWrapper
from lpds_envs.decoders import CallableDecoder
from lpds_envs.subspace import LatentSubspace, SubspaceDecoder
from tests.conftest import small_decoder


def _random_subspace(latent_shape, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    return LatentSubspace(torch.randn(int(np.prod(latent_shape)), k, generator=g), latent_shape, orthonormalize=True)


@pytest.mark.parametrize("which", ["chunk_constant", "random"])
def test_lifted_latent_is_exactly_the_shifted_prior(which):
    latent_shape = (8, 4)  # D = 32
    sub = LatentSubspace.chunk_constant(latent_shape, dims=[0, 2]) if which == "chunk_constant" else None
    sub = sub or _random_subspace(latent_shape, 3)
    p = sub.basis
    torch.testing.assert_close(p.T @ p, torch.eye(sub.dim), atol=1e-6, rtol=0)
    g = torch.Generator().manual_seed(1)
    n = 200_000
    delta = torch.linspace(-1.0, 1.5, sub.dim)
    u = delta + torch.randn(n, sub.dim, generator=g)
    z = sub.lift(u, torch.randn(n, 32, generator=g)).double()
    # mean P Delta, covariance I: each estimate has standard error ~ 1 / sqrt(n) = 0.0022
    torch.testing.assert_close(z.mean(0), (p @ delta).double(), atol=0.012, rtol=0)
    cov = torch.cov(z.T)
    assert float((cov - torch.eye(32, dtype=cov.dtype)).abs().max()) < 0.025
    # ||P Delta|| = ||Delta||: the KL of the decoder's latent is the KL of u, ||Delta||^2 / 2
    torch.testing.assert_close((p @ delta).norm(), delta.norm())
    # the steering latent is recovered from the decoded latent
    torch.testing.assert_close(sub.project(z.float()[:100]), u[:100], atol=1e-4, rtol=0)


def test_chunk_constant_basis_and_bad_bases():
    sub = LatentSubspace.chunk_constant((5, 3), dims=[1])
    col = sub.basis[:, 0].reshape(5, 3)
    assert torch.allclose(col[:, 1], torch.full((5,), 5**-0.5)) and col[:, [0, 2]].abs().sum() == 0
    assert LatentSubspace.chunk_constant((5, 3)).dim == 3
    with pytest.raises(ValueError, match="not orthonormal"):
        LatentSubspace(np.ones((6, 2)))
    with pytest.raises(ValueError, match="linearly dependent"):
        LatentSubspace(np.ones((6, 2)), orthonormalize=True)
    with pytest.raises(ValueError, match=r"needs a \(T, A\) latent"):
        LatentSubspace.chunk_constant((12,))
    with pytest.raises(ValueError, match="dims must be distinct"):
        LatentSubspace.chunk_constant((5, 3), dims=[3])
    with pytest.raises(ValueError, match="lifts into 6 dims"):
        SubspaceDecoder(small_decoder("flow"), np.eye(6)[:, :2])


def test_subspace_decoder_uses_the_used_action_dims_and_decodes_the_lift():
    base = small_decoder("flow")  # latent (4, 3)
    base.used_action_dims = (0, 1)  # as Pi0Decoder reports its first action_dim columns
    dec = SubspaceDecoder(base)
    assert dec.latent_shape == (2,) and dec.action_shape == base.action_shape
    obs, u, eps = torch.randn(5, 5), torch.randn(5, 2), torch.randn(5, 4, 3)
    z = dec.full_latent(u, eps)
    assert z.shape == (5, 4, 3)
    assert torch.equal(dec(obs, u, complement_noise=eps), base(obs, z))
    assert z[:, :, 2].equal(eps[:, :, 2])  # an unused column keeps its prior noise untouched
    torch.testing.assert_close(dec.subspace.project(z), u, atol=1e-5, rtol=0)
    assert dec(obs, u).shape == (5, 4, 3)  # without complement noise: torch's global RNG


def _sub_env(decoder=None, **kw):
    dec = decoder or small_decoder("flow", obs_dim=2, action_dim=2, chunk_size=4)
    return LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), dec, latent_subspace="chunk_constant", **kw)


def test_wrapper_steps_on_the_subspace_and_reports_the_full_latent():
    env = _sub_env(latent_bound=1.0)
    base = env.decoder.base
    assert env.action_space.shape == (2,) and isinstance(env.decoder, SubspaceDecoder)
    obs, _ = env.reset(seed=0)
    obs2, _, _, _, info = env.step(np.array([3.0, -0.5], np.float32))
    np.testing.assert_array_equal(info["latent"], [1.0, -0.5])  # clipped to the bound
    z = info["full_latent"]
    assert z.shape == (8,)
    np.testing.assert_allclose(env.latent_subspace.project(torch.from_numpy(z)[None])[0], info["latent"], atol=1e-5)
    expected = base(torch.from_numpy(obs)[None], torch.from_numpy(z)[None])[0].numpy()
    np.testing.assert_array_equal(info["decoded_action"], expected)


def test_seeded_episodes_repeat_and_the_task_stream_is_untouched():
    env = _sub_env()
    actions = [np.array([0.3, -0.2], np.float32)] * 6

    def episode(seed):
        out = [env.reset(seed=seed)[0]]
        for a in actions:
            obs, _, _, _, info = env.step(a)
            out += [obs, info["full_latent"]]
        return out

    first, again, other = episode(7), episode(7), episode(8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[2], other[2])  # another seed, other complement noise
    # the task's own reset stream does not see the subspace: the same initial state as without it
    plain = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), env.decoder.base)
    np.testing.assert_array_equal(plain.reset(seed=7)[0], first[0])


def test_default_is_the_full_latent_and_unchanged():
    dec = small_decoder("flow", obs_dim=2, action_dim=2, chunk_size=4)
    env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), dec)
    assert env.latent_subspace is None and env.decoder is dec and env.action_space.shape == (8,)
    obs, _ = env.reset(seed=0)
    w = np.linspace(-1, 1, 8).astype(np.float32)
    _, _, _, _, info = env.step(w)
    assert "full_latent" not in info
    np.testing.assert_array_equal(
        info["decoded_action"], dec(torch.from_numpy(obs)[None], torch.from_numpy(w)[None])[0]
    )


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
def test_env_checkers_and_a_learner_on_the_subspace_env():
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    from algorithms import LagrangianSAC

    gym_check(_sub_env(), skip_render_check=True)
    sb3_check(_sub_env())
    model = LagrangianSAC(
        "MlpPolicy", _sub_env(), learning_starts=20, batch_size=16, policy_kwargs={"net_arch": [16]}, seed=0
    )
    model.learn(40)
    assert model.decoder.latent_shape == (2,) and model.replay_buffer.actions.shape[-1] == 2


def test_callable_decoder_with_explicit_basis():
    dec = CallableDecoder(lambda obs, w: w, latent_shape=(4, 2), action_shape=(4, 2))
    basis = _random_subspace((4, 2), 3, seed=2)
    env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), dec, latent_subspace=basis)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros(3, np.float32))
    np.testing.assert_allclose(info["decoded_action"].reshape(-1), info["full_latent"], atol=0)
    with pytest.raises(ValueError, match="latent_subspace must be one of"):
        LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), dec, latent_subspace="repeats")


def test_repeated_noise_is_dsrl_pi0s_parameterisation_and_not_exact_prior():
    from lpds_envs.subspace import RepeatedNoise, resolve_subspace

    rep = RepeatedNoise((5, 3), steps=2)
    assert (rep.dim, rep.latent_dim) == (6, 15)
    u = torch.randn(4, 6)
    z = rep.lift(u, torch.randn(4, 15)).reshape(4, 5, 3)
    # the agent sets the first `steps` rows; the last of them is repeated over the rest of the chunk
    assert torch.equal(z[:, 0], u[:, :3]) and all(torch.equal(z[:, t], u[:, 3:]) for t in range(1, 5))
    torch.testing.assert_close(rep.project(z.reshape(4, -1)), u)
    # nothing else is drawn: the complement noise is ignored
    assert torch.equal(rep.lift(u, torch.zeros(4, 15)), rep.lift(u, torch.randn(4, 15)))
    # with u ~ N(0, I) the decoder latent is not N(0, I): repeated rows are perfectly correlated
    zz = rep.lift(torch.randn(20_000, 6), torch.randn(20_000, 15)).reshape(-1, 5, 3)
    corr = torch.corrcoef(torch.stack([zz[:, 2, 0], zz[:, 4, 0]]))[0, 1]
    assert corr > 0.999
    dec = small_decoder(action_dim=3, chunk_size=5)
    one = resolve_subspace("repeat", dec)
    assert isinstance(one, RepeatedNoise) and one.steps == 1 and one.dim == 3
    with pytest.raises(ValueError, match="steps must be in"):
        RepeatedNoise((5, 3), steps=6)
    with pytest.raises(ValueError, match="latent_subspace must be one of"):
        resolve_subspace("repeated", dec)
