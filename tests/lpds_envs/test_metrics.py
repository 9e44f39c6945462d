"""lpds_envs.metrics (k-NN entropy, action entropy, mode coverage) and the SB3 callbacks built on them."""

import numpy as np
import pytest
import torch
from stable_baselines3 import SAC

from algorithms import LagrangianSAC
from lpds_envs import make_latent_vec_env
from lpds_envs.decoders import CallableDecoder
from lpds_envs.evaluation import chunk_policy_entropy
from lpds_envs.evaluation.callbacks import EntropyCallback, ModeCoverageCallback, SteeringEvalCallback
from lpds_envs.metrics import action_entropy, knn_entropy, log_unit_ball_volume, mode_coverage, prior_sampler


def gaussian_entropy(dim: int, sigma: float) -> float:
    return 0.5 * dim * np.log(2 * np.pi * np.e * sigma**2)


@pytest.mark.parametrize("dim", [1, 2, 5, 8])
def test_knn_entropy_matches_gaussian_closed_form(dim):
    x = np.random.default_rng(dim).standard_normal((20_000, dim)) * 0.5  # KL is biased ~ -0.05 in 8-D
    assert knn_entropy(x, k=3) == pytest.approx(gaussian_entropy(dim, 0.5), abs=0.1)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_knn_entropy_matches_uniform_closed_form(dim):
    # KL's boundary bias grows with the dimension for bounded supports; low dimensions are within 0.1 nats
    x = np.random.default_rng(dim).uniform(0.0, 2.0, size=(5000, dim))
    assert knn_entropy(x, k=3) == pytest.approx(dim * np.log(2.0), abs=0.1)


def test_unit_ball_volume():
    assert np.exp(log_unit_ball_volume(1)) == pytest.approx(2.0)
    assert np.exp(log_unit_ball_volume(2)) == pytest.approx(np.pi)
    assert np.exp(log_unit_ball_volume(3)) == pytest.approx(4 / 3 * np.pi)


def test_knn_entropy_drops_when_distribution_collapses():
    rng = np.random.default_rng(0)
    corners = np.array([[1, 1], [-1, -1], [1, -1], [-1, 1]], dtype=float)
    four_modes = corners[rng.integers(0, 4, 4000)] + 0.1 * rng.standard_normal((4000, 2))
    one_mode = corners[0] + 0.1 * rng.standard_normal((4000, 2))
    point = np.tile(corners[0], (4000, 1))
    h4, h1, h0 = knn_entropy(four_modes), knn_entropy(one_mode), knn_entropy(point)
    assert h4 - h1 == pytest.approx(np.log(4), abs=0.1)  # a uniform mixture of 4 separated modes adds log 4
    assert h0 < h1 - 10 and np.isfinite(h0)  # repeated points: finite thanks to eps, far below


