import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import SubprocVecEnv

from algorithms import LagrangianSAC
from lpds_envs import LatentSteeringWrapper, make_latent_vec_env
from lpds_envs.decoders import CallableDecoder

TINY = {"net_arch": [16, 16]}


def tanh_decoder():
    """Chunk of 2 toy actions = tanh(w) shifted by the observation: deterministic and easy to check by hand."""
    return CallableDecoder(
        lambda obs, w: torch.tanh(w) + 0.1 * obs[:, None, :], latent_shape=(2, 2), action_shape=(2, 2)
    )


def make_model(**kw):
    env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), tanh_decoder(), latent_bound=2.5)
    defaults = dict(learning_starts=64, batch_size=32, seed=0, policy_kwargs=TINY, delta=0.1)
    return LagrangianSAC("MlpPolicy", env, **{**defaults, **kw})


def set_actor_bias(model, value):
    with torch.no_grad():
        model.actor.net[-1].weight.zero_()
        model.actor.net[-1].bias.fill_(value)


def test_delta_starts_near_zero_so_first_actions_are_the_backbones():
    model = make_model()
    obs = np.random.uniform(-2, 2, (64, 2)).astype(np.float32)
    delta, _ = model.predict(obs, deterministic=True)
    assert np.abs(delta).max() < 0.05
    eps = torch.randn(64, 4)
    dec = model.decoder
    backbone = dec(torch.from_numpy(obs), eps)
    steered = model.steered_policy()(torch.from_numpy(obs), eps)
    torch.testing.assert_close(steered, backbone, atol=0.05, rtol=0)


def test_warm_up_draws_latents_from_the_prior():
    model = make_model(learning_starts=400)
    set_actor_bias(model, 2.0)  # would show up if the actor were used during warm-up
    model.learn(400)
    w = model.replay_buffer.actions[:400, 0]
    assert abs(w.mean()) < 0.1 and 0.9 < w.std() < 1.1
    stored = model.replay_buffer.decoded_actions[:400, 0]
    obs = model.replay_buffer.observations[:400, 0]
    expected = np.tanh(w.reshape(-1, 2, 2)) + 0.1 * obs[:, None, :]
    np.testing.assert_allclose(stored, expected.reshape(400, 4), atol=1e-6)  # the buffer holds the decoded chunk


def _capture_one_update(model):
    model.learn(64)  # fills the buffer (warm-up), no update yet
    captured = {}
    decode_batches, critic_step, distill = model.decode_batches, model.action_critic_step, model.latent_critic_distill

    def rec_decode(*pairs):
        captured["pairs"] = [(o.clone(), w.clone()) for o, w in pairs]
        out = decode_batches(*pairs)
        captured["chunks"] = [c.clone() for c in out]
        return out

    def rec_critic(replay, target_q):
        captured["replay"], captured["target_q"] = replay, target_q.clone()
        captured["q_targ"] = model.action_critic_target(replay.next_observations, captured["chunks"][0]).detach()
        return critic_step(replay, target_q)

    def rec_distill(obs, eps, eps_chunks):
        captured["distill"] = (obs.clone(), eps.clone(), eps_chunks.clone())
        return distill(obs, eps, eps_chunks)

    model.decode_batches, model.action_critic_step, model.latent_critic_distill = rec_decode, rec_critic, rec_distill
    return captured


