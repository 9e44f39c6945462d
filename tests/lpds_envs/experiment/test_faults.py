"""Fault suite of ``lpds train``: a diverging run never replaces its last good checkpoint, run folders cannot run
code when resumed, checkpoints are flushed to disk before the swap, and bad options say what to pass."""

import io
import json
import os
import pickle
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from stable_baselines3.common.save_util import load_from_zip_file

from lpds_envs.envs.multigoal import MultiGoalEnv
from lpds_envs.experiment import checkpoint as checkpoint_module
from lpds_envs.experiment import cli
from lpds_envs.experiment import runs as runs_module
from lpds_envs.experiment.checkpoint import RestrictedUnpickler, from_json, to_json
from tests.lpds_envs.experiment.test_cli import ENV, TINY, _final_state, eval_rows, run_dir, train_argv

CKPT = ["--eval-freq", "50", "--checkpoint-freq", "50"]


def _poison_rewards_from(monkeypatch, raw_steps, value=float("nan")):
    """The toy env's rewards become ``value`` once the run has taken ``raw_steps`` raw env steps (a broken env)."""
    state = {"on": False}
    after_step, step = runs_module.TrainingRun.after_step, MultiGoalEnv.step

    def watch(self, infos, raw_after):
        after_step(self, infos, raw_after)
        state["on"] = state["on"] or raw_after >= raw_steps

    def poisoned(self, action):
        obs, reward, terminated, truncated, info = step(self, action)
        return obs, value if state["on"] else reward, terminated, truncated, info

    monkeypatch.setattr(runs_module.TrainingRun, "after_step", watch)
    monkeypatch.setattr(MultiGoalEnv, "step", poisoned)


def _checkpoint_params(folder):
    _, params, _ = load_from_zip_file(folder / "checkpoint" / "model.zip")
    return params["policy"]


@pytest.mark.parametrize("algo", ["lpds", "dsrl"])
def test_a_diverging_run_keeps_its_last_good_checkpoint_and_resumes_once_fixed(tmp_path, monkeypatch, capsys, algo):
    argv = train_argv(tmp_path, algo, steps=200, extra=CKPT)
    folder = run_dir(tmp_path, algo)
    with monkeypatch.context() as m:
        _poison_rewards_from(m, 110)
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "NaN or inf" in err and "reward" in err and "last good checkpoint (100 env steps) is kept" in err
    state = json.loads((folder / "checkpoint" / "state.json").read_text())
    assert state["run"]["raw_env_steps"] == 100 and not (folder / "model.zip").exists()
    assert all(torch.isfinite(t).all() for t in _checkpoint_params(folder).values())
    with np.load(folder / "checkpoint" / "replay_buffer.npz") as buf:
        assert np.isfinite(buf["rewards"]).all()

    # the env is fixed: the same command resumes from the kept checkpoint and finishes
    cli.main(argv)
    assert "resuming at 100 env steps" in capsys.readouterr().out
    assert (folder / "model.zip").is_file() and int(eval_rows(folder)[-1]["raw_env_steps"]) == 200


def test_a_diverged_model_is_never_saved_even_without_the_learners_guard(tmp_path, monkeypatch, capsys):
    # SB3's own SAC has no guard inside its update; the run's checkpoint check still refuses a non-finite model
    checkpoint = runs_module.TrainingRun.checkpoint

    def diverge(self):
        if self.raw >= 150:
            with torch.no_grad():
                next(self.model.policy.parameters()).fill_(float("nan"))
        checkpoint(self)

    monkeypatch.setattr(runs_module.TrainingRun, "checkpoint", diverge)
    with pytest.raises(SystemExit) as exc:
        cli.main(train_argv(tmp_path, "dsrl", steps=200, extra=["--eval-freq", "100", "--checkpoint-freq", "50"]))
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "weight" in err and "NaN or inf" in err and "(100 env steps) is kept" in err
    assert (
        json.loads((run_dir(tmp_path, "dsrl") / "checkpoint" / "state.json").read_text())["run"]["raw_env_steps"] == 100
    )


# ------------------------------------------------------------------ run folders cannot run code


class _Exploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _interrupted_run(tmp_path, monkeypatch):
    """A run folder with a checkpoint at 100 env steps and no final model (interrupted at 160)."""
    argv = train_argv(tmp_path, steps=200, extra=["--checkpoint-freq", "100"])
    after_step = runs_module.TrainingRun.after_step

    def interrupt(self, *args):
        after_step(self, *args)
        if self.raw >= 160:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(runs_module.TrainingRun, "after_step", interrupt)
        with pytest.raises(SystemExit):
            cli.main(argv)
    return argv, run_dir(tmp_path)


def test_an_old_pickle_checkpoint_is_refused_without_running_it(tmp_path, monkeypatch, capsys):
    argv, folder = _interrupted_run(tmp_path, monkeypatch)
    marker = tmp_path / "pwned"
    (folder / "checkpoint" / "state.json").unlink()
    (folder / "checkpoint" / "state.pkl").write_bytes(pickle.dumps({"rng": _Exploit(marker)}))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "state.pkl" in err and "earlier lpds version" in err and "delete" in err
    assert not marker.exists()


