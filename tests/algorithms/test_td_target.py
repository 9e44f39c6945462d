"""The fast TD-target options of the steering learners (``td_target``, ``target_decode_dtype``): off by default,
saved and restored with the model, and their targets against the exact ones on fixed batches."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import lpds_envs  # noqa: F401  (registers the LPDS-* ids)
from algorithms import DSRLNA, LagrangianSAC
from algorithms.steering import TD_TARGETS, check_td_target
from lpds_envs import LatentSteeringWrapper
from lpds_envs.decoders import CallableDecoder

TINY = {"net_arch": [16, 16]}
FAST = [
    {"td_target": "decode_per_update"},
    {"td_target": "latent_critic"},
    {"target_decode_dtype": "bfloat16"},
    {"td_target": "decode_per_update", "target_decode_dtype": "bfloat16"},
]


def counting_decoder(calls):
    """tanh(w) shifted by the observation, counting the latents it decodes (in ``calls``)."""

    def fn(obs, w):
        calls.append(len(w))
        return torch.tanh(w) + 0.1 * obs[:, None, :]

    return CallableDecoder(fn, latent_shape=(2, 2), action_shape=(2, 2))


def make(cls=LagrangianSAC, env=None, **kw):
    env = env or LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), counting_decoder([]), latent_bound=2.5)
    defaults = dict(learning_starts=64, batch_size=32, seed=0, policy_kwargs=TINY)
    if cls is LagrangianSAC:
        defaults["delta"] = 0.1
    return cls("MlpPolicy", env, **{**defaults, **kw})


def toy(cls=LagrangianSAC, **kw):
    """On the shipped toy diffusion backbone (10 DDIM steps), where batching and bf16 change float rounding."""
    return make(cls, gym.make("LPDS-MultiGoal-v0", latent_bound=1.5), **kw)


@pytest.mark.parametrize("cls", [LagrangianSAC, DSRLNA])
def test_default_is_the_exact_decoded_target_without_a_latent_critic_target(cls):
    model = make(cls)
    assert (model.td_target, model.target_decode_dtype) == ("decode", "float32")
    assert model.latent_critic_target is None and model.policy.latent_critic_target is None
    assert not any(k.startswith("latent_critic_target") for k in model.policy.state_dict())


@pytest.mark.parametrize("cls", [LagrangianSAC, DSRLNA])
@pytest.mark.parametrize("options", FAST, ids=lambda o: "+".join(o.values()))
def test_fast_options_round_trip_through_save_and_load(cls, options, tmp_path):
    model = make(cls, **options)
    model.learn(96)  # 32 gradient steps past the warm-up, in the fast mode
    model.save(tmp_path / "m.zip")
    loaded = cls.load(tmp_path / "m.zip", env=model.get_env())
    want = {"td_target": "decode", "target_decode_dtype": "float32", **options}
    assert (loaded.td_target, loaded.target_decode_dtype) == (want["td_target"], want["target_decode_dtype"])
    if options.get("td_target") == "latent_critic":
        assert loaded.latent_critic_target is not None
        for a, b in zip(model.latent_critic_target.parameters(), loaded.latent_critic_target.parameters()):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    else:
        assert loaded.latent_critic_target is None
    loaded.learn(32, reset_num_timesteps=False)  # and trains on


def _fill(model, steps=200):
    model.learn(steps)  # warm-up only (learning_starts=steps): a full buffer, no gradient step
    assert model._n_updates == 0


@pytest.mark.parametrize("cls", [LagrangianSAC, DSRLNA])
def test_per_update_decoding_gives_the_exact_targets_of_its_next_latents(cls):
    """With the actor frozen (no gradient step between drawing and decoding), one batched decode of all steps' next
    latents gives the targets that decoding each step's batch on its own gives, to float rounding (1e-5): batching
    changes only the summation order of the decoder's matmuls."""
    model = toy(cls, td_target="decode_per_update", learning_starts=200, batch_size=64)
    _fill(model)
    torch.manual_seed(1)
    steps = list(model.update_batches(gradient_steps=4, batch_size=64))
    assert len(steps) == 4
    for replay, td in steps:
        exact_chunks = model.decode(replay.next_observations, td.next_w)
        torch.testing.assert_close(td.next_chunks, exact_chunks, rtol=0, atol=1e-5)
        exact = model.action_critic_target(replay.next_observations, exact_chunks).min(dim=1, keepdim=True).values
        torch.testing.assert_close(model.next_value(replay.next_observations, td), exact, rtol=0, atol=1e-5)
        # the prior samples decoded in the same call are exact too
        torch.testing.assert_close(td.eps_chunks, model.decode(replay.observations, td.eps), rtol=0, atol=1e-5)