def test_td_target_uses_the_decoded_next_action_of_the_current_delta():
    model = make_model(batch_size=256, learning_starts=64, buffer_size=1000)
    captured = _capture_one_update(model)
    set_actor_bias(model, 1.5)  # current Delta(s) = 1.5 everywhere
    model.train(gradient_steps=1, batch_size=256)
    replay = captured["replay"]
    (next_obs, next_w), (obs, eps) = captured["pairs"]
    assert torch.equal(next_obs, replay.next_observations) and torch.equal(obs, replay.observations)
    # next latents are clip(eps' + Delta(s')) with the current actor, eps' fresh N(0, I)
    ref = (torch.randn(1_000_000) + 1.5).clamp(-2.5, 2.5)
    assert abs(float(next_w.mean() - ref.mean())) < 0.1 and abs(float(next_w.std() - ref.std())) < 0.1
    assert next_w.abs().max() <= 2.5
    # a' is the frozen decode of those latents at s'
    torch.testing.assert_close(captured["chunks"][0], model.decoder(next_obs, next_w).flatten(1))
    # y = r + gamma (1 - done) min_j Q_targ,j(s', a')
    expected = replay.rewards + (1 - replay.dones) * model.gamma * captured["q_targ"].min(dim=1, keepdim=True).values
    torch.testing.assert_close(captured["target_q"], expected)


def test_latent_critic_targets_use_prior_noise_not_the_buffer_latents():
    model = make_model(batch_size=256, learning_starts=0, buffer_size=1000)
    set_actor_bias(model, 2.0)  # the buffer's latents are eps + 2: far from the prior
    captured = _capture_one_update(model)
    assert model.replay_buffer.actions[:64, 0].mean() > 1.5
    model.train(gradient_steps=1, batch_size=256)
    obs, eps, eps_chunks = captured["distill"]
    assert abs(float(eps.mean())) < 0.15 and abs(float(eps.std()) - 1.0) < 0.1
    torch.testing.assert_close(eps_chunks, model.decoder(obs, eps).flatten(1))


def test_dual_step_moves_alpha_the_right_way_and_never_below_zero():
    model = make_model(delta=0.1, alpha_init=1.0, alpha_lr=0.5)
    model.learn(64)
    set_actor_bias(model, 1.0)  # ||Delta||^2 = 4 > delta: alpha must grow
    model.train(gradient_steps=1, batch_size=32)
    assert model.alpha > 1.0
    assert model.alpha == pytest.approx(1.0 + 0.5 * (4.0 - 0.1))
    # ||Delta||^2 = 0 < delta: alpha shrinks by alpha_lr * delta = 0.05 per step (59 steps to 0), then stays at 0
    previous = model.alpha
    for _ in range(70):
        set_actor_bias(model, 0.0)
        model.train(gradient_steps=1, batch_size=32)
        assert 0.0 <= model.alpha <= previous
        previous = model.alpha
    assert model.alpha == 0.0
    frozen = make_model(use_lagrangian=False, alpha_init=0.0)
    frozen.learn(100)
    assert frozen.alpha == 0.0


def test_logs_every_quantity():
    model = make_model()
    model.learn(128)
    values = model.logger.name_to_value
    for key in (
        "train/alpha",
        "train/perturbation_sq",
        "train/critic_loss",
        "train/latent_critic_loss",
        "train/actor_loss",
        "time/raw_env_steps",
    ):
        assert key in values, key
    assert model.raw_env_steps == 128 * 2  # chunks of 2 raw steps


