"""``lpds plot --aggregate iqm``: the same numbers as rliable's own functions, and the CLI on small run folders."""

import csv
import importlib.util
import json
import sys
import types

import numpy as np
import pytest

from lpds_envs.experiment import cli
from lpds_envs.experiment.aggregates import score_distribution, stratified_bootstrap_ci
from lpds_envs.experiment.config import RunConfig, UsageError
from lpds_envs.experiment.plotting import plot_runs
from lpds_envs.experiment.runs import EVAL_COLUMNS

metrics = pytest.importorskip("rliable.metrics", reason="rliable is in the plot and test extras")


def _rliable_library():
    """``rliable.library`` (its bootstrap is arch's). arch 7.x, the newest that rliable 1.2 accepts, fails to import
    its top-level package (``arch.univariate``) under pandas 3; its ``arch.bootstrap`` subpackage, which is all rliable
    uses, does not need it, so when the package import fails it is loaded without the top-level ``__init__``."""
    try:
        from rliable import library
    except TypeError:
        spec = importlib.util.find_spec("arch")
        for name in [n for n in sys.modules if n == "arch" or n.startswith("arch.")]:
            del sys.modules[name]
        package = types.ModuleType("arch")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["arch"] = package
        sys.modules.pop("rliable.library", None)
        from rliable import library
    return library


@pytest.fixture(scope="module")
def rly():
    return _rliable_library()


@pytest.fixture
def scores():
    rng = np.random.default_rng(7)
    return {"a": rng.uniform(0, 1, (5, 3)), "b": rng.uniform(0.2, 1.2, (5, 3)), "c": rng.uniform(0, 1, (4, 3))}


def test_aggregate_intervals_equal_rliable(rly, scores):
    def func(x):
        return np.array(
            [
                metrics.aggregate_iqm(x),
                metrics.aggregate_median(x),
                metrics.aggregate_mean(x),
                metrics.aggregate_optimality_gap(x, 1.0),
            ]
        )

    for key in scores:  # rliable's global stream, seeded, against ours with the same seed
        np.random.seed(11)
        theirs, ci = rly.get_interval_estimates({key: scores[key]}, func, reps=300)
        point, lo, hi = stratified_bootstrap_ci(func, scores[key], reps=300, seed=11)
        np.testing.assert_array_equal(point, theirs[key])
        np.testing.assert_allclose(np.stack([lo, hi]), ci[key], rtol=0, atol=1e-12)
        assert lo[0] < hi[0]  # a real interval, not a point