def test_per_update_decoding_is_one_decoder_call_per_train_call():
    calls = []
    env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), counting_decoder(calls), latent_bound=2.5)
    model = make(env=env, td_target="decode_per_update", learning_starts=64)
    _fill(model, 64)
    calls.clear()
    model.train(gradient_steps=5, batch_size=32)
    assert calls == [5 * 32 * 2]  # next chunks and prior samples of all 5 steps in one call
    exact_calls = []
    env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), counting_decoder(exact_calls), latent_bound=2.5)
    exact = make(env=env, learning_starts=64)
    _fill(exact, 64)
    exact_calls.clear()
    exact.train(gradient_steps=5, batch_size=32)
    assert exact_calls == [32 * 2] * 5  # Algorithm 1: one call per gradient step


@pytest.mark.parametrize("cls", [LagrangianSAC, DSRLNA])
def test_latent_critic_bootstrap_decodes_nothing_with_the_prior_cache(cls):
    calls = []
    env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), counting_decoder(calls), latent_bound=2.5)
    model = make(cls, env=env, td_target="latent_critic", prior_cache=2, learning_starts=64)
    _fill(model, 64)
    calls.clear()
    model.train(gradient_steps=5, batch_size=32)
    assert calls == []


@pytest.mark.parametrize("cls", [LagrangianSAC, DSRLNA])
def test_latent_critic_bootstrap_is_q_w_target_at_the_next_latents(cls):
    """What is compared: the bootstrapped next value is ``min_j Q^W_targ,j(s', w')`` exactly (no decoded chunk); Q^W's
    target starts as a copy of Q^W and follows it by Polyak averaging. How close Q^W_targ(s', w') is to the exact
    ``Q^A_targ(s', Phi(w'; s'))`` depends on how well Q^W has been distilled, so no tolerance is claimed for that."""
    model = make(cls, td_target="latent_critic", learning_starts=64)
    for a, b in zip(model.latent_critic.parameters(), model.latent_critic_target.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert not b.requires_grad
    _fill(model, 64)
    (replay, td), *_ = model.update_batches(gradient_steps=1, batch_size=32)
    assert td.next_chunks is None
    want = model.latent_critic_target(replay.next_observations, td.next_w).min(dim=1, keepdim=True).values
    torch.testing.assert_close(model.next_value(replay.next_observations, td), want, rtol=0, atol=0)
    before = [p.clone() for p in model.latent_critic_target.parameters()]
    model.train(gradient_steps=3, batch_size=32)
    moved = [not torch.equal(a, b) for a, b in zip(before, model.latent_critic_target.parameters())]
    assert any(moved)
    for targ, online, old in zip(model.latent_critic_target.parameters(), model.latent_critic.parameters(), before):
        assert (targ - old).abs().max() <= (online - old).abs().max() + 1e-7  # a Polyak step, not a copy


@pytest.mark.parametrize("cls", [LagrangianSAC, DSRLNA])
def test_bf16_target_decode_stays_close_to_float32_on_the_toy_backbone(cls):
    """bf16 autocast of the next-chunk decode: chunks within 0.1 of float32 on the toy backbone (measured max 0.025
    over 512 latents), targets within 0.05; the executed actions and the prior chunks stay float32."""
    model = toy(cls, target_decode_dtype="bfloat16", learning_starts=200, batch_size=64)
    _fill(model)
    (replay, td), *_ = model.update_batches(gradient_steps=1, batch_size=64)
    assert td.next_chunks.dtype == torch.float32
    exact_chunks = model.decode(replay.next_observations, td.next_w)
    assert (td.next_chunks - exact_chunks).abs().max() < 0.1
    exact = model.action_critic_target(replay.next_observations, exact_chunks).min(dim=1, keepdim=True).values
    assert (model.next_value(replay.next_observations, td) - exact).abs().max() < 0.05
    torch.testing.assert_close(td.eps_chunks, model.decode(replay.observations, td.eps), rtol=0, atol=0)


def test_invalid_options_say_what_to_pass():
    with pytest.raises(ValueError, match=r"td_target must be one of .*'decode_per_update'.*got 'fast'"):
        make(td_target="fast")
    with pytest.raises(ValueError, match=r"target_decode_dtype must be one of .*got 'float16'"):
        make(target_decode_dtype="float16")
    with pytest.raises(ValueError, match="decodes none"):
        make(DSRLNA, td_target="latent_critic", target_decode_dtype="bfloat16")
    with pytest.raises(ValueError, match="no latent critic"):
        check_td_target("latent_critic", "float32", uses_latent_critic=False)
    assert TD_TARGETS[0] == "decode"  # the default comes first


def test_exact_and_fast_modes_start_from_the_same_networks():
    """The fast options add Q^W's target (a copy, no random draws), so a seed gives the same initial networks."""
    exact, fast = make(), make(td_target="latent_critic")
    ours = fast.policy.state_dict()
    for key, value in exact.policy.state_dict().items():
        torch.testing.assert_close(ours[key], value, rtol=0, atol=0)
    assert np.array_equal(exact.predict(np.zeros((3, 2), np.float32), deterministic=True)[0],
                          fast.predict(np.zeros((3, 2), np.float32), deterministic=True)[0])  # fmt: skip