def test_save_load_is_bit_exact_and_training_continues(tmp_path):
    model = make_model()
    model.learn(150)
    model.save(tmp_path / "m.zip")
    env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), tanh_decoder())
    loaded = LagrangianSAC.load(tmp_path / "m.zip", env=env)
    assert loaded.alpha == model.alpha and loaded.delta == model.delta
    for (k, v), (k2, v2) in zip(model.policy.state_dict().items(), loaded.policy.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    for name in ("actor", "action_critic", "latent_critic"):
        a = getattr(model, name).optimizer.state_dict()["state"]
        b = getattr(loaded, name).optimizer.state_dict()["state"]
        assert all(torch.equal(a[i]["exp_avg"], b[i]["exp_avg"]) for i in a)
    loaded.learn(50, reset_num_timesteps=False)
    assert loaded.num_timesteps == 200
    # without env or decoder the model still predicts; training asks for the decoder
    bare = LagrangianSAC.load(tmp_path / "m.zip")
    obs = np.zeros((2, 2), np.float32)
    np.testing.assert_array_equal(bare.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


def test_subproc_vec_env_with_several_envs():
    from lpds_envs.registration import task_decoder

    venv = make_latent_vec_env(
        "lpds/MultiGoal-v0", n_envs=3, seed=0, decoder=task_decoder("MultiGoal"), vec_env_cls=SubprocVecEnv
    )
    model = LagrangianSAC("MlpPolicy", venv, learning_starts=30, batch_size=16, policy_kwargs=TINY, seed=0)
    model.learn(90)
    assert model.num_timesteps == 90 and model.replay_buffer.pos == 30
    venv.close()


def test_steered_policy_reproduces_the_wrappers_decoded_actions():
    model = make_model()
    model.learn(200)
    policy = model.steered_policy()
    env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), tanh_decoder(), latent_bound=2.5)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        eps = np.random.standard_normal(4).astype(np.float32)
        delta, _ = model.predict(obs, deterministic=True)
        chunk = policy(torch.from_numpy(obs)[None], torch.from_numpy(eps)[None])[0].numpy()
        obs, *_, info = env.step(eps + delta)
        np.testing.assert_allclose(chunk, info["decoded_action"], atol=1e-6)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="delta must be > 0"):
        make_model(delta=-0.1)
    with pytest.raises(ValueError, match="alpha_init"):
        make_model(alpha_init=-1.0)
    with pytest.raises(ValueError, match="not a latent steering env"):
        LagrangianSAC("MlpPolicy", gym.make("lpds/MultiGoal-v0"))
    wrong = CallableDecoder(lambda o, w: w, latent_shape=(3,), action_shape=(3,))
    with pytest.raises(ValueError, match="decoder's latent"):
        LagrangianSAC("MlpPolicy", gym.make("LPDS-MultiGoal-v0"), decoder=wrong)


def test_delta_schedule():
    model = make_model(delta=lambda progress: 0.5 * progress + 0.01)
    assert model.delta == pytest.approx(0.51)
    model.learn(100)
    assert model.delta == pytest.approx(0.01)


def test_unbounded_latent_env_is_the_no_bound_ablation(tmp_path):
    env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), tanh_decoder(), latent_bound=None)
    model = LagrangianSAC(
        "MlpPolicy", env, learning_starts=32, batch_size=16, policy_kwargs=TINY, use_lagrangian=False, alpha_init=0.0
    )
    assert model.latent_bound is None
    set_actor_bias(model, 4.0)  # far beyond any bound: nothing may clip it
    model.learn(64)
    w = model.replay_buffer.actions[40:64, 0]
    assert w.mean() > 3.0
    model.save(tmp_path / "u.zip")
    loaded = LagrangianSAC.load(tmp_path / "u.zip", env=env)
    assert loaded.latent_bound is None


