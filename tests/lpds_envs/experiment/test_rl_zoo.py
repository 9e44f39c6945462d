"""RL Zoo (``rl_zoo3``) runs lpds learners on the toy with its own CLI: the launcher, and plain RL Zoo with our
preset files as ``--conf-file``. Tiny budgets (a few hundred latent steps); each command runs in a subprocess as a
user would run it."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from algorithms.presets import HYPERPARAMS_DIR, available_algos, get_preset, load_presets
from algorithms.registry import ALGORITHMS
from lpds_envs.evaluation import evaluate_policy
from lpds_envs.experiment import rl_zoo
from lpds_envs.vector import make_latent_vec_env

ROOT = Path(__file__).resolve().parents[3]
ENV = "LPDS-MultiGoal-v0"
TINY = ["learning_starts:40", "batch_size:32", "buffer_size:1000", "policy_kwargs:dict(net_arch=[16],n_critics=2)"]


def run(args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_every_preset_entry_is_a_valid_rl_zoo_entry_and_lpds_leaves_zoo_keys_out():
    for algo in available_algos():
        for env_id, entry in load_presets(algo).items():
            # MultiInputPolicy for the tasks with camera images (Dict observations)
            assert entry["policy"] in ("MlpPolicy", "MultiInputPolicy"), (algo, env_id)
            assert isinstance(entry["n_timesteps"], int) and entry["n_timesteps"] > 0, (algo, env_id)
            preset = get_preset(algo, env_id)
            assert "n_timesteps" not in preset  # lpds train's budget is --steps
            assert preset.get("policy", "MultiInputPolicy") == "MultiInputPolicy"  # MlpPolicy is the default
    assert get_preset("lpds", ENV, {"policy": "MultiInputPolicy"})["policy"] == "MultiInputPolicy"


def test_launcher_fills_in_our_presets_and_passes_everything_else_on():
    pytest.importorskip("rl_zoo3")
    argv = rl_zoo.zoo_argv("train", ["--algo", "lpds", "--env", ENV, "-n", "100"])
    assert argv[-2:] == ["--conf-file", str(HYPERPARAMS_DIR / "lpds.yml")]
    mine = ["--algo", "dsrl", "--env", ENV, "--conf-file", "mine.yml"]
    assert rl_zoo.zoo_argv("train", mine) == mine
    assert rl_zoo.zoo_argv("train", ["--algo", "sac", "--env", ENV]) == ["--algo", "sac", "--env", ENV]
    # record_video has no --gym-packages option: the launcher imports them and drops the option
    argv = rl_zoo.zoo_argv("record_video", ["--gym-packages", "lpds_envs", "--algo", "lpds", "--env", ENV, "-f", "x"])
    assert "--gym-packages" not in argv and argv[:2] == ["--algo", "lpds"]
    assert set(rl_zoo.ZOO_ALGORITHMS) == {"lpds", "dsrl", "dsrl-na", "dsrl-tqc", "dsrl-crossq"}
    for name in rl_zoo.ZOO_ALGORITHMS:
        assert rl_zoo.preset_file(name).is_file()
    with pytest.raises(ValueError, match="no RL Zoo preset for 'lpds-a'"):
        rl_zoo.preset_file("lpds-a")


def test_register_algorithms_adds_ours_to_rl_zoos_table():
    utils = pytest.importorskip("rl_zoo3.utils")
    table = rl_zoo.register_algorithms()
    assert table is utils.ALGOS
    assert table["lpds"] is ALGORITHMS["lpds"].cls and table["dsrl-tqc"] is ALGORITHMS["dsrl-tqc"].cls
    assert table["sac"].__name__ == "SAC"  # RL Zoo's own entries stay


def _load_and_evaluate(algo, model_path, n_timesteps, env_kwargs=None):
    venv = make_latent_vec_env(ENV, n_envs=2, seed=0, **(env_kwargs or {}))
    model = ALGORITHMS[algo].cls.load(model_path, env=venv, device="cpu")
    assert model.num_timesteps == n_timesteps
    result = evaluate_policy(model, venv, deterministic=True, seed=0, episodes=4)
    venv.close()
    assert result.episodes == 4 and np.all(result.lengths == 20) and np.isfinite(result.mean_return)


def test_rl_zoo_trains_enjoys_and_records_lpds_on_the_toy(tmp_path):
    pytest.importorskip("rl_zoo3")
    launcher = ["lpds_envs.experiment.rl_zoo"]
    common = ["--algo", "lpds", "--env", ENV, "-f", str(tmp_path / "logs")]
    run([*launcher, "train", *common, "-n", "120", "--seed", "0", "--eval-freq", "60", "--eval-episodes", "2",
         "--verbose", "0", "-params", *TINY], tmp_path)  # fmt: skip
    folder = tmp_path / "logs" / "lpds" / f"{ENV}_1"
    saved = yaml.load((folder / ENV / "config.yml").read_text(), Loader=yaml.UnsafeLoader)
    assert dict(saved)["delta"] == 0.05  # our preset was read (App. B's toy delta)
    evals = np.load(folder / "evaluations.npz")
    assert list(evals["timesteps"]) == [60, 120]  # RL Zoo's EvalCallback: latent steps (= raw steps on the toy)
    assert np.all(evals["ep_lengths"] == 20)  # the toy's 20 chunks of one raw step
    _load_and_evaluate("lpds", folder / f"{ENV}.zip", 120)

    out = run([*launcher, "enjoy", *common, "--no-render", "-n", "60"], tmp_path)
    assert "Mean reward" in out and "Mean episode length: 20.00" in out
    pytest.importorskip("moviepy")  # VecVideoRecorder writes with moviepy
    videos = tmp_path / "videos"
    run([*launcher, "record_video", *common, "-n", "30", "-o", str(videos), "--gym-packages", "lpds_envs"], tmp_path)
    assert [p.suffix for p in videos.iterdir()] == [".mp4"]


def test_plain_rl_zoo_reads_our_preset_file_and_the_launcher_keeps_the_trained_latent_box(tmp_path):
    """rl_zoo3.train itself (no launcher) takes dsrl-tqc.yml as --conf-file for its own tqc, with the preset's
    latent box 1.5 (App. B); record_video through the launcher rebuilds the env in that box."""
    pytest.importorskip("rl_zoo3")
    logs = str(tmp_path / "logs")
    conf = str(HYPERPARAMS_DIR / "dsrl-tqc.yml")
    run(["rl_zoo3.train", "--algo", "tqc", "--env", ENV, "--gym-packages", "lpds_envs", "--conf-file", conf,
         "-n", "80", "--seed", "0", "--eval-freq", "-1", "-f", logs, "--verbose", "0", "-params", *TINY], tmp_path)  # fmt: skip
    model = tmp_path / "logs" / "tqc" / f"{ENV}_1" / f"{ENV}.zip"
    _load_and_evaluate("dsrl-tqc", model, 80, env_kwargs={"latent_bound": 1.5})
    argv = rl_zoo.zoo_argv("enjoy", ["--algo", "tqc", "--env", ENV, "-f", logs])
    assert argv[-2:] == ["--env-kwargs", "latent_bound:1.5"]


def test_without_rl_zoo_the_launcher_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "rl_zoo3", None)  # import rl_zoo3 now raises ImportError
    monkeypatch.setitem(sys.modules, "rl_zoo3.utils", None)
    with pytest.raises(SystemExit) as exc:
        rl_zoo.main(["train", "--algo", "lpds", "--env", ENV])
    assert 'RL Zoo (rl_zoo3) is not installed; pip install "lpds[zoo]"' in str(exc.value.code)
    with pytest.raises(SystemExit) as exc:
        rl_zoo.main(["fit", "--algo", "lpds"])
    assert exc.value.code == 2 and "unknown command 'fit'" in capsys.readouterr().err
