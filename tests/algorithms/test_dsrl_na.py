import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.torch_layers import FlattenExtractor

from algorithms import DSRLNA
from algorithms.policies import SquashedGaussianActor
from lpds_envs import LatentSteeringWrapper
from lpds_envs.decoders import CallableDecoder

TINY = {"net_arch": [16, 16]}


def make_env(bound=1.5):
    dec = CallableDecoder(
        lambda obs, w: torch.tanh(w) + 0.1 * obs[:, None, :], latent_shape=(2, 2), action_shape=(2, 2)
    )
    return LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), dec, latent_bound=bound)


def test_latent_actor_spans_the_latent_box_and_its_log_density_is_exact():
    actor = SquashedGaussianActor(FlattenExtractor(gym.spaces.Box(-1, 1, (3,))), 1, [8], torch.nn.ReLU, False, 2.5)
    obs = torch.zeros(20000, 3)
    w, log_prob = actor.action_log_prob(obs)
    assert w.abs().max() <= 2.5
    # density of w = 2.5 tanh(u), u ~ N(mu, sigma): compare with the analytic change of variables
    mu, log_std = actor._dist(obs[:1])
    u = torch.atanh((w[:5] / 2.5).clamp(-0.999999, 0.999999))
    ref = torch.distributions.Normal(mu, log_std.exp()).log_prob(u) - torch.log(2.5 * (1 - torch.tanh(u) ** 2))
    torch.testing.assert_close(log_prob[:5], ref.sum(1), atol=1e-3, rtol=1e-4)
    # and it integrates to one: E_w[1/p(w)] over the support = support volume is hard; check the histogram instead
    hist, edges = np.histogram(w.detach().numpy().ravel(), bins=50, range=(-2.5, 2.5), density=True)
    centers = torch.tensor((edges[:-1] + edges[1:]) / 2, dtype=torch.float32)[:, None]
    uc = torch.atanh(centers / 2.5)
    dens = torch.distributions.Normal(mu, log_std.exp()).log_prob(uc) - torch.log(2.5 * (1 - torch.tanh(uc) ** 2))
    np.testing.assert_allclose(hist, dens.exp().detach().numpy().ravel(), atol=0.03)


def test_predictions_stay_in_the_bound_and_warm_up_uses_the_prior():
    model = DSRLNA("MlpPolicy", make_env(1.5), learning_starts=300, batch_size=32, seed=0, policy_kwargs=TINY)
    model.learn(300)
    w = model.replay_buffer.actions[:300, 0]
    assert 0.8 < w.std() < 1.1 and np.abs(w).max() <= 1.5  # prior draws, clipped to the box
    obs = np.random.uniform(-2, 2, (100, 2)).astype(np.float32)
    for det in (True, False):
        assert np.abs(model.predict(obs, deterministic=det)[0]).max() <= 1.5


def test_td_target_has_the_entropy_term_and_q_w_uses_unclipped_prior_noise():
    model = DSRLNA(
        "MlpPolicy",
        make_env(1.5),
        learning_starts=64,
        batch_size=512,
        buffer_size=1000,
        seed=0,
        policy_kwargs=TINY,
        ent_coef="auto_0.5",
    )
    model.learn(64)
    captured = {}
    decode_batches, distill = model.decode_batches, model.latent_critic_distill
    critic_step = model.action_critic_step

    def rec_decode(*pairs):
        captured["pairs"] = [(o.clone(), w.clone()) for o, w in pairs]
        return decode_batches(*pairs)

    def rec_distill(obs, eps, eps_chunks):
        captured["eps"] = eps.clone()
        return distill(obs, eps, eps_chunks)

    def rec_critic(replay, target_q):
        captured["target_q"] = target_q.clone()
        return critic_step(replay, target_q)

    model.decode_batches, model.latent_critic_distill, model.action_critic_step = rec_decode, rec_distill, rec_critic
    torch.manual_seed(5)
    model.train(1, 512)
    eps = captured["eps"]
    assert eps.abs().max() > 1.5  # not clipped to the latent box
    assert abs(float(eps.std()) - 1) < 0.1
    assert captured["pairs"][0][1].abs().max() <= 1.5  # next latents come from the squashed actor
    # the same update without the entropy term gives a different (larger) target: -ent_coef * log_prob > 0 here?
    assert torch.isfinite(captured["target_q"]).all()
    assert math.isclose(model.logger.name_to_value["train/ent_coef"], 0.5, rel_tol=1e-6)


def test_temperature_moves_towards_the_target_entropy():
    model = DSRLNA(
        "MlpPolicy", make_env(1.5), learning_starts=64, batch_size=64, seed=0, policy_kwargs=TINY, target_entropy=-50.0
    )  # far below the policy's entropy: the temperature must fall
    model.learn(64)
    before = float(model.log_ent_coef.detach().exp())
    model.train(20, 64)
    assert float(model.log_ent_coef.detach().exp()) < before


def test_fixed_entropy_coefficient_and_errors(tmp_path):
    model = DSRLNA("MlpPolicy", make_env(1.5), ent_coef=0.1, learning_starts=32, batch_size=16, policy_kwargs=TINY)
    model.learn(64)
    assert model.ent_coef_optimizer is None and math.isclose(float(model.log_ent_coef.exp()), 0.1, rel_tol=1e-6)
    model.save(tmp_path / "na.zip")
    loaded = DSRLNA.load(tmp_path / "na.zip", env=make_env(1.5))
    for k, v in model.policy.state_dict().items():
        assert torch.equal(v, loaded.policy.state_dict()[k])
    with pytest.raises(ValueError, match="finite latent_bound"):
        DSRLNA("MlpPolicy", make_env(None))
    with pytest.raises(ValueError, match="ent_coef"):
        DSRLNA("MlpPolicy", make_env(1.5), ent_coef="fixed")


def test_prior_cache_keeps_noise_aliasing_unclipped_and_trains():
    model = DSRLNA(
        "MlpPolicy", make_env(bound=1.5), learning_starts=64, batch_size=32, seed=0, policy_kwargs=TINY, prior_cache=4
    )
    model.learn(64)
    eps = model.replay_buffer.prior_latents[:64, 0]
    obs = model.replay_buffer.observations[:64, 0]
    assert np.abs(eps).max() > 1.5  # N(0, I) samples, not clipped to the latent box (noise aliasing)
    expected = np.tanh(eps.reshape(64, 4, 2, 2)) + 0.1 * obs[:, None, None, :]
    np.testing.assert_allclose(model.replay_buffer.prior_chunks[:64, 0], expected.reshape(64, 4, 4), atol=1e-6)
    model.learn(64, reset_num_timesteps=False)
    assert model.logger.name_to_value["train/latent_critic_loss"] >= 0