def test_compile_decoder_matches_eager_training_decodes():
    """``compile_decoder=True`` decodes training batches through a compiled copy with the same outputs."""
    env = make_latent_vec_env("LPDS-MultiGoal-v0", seed=0)
    model = LagrangianSAC("MlpPolicy", env, delta=0.05, learning_starts=10, compile_decoder=True, seed=0)
    assert model._train_decoder is not model.decoder
    obs, w = torch.randn(64, 2), torch.randn(64, model.decoder.latent_dim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a machine without a C++ toolchain falls back to eager with a warning
        compiled = model.decode(obs, w)
    eager = model.decoder(obs, w).flatten(1)
    torch.testing.assert_close(compiled, eager, atol=1e-4, rtol=1e-4)
    assert "_train_decoder" not in model.get_parameters()


def test_float64_observations_are_accepted():
    """Envs with float64 observations (Adroit, MuJoCo) train: the networks see float32."""
    env = gym.make("lpds/MultiGoal-v0")
    env = gym.wrappers.TransformObservation(
        env, lambda o: o.astype(np.float64), gym.spaces.Box(-2.0, 2.0, (2,), np.float64)
    )
    dec = CallableDecoder(lambda obs, w: torch.tanh(w), latent_shape=(1, 2), action_shape=(1, 2))
    model = LagrangianSAC(
        "MlpPolicy",
        LatentSteeringWrapper(env, dec),
        delta=0.1,
        learning_starts=20,
        batch_size=16,
        policy_kwargs=TINY,
        seed=0,
    )
    model.learn(40)
    assert model.replay_buffer.observations.dtype == np.float64 and model.alpha >= 0


def test_actor_value_is_differentiable_in_the_latent_only():
    model = make_model()
    obs = torch.randn(5, model.observation_space.shape[0])
    w = torch.randn(5, model.action_space.shape[0], requires_grad=True)
    model.latent_critic.zero_grad(set_to_none=True)
    list(model.latent_critic.parameters())[0].requires_grad_(False)  # a user-frozen weight stays frozen
    value = model.latent_value(obs, w)
    expected = model.latent_critic(obs, w).min(dim=1).values
    torch.testing.assert_close(value, expected)
    value.sum().backward()
    assert w.grad is not None and float(w.grad.abs().sum()) > 0
    assert all(p.grad is None for p in model.latent_critic.parameters())  # no weight gradients were computed
    flags = [p.requires_grad for p in model.latent_critic.parameters()]
    assert flags[0] is False and all(flags[1:])  # the flags are restored as they were


def test_prior_cache_stores_exact_prior_decodes_and_distills_on_them(tmp_path):
    model = make_model(prior_cache=3, batch_size=128, learning_starts=64, buffer_size=1000)
    model.learn(64)  # warm-up only: fills the buffer and its cache
    buf = model.replay_buffer
    eps, chunks, obs = buf.prior_latents[:64, 0], buf.prior_chunks[:64, 0], buf.observations[:64, 0]
    assert eps.shape == (64, 3, 4) and chunks.shape == (64, 3, 4)
    assert np.abs(eps).max() <= 2.5 and abs(eps.mean()) < 0.15 and 0.85 < eps.std() < 1.15  # clipped prior
    expected = np.tanh(eps.reshape(64, 3, 2, 2)) + 0.1 * obs[:, None, None, :]  # Phi(eps; s) of the stored state
    np.testing.assert_allclose(chunks, expected.reshape(64, 3, 4), atol=1e-6)

    decoded, distilled = [], {}
    decode, distill = model.decode, model.latent_critic_distill
    model.decode = lambda o, w: decoded.append(len(w)) or decode(o, w)
    model.latent_critic_distill = lambda o, e, c: distilled.update(obs=o, eps=e, chunks=c) or distill(o, e, c)
    model.train(gradient_steps=1, batch_size=128)
    assert decoded == [128]  # only the TD target's next actions are decoded
    torch.testing.assert_close(distilled["chunks"], model.decoder(distilled["obs"], distilled["eps"]).flatten(1))
    # each distilled pair is one of the cached pairs of its transition
    rows = {tuple(np.round(e, 6)) for e in eps.reshape(-1, 4)}
    assert all(tuple(np.round(e, 6)) in rows for e in distilled["eps"].numpy())

    model.learn(100, reset_num_timesteps=False)  # trains with the cache
    model.save_replay_buffer(tmp_path / "buf.pkl")
    loaded = make_model(prior_cache=3, batch_size=128, learning_starts=64, buffer_size=1000)
    loaded.load_replay_buffer(tmp_path / "buf.pkl")
    np.testing.assert_array_equal(loaded.replay_buffer.prior_chunks, buf.prior_chunks)


def test_prior_cache_off_decodes_fresh_prior_samples_and_rejects_bad_values():
    model = make_model(learning_starts=64)
    assert not hasattr(model.replay_buffer, "prior_latents")
    with pytest.raises(ValueError, match="prior_cache"):
        make_model(prior_cache=-1)
    with pytest.raises(ValueError, match="prior_cache"):
        make_model(prior_cache=1.5)