def test_a_malicious_env_state_is_refused_and_the_run_resumes_from_reset_envs(tmp_path, monkeypatch, capsys):
    argv, folder = _interrupted_run(tmp_path, monkeypatch)
    marker = tmp_path / "pwned"
    (folder / "checkpoint" / "env_state.pkl").write_bytes(pickle.dumps({"inner": _Exploit(marker)}))
    capsys.readouterr()
    cli.main(argv)
    out = capsys.readouterr().out
    assert "envs start from a reset" in out and "its saved env state was refused" in out
    assert "posix.system" in out or "os.system" in out  # the name the pickle gave
    assert not marker.exists()
    assert (folder / "model.zip").is_file()


def test_a_corrupt_state_file_names_the_file(tmp_path, monkeypatch, capsys):
    argv, folder = _interrupted_run(tmp_path, monkeypatch)
    (folder / "checkpoint" / "state.json").write_text('{"format": 1, "rng": ')
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "state.json" in err and "not JSON" in err


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(_Exploit("/tmp/never")),
        b"cbuiltins\neval\n(V__import__('os').system('touch /tmp/never')\ntR.",
        b"csubprocess\nPopen\n((Vtouch\nV/tmp/never\nltR.",
        b"cgymnasium.envs.registration\nmake\n(VCartPole-v1\ntR.",
        b"cnumpy\nmemmap\n(V/tmp/never\nVuint8\nVw+\nI0\n(I1\nttR.",
        b"cgymnasium.vector\nAsyncVectorEnv\n(]tR.",
        b"clpds_envs.experiment.runs\nTrainingRun\n(NtR.",
    ],
    ids=["os.system", "builtins.eval", "subprocess", "gymnasium.make", "numpy.memmap", "vector_env", "lpds_runner"],
)
def test_the_env_state_unpickler_refuses_everything_off_its_allow_list(payload, tmp_path):
    if os.path.exists("/tmp/never"):
        os.remove("/tmp/never")
    with pytest.raises(pickle.UnpicklingError, match="not an allowed env, wrapper, space or RNG class"):
        RestrictedUnpickler(io.BytesIO(payload), None).load()
    assert not os.path.exists("/tmp/never")


def test_rng_state_round_trips_through_json_exactly():
    import random

    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "action_space": np.random.default_rng(3).bit_generator.state,
    }
    back = from_json(json.loads(json.dumps(to_json(state))))
    assert back["python"] == state["python"] and back["action_space"] == state["action_space"]
    assert back["numpy"][0] == "MT19937" and np.array_equal(back["numpy"][1], state["numpy"][1])
    assert back["numpy"][2:] == state["numpy"][2:] and back["numpy"][1].dtype == np.uint32
    assert np.array_equal(back["torch"], state["torch"].numpy())


# ------------------------------------------------------------------ flushed to disk before the swap


def test_checkpoint_files_and_folders_are_fsynced_before_the_swap(tmp_path, monkeypatch):
    events = []
    fsync, replace = checkpoint_module.fsync_path, checkpoint_module.os.replace
    monkeypatch.setattr(checkpoint_module, "fsync_path", lambda p: (events.append(("fsync", str(p))), fsync(p)))
    monkeypatch.setattr(
        checkpoint_module.os, "replace", lambda a, b: (events.append(("replace", str(a))), replace(a, b))
    )
    cli.main(train_argv(tmp_path, steps=50, extra=CKPT))
    folder = run_dir(tmp_path)
    tmp = str(folder / "checkpoint.tmp")
    first_swap = events.index(("replace", tmp))
    synced = {p for kind, p in events[:first_swap] if kind == "fsync"}
    for name in ("model.zip", "replay_buffer.npz", "state.json", "env_state.pkl"):
        assert f"{tmp}/{name}" in synced, name
    assert tmp in synced  # the folder's entries
    assert ("fsync", str(folder)) in events[first_swap:]  # the run folder after the swap


# ------------------------------------------------------------------ bad options say what to pass


@pytest.mark.parametrize(
    "extra,sets,hint",
    [
        (["--eval-freq", "-5"], [], "--eval-freq must be >= 0"),
        (["--checkpoint-freq", "-1"], [], "--checkpoint-freq must be >= 0"),
        ([], ["batch_size=0"], "batch_size must be an integer >= 1"),
        ([], ["alpha_lr=.nan"], "alpha_lr must be >= 0 and finite"),
        ([], ["alpha_init=.nan"], "alpha_init must be >= 0 and finite"),
        ([], ["delta=.inf"], "delta must be > 0 and finite"),
        ([], ["env_kwargs.latent_bound='2.5'"], "latent_bound must be a number"),
    ],
)
def test_bad_run_options_exit_with_one_line(tmp_path, capsys, extra, sets, hint):
    argv = ["train", "--algo", "lpds", "--env", ENV, "--steps", "40", "--out", str(tmp_path), "--no-progress"]
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, *extra, "--set", *TINY, *sets])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and hint in err and "Traceback" not in err


