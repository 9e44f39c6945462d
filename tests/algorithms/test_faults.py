"""Fault suite of the learners and wrappers: NaN injections stop at once with a message naming what went wrong,
bad constructor arguments are refused with what to pass, and DSRL-NA's steered policy is what the env decodes."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import SAC

from algorithms import (
    DSRLNA,
    DSRLSAC,
    DSRLTQC,
    DSRLCrossQ,
    LagrangianSAC,
    NonFiniteError,
    ResidualActionSAC,
    ResidualActionWrapper,
)
from algorithms.faults import check_weights, nonfinite_weight
from lpds_envs import LatentSteeringWrapper, make_latent_vec_env, make_latent_vector_env
from lpds_envs.codec import NonFiniteValueError
from lpds_envs.decoders import CallableDecoder


def small():  # a fresh dict each time: SB3's SAC writes use_sde into the policy_kwargs it gets
    return {"learning_starts": 20, "batch_size": 16, "buffer_size": 200, "policy_kwargs": {"net_arch": [8]}, "seed": 0}


def tanh_decoder(fn=None):
    return CallableDecoder(fn or (lambda obs, w: torch.tanh(w)), latent_shape=(2, 2), action_shape=(2, 2))


class NaNReward(gym.Wrapper):
    """Rewards become NaN (or ``value``) from the ``after``-th step on."""

    def __init__(self, env, after, value=float("nan")):
        super().__init__(env)
        self.after, self.value, self.steps = after, value, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        return obs, self.value if self.steps > self.after else reward, terminated, truncated, info


class NaNObservation(gym.Wrapper):
    """Observations become NaN from the ``after``-th step on."""

    def __init__(self, env, after):
        super().__init__(env)
        self.after, self.steps = after, 0

    def step(self, action):
        obs, *rest = self.env.step(action)
        self.steps += 1
        return (np.full_like(obs, np.nan) if self.steps > self.after else obs), *rest


def latent_env(decoder=None, inner=lambda env: env, bound=2.5):
    return LatentSteeringWrapper(inner(gym.make("lpds/MultiGoal-v0")), decoder or tanh_decoder(), latent_bound=bound)


LEARNERS = {
    "lpds": lambda env: LagrangianSAC("MlpPolicy", env, **small()),
    "dsrl-na": lambda env: DSRLNA("MlpPolicy", env, **small()),
    "dsrl": lambda env: DSRLSAC("MlpPolicy", env, **small()),
    "dsrl-tqc": lambda env: DSRLTQC("MlpPolicy", env, **small()),
    "dsrl-crossq": lambda env: DSRLCrossQ("MlpPolicy", env, **small()),
}


@pytest.mark.parametrize("algo", list(LEARNERS))
def test_nan_reward_stops_training_naming_the_reward(algo):
    model = LEARNERS[algo](latent_env(inner=lambda env: NaNReward(env, after=30)))
    with pytest.raises(NonFiniteError) as exc:
        model.learn(200)
    message = str(exc.value)
    assert "NaN or inf after gradient step" in message and "\n" not in message
    assert "reward" in message and exc.value.quantity.startswith("train/")
    # stopped within the first update that saw the NaN: long before the budget
    assert model.num_timesteps < 60


def test_inf_reward_is_caught_too():
    model = LEARNERS["lpds"](latent_env(inner=lambda env: NaNReward(env, after=25, value=float("inf"))))
    with pytest.raises(NonFiniteError, match="reward"):
        model.learn(200)


@pytest.mark.parametrize("algo", list(LEARNERS))
def test_nan_observation_is_stopped_at_the_wrapper_before_the_decoder(algo):
    model = LEARNERS[algo](latent_env(inner=lambda env: NaNObservation(env, after=5)))
    with pytest.raises(NonFiniteValueError, match="observation given to the decoder contains NaN"):
        model.learn(200)


def test_plain_sb3_sac_on_the_latent_env_gets_the_wrappers_checks():
    calls = []

    def broken(obs, w):
        calls.append(1)
        out = torch.tanh(w)
        return out * float("nan") if len(calls) > 10 else out

    model = SAC("MlpPolicy", latent_env(tanh_decoder(broken)), learning_starts=20, batch_size=16, seed=0)
    with pytest.raises(NonFiniteValueError, match="decoder output"):
        model.learn(100)
    assert len(calls) == 11  # raised at the first NaN chunk, which never reached the simulator


def test_nan_decoder_output_never_reaches_the_simulator():
    stepped = []

    class Spy(gym.Wrapper):
        def step(self, action):
            stepped.append(np.array(action))
            return self.env.step(action)

    dec = tanh_decoder(lambda obs, w: torch.full_like(w, float("nan")))
    env = latent_env(dec, inner=Spy)
    env.reset(seed=0)
    with pytest.raises(NonFiniteValueError, match=r"decoder output \(decoded action chunk of env 0\)"):
        env.step(np.zeros(4, np.float32))
    assert stepped == []


def test_subspace_codec_checks_decoder_output_and_observations():
    dec = tanh_decoder(lambda obs, w: torch.where(obs[:, :1, None] > 100, float("nan"), torch.tanh(w)))
    env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), dec, latent_subspace="chunk_constant")
    env.reset(seed=0)
    env.step(np.zeros(env.action_space.shape, np.float32))  # finite: fine
    env.unwrapped.state = np.array([200.0, 0.0])  # the decoder returns NaN there
    env._obs = np.array([200.0, 0.0], np.float32)
    with pytest.raises(NonFiniteValueError, match="decoder output"):
        env.step(np.zeros(env.action_space.shape, np.float32))
    env._obs = np.array([np.nan, 0.0], np.float32)
    with pytest.raises(NonFiniteValueError, match="observation given to the decoder"):
        env.step(np.zeros(env.action_space.shape, np.float32))


@pytest.mark.parametrize("make", [make_latent_vec_env, make_latent_vector_env])
def test_batched_wrappers_name_the_sub_env_whose_chunk_is_not_finite(make):
    def second_env_broken(obs, w):
        out = torch.tanh(w).clone()
        out[1] = float("inf")
        return out

    if make is make_latent_vec_env:
        venv = make("lpds/MultiGoal-v0", n_envs=3, decoder=tanh_decoder(second_env_broken), latent_bound=2.5)
        venv.reset()
    else:
        venv = make("lpds/MultiGoal-v0", num_envs=3, decoder=tanh_decoder(second_env_broken), latent_bound=2.5)
        venv.reset(seed=0)
    with pytest.raises(NonFiniteValueError, match="decoded action chunk of env 1"):
        venv.step(np.zeros((3, 4), np.float32))
    venv.close()


@pytest.mark.parametrize("algo", ["lpds", "dsrl-na"])
def test_nan_decoder_output_on_training_latents_names_the_decoder(algo):
    # NaN only for latents beyond 2: the env (bound 1.5) never sends them, but DSRL-NA distills Q^W on unclipped
    # prior noise, and LP-DS decodes unclipped latents once its bound is switched off (as with a wrongly set bound)
    dec = tanh_decoder(lambda obs, w: torch.where(w.abs() > 2, float("nan"), torch.tanh(w)))
    model = LEARNERS[algo](latent_env(dec, bound=1.5))
    if algo == "lpds":
        model.latent_bound = None
    with pytest.raises(NonFiniteError) as exc:
        model.learn(300)
    assert "decoder output is NaN or inf for the training batch" in str(exc.value)


def test_weights_are_checked_once_per_train_call():
    model = LEARNERS["lpds"](latent_env())
    model.learn(30)
    assert nonfinite_weight(model) is None
    with torch.no_grad():
        model.actor.net[-1].bias[0] = float("nan")
    assert nonfinite_weight(model).startswith("actor.")
    with pytest.raises(NonFiniteError, match=r"weight actor\."):
        check_weights(model, 7)
    model.alpha = math.inf
    assert nonfinite_weight(model) == "alpha"


def test_residual_action_sac_guard_and_wrapper_checks():
    dec = CallableDecoder(lambda obs, w: torch.tanh(w), latent_shape=(2, 2), action_shape=(2, 2))
    env = ResidualActionWrapper(NaNReward(gym.make("lpds/MultiGoal-v0"), after=30), dec)
    model = ResidualActionSAC("MlpPolicy", env, **small())
    with pytest.raises(NonFiniteError, match="reward"):
        model.learn(200)
    env = ResidualActionWrapper(gym.make("lpds/MultiGoal-v0"), dec)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="residual contains NaN"):
        env.step(np.full(4, np.nan, np.float32))
    env._obs = np.array([np.nan, 0.0], np.float32)
    with pytest.raises(NonFiniteValueError, match="observation"):
        env.step(np.zeros(4, np.float32))


# ------------------------------------------------------------------ DSRL-NA's steered policy


def test_dsrl_na_steered_policy_is_the_envs_decoded_action():
    dec = tanh_decoder(lambda obs, w: torch.tanh(w) + 0.1 * obs[:, None, :])
    model = DSRLNA("MlpPolicy", latent_env(dec, bound=1.5), **small()).learn(60)
    det = model.steered_policy(deterministic=True)
    env = latent_env(dec, bound=1.5)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs_t = torch.from_numpy(obs)[None]
        chunk = det(obs_t)[0].numpy()
        np.testing.assert_array_equal(chunk, det(obs_t)[0].numpy())  # deterministic: no sampling
        w, _ = model.predict(obs, deterministic=True)
        obs, *_, info = env.step(w)
        np.testing.assert_allclose(chunk, info["decoded_action"], atol=1e-6)
    # stochastic: the latent is bound * tanh(mu + sigma eps) (eps is the Gaussian's noise, never added on top)
    stoch = model.steered_policy()
    obs_t = torch.from_numpy(obs)[None]
    eps = torch.randn(1, 4)
    w = model.actor.latent(obs_t, eps)
    assert w.abs().max() <= 1.5
    torch.testing.assert_close(stoch(obs_t, eps), dec(obs_t, w))
    torch.testing.assert_close(stoch(obs_t, torch.zeros(1, 4)), det(obs_t))
    a, b = stoch(obs_t.repeat(64, 1)), stoch(obs_t.repeat(64, 1))
    assert not torch.equal(a, b)  # fresh noise per call


# ------------------------------------------------------------------ bad constructor arguments


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"batch_size": -5}, "batch_size must be an integer >= 1"),
        ({"buffer_size": 0}, "buffer_size must be an integer >= 1"),
        ({"learning_starts": -1}, "learning_starts must be an integer >= 0"),
        ({"gamma": float("nan")}, "gamma must be a finite number in"),
        ({"tau": 2.0}, "tau must be a finite number in"),
        ({"alpha_lr": float("nan")}, "alpha_lr must be >= 0 and finite"),
        ({"alpha_lr": float("inf")}, "alpha_lr must be >= 0 and finite"),
        ({"alpha_init": float("nan")}, "alpha_init must be >= 0 and finite"),
        ({"delta": float("inf")}, "delta must be > 0 and finite"),
        ({"delta": float("nan")}, "delta must be > 0 and finite"),
    ],
)
def test_bad_learner_arguments_say_what_to_pass(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LagrangianSAC("MlpPolicy", latent_env(), **{**small(), **kwargs})


def test_bad_arguments_of_the_other_learners():
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        DSRLNA("MlpPolicy", latent_env(), **{**small(), "batch_size": 0})
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        DSRLSAC("MlpPolicy", latent_env(), **{**small(), "batch_size": 0})


@pytest.mark.parametrize("bound,error", [("2.5", TypeError), (b"2", TypeError), (True, TypeError), ([2.5], TypeError)])
def test_latent_bound_of_the_wrong_type_says_what_to_pass(bound, error):
    with pytest.raises(error, match="latent_bound must be a number.*latent_bound=2.5"):
        latent_env(bound=bound)


@pytest.mark.parametrize("net_arch", ["x", [0], [16, "a"], 16])
def test_bad_net_arch_says_what_to_pass(net_arch):
    with pytest.raises(ValueError, match=r"net_arch must be a list of hidden layer sizes.*'net_arch': \[256, 256\]"):
        LagrangianSAC("MlpPolicy", latent_env(), **{**small(), "policy_kwargs": {"net_arch": net_arch}})


def test_loading_another_learners_zip_names_the_class(tmp_path):
    LagrangianSAC("MlpPolicy", latent_env(), **small()).save(tmp_path / "lpds.zip")
    with pytest.raises(ValueError, match="does not hold a DSRLNA model.*load it with the class that saved it"):
        DSRLNA.load(tmp_path / "lpds.zip", env=latent_env())
