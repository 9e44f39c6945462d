"""End-to-end tests of the ``lpds`` command line on the toy env with tiny budgets (a few hundred env steps)."""

import csv
import importlib.util
import json
import warnings

import numpy as np
import pytest
import torch
import yaml
from stable_baselines3.common.save_util import load_from_zip_file

from algorithms.presets import deep_merge
from lpds_envs.experiment import cli
from lpds_envs.experiment import runs as runs_module
from lpds_envs.experiment.config import UsageError, parse_set
from lpds_envs.experiment.sweep import parse_grid, point_name

ENV = "LPDS-MultiGoal-v0"
TINY = ["learning_starts=40", "batch_size=32", "buffer_size=400", "policy_kwargs.net_arch=[16,16]"]


def train_argv(out, algo="lpds", steps=100, seeds=(0,), extra=()):
    return [
        "train", "--algo", algo, "--env", ENV, "--steps", str(steps), "--seeds", *map(str, seeds), "--out", str(out),
        "--eval-freq", "50", "--eval-episodes", "2", "--no-progress", *extra, "--set", *TINY,
    ]  # fmt: skip


def run_dir(out, algo="lpds", seed=0):
    return out / ENV / algo / f"seed_{seed}"


def eval_rows(folder):
    with open(folder / "evaluations.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two seeds of LP-DS, 100 env steps each, shared by the evaluate and plot tests."""
    out = tmp_path_factory.mktemp("train")
    cli.main(train_argv(out, seeds=(0, 1)))
    return out


def test_train_two_seeds(trained, capsys):
    for seed in (0, 1):
        folder = run_dir(trained, seed=seed)
        for name in ("config.yaml", "progress.csv", "evaluations.csv", "model.zip", "checkpoint/model.zip"):
            assert (folder / name).is_file(), name
        assert (folder / "checkpoint" / "replay_buffer.npz").is_file()
        rows = eval_rows(folder)
        assert [int(r["raw_env_steps"]) for r in rows] == [0, 50, 100]  # raw env steps, evaluated at 0 and the end
        assert all(float(r["mean_episode_steps"]) == 20 for r in rows)
        cfg = yaml.safe_load((folder / "config.yaml").read_text())
        assert cfg["seed"] == seed and cfg["steps"] == 100 and cfg["algo"] == "lpds"
        hp = cfg["hyperparams"]  # preset (App. B) with the --set overrides merged in
        assert hp["delta"] == 0.05 and hp["policy_kwargs"] == {"net_arch": [16, 16], "n_critics": 2}
        assert "env_kwargs" not in hp and cfg["versions"]["torch"]  # the task's own latent box (2.5), not restated
        with open(folder / "progress.csv", newline="") as f:
            progress = list(csv.DictReader(f))
        assert progress and int(progress[-1]["time/raw_env_steps"]) <= 100
    # the same command again finds the runs complete and leaves them alone
    before = (run_dir(trained) / "evaluations.csv").read_text()
    cli.main(train_argv(trained, seeds=(0, 1)))
    assert "already complete" in capsys.readouterr().out
    assert (run_dir(trained) / "evaluations.csv").read_text() == before


def _final_state(folder):
    data, params, _ = load_from_zip_file(folder / "model.zip")
    with np.load(folder / "checkpoint" / "replay_buffer.npz") as buf:
        buffer = {k: buf[k].copy() for k in buf.files}
    rows = [{k: v for k, v in r.items() if k != "time_s"} for r in eval_rows(folder)]
    with open(folder / "progress.csv", newline="") as f:
        logged = [r["time/total_timesteps"] for r in csv.DictReader(f)]
    return data, params, buffer, rows, logged


def _interrupt_at(monkeypatch, raw_steps):
    """Make training stop with a KeyboardInterrupt (what Ctrl-C or a kill does between two checkpoints) once it has
    taken ``raw_steps`` raw env steps."""
    original = runs_module.TrainingRun.after_step

    def interrupt(self, *args):
        original(self, *args)
        if self.raw >= raw_steps:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs_module.TrainingRun, "after_step", interrupt)


