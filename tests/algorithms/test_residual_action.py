import gymnasium as gym
import numpy as np
import pytest
import torch

from algorithms import ResidualActionSAC, ResidualActionWrapper
from lpds_envs.decoders import CallableDecoder

TINY = {"net_arch": [16, 16]}


def decoder():
    return CallableDecoder(
        lambda obs, w: 0.5 * torch.tanh(w) - 0.1 * obs[:, None, :], latent_shape=(2, 2), action_shape=(2, 2)
    )


def test_wrapper_executes_clipped_backbone_plus_residual_and_is_seeded():
    dec = decoder()
    env = ResidualActionWrapper(gym.make("lpds/MultiGoal-v0"), dec)
    assert env.action_space.shape == (4,) and env.action_space.high[0] == 2.0
    obs, _ = env.reset(seed=3)
    r = np.array([0.8, 0.0, -0.2, 0.1], np.float32)
    _, _, _, _, info = env.step(r)
    base = dec(torch.from_numpy(obs)[None], torch.from_numpy(info["latent"])[None])[0].numpy().ravel()
    np.testing.assert_allclose(info["base_action"], base, atol=1e-6)
    np.testing.assert_allclose(info["decoded_action"], np.clip(base + r, -1, 1), atol=1e-6)
    again = ResidualActionWrapper(gym.make("lpds/MultiGoal-v0"), dec)
    again.reset(seed=3)
    np.testing.assert_array_equal(again.step(r)[-1]["latent"], info["latent"])
    with pytest.raises(ValueError, match="residual has shape"):
        env.step(np.zeros(3, np.float32))


def test_lpds_a_starts_at_the_backbone_trains_and_moves_alpha(tmp_path):
    env = ResidualActionWrapper(gym.make("lpds/MultiGoal-v0"), decoder())
    model = ResidualActionSAC(
        "MlpPolicy",
        env,
        delta=0.1,
        alpha_init=1.0,
        alpha_lr=0.5,
        learning_starts=64,
        batch_size=32,
        policy_kwargs=TINY,
        seed=0,
    )
    obs = np.random.uniform(-2, 2, (32, 2)).astype(np.float32)
    assert np.abs(model.predict(obs)[0]).max() < 0.05  # Delta_a ~ 0: the first actions are the backbone's
    model.learn(64)
    assert np.all(model.replay_buffer.actions[:64] == 0)  # warm-up = backbone
    with torch.no_grad():
        model.actor.net[-1].weight.zero_()
        model.actor.net[-1].bias.fill_(1.0)  # ||Delta_a||^2 = 4 > delta
    model.train(1, 32)
    assert model.alpha == pytest.approx(1.0 + 0.5 * (4.0 - 0.1))
    model.learn(100)
    for key in ("train/alpha", "train/critic_loss", "train/actor_loss", "train/perturbation_sq"):
        assert key in model.logger.name_to_value
    model.save(tmp_path / "a.zip")
    loaded = ResidualActionSAC.load(tmp_path / "a.zip", env=env)
    np.testing.assert_array_equal(loaded.predict(obs)[0], model.predict(obs)[0])
    assert loaded.alpha == model.alpha


def test_lpds_a_needs_the_residual_env():
    from lpds_envs import LatentSteeringWrapper

    latent_env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), decoder())
    with pytest.raises(ValueError, match="ResidualActionWrapper|decoder's latent"):
        ResidualActionSAC("MlpPolicy", latent_env, decoder=CallableDecoder(lambda o, w: w, (4,), (2, 2)))
