"""``lpds sweep`` on Ray Tune: a failed trial fails the command, and a grid on a Ray cluster the test starts itself.

Ray binds the loopback address only: the local sweep through ``loopback_only``, the cluster through
``ray start --head --node-ip-address 127.0.0.1`` under the same switch.
"""

import csv
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from lpds_envs.experiment import cli
from lpds_envs.experiment.sweep import trial_error, tune_metrics

ENV = "LPDS-MultiGoal-v0"
TINY = ["learning_starts=40", "batch_size=32", "buffer_size=400", "policy_kwargs.net_arch=[16,16]"]
needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason='Ray Tune not installed: pip install "lpds[sweep]"'
)


def sweep_argv(out, grid, steps=60):
    return [
        "sweep", "--algo", "lpds", "--env", ENV, "--grid", grid, "--seeds", "1", "--steps", str(steps),
        "--out", str(out), "--eval-freq", "30", "--eval-episodes", "2", "--verbose", "0", "--set", *TINY,
    ]  # fmt: skip


def eval_rows(folder):
    with open(folder / "evaluations.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_tune_metrics_drop_empty_cells_and_read_csv_strings():
    row = {"raw_env_steps": "60", "mean_return": -1.5, "action_entropy": "", "note": "x", "success_rate": None}
    assert tune_metrics(row) == {"raw_env_steps": 60.0, "mean_return": -1.5}


def test_trial_error_names_the_exception_not_rays_wrapper():
    text = "ray::ImplicitFunc.train() (pid=1, ip=127.0.0.1)\n  File x\n    y\nValueError: bad value ''\nTrials did not complete"
    assert trial_error(text) == "ValueError: bad value ''"
    assert trial_error("something odd") == "something odd"


@needs_ray
def test_failed_trial_exits_nonzero_with_its_error(tmp_path, capsys):
    # a file where the trial's run folder goes: an error inside the trial (not a usage error caught before Ray)
    (tmp_path / ENV).mkdir()
    (tmp_path / ENV / "lpds_delta=0.1").write_text("not a folder")
    with pytest.raises(SystemExit) as exc:
        cli.main(sweep_argv(tmp_path, "delta=0.01,0.1", steps=30))
    assert exc.value.code == 1
    err = capsys.readouterr().err
    failure = re.search(r"trial lpds_delta=0\.1 seed 0 failed: (\w+Error): (.*)", err)
    assert failure is not None, err
    assert failure[1] in ("NotADirectoryError", "FileExistsError") and "lpds_delta=0.1" in failure[2]
    assert "lpds sweep: 1 of 2 trials failed" in err
    assert (tmp_path / ENV / "lpds_delta=0.01" / "seed_0" / "model.zip").is_file()  # the other trial finished


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster():
    """A one-node Ray cluster on 127.0.0.1 (``ray start --head --block``), stopped by signalling that process only."""
    ray_cli = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    port, temp_dir = _free_port(), tempfile.mkdtemp(prefix="ray")  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # keep 127.0.0.1 (else Ray picks a routable IP)
    cmd = [ray_cli, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port)]
    cmd += ["--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", temp_dir]
    log = open(os.path.join(temp_dir, "ray_start.log"), "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:  # the GCS answers once the head is up
            if proc.poll() is not None:
                pytest.fail(f"ray start exited {proc.returncode}: {open(log.name).read()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    pytest.fail("ray start --head did not come up in 60 s")
                time.sleep(0.5)
        yield address
    finally:
        for sig, wait in ((signal.SIGINT, 30), (signal.SIGTERM, 60), (signal.SIGKILL, None)):
            os.killpg(proc.pid, sig)  # --block: ray start stops the processes it started, then exits (SIGINT: ~1 s)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


@needs_ray
def test_sweep_on_a_ray_cluster(ray_cluster, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # `ray start` enables token auth; a driver given --address opts in
    cli.main([*sweep_argv(tmp_path, "delta=0.01,0.1"), "--address", ray_cluster])
    for delta in ("0.01", "0.1"):
        folder = tmp_path / ENV / f"lpds_delta={delta}" / "seed_0"
        assert (folder / "model.zip").is_file()
        assert [int(r["raw_env_steps"]) for r in eval_rows(folder)] == [0, 30, 60]
    assert "| lpds_delta=0.01 | 1/1 |" in capsys.readouterr().out
    cli.main(["plot", str(tmp_path), "--bootstrap", "100"])
    assert "lpds_delta=0.1" in (tmp_path / "final_performance.md").read_text()
    assert (tmp_path / f"learning_curves_{ENV}.png").stat().st_size > 0
