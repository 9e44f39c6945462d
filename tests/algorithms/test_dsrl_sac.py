"""DSRLSAC: SB3 SAC on the latent env whose warm-up rolls out the backbone's prior, as the DSRL reference code does."""

import numpy as np
from stable_baselines3 import SAC

from algorithms import DSRLSAC
from lpds_envs import make_latent_vec_env
from lpds_envs.experiment.config import get_algo

BOUND, WARMUP = 2.5, 400


def _warmup_latents(cls) -> np.ndarray:
    venv = make_latent_vec_env("LPDS-MultiGoal-v0", n_envs=4, seed=0, latent_bound=BOUND)
    model = cls("MlpPolicy", venv, learning_starts=WARMUP, seed=0, policy_kwargs={"net_arch": [16]})
    model.learn(WARMUP)  # warm-up only: no gradient step has run yet
    stored = model.replay_buffer.actions[: model.replay_buffer.pos].reshape(-1, venv.action_space.shape[0])
    return model.policy.unscale_action(stored)  # the latents the env received, from the buffer's [-1, 1] copies


def test_warmup_draws_the_clipped_prior_not_the_uniform_box():
    w = _warmup_latents(DSRLSAC)
    assert len(w) == WARMUP and np.abs(w).max() <= BOUND
    assert abs(w.mean()) < 0.1 and abs(w.std() - 1.0) < 0.06  # N(0, I) clipped at 2.5 sigma: std ~0.99
    # SB3's own warm-up is uniform over the box (std b / sqrt(3) ~ 1.44): the difference this class exists for
    assert abs(_warmup_latents(SAC).std() - BOUND / np.sqrt(3)) < 0.08


def test_after_warmup_it_is_sb3_sac():
    venv = make_latent_vec_env("LPDS-MultiGoal-v0", n_envs=1, seed=0, latent_bound=BOUND)
    model = DSRLSAC("MlpPolicy", venv, learning_starts=10, seed=0, policy_kwargs={"net_arch": [16]})
    model.learn(30)
    assert model._n_updates > 0
    model._last_obs = venv.reset()
    action, buffer_action = model._sample_action(learning_starts=10)
    assert np.allclose(model.policy.scale_action(action), buffer_action, atol=1e-6)
    assert np.abs(action).max() <= BOUND


def test_lpds_train_dsrl_builds_dsrlsac_and_evaluates_stochastically():
    spec = get_algo("dsrl")
    assert spec.cls is DSRLSAC and spec.eval_deterministic is False  # DSRL's deterministic_eval: False
    assert get_algo("dsrl-na").eval_deterministic is False and get_algo("lpds").eval_deterministic is False


def test_save_load_round_trip(tmp_path):
    venv = make_latent_vec_env("LPDS-MultiGoal-v0", n_envs=1, seed=0, latent_bound=BOUND)
    model = DSRLSAC("MlpPolicy", venv, learning_starts=5, seed=0, policy_kwargs={"net_arch": [8]}).learn(20)
    model.save(tmp_path / "m.zip")
    loaded = DSRLSAC.load(tmp_path / "m.zip", env=venv)
    obs = venv.reset()
    assert np.array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