def test_knn_entropy_rejects_bad_input():
    with pytest.raises(ValueError, match="k < number of samples"):
        knn_entropy(np.zeros((3, 2)), k=3)
    with pytest.raises(ValueError, match=r"shape \(K, D\)"):
        knn_entropy(np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        knn_entropy(np.array([[0.0], [np.nan], [1.0], [2.0], [3.0]]))


def identity_decoder(dim: int = 2) -> CallableDecoder:
    return CallableDecoder(lambda obs, w: w, latent_shape=(1, dim), action_shape=(1, dim))


def test_action_entropy_of_identity_decoder_is_the_latent_entropy():
    torch.manual_seed(0)
    dec = identity_decoder(3)
    obs = torch.zeros(8, 2)
    h_prior = action_entropy(dec, obs, n_samples=1000)
    assert h_prior == pytest.approx(gaussian_entropy(3, 1.0), abs=0.15)
    # a steered sampler that shrinks the noise by 2 loses 3 log 2 nats; a shift alone changes nothing
    h_shrunk = action_entropy(dec, obs, lambda o: 0.5 * torch.randn(len(o), 3) + 1.0, n_samples=1000)
    assert h_prior - h_shrunk == pytest.approx(3 * np.log(2), abs=0.2)


def test_action_entropy_is_per_state_and_flattens_chunks():
    # the decoded spread grows with the observation: the estimate is the mean of per-state entropies
    dec = CallableDecoder(lambda obs, w: w * obs[:, :1, None], latent_shape=(2, 2), action_shape=(2, 2))
    obs = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    torch.manual_seed(0)
    h = action_entropy(dec, obs, n_samples=2000, max_batch=300)  # several decoder calls per state
    expected = np.mean([gaussian_entropy(4, 1.0), gaussian_entropy(4, 2.0)])
    assert h == pytest.approx(expected, abs=0.2)


class _ChunkPolicy:
    """A learner that acts with (2, 2) chunks: N(0, (scale * |obs_0|)^2 I) when sampling, zeros when deterministic."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def predict(self, obs, deterministic=False):
        obs = np.asarray(obs)
        if deterministic:
            return np.zeros((len(obs), 2, 2), dtype=np.float32), None
        spread = self.scale * np.abs(obs[:, :1, None])
        return (np.random.standard_normal((len(obs), 2, 2)) * spread).astype(np.float32), None


def test_chunk_policy_entropy_is_the_executed_chunks_entropy():
    """The fine-tuning baselines' entropy: per-state k-NN entropy of the chunks ``predict`` returns, the estimator
    of ``action_entropy``, under its own RNG (the same seed, the same number; the caller's streams untouched)."""
    obs = np.array([[1.0, 0.0], [2.0, 0.0]], dtype=np.float32)
    state = np.random.get_state()
    h = chunk_policy_entropy(_ChunkPolicy(1.0), obs, n_samples=2000, seed=3)
    assert h == pytest.approx(np.mean([gaussian_entropy(4, 1.0), gaussian_entropy(4, 2.0)]), abs=0.2)
    assert chunk_policy_entropy(_ChunkPolicy(1.0), obs, n_samples=2000, seed=3) == h
    np.testing.assert_array_equal(np.random.get_state()[1], state[1])
    # half the spread: 4 log 2 nats less; a deterministic policy sits far below (the estimator's floor)
    h_half = chunk_policy_entropy(_ChunkPolicy(0.5), obs, n_samples=2000, seed=3)
    assert h - h_half == pytest.approx(4 * np.log(2), abs=0.2)
    assert chunk_policy_entropy(_ChunkPolicy(1.0), obs, n_samples=64, deterministic=True) < h - 50
    with pytest.raises(ValueError, match="n_samples must exceed k"):
        chunk_policy_entropy(_ChunkPolicy(1.0), obs, n_samples=3)


def test_action_entropy_bad_input():
    with pytest.raises(ValueError, match="n_samples must exceed k"):
        action_entropy(identity_decoder(), torch.zeros(2, 2), n_samples=3, k=3)
    with pytest.raises(ValueError, match="non-empty batch"):
        action_entropy(identity_decoder(), torch.zeros(0, 2))


def test_mode_coverage_by_hand():
    goals = [(1, 1), (-1, -1), (1, -1)]
    final = np.array([[1.0, 1.05], [0.95, 1.0], [-1.1, -1.0], [0.0, 0.0], [0.8, -0.7]])
    np.testing.assert_allclose(mode_coverage(final, goals, radius=0.2), [0.4, 0.2, 0.0])
    np.testing.assert_allclose(mode_coverage(final, goals, radius=None), [0.6, 0.2, 0.2])
    with pytest.raises(ValueError, match="must agree"):
        mode_coverage(np.zeros((3, 3)), goals)


def test_prior_sampler_clips():
    w = prior_sampler(4, bound=0.5, generator=torch.Generator().manual_seed(0))(torch.zeros(1000, 2))
    assert w.shape == (1000, 4) and float(w.abs().max()) == 0.5


@pytest.mark.parametrize("algo", ["lpds", "dsrl"])
def test_callbacks_record_entropy_coverage_and_eval_against_raw_steps(algo):
    kwargs = dict(learning_starts=50, batch_size=32, seed=0, policy_kwargs={"net_arch": [16, 16]})
    if algo == "lpds":
        model = LagrangianSAC("MlpPolicy", make_latent_vec_env("LPDS-MultiGoal-v0", seed=0), delta=0.05, **kwargs)
    else:
        model = SAC("MlpPolicy", make_latent_vec_env("LPDS-MultiGoal-v0", seed=0, latent_bound=1.5), **kwargs)
    cov = ModeCoverageCallback(eval_freq=60, n_rollouts=40)
    ent = EntropyCallback(eval_freq=60, n_probe=3, n_samples=40)
    ev = SteeringEvalCallback(make_latent_vec_env("LPDS-MultiGoal-v0", n_envs=4), eval_freq=60)
    model.learn(120, callback=[cov, ent, ev])
    for cb in (cov, ent, ev):
        assert [h["raw_env_steps"] for h in cb.history] == [0, 60, 120]
    for h in cov.history:
        assert len(h["goal_fractions"]) == 4 and 0.0 <= h["no_goal"] <= 1.0
        assert sum(h["goal_fractions"]) + h["no_goal"] == pytest.approx(1.0)
    assert len(cov.last_paths) == 40 and len(cov.last_paths[0]) == 21  # origin + 20 steps
    assert all(np.isfinite(h["action_entropy"]) for h in ent.history)
    assert all(0.0 <= h["success_rate"] <= 1.0 and h["mean_episode_steps"] == 20 for h in ev.history)


def test_coverage_callback_at_start_equals_the_backbone():
    """Before any update, LP-DS's policy is the backbone: the first evaluation is the prior's coverage."""
    from lpds_envs.evaluation import multigoal_coverage

    env = make_latent_vec_env("LPDS-MultiGoal-v0", seed=0)
    model = LagrangianSAC("MlpPolicy", env, delta=0.05, learning_starts=1000, seed=0, policy_kwargs={"net_arch": [8]})
    cov = ModeCoverageCallback(eval_freq=1000, n_rollouts=400)
    model.learn(1, callback=cov)
    prior = multigoal_coverage(env.decoder, n_rollouts=400, seed=1)
    np.testing.assert_allclose(cov.history[0]["goal_fractions"], prior["goal_fractions"], atol=0.08)


def test_raw_step_callback_rejects_bad_freq():
    with pytest.raises(ValueError, match="eval_freq"):
        EntropyCallback(eval_freq=0)


def test_toy_study_code_path_and_json_schema(tmp_path):
    """examples/toy_mode_coverage.py end to end on a tiny budget (2 seeds), and the JSON schema of the issue."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "toy_mode_coverage.py"
    spec = importlib.util.spec_from_file_location("toy_mode_coverage", path)
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    names = ["backbone", "lpds_delta_0.01", "lpds_delta_0.05", "lpds_delta_0.1", "dsrl"]
    tiny = ["--steps", "120", "--eval-every", "60", "--rollouts", "30", "--out", str(tmp_path)]
    argv = ["--seeds", "0", "1", *tiny, "--methods", *names]
    study.main(argv)
    data = json.loads((tmp_path / "toy_mode_coverage.json").read_text())
    assert data["env"] == "LPDS-MultiGoal-v0" and data["env_steps"] == 120 and data["rollouts_per_eval"] == 30
    assert sorted(data["runs"]) == sorted(names) and sorted(data["entropy"]) == sorted(names)
    for name in names:
        run = data["runs"][name]
        assert run["seeds"] == [0, 1]
        assert np.array(run["goal_fractions"]).shape == (2, 4)
        assert np.all(np.array(run["goal_fractions"]) >= 0) and np.all(np.array(run["goal_fractions"]).sum(1) <= 1)
        assert len(run["curves"]["goal_fractions"]) == 2 and len(data["entropy"][name]) == 2
    assert data["runs"]["lpds_delta_0.05"]["curves"]["env_steps"][0] == [0, 60, 120]
    assert data["runs"]["lpds_delta_0.01"]["hyperparameters"]["delta"] == 0.01
    for fig in ("toy_fig10_goal_fractions.png", "toy_fig1_trajectories.png", "toy_fig5_entropy.png"):
        assert (tmp_path / fig).stat().st_size > 1000
    # re-running the same command resumes: every run is found on disk, nothing is recomputed
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").iterdir()}
    study.main(argv)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").iterdir()} == mtimes
    # without the run files, the JSON alone resumes the study: adding a method (an sb3-contrib learner) runs only it
    for p in mtimes:
        p.unlink()
    fig1 = tmp_path / "toy_fig1_trajectories.png"
    drawn = fig1.stat().st_mtime_ns
    study.main(["--seeds", "0", *tiny, "--methods", "dsrl_tqc"])
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["dsrl_tqc_seed0_s120_e60_r30.json"]
    again = json.loads((tmp_path / "toy_mode_coverage.json").read_text())
    assert sorted(again["runs"]) == sorted([*names, "dsrl_tqc"]) and again["runs"]["dsrl_tqc"]["seeds"] == [0]
    assert again["runs"]["dsrl_tqc"]["hyperparameters"]["env_kwargs"] == {"latent_bound": 1.5}  # its preset: b_W
    assert again["runs"]["dsrl_tqc"]["curves"]["env_steps"][0] == [0, 60, 120]
    for name in names:  # every earlier (method, seed) is carried over unchanged, trajectories included
        old, new = data["runs"][name], again["runs"][name]
        assert new["seeds"] == old["seeds"] == [0, 1] and new["goal_fractions"] == old["goal_fractions"]
        assert new["curves"] == old["curves"] and again["entropy"][name] == data["entropy"][name]
        assert new["paths_first_seed"] == old["paths_first_seed"]
    assert fig1.stat().st_mtime_ns > drawn  # redrawn with every method: the JSON kept their trajectories
    assert not (tmp_path / "toy_fig1_trajectories_partial.png").exists()


def test_readme_diversity_snippet_runs():
    """The docs' metrics snippet runs as written (on a smaller budget) and gives sensible values."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs/concepts.md").read_text()
    section = text[text.index("## Measuring diversity") :]
    code = section[section.index("```python\n") + 10 : section.index("```\n", section.index("```python\n") + 10)]
    for old, new in (
        ("3000", "300"),
        ("eval_freq=1000", "eval_freq=150"),
        ("n_rollouts=1000", "n_rollouts=50"),
        ("learning_starts=500", "learning_starts=100"),
    ):
        assert old in code, f"README snippet changed: {old!r} not found"
        code = code.replace(old, new)
    lines = code.rstrip().splitlines()
    lines[-2] = "entropies = " + lines[-2]
    lines[-1] = "fractions = " + lines[-1]
    scope: dict = {}
    exec("\n".join(lines), scope)
    h_backbone, h_steered = scope["entropies"]
    assert np.isfinite(h_backbone) and np.isfinite(h_steered)
    assert len(scope["fractions"]) == 4 and 0.0 < sum(scope["fractions"]) <= 1.0
