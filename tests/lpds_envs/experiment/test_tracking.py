"""``lpds train --track tensorboard|wandb`` on the toy (tiny budgets); W&B runs offline (no network)."""

import csv
import time

import pytest

from lpds_envs.experiment import cli, tracking

ENV = "LPDS-MultiGoal-v0"
TINY = ["learning_starts=40", "batch_size=32", "buffer_size=400", "policy_kwargs.net_arch=[16,16]"]


def train(out, steps, *extra):
    cli.main(["train", "--algo", "lpds", "--env", ENV, "--steps", str(steps), "--out", str(out), "--eval-freq", "50",
              "--eval-episodes", "2", "--no-progress", *extra, "--set", *TINY])  # fmt: skip
    return out / ENV / "lpds" / "seed_0"


def eval_rows(run):
    with open(run / "evaluations.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))


def wait_for_records(path, last_key: bytes, patience_s: float = 120.0) -> bytes:
    """The bytes of ``path`` once they contain ``last_key`` (polled; gives up after ``patience_s`` and returns what
    is there, for the assertions to report)."""
    deadline = time.monotonic() + patience_s
    while True:
        data = path.read_bytes() if path.exists() else b""
        if last_key in data or time.monotonic() > deadline:
            return data
        time.sleep(0.5)


def test_track_wandb_logs_the_run_offline_and_a_resumed_run_continues_it(tmp_path, wandb_offline):
    run = train(tmp_path, 100, "--track", "wandb", "--wandb-project", "lpds-test")
    run_id = (run / tracking.WANDB_ID_FILE).read_text().strip()
    (first,) = (run / "wandb").glob(f"offline-run-*-{run_id}")
    # W&B's record log (protobuf records, keys and JSON values), written by its own service process: on a loaded
    # machine the file can still hold only its header when the run returns, so wait for the records to land
    data = wait_for_records(first / f"run-{run_id}.wandb", b"final/mean_return")
    for key in (b"eval/mean_return", b"eval/success_rate", b"train/critic_loss", b"time/raw_env_steps", b"global_step"):
        assert key in data, key
    at_50 = next(r for r in eval_rows(run) if r["raw_env_steps"] == "50")
    assert at_50["mean_return"].encode() in data  # the evaluation at 50 env steps, as evaluations.csv has it
    assert b"lpds-test" in data and f"{ENV}/lpds/seed_0".encode() in data  # project and run name
    final = eval_rows(run)[-1]  # the final evaluation lpds train wrote to the run folder, also in W&B as final/...
    assert final["raw_env_steps"] == "100"
    for key in ("mean_return", "std_return", "success_rate"):
        assert f"final/{key}".encode() in data, key
    assert final["mean_return"].encode() in data

    train(tmp_path, 150, "--track", "wandb", "--wandb-project", "lpds-test")  # extends the run: the same W&B run
    assert (run / tracking.WANDB_ID_FILE).read_text().strip() == run_id
    assert len(list((run / "wandb").glob(f"offline-run-*-{run_id}"))) == 2


def test_track_tensorboard_writes_the_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train(tmp_path, 100, "--track", "tensorboard")
    (events,) = (run / "tensorboard").rglob("events.out.tfevents.*")
    acc = EventAccumulator(str(events.parent))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"eval/mean_return", "train/critic_loss", "time/raw_env_steps"} <= tags


def test_the_final_evaluation_reaches_tensorboard_as_final_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train(tmp_path, 100, "--track", "tensorboard", "--eval-entropy-states", "4")
    (events,) = (run / "tensorboard").rglob("events.out.tfevents.*")
    acc = EventAccumulator(str(events.parent))
    acc.Reload()
    final = eval_rows(run)[-1]  # what lpds train wrote to the run folder
    assert final["raw_env_steps"] == "100" and final["action_entropy"] != ""
    latent_steps = int(final["latent_steps"])
    for key in ("mean_return", "std_return", "success_rate", "mean_episode_steps", "raw_env_steps", "action_entropy"):
        (event,) = acc.Scalars(f"final/{key}")  # logged once, at the final step
        assert event.step == latent_steps
        assert event.value == pytest.approx(float(final[key]), rel=1e-6), key
    # the last periodic evaluation (at the budget, after SB3's last dump) reaches TensorBoard too
    assert acc.Scalars("eval/mean_return")[-1].step == latent_steps
    assert acc.Scalars("eval/mean_return")[-1].value == pytest.approx(float(final["mean_return"]), rel=1e-6)


def test_log_final_evaluation_leaves_progress_csv_alone(tmp_path):
    run = train(tmp_path, 100)
    with open(run / "progress.csv", newline="") as f:
        header = next(csv.reader(f))
    assert not any(key.startswith("final/") for key in header)


@pytest.mark.parametrize("track", ["wandb", "tensorboard"])
def test_a_missing_tracker_names_the_extra(track, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tracking, "tracker_installed", lambda name: False)
    with pytest.raises(SystemExit) as exc:
        train(tmp_path, 100, "--track", track)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"--track {track} needs the {track} package" in err and 'pip install "lpds[tracking]"' in err
    assert not (tmp_path / ENV).exists()  # refused before any run folder is made


def test_an_unknown_tracker_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        train(tmp_path, 100, "--track", "mlflow")
    assert exc.value.code == 2 and "--track" in capsys.readouterr().err


class _StubWandbRun:
    """What WandbOutputFormat uses of a W&B run: define_metric, log, summary, finish."""

    def __init__(self):
        self.logged, self.summary, self.finished = [], {}, False

    def define_metric(self, *args, **kwargs):
        pass

    def log(self, data):
        self.logged.append(dict(data))

    def finish(self):
        self.finished = True


def test_log_final_evaluation_reaches_only_the_trackers_and_the_wandb_summary(tmp_path):
    from stable_baselines3.common.logger import CSVOutputFormat, Logger

    run = _StubWandbRun()
    csv_out = CSVOutputFormat(str(tmp_path / "progress.csv"))
    logger = Logger(str(tmp_path), [csv_out, tracking.WandbOutputFormat(run)])
    logger.record("eval/mean_return", 175.5)  # the last periodic evaluation, recorded after SB3's last dump
    row = {"raw_env_steps": "8000", "latent_steps": "8000", "mean_return": "175.5", "std_return": "3.25",
           "success_rate": "1.0", "mean_episode_steps": "31.0", "episodes": "10", "action_entropy": ""}  # fmt: skip
    final = tracking.log_final_evaluation(logger, row, step=8000)
    assert final == {"final/mean_return": 175.5, "final/std_return": 3.25, "final/success_rate": 1.0,
                     "final/mean_episode_steps": 31.0, "final/raw_env_steps": 8000.0}  # fmt: skip
    (logged,) = run.logged
    assert logged == {"global_step": 8000, "eval/mean_return": 175.5, **final}
    assert run.summary == final  # the runs table of W&B shows the final numbers
    logger.close()
    assert run.finished and (tmp_path / "progress.csv").read_text() == ""  # the CSV log is left alone
