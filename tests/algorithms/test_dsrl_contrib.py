"""DSRL-TQC and DSRL-CrossQ: sb3-contrib's TQC and CrossQ on the latent env with DSRL's prior warm-up, trained,
saved, loaded and evaluated by ``lpds train`` / ``lpds evaluate`` on the toy (tiny budgets)."""

import csv
import json

import gymnasium as gym
import numpy as np
import pytest
from sb3_contrib import TQC, CrossQ

import lpds_envs  # noqa: F401
from algorithms import DSRLTQC, DSRLCrossQ
from algorithms.registry import get_algorithm
from lpds_envs.experiment import cli

ENV = "LPDS-MultiGoal-v0"
TINY = ["learning_starts=40", "batch_size=32", "buffer_size=400", "policy_kwargs.net_arch=[16,16]"]


@pytest.mark.parametrize("cls", [DSRLTQC, DSRLCrossQ])
def test_warm_up_draws_the_backbones_prior_not_the_uniform_box(cls):
    env = gym.make(ENV)  # the task's latent box, 2.5: uniform draws there have std 1.44 and |w| > 2 in 20% of them
    model = cls("MlpPolicy", env, learning_starts=400, seed=0, policy_kwargs={"net_arch": [8]})
    model.learn(400)
    w = model.policy.unscale_action(model.replay_buffer.actions[:400].reshape(-1, 2))
    assert 0.9 < w.std() < 1.05 and np.mean(np.abs(w) > 2.0) < 0.08  # N(0, I) clipped at 2.5: std 0.98, 4.6%
    assert model._n_updates == 0


def test_registered_with_presets():
    for name, base in (("dsrl-tqc", TQC), ("dsrl-crossq", CrossQ)):
        spec = get_algorithm(name)
        assert issubclass(spec.cls, base) and spec.preset == name and not spec.counts_raw_steps


@pytest.mark.parametrize("algo", ["dsrl-tqc", "dsrl-crossq"])
def test_lpds_train_saves_a_model_that_lpds_evaluate_loads(algo, tmp_path, capsys):
    out = tmp_path / "runs"
    cli.main(["train", "--algo", algo, "--env", ENV, "--steps", "100", "--out", str(out), "--eval-freq", "50",
              "--eval-episodes", "2", "--no-progress", "--set", *TINY])  # fmt: skip
    run = out / ENV / algo / "seed_0"
    with open(run / "evaluations.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["raw_env_steps"]) for r in rows] == [0, 50, 100]
    model = get_algorithm(algo).cls.load(run / "model.zip")
    assert model.num_timesteps == 100 and model.action_space.high[0] == 1.5  # DSRL's toy box (App. B), from the preset
    cli.main(["evaluate", "--model", str(run), "--episodes", "4", "--entropy-states", "4", "--json", str(tmp_path / "e.json")])  # fmt: skip
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["episodes"] == 4 and result["mean_episode_steps"] == 20 and np.isfinite(result["mean_return"])
    assert f"{algo} on {ENV}" in capsys.readouterr().out