@pytest.mark.parametrize("algo", ["lpds", "dsrl"])
def test_resume_after_interruption_equals_uninterrupted(tmp_path, monkeypatch, algo):
    # evaluations every 50 env steps, checkpoints every 100, interrupted at 160: the run restarts from 100, and the
    # evaluation at 150 and the log rows past 100 written before the interruption are discarded.
    extra = ["--checkpoint-freq", "100"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    cli.main(train_argv(full, algo, steps=200, extra=extra))

    with monkeypatch.context() as m:
        _interrupt_at(m, 160)
        with pytest.raises(SystemExit) as exc:
            cli.main(train_argv(cut, algo, steps=200, extra=extra))
    assert exc.value.code == 130
    assert not (run_dir(cut, algo) / "model.zip").exists()
    assert int(eval_rows(run_dir(cut, algo))[-1]["raw_env_steps"]) == 150
    cli.main(train_argv(cut, algo, steps=200, extra=extra))  # the same command resumes

    # Bit-exact: the checkpoint restores the torch/numpy/python RNG streams, the action space's RNG (SAC warm-up),
    # the replay buffer and the envs' state, and is taken between an update and the next env step.
    data_a, params_a, buf_a, rows_a, log_a = _final_state(run_dir(full, algo))
    data_b, params_b, buf_b, rows_b, log_b = _final_state(run_dir(cut, algo))
    for key in ("num_timesteps", "raw_env_steps", "_n_updates", "_episode_num"):
        assert data_a[key] == data_b[key], key
    assert data_a["raw_env_steps"] == 200
    for name in params_a:
        for key, tensor in params_a[name].items():
            if isinstance(tensor, torch.Tensor):
                assert torch.equal(tensor, params_b[name][key]), (name, key)
    assert buf_a.keys() == buf_b.keys()
    for key in buf_a:
        np.testing.assert_array_equal(buf_a[key], buf_b[key], err_msg=key)
    assert rows_a == rows_b and [int(r["raw_env_steps"]) for r in rows_a] == [0, 50, 100, 150, 200]
    assert log_a == log_b


def test_resume_without_a_saved_replay_buffer_says_so_and_refills_it(tmp_path, monkeypatch, capsys):
    extra = ["--checkpoint-freq", "100", "--no-replay-buffer"]
    with monkeypatch.context() as m:
        _interrupt_at(m, 160)
        with pytest.raises(SystemExit):
            cli.main(train_argv(tmp_path, steps=200, extra=extra))
    assert not (run_dir(tmp_path) / "checkpoint" / "replay_buffer.npz").exists()
    capsys.readouterr()
    cli.main(train_argv(tmp_path, steps=200, extra=extra))
    out = capsys.readouterr().out
    # the toy env pickles, so only the buffer is missing, and the note names it and nothing else
    assert "holds no replay buffer" in out and "env state" not in out and "refilled" in out
    assert int(eval_rows(run_dir(tmp_path))[-1]["raw_env_steps"]) == 200


def test_resume_with_another_torch_thread_count_says_it_will_not_be_bit_exact(tmp_path, monkeypatch, capsys):
    extra = ["--checkpoint-freq", "100"]
    torch.set_num_threads(1)  # the conftest fixture restores the count after the test
    with monkeypatch.context() as m:
        _interrupt_at(m, 160)
        with pytest.raises(SystemExit):
            cli.main(train_argv(tmp_path, steps=200, extra=extra))
    capsys.readouterr()
    torch.set_num_threads(2)
    cli.main(train_argv(tmp_path, steps=200, extra=extra))
    out = capsys.readouterr().out
    assert "saved by a process with 1 torch threads and resumes with 2" in out and "OMP_NUM_THREADS=1" in out
    assert int(eval_rows(run_dir(tmp_path))[-1]["raw_env_steps"]) == 200


def test_seeds_share_one_config(tmp_path):
    # SB3's SAC writes use_sde into the policy_kwargs it gets; no seed may see another's
    cli.main(train_argv(tmp_path, "dsrl", steps=20, seeds=(0, 1)))
    configs = [yaml.safe_load((run_dir(tmp_path, "dsrl", s) / "config.yaml").read_text()) for s in (0, 1)]
    assert configs[0]["hyperparams"] == configs[1]["hyperparams"]
    assert "use_sde" not in configs[0]["hyperparams"]["policy_kwargs"]


def test_train_jobs_runs_seeds_in_subprocesses(tmp_path):
    cli.main(train_argv(tmp_path, "dsrl", steps=60, seeds=(3, 4), extra=["--jobs", "2"]))
    for seed in (3, 4):
        assert (run_dir(tmp_path, "dsrl", seed) / "model.zip").is_file()
        assert int(eval_rows(run_dir(tmp_path, "dsrl", seed))[-1]["raw_env_steps"]) == 60


def test_evaluate(trained, tmp_path, capsys):
    out = tmp_path / "eval.json"
    cli.main(["evaluate", "--model", str(run_dir(trained)), "--env", ENV, "--episodes", "3", "--json", str(out)])
    text = capsys.readouterr().out
    assert "return" in text and "success rate" in text and "action entropy" in text
    result = json.loads(out.read_text())
    assert result["episodes"] == 3 and result["mean_episode_steps"] == 20
    assert 0 <= result["success_rate"] <= 1 and np.isfinite(result["action_entropy"])
    assert result["deterministic"] is False  # LP-DS acts with eps + Delta(s)
    # a bare .zip inside the run folder works too, and the same seed gives the same numbers
    cli.main(["evaluate", "--model", str(run_dir(trained) / "model.zip"), "--episodes", "3", "--json", str(out)])
    again = json.loads(out.read_text())
    assert again["mean_return"] == result["mean_return"] and again["action_entropy"] == result["action_entropy"]


def test_evaluate_vs_backbone_runs_both_on_the_same_episodes(trained, tmp_path, capsys):
    out = tmp_path / "eval.json"
    base = [
        "evaluate",
        "--model",
        str(run_dir(trained)),
        "--episodes",
        "4",
        "--entropy-states",
        "0",
        "--json",
        str(out),
    ]
    cli.main(base)
    alone = json.loads(out.read_text())
    cli.main([*base, "--vs-backbone"])
    r = json.loads(out.read_text())
    assert r["mean_return"] == alone["mean_return"]  # the learner's episodes are unchanged by the comparison
    assert r["backbone"]["episodes"] == 4 and r["gain"] == r["mean_return"] - r["backbone"]["mean_return"]
    assert r["gain_se"] > 0 and "gain over backbone" in capsys.readouterr().out
    assert r["shared_noise"]  # common random numbers by default
    cli.main([*base, "--vs-backbone", "--independent-noise"])
    unpaired = json.loads(out.read_text())
    assert not unpaired["shared_noise"] and unpaired["mean_return"] == alone["mean_return"]
    assert unpaired["backbone"]["mean_return"] != r["backbone"]["mean_return"]  # its own latent draws


def test_the_backbone_compared_with_itself_gains_exactly_nothing():
    from lpds_envs import make_latent_vec_env
    from lpds_envs.evaluation import PriorPolicy, compare_with_backbone, success_gain_se

    venv = make_latent_vec_env(ENV, n_envs=3)
    model = PriorPolicy(venv.action_space.shape[0], seed=7)
    cmp = compare_with_backbone(model, venv, False, seed=7, episodes=5, shared_noise=False)
    assert not cmp.shared_noise
    assert cmp.gain == 0.0 and cmp.success_gain == 0.0  # same reset seeds, same latents: same episodes
    p = cmp.steered.success_rate
    assert cmp.success_gain_se == pytest.approx(
        np.sqrt(2 * p * (1 - p) / 5)
    )  # binomial SE of a difference of two rates
    assert cmp.steered.episodes == cmp.backbone.episodes == 5
    # the trivial case above has p = 1 on MultiGoal; a worked one: 0.73 vs 0.68 over 100 episodes each
    assert success_gain_se(0.73, 0.68, 100) == pytest.approx(0.0644, abs=1e-4)


def test_evaluate_video(trained, tmp_path, capsys):
    argv = ["evaluate", "--model", str(run_dir(trained)), "--episodes", "1", "--video", str(tmp_path / "videos")]
    if importlib.util.find_spec("moviepy") is None:
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2 and "pip install moviepy" in capsys.readouterr().err
    else:
        cli.main(argv)
        assert list((tmp_path / "videos").glob("*.mp4"))


def test_video_env_renders_rgb_array_in_every_sub_env(tmp_path):
    pytest.importorskip("moviepy", reason="RecordVideo needs moviepy (gymnasium[other])")
    from gymnasium.wrappers import RecordVideo

    from lpds_envs.experiment.config import get_algo, make_run_env

    venv = make_run_env(get_algo("lpds"), ENV, n_envs=3, video_dir=tmp_path, video_envs=1)
    try:  # SB3's VecEnv needs one render mode for all sub-envs; only the first one records
        assert venv.get_attr("render_mode") == ["rgb_array"] * 3
        assert venv.env_is_wrapped(RecordVideo) == [True, False, False]
    finally:
        venv.close()


@pytest.mark.skipif(importlib.util.find_spec("moviepy") is None, reason="--video needs moviepy")
def test_evaluate_video_of_several_episodes(trained, tmp_path, capsys):
    videos = tmp_path / "videos"
    argv = ["evaluate", "--model", str(run_dir(trained)), "--episodes", "3", "--video", str(videos)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli.main([*argv, "--video-episodes", "2", "--entropy-states", "0"])
    assert not [w for w in caught if "Overwriting existing videos" in str(w.message)]
    assert sorted(p.name for p in videos.glob("*.mp4")) == [f"{ENV}-env0-episode-0.mp4", f"{ENV}-env1-episode-0.mp4"]
    assert ", 3 episodes," in capsys.readouterr().out
    cli.main([*argv, "--entropy-states", "0"])  # the default, one video, of a three-episode evaluation
    assert "note: overwriting 2 earlier video(s)" in capsys.readouterr().out


def test_plot_writes_figures_and_table(trained, tmp_path, capsys):
    cli.main(["plot", str(trained), "--out", str(tmp_path), "--bootstrap", "200"])
    for name in (f"learning_curves_{ENV}.png", f"learning_curves_{ENV}.pdf", "final_performance.md"):
        assert (tmp_path / name).stat().st_size > 0, name
    table = (tmp_path / "final_performance.md").read_text()
    assert f"| {ENV} | lpds | 2 | 100 |" in table
    assert table in capsys.readouterr().out
    # --max-steps compares runs at a common budget: the final evaluation is then the one at 50 raw env steps
    cli.main(["plot", str(trained), "--out", str(tmp_path / "at50"), "--bootstrap", "200", "--max-steps", "50"])
    returns = {int(r["raw_env_steps"]): float(r["mean_return"]) for r in eval_rows(run_dir(trained, seed=0))}
    returns1 = {int(r["raw_env_steps"]): float(r["mean_return"]) for r in eval_rows(run_dir(trained, seed=1))}
    at50 = (tmp_path / "at50" / "final_performance.md").read_text()
    assert f"| {ENV} | lpds | 2 | 50 | {(returns[50] + returns1[50]) / 2:.2f} [" in at50


def test_eval_entropy_is_logged_and_changes_nothing_learned(tmp_path, capsys):
    from lpds_envs import make_latent_vec_env
    from lpds_envs.evaluation import entropy_at_visited, evaluate_policy
    from lpds_envs.experiment.evaluate import load_trained
    from lpds_envs.registration import resolve_lpds_id

    plain, measured = tmp_path / "plain", tmp_path / "measured"
    cli.main(train_argv(plain, steps=100))
    cli.main(train_argv(measured, steps=100, extra=["--eval-entropy-states", "6", "--eval-entropy-samples", "16"]))
    rows_plain, rows = eval_rows(run_dir(plain)), eval_rows(run_dir(measured))
    assert [r["action_entropy"] for r in rows_plain] == ["", "", ""]  # off by default
    entropies = [float(r["action_entropy"]) for r in rows]
    assert len(entropies) == 3 and np.all(np.isfinite(entropies))
    # the entropy runs under its own RNG streams: the same training, the same evaluations, the same model
    drop = ("time_s", "action_entropy")
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows] == [
        {k: v for k, v in r.items() if k not in drop} for r in rows_plain
    ]
    _, params_a, _ = load_from_zip_file(run_dir(plain) / "model.zip")
    _, params_b, _ = load_from_zip_file(run_dir(measured) / "model.zip")
    for name in params_a:
        for key, tensor in params_a[name].items():
            if isinstance(tensor, torch.Tensor):
                assert torch.equal(tensor, params_b[name][key]), (name, key)
    # the last value is eq. 11 of the final model at 6 states of the final evaluation's episodes (seed 10000 + 0)
    venv = make_latent_vec_env(ENV, n_envs=2, latent_bound=2.5)
    model = load_trained(run_dir(measured) / "model.zip", "lpds", venv, device="cpu")
    paths = evaluate_policy(model, venv, False, seed=10_000, episodes=2).paths
    decoder = resolve_lpds_id(ENV)[1]
    assert entropy_at_visited(model, decoder, paths, 6, 16, seed=10_000) == pytest.approx(entropies[-1], rel=1e-5)
    # lpds plot draws an entropy panel and reports the final entropy where runs measured it
    capsys.readouterr()
    cli.main(["plot", str(measured), str(plain), "--out", str(tmp_path / "fig"), "--bootstrap", "100"])
    table = (tmp_path / "fig" / "final_performance.md").read_text()
    assert "final action entropy" in table and f"{entropies[-1]:.2f} [" in table


def test_entropy_axis_is_log_like_only_when_curves_span_decades():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lpds_envs.experiment.plotting import _spans_decades

    _, ax = plt.subplots()
    ax.plot([0, 1], [-433.0, -432.0])
    ax.plot([0, 1], [-260.0, -250.0])
    assert not _spans_decades(ax)  # backbone-like and DSRL-like entropies: a linear axis
    ax.plot([0, 1], [-4652.0, -4652.0])  # a collapsed policy at the estimator's floor
    assert _spans_decades(ax)
    plt.close("all")


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason='Ray Tune not installed: pip install "lpds[sweep]"')
def test_sweep_two_point_grid_with_ray(tmp_path):
    argv = ["sweep", "--algo", "lpds", "--env", ENV, "--grid", "delta=0.01,0.1", "--seeds", "1", "--steps", "60"]
    argv += ["--out", str(tmp_path), "--eval-freq", "30", "--eval-episodes", "2", "--verbose", "0", "--set", *TINY]
    cli.main(argv)
    for delta in ("0.01", "0.1"):
        folder = tmp_path / ENV / f"lpds_delta={delta}" / "seed_0"
        assert (folder / "model.zip").is_file()
        assert [int(r["raw_env_steps"]) for r in eval_rows(folder)] == [0, 30, 60]
        assert yaml.safe_load((folder / "config.yaml").read_text())["hyperparams"]["delta"] == float(delta)
    cli.main(["plot", str(tmp_path), "--bootstrap", "100"])  # sweep output reads like train output
    assert "lpds_delta=0.01" in (tmp_path / "final_performance.md").read_text()