@pytest.mark.parametrize(
    "name,damage,hint",
    [
        ("checkpoint/model.zip", lambda p: p.write_bytes(p.read_bytes()[:100]), "model.zip does not load as a"),
        ("checkpoint/replay_buffer.npz", lambda p: p.write_bytes(p.read_bytes()[:100]), "replay_buffer.npz does not"),
        ("config.yaml", lambda p: p.write_text("algo: [lpds\nsteps: 200\n"), "config.yaml does not parse"),
    ],
    ids=["model.zip", "replay_buffer.npz", "config.yaml"],
)
def test_a_damaged_run_file_is_named_in_one_line(tmp_path, monkeypatch, capsys, name, damage, hint):
    argv, folder = _interrupted_run(tmp_path, monkeypatch)
    damage(folder / name)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and hint in err and "Traceback" not in err and ("delete" in err or "fix" in err)


def test_a_skipped_rerun_with_a_smaller_budget_leaves_config_yaml_alone(tmp_path, capsys):
    cli.main(train_argv(tmp_path, steps=50))
    config = run_dir(tmp_path) / "config.yaml"
    before = config.read_text()
    cli.main(train_argv(tmp_path, steps=40))
    assert "already complete (50 env steps); skipping" in capsys.readouterr().out
    assert config.read_text() == before


# ------------------------------------------------------------------ SIGKILL in the middle of saving a checkpoint

# Runs `lpds train` in a child process that kills itself (SIGKILL: nothing is cleaned up, no handler runs) at one stage
# of its second checkpoint. Stages: after model.zip is written into checkpoint.tmp (buffer not yet), once checkpoint.tmp
# is complete but before the swap, between the two renames (only checkpoint.old and checkpoint.tmp exist), and after
# the swap while checkpoint.old is still on disk.
_KILLER = """
import os, signal, sys
from lpds_envs.experiment import checkpoint as ck, cli, runs

stage, calls = sys.argv[1], {"save": 0, "replace": 0}
save, replace, save_buffer, fsync = runs.save_checkpoint, os.replace, ck.save_buffer, ck.fsync_path

def die(name):
    if calls["save"] == 2 and stage == name:
        os.kill(os.getpid(), signal.SIGKILL)

def counting_save(run_dir, *args, **kwargs):
    calls["save"] += 1
    calls["run_dir"] = str(run_dir)
    return save(run_dir, *args, **kwargs)

def counting_replace(src, dst):
    calls["replace"] += 1
    die("before_swap" if str(src).endswith("checkpoint") and calls["save"] == 2 else "")
    die("between_renames" if str(src).endswith("checkpoint.tmp") else "")
    return replace(src, dst)

def buffer_then_die(*args):
    die("mid_write")
    return save_buffer(*args)

def fsync_then_die(path):
    fsync(path)
    if str(path) == calls.get("run_dir"):
        die("after_swap")

runs.save_checkpoint, os.replace, ck.save_buffer, ck.fsync_path = counting_save, counting_replace, buffer_then_die, fsync_then_die
cli.main(sys.argv[2:])
"""


@pytest.mark.parametrize("stage", ["mid_write", "before_swap", "between_renames", "after_swap"])
def test_a_kill_at_any_stage_of_saving_leaves_a_checkpoint_that_resumes_bit_exactly(tmp_path, stage):
    extra = ["--checkpoint-freq", "100"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    argv = train_argv(cut, "lpds", steps=300, extra=extra)
    threads = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # the resume runs in this process
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, stage, *argv], env=threads, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    folder = run_dir(cut)
    left = sorted(p.name for p in folder.iterdir() if p.name.startswith("checkpoint"))
    expected = {
        "mid_write": ["checkpoint", "checkpoint.tmp"],
        "before_swap": ["checkpoint", "checkpoint.tmp"],
        "between_renames": ["checkpoint.old", "checkpoint.tmp"],
        "after_swap": ["checkpoint", "checkpoint.old"],
    }[stage]
    assert left == expected  # the kill hit the stage it was meant to
    resumed_at = 200 if stage == "after_swap" else 100
    assert checkpoint_module.find_checkpoint(folder) is not None
    assert (
        json.loads((checkpoint_module.find_checkpoint(folder) / "state.json").read_text())["run"]["raw_env_steps"]
        == resumed_at
    )

    cli.main(argv)  # the same command resumes from the newest complete checkpoint and finishes
    cli.main(train_argv(full, "lpds", steps=300, extra=extra))
    data_a, params_a, buf_a, rows_a, log_a = _final_state(run_dir(full))
    data_b, params_b, buf_b, rows_b, log_b = _final_state(folder)
    assert data_a["raw_env_steps"] == data_b["raw_env_steps"] == 300
    for name in params_a:
        for key, tensor in params_a[name].items():
            if isinstance(tensor, torch.Tensor):
                assert torch.equal(tensor, params_b[name][key]), (name, key)
    for key in buf_a:
        np.testing.assert_array_equal(buf_a[key], buf_b[key], err_msg=key)
    assert rows_a == rows_b and log_a == log_b
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("checkpoint")) == ["checkpoint"]
