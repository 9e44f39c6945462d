"""Common random numbers in :func:`lpds_envs.evaluation.compare_with_backbone`: the backbone's ``w = eps`` and the
steered policy's ``eps + Delta(s)`` share ``eps`` decision by decision."""

import numpy as np
import pytest
import torch

from algorithms import LagrangianSAC
from lpds_envs import make_latent_vec_env
from lpds_envs.evaluation import PriorPolicy, compare_with_backbone, evaluate_policy

ENV = "LPDS-MultiGoal-v0"


def _model(venv, delta_bias: float) -> LagrangianSAC:
    model = LagrangianSAC("MlpPolicy", venv, learning_starts=0, seed=0, device="cpu")
    last = model.policy.actor.net[-1]
    with torch.no_grad():  # Delta(s) = delta_bias in every entry, whatever the state
        last.weight.zero_()
        last.bias.fill_(delta_bias)
    return model


def test_a_zero_perturbation_plays_exactly_the_backbones_episodes():
    venv = make_latent_vec_env(ENV, n_envs=4)
    cmp = compare_with_backbone(_model(venv, 0.0), venv, False, seed=3, episodes=6)
    assert cmp.shared_noise
    np.testing.assert_array_equal(cmp.steered.returns, cmp.backbone.returns)
    np.testing.assert_array_equal(cmp.steered.lengths, cmp.backbone.lengths)
    assert cmp.gain == 0.0 and cmp.gain_se == 0.0 and cmp.success_gain_se == 0.0
    assert cmp.to_dict()["discordant"] == [0, 0]


def test_without_shared_noise_the_same_policy_sees_other_latents():
    venv = make_latent_vec_env(ENV, n_envs=4)
    cmp = compare_with_backbone(_model(venv, 0.0), venv, False, seed=3, episodes=6, shared_noise=False)
    assert not cmp.shared_noise
    assert not np.array_equal(cmp.steered.returns, cmp.backbone.returns)  # numpy stream vs the policy's torch eps


def test_the_shared_stream_is_the_steering_policys_eps():
    venv = make_latent_vec_env(ENV, n_envs=4)
    model, backbone = _model(venv, 0.0), PriorPolicy(venv.action_space.shape[0], shared_noise=True)
    seen = {"model": [], "backbone": []}
    for name, policy in (("model", model), ("backbone", backbone)):
        predict = policy.predict

        def recording(obs, *args, _predict=predict, _name=name, **kwargs):
            w, state = _predict(obs, *args, **kwargs)
            seen[_name].append(np.asarray(w))
            return w, state

        policy.predict = recording
        evaluate_policy(policy, venv, False, seed=11, episodes=4)
    k = min(len(seen["model"]), len(seen["backbone"]))
    assert k > 1
    for w_model, w_backbone in zip(seen["model"][:k], seen["backbone"][:k]):
        np.testing.assert_allclose(w_model, np.clip(w_backbone, venv.action_space.low, venv.action_space.high))


def test_paired_standard_error_is_that_of_the_differences():
    venv = make_latent_vec_env(ENV, n_envs=4)
    cmp = compare_with_backbone(_model(venv, 0.3), venv, False, seed=5, episodes=8)
    diff = cmp.steered.returns - cmp.backbone.returns
    assert cmp.gain == pytest.approx(diff.mean())
    assert cmp.gain_se == pytest.approx(diff.std(ddof=1) / np.sqrt(8))
    s, b = cmp.steered.success.astype(bool), cmp.backbone.success.astype(bool)
    assert cmp.discordant == (int((s & ~b).sum()), int((b & ~s).sum()))