@pytest.mark.parametrize(
    "argv,hint",
    [
        (["train", "--algo", "ppo", "--env", ENV, "--steps", "10"], "pass --algo one of lpds, dsrl"),
        (["train", "--algo", "lpds", "--env", "LPDS-Nope-v0", "--steps", "10"], "pass --env one of "),
        (["train", "--algo", "lpds", "--env", ENV, "--steps", "10", "--set", "delta"], "use --set key=value"),
        (["train", "--algo", "lpds", "--env", ENV, "--steps", "10", "--set", "x=[1,"], "not valid YAML"),
        (["train", "--algo", "lpds", "--env", ENV, "--steps", "10", "--set", "deltaa=1"], "valid keys: delta"),
        (["evaluate", "--model", "no/such/run"], "pass --model a run folder"),
        (["plot", "no/such/dir"], "pass folders written by `lpds train`"),
        (["sweep", "--algo", "lpds", "--env", ENV, "--steps", "10", "--grid", "delta"], "use --grid key=v1,v2"),
        (["train", "--algo", "lpds", "--steps", "10"], "required: --env"),
        (
            ["train", "--algo", "lpds-a", "--env", ENV, "--steps", "10", "--eval-entropy-states", "4"],
            "residual actions",
        ),
    ],
)
def test_bad_input_exits_with_one_line(argv, hint, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and hint in err and "Traceback" not in err
    if "--env one of" in hint:  # the list of valid ids (sorted, so not necessarily first) names the toy id
        assert ENV in err.split("one of", 1)[1]


def test_rerun_with_other_settings_is_refused(trained, capsys):
    argv = train_argv(trained, seeds=(0,))
    argv[argv.index("--set") + 1 :] = ["delta=0.2", *TINY]
    with pytest.raises(SystemExit):
        cli.main(argv)
    err = capsys.readouterr().err
    assert "delta: 0.05 -> 0.2" in err and "another --out or --name" in err


def test_set_and_grid_parsing():
    assert parse_set(["delta=0.1", "policy_kwargs.net_arch=[64,64]", "env_kwargs.latent_bound=null"]) == {
        "delta": 0.1,
        "policy_kwargs": {"net_arch": [64, 64]},
        "env_kwargs": {"latent_bound": None},
    }
    with pytest.raises(UsageError, match="malformed --set"):
        parse_set(["=1"])
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}
    points = parse_grid(["delta=0.01,0.1", "policy_kwargs.net_arch=[64,64],[256,256]"])
    assert len(points) == 4 and points[1] == {"delta": 0.01, "policy_kwargs.net_arch": [256, 256]}
    assert point_name("lpds", {"delta": 0.1}) == "lpds_delta=0.1"