def test_probability_of_improvement_equals_rliable(rly, scores):
    pair = [scores["b"], scores["c"]]  # different run counts: rliable's independent stratified bootstrap
    np.random.seed(5)
    point_r, ci_r = rly.get_interval_estimates(
        {"b,c": pair}, lambda x, y: np.array([metrics.probability_of_improvement(x, y)]), reps=300
    )
    point, lo, hi = stratified_bootstrap_ci(metrics.probability_of_improvement, *pair, reps=300, seed=5)
    np.testing.assert_allclose(point, point_r["b,c"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(np.stack([lo, hi]), ci_r["b,c"], rtol=0, atol=1e-12)
    assert 0.5 < point[0] <= 1.0  # b is drawn from a higher range


def test_performance_profile_equals_rliable(rly, scores):
    taus = np.linspace(0, 1.2, 13)
    np.random.seed(2)
    prof_r, ci_r = rly.create_performance_profile({"a": scores["a"]}, taus, reps=200)
    prof, lo, hi = stratified_bootstrap_ci(lambda x: score_distribution(x, taus), scores["a"], reps=200, seed=2)
    np.testing.assert_array_equal(prof, prof_r["a"])
    np.testing.assert_allclose(np.stack([lo, hi]), ci_r["a"], rtol=0, atol=1e-12)


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(runs, tasks\)"):
        stratified_bootstrap_ci(np.mean, np.zeros(3))
    with pytest.raises(ValueError, match="reps"):
        stratified_bootstrap_ci(np.mean, np.zeros((2, 2)), reps=0)


# ------------------------------------------------------------------ the CLI on small run folders
FINAL = {  # (env, variant) -> final returns of seeds 0, 1, 2 (the success rate is return / 100)
    ("LPDS-MultiGoal-v0", "lpds"): [90.0, 80.0, 70.0],
    ("LPDS-MultiGoal-v0", "dsrl"): [60.0, 85.0, 50.0],
    ("LPDS-Hopper-v0", "lpds"): [30.0, 35.0, 40.0],
    ("LPDS-Hopper-v0", "dsrl"): [10.0, 45.0, 20.0],
}


def _write_run(out, env_id, algo, seed, final):
    cfg = RunConfig(algo=algo, env_id=env_id, seed=seed, steps=100, out=str(out), eval_freq=50)
    cfg.write()
    with open(cfg.run_dir / "evaluations.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=EVAL_COLUMNS)
        writer.writeheader()
        for step, ret in ((0, 0.0), (50, final / 2), (100, final)):
            row = dict.fromkeys(EVAL_COLUMNS, "0")
            row.update(raw_env_steps=step, mean_return=ret, success_rate=ret / 100, action_entropy="")
            writer.writerow(row)


@pytest.fixture(scope="module")
def run_folders(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    for (env_id, algo), finals in FINAL.items():
        for seed, final in enumerate(finals):
            _write_run(out, env_id, algo, seed, final)
    return out


def test_plot_aggregate_iqm_cli(run_folders, tmp_path, capsys):
    cli.main(["plot", str(run_folders), "--out", str(tmp_path), "--bootstrap", "300", "--aggregate", "iqm"])
    for name in ("aggregates_return.md", "aggregates_return.png", "aggregates_return.pdf"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "performance_profile_return.png").stat().st_size > 0
    result = json.loads((tmp_path / "aggregates_return.json").read_text())
    assert result["tasks"] == ["LPDS-Hopper-v0", "LPDS-MultiGoal-v0"] and result["normalized"]
    # returns of two envs are min-max normalised per env over all runs shown, then aggregated
    lo = {e: min(v for (e2, _), vs in FINAL.items() if e2 == e for v in vs) for e, _ in FINAL}
    hi = {e: max(v for (e2, _), vs in FINAL.items() if e2 == e for v in vs) for e, _ in FINAL}
    expected = {
        a: np.stack([(np.array(FINAL[(e, a)]) - lo[e]) / (hi[e] - lo[e]) for e in result["tasks"]], axis=1)
        for a in ("lpds", "dsrl")
    }
    for a, x in expected.items():
        iqm, iqm_lo, iqm_hi = result["aggregates"][a]["iqm"]
        assert iqm == pytest.approx(metrics.aggregate_iqm(x), abs=1e-12) and iqm_lo <= iqm <= iqm_hi
        assert result["aggregates"][a]["optimality_gap"][0] == pytest.approx(metrics.aggregate_optimality_gap(x, 1))
    p = result["probability_of_improvement"]["lpds > dsrl"][0]
    assert p == pytest.approx(metrics.probability_of_improvement(expected["lpds"], expected["dsrl"]))
    assert result["probability_of_improvement"]["dsrl > lpds"][0] == pytest.approx(1 - p)
    assert len(result["profiles"]["lpds"]["fraction"]) == len(result["profiles"]["taus"]) == 101
    text = capsys.readouterr().out
    assert "| lpds | 3 |" in text and "min-max normalised" in text and "P(X > Y)" in text


def test_plot_aggregate_success_single_env_and_errors(run_folders, tmp_path):
    env_dir = run_folders / "LPDS-MultiGoal-v0"
    argv = ["plot", str(env_dir), "--out", str(tmp_path), "--bootstrap", "200", "--aggregate", "iqm"]
    cli.main([*argv, "--metric", "success"])
    result = json.loads((tmp_path / "aggregates_success.json").read_text())
    x = np.array(FINAL[("LPDS-MultiGoal-v0", "lpds")])[:, None] / 100
    assert result["aggregates"]["lpds"]["mean"][0] == pytest.approx(x.mean()) and not result["notes"]
    cli.main(argv)  # raw returns of one env: no normalisation, so no optimality gap
    assert json.loads((tmp_path / "aggregates_return.json").read_text())["aggregates"]["lpds"]["optimality_gap"] is None
    # a variant missing on an env: a usage error naming it
    _write_run(run_folders / "extra", "LPDS-Hopper-v0", "lpds-a", 0, 5.0)
    with pytest.raises(UsageError, match="lpds-a on LPDS-MultiGoal-v0"):
        plot_runs([run_folders], tmp_path / "bad", 100, summary="iqm")