def test_demo_options_unchanged():
    args = cli.build_parser().parse_args(["demo"])
    assert (args.steps, args.rollouts, args.seed, args.out) == (4000, 1000, 0, "lpds_demo")


def test_max_steps_keeps_the_evaluation_due_at_the_budget_that_ran_a_few_steps_late():
    from lpds_envs.experiment.plotting import _rows_up_to

    rows = [{"raw_env_steps": str(s)} for s in (0, 2510, 5019, 7531, 8010)]  # due every 2500; 8010: end of run
    steps = {m: [int(r["raw_env_steps"]) for r in _rows_up_to(rows, m, 2500)] for m in (5000, 7500, 8000, 10_000)}
    assert steps[5000] == [0, 2510, 5019] and steps[7500] == [0, 2510, 5019, 7531]
    assert steps[8000] == steps[10_000] == [0, 2510, 5019, 7531, 8010]


def test_extending_a_finished_run_keeps_its_earlier_final_model_aside(tmp_path, monkeypatch, capsys):
    # while an extended run trains, model.zip must not pair the earlier budget's model with the new config.yaml
    cli.main(train_argv(tmp_path, "dsrl", steps=50))
    folder = run_dir(tmp_path, "dsrl")
    first = (folder / "model.zip").read_bytes()
    seen = []
    original = runs_module.TrainingRun.after_step

    def record(self, *args):
        original(self, *args)
        seen.append((folder / "model.zip").exists())

    monkeypatch.setattr(runs_module.TrainingRun, "after_step", record)
    cli.main(train_argv(tmp_path, "dsrl", steps=100))
    assert seen and not any(seen)  # no model.zip while the new budget is being trained
    assert "the final model at 50 is now model_50.zip" in capsys.readouterr().out
    assert (folder / "model_50.zip").read_bytes() == first
    data, _, _ = load_from_zip_file(folder / "model.zip")
    assert data["raw_env_steps"] == 100


def test_a_run_evaluated_with_another_policy_is_not_extended(tmp_path, capsys):
    # e.g. a DSRL-SAC folder from before its evaluation became stochastic: one curve keeps one evaluation policy
    cli.main(train_argv(tmp_path, "dsrl", steps=50))
    path = run_dir(tmp_path, "dsrl") / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    assert cfg["eval_deterministic"] is False
    path.write_text(yaml.safe_dump({**cfg, "eval_deterministic": True}))
    with pytest.raises(SystemExit) as exc:
        cli.main(train_argv(tmp_path, "dsrl", steps=100))
    assert exc.value.code == 2 and "eval_deterministic: True -> False" in capsys.readouterr().err


def test_run_env_refuses_a_raw_task_keyword_at_the_top_level():
    from lpds_envs.experiment.config import UsageError, get_algo, make_run_env

    with pytest.raises(UsageError, match=r"unknown env_kwargs key\(s\) \['shift'\].*go under 'env_kwargs'"):
        make_run_env(get_algo("lpds"), ENV, {"shift": "deployment"})
    with pytest.raises(UsageError, match=r"\['latent_bound'\] for dppo .* the steering keys are backbone;"):
        make_run_env(get_algo("dppo"), ENV, {"latent_bound": 1.0})
    venv = make_run_env(get_algo("lpds"), ENV, {"latent_bound": 1.0, "env_kwargs": {}})  # the valid keys still work
    venv.close()
