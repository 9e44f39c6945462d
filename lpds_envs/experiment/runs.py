"""Training runs of ``lpds train``: one ``(algo, env, seed)`` per folder, resumable.

A run folder ``<out>/<env_id>/<name>/seed_<k>/`` holds::

    config.yaml        everything the run uses (RunConfig)
    progress.csv       SB3's training log (plus TensorBoard event files when tensorboard is installed, and a W&B
                       run with --track wandb: lpds_envs.experiment.tracking; both also get the final
                       evaluation as ``final/...`` scalars)
    evaluations.csv    periodic evaluation: raw_env_steps, latent_steps, mean_return, std_return, success_rate, ...,
                       action_entropy (with --eval-entropy-states; empty otherwise)
    checkpoint/        the latest complete checkpoint (see lpds_envs.experiment.checkpoint)
    model.zip          the final model, written when the step budget is reached; it exists only while the folder
                       is complete, so a reader that finds it can trust ``config.yaml``'s budget
    model_<k>.zip      the final model of an earlier, smaller budget of ``k`` raw env steps, kept when the run is
                       extended (re-run with a larger ``--steps``)

The budget counts raw env steps (one executed action = one step, paper App. A.4). Evaluations and checkpoints
happen between a gradient update and the next env step, at the first such point after every ``eval_freq`` /
``checkpoint_freq`` raw steps. Evaluation runs on its own envs with its own RNG streams (the training streams are
saved and restored around it), so evaluating never changes what is learned. Re-running the same command resumes
from the checkpoint with the RNG streams, replay buffer and env state restored, so the result equals that of an
uninterrupted run.
"""

from __future__ import annotations

import csv
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import CSVOutputFormat, HumanOutputFormat, KVWriter, Logger
from stable_baselines3.common.utils import get_device
from tqdm import tqdm

from algorithms.faults import GENERIC_CAUSE, NonFiniteError, nonfinite_weight

from ..codec import NonFiniteValueError
from ..evaluation import MAX_EVAL_ENVS, RawStepCallback, entropy_at_visited, evaluate_policy
from ..registration import resolve_lpds_id
from ..wrappers import executed_steps
from .checkpoint import (
    CheckpointError,
    atomic_copy,
    find_checkpoint,
    load_checkpoint,
    nonfinite_buffer_field,
    save_checkpoint,
)
from .config import CONFIG_FILE, RunConfig, UsageError, learner_env_kwargs, make_run_env
from .tracking import log_final_evaluation, tracking_formats

EVAL_COLUMNS = (
    "raw_env_steps",
    "latent_steps",
    "mean_return",
    "std_return",
    "success_rate",
    "mean_episode_steps",
    "episodes",
    "time_s",
    "action_entropy",
)


class TrainingDiverged(RuntimeError):
    """A run stopped because a loss or weight became NaN or inf; its last good checkpoint is kept (one-line message)."""


def _find_checkpoint(run_dir: Path) -> Path | None:
    """:func:`~lpds_envs.experiment.checkpoint.find_checkpoint`, with an old-format checkpoint as a usage error."""
    try:
        return find_checkpoint(run_dir)
    except CheckpointError as exc:
        raise UsageError(f"cannot resume {run_dir}: {exc}") from None


class _BudgetReached(Exception):
    """Raised between an update and the next env step once the raw-step budget is spent (ends ``learn``)."""


def _due(raw: int, last: int | None, freq: int) -> bool:
    return last is None or raw // freq > last // freq


def read_csv_rows(path: str | Path) -> list[dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class _ResumableCSV(CSVOutputFormat):
    """SB3's CSV log that, on resume, keeps the rows up to the checkpoint and appends after them."""

    def __init__(self, filename: str, keep_until: int | None = None) -> None:
        kept: list[str] = []
        header: list[str] = []
        if keep_until is not None and os.path.isfile(filename):
            with open(filename, newline="") as f:
                lines = f.readlines()
            if lines:
                header = next(csv.reader([lines[0]]))
                col = header.index("time/total_timesteps") if "time/total_timesteps" in header else None
                for line in lines[1:]:
                    values = next(csv.reader([line]), [])
                    if col is None or col >= len(values) or not values[col] or float(values[col]) <= keep_until:
                        kept.append(line if line.endswith("\n") else line + "\n")
        super().__init__(filename)
        if header:
            self.file.write(",".join(header) + "\n")
            self.file.writelines(kept)
            self.file.flush()
            self.keys = header


def _make_logger(run_dir: Path, keep_until: int | None, verbose: int, cfg: RunConfig) -> Logger:
    formats: list[KVWriter] = [_ResumableCSV(str(run_dir / "progress.csv"), keep_until)]
    if verbose:
        formats.append(HumanOutputFormat(sys.stdout))
    formats += tracking_formats(cfg.track, run_dir, cfg.to_dict(), cfg.wandb_project)
    return Logger(folder=str(run_dir), output_formats=formats)


class _RunCallback(RawStepCallback):
    """Counts raw env steps (:class:`~lpds_envs.evaluation.RawStepCallback`: learners that do not count them get
    ``model.raw_env_steps`` kept up to date) and hands each step and each update boundary to the run."""

    def __init__(self, run: TrainingRun) -> None:
        super().__init__(eval_freq=run.cfg.eval_freq)
        self.run = run

    def _maybe_measure(self) -> None:  # the run evaluates at update boundaries itself (TrainingRun.boundary)
        pass

    def _on_training_end(self) -> None:
        pass

    def _on_rollout_start(self) -> None:
        self.run.boundary()

    def _on_step(self) -> bool:
        super()._on_step()
        self.run.after_step(self.locals["infos"], self.raw_env_steps)
        return True


class TrainingRun:
    """One run of :class:`~lpds_envs.experiment.config.RunConfig`; :meth:`run` trains it (or resumes it) to the budget.

    :param cfg: the run's configuration
    :param progress: show a progress bar over raw env steps
    :param verbose: also print SB3's log tables
    :param on_eval: called with each evaluation row (e.g. to report to Ray Tune)
    :param callback: an extra SB3 callback for ``learn``
    """

    def __init__(
        self,
        cfg: RunConfig,
        progress: bool = True,
        verbose: int = 0,
        on_eval: Callable[[dict[str, Any]], None] | None = None,
        callback: BaseCallback | None = None,
    ) -> None:
        self.cfg, self.progress, self.verbose = cfg, progress, verbose
        self.on_eval, self.extra_callback = on_eval, callback
        self.run_dir = cfg.run_dir
        self.model: Any = None
        self.state: dict[str, Any] = {}
        self.pbar: Any = None
        self.last_row: dict[str, Any] | None = None

    # ------------------------------------------------------------------ setup
    def _check_existing(self) -> None:
        path = self.run_dir / CONFIG_FILE
        if not path.is_file() or _find_checkpoint(self.run_dir) is None:
            return  # nothing to resume: the folder is (re)started with this config
        try:
            old = RunConfig.read(path)
        except UsageError:
            raise
        except Exception as exc:  # a broken YAML file, wrong types, ...: name the file, whatever the parser said
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise UsageError(
                f"{path} does not parse ({reason}); fix it, or delete {self.run_dir} (or pass another --out) to start over"
            ) from None
        diff = self.cfg.mismatch(old)
        if diff is not None:
            raise UsageError(
                f"{self.run_dir} holds a run with other settings ({diff}); pass another --out or --name, "
                "or delete that folder to start over"
            )

    def _build(self) -> None:
        cfg, spec = self.cfg, self.cfg.spec
        device = str(get_device(cfg.device))
        _, decoder, _ = resolve_lpds_id(cfg.env_id, backbone=cfg.env_kwargs.get("backbone"), device=device)
        self.decoder = decoder
        n_eval = min(cfg.eval_episodes, MAX_EVAL_ENVS)
        try:
            self.venv = make_run_env(spec, cfg.env_id, cfg.env_kwargs, cfg.n_envs, cfg.seed, device, decoder)
            self.eval_env = make_run_env(spec, cfg.env_id, cfg.env_kwargs, n_eval, None, device, decoder)
        except (TypeError, ValueError) as exc:
            raise UsageError(
                f"cannot build {cfg.env_id} with env_kwargs {cfg.env_kwargs} ({exc}); fix --set env_kwargs.* "
                "or --hyperparams"
            ) from None
        algo_cls = spec.cls
        ckpt = _find_checkpoint(self.run_dir)
        if ckpt is not None:
            try:
                self.model, self.state = load_checkpoint(ckpt, algo_cls, self.venv, device=device)
            except (RuntimeError, ValueError, KeyError, EOFError) as exc:
                reason = str(exc).strip().splitlines()[0][:200]
                raise UsageError(
                    f"cannot resume {self.run_dir}: its checkpoint does not load ({reason}); "
                    "delete that folder or pass another --out to start over"
                ) from None
            missing = self.state.pop("missing")
            refused = self.state.pop("env_state_refused", None)
            saved_threads = self.state.pop("torch_threads", None)
            if missing:
                why = f"its saved env state was refused: {refused}" if refused else "the env could not be pickled"
                what = {
                    "env state": f"the envs start from a reset ({why})",
                    "replay buffer": "the replay buffer starts empty and is refilled before the next update",
                }
                print(
                    f"note: {self.run_dir}: the checkpoint holds no {' and no '.join(missing)}, so the resumed run is "
                    f"not identical to an uninterrupted one: {'; '.join(what[m] for m in missing)}"
                )
            if saved_threads is not None and saved_threads != torch.get_num_threads():
                print(
                    f"note: {self.run_dir}: the run was saved by a process with {saved_threads} torch threads and "
                    f"resumes with {torch.get_num_threads()}; CPU kernels round differently, so it will not match an "
                    f"uninterrupted run bit for bit (OMP_NUM_THREADS={saved_threads} resumes exactly)"
                )
            buffer = getattr(self.model, "replay_buffer", None)  # on-policy learners (DPPO) have none
            if buffer is not None and buffer.size() == 0:  # checkpointed without it: refill before updating again
                self.model.learning_starts = self.model.num_timesteps + self.model.batch_size
            keep = self.state["raw_env_steps"]
            rows = [r for r in read_csv_rows(self.run_dir / "evaluations.csv") if int(r["raw_env_steps"]) <= keep]
            self._write_evaluations(rows)
            logger = _make_logger(self.run_dir, self.model.num_timesteps, self.verbose, cfg)
        else:
            hp = cfg.learner_kwargs
            policy = cfg.hyperparams.get("policy", "MlpPolicy")
            try:
                extra = learner_env_kwargs(spec, decoder)
                self.model = algo_cls(policy, self.venv, seed=cfg.seed, device=device, **extra, **hp)
            except (TypeError, ValueError) as exc:
                raise UsageError(
                    f"cannot build {cfg.algo} with these hyperparameters ({exc}); fix --set/--hyperparams"
                ) from None
            self.model.raw_env_steps = 0  # SAC does not count raw env steps itself (_RunCallback does)
            self.state = {"raw_env_steps": 0, "last_eval": None, "last_checkpoint": None, "started": time.time()}
            self._write_evaluations([])
            logger = _make_logger(self.run_dir, None, self.verbose, cfg)
        self.model.set_logger(logger)
        # progress (for schedules of the learning rate or delta) is the spent fraction of the raw-step budget
        self.model.raw_step_budget = cfg.steps

    def _write_evaluations(self, rows: list[dict[str, Any]]) -> None:
        path = self.run_dir / "evaluations.csv"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=EVAL_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)

    # ------------------------------------------------------------------ hooks
    @property
    def raw(self) -> int:
        return int(self.model.raw_env_steps)

    def after_step(self, infos: list[dict[str, Any]], raw_after: int) -> None:
        """After an env step that brought the run to ``raw_after`` raw env steps (counted by :class:`_RunCallback`)."""
        if not self.cfg.spec.counts_raw_steps:
            self.model.logger.record("time/raw_env_steps", raw_after)
        if self.pbar is not None:
            self.pbar.update(executed_steps(infos))

    def boundary(self) -> None:
        """Between an update and the next env step: evaluate, stop at the budget, checkpoint."""
        raw = self.raw
        if _due(raw, self.state["last_eval"], self.cfg.eval_freq):
            self.evaluate()
        if raw >= self.cfg.steps:
            raise _BudgetReached
        if _due(raw, self.state["last_checkpoint"] or 0, self.cfg.checkpoint_freq):
            self.checkpoint()

    def evaluate(self) -> dict[str, Any]:
        """Evaluate the current policy and append the row to ``evaluations.csv``."""
        cfg = self.cfg
        det = bool(cfg.eval_deterministic)
        result = evaluate_policy(self.model, self.eval_env, det, 10_000 + cfg.seed, cfg.eval_episodes)
        entropy: float | str = ""
        if cfg.eval_entropy_states:  # at states of these episodes (own RNG): the stochastic steered policy, or the
            # fine-tuning baselines' evaluated policy
            decoder = self.decoder if cfg.spec.env_type == "latent" else None  # fine-tuning: its own chunks
            entropy = entropy_at_visited(
                self.model, decoder, result.paths, cfg.eval_entropy_states, cfg.eval_entropy_samples,
                seed=10_000 + cfg.seed, deterministic=det,
            )  # fmt: skip
            self.model.logger.record("eval/action_entropy", entropy)
        row = {
            "raw_env_steps": self.raw,
            "latent_steps": self.model.num_timesteps,
            **result.to_dict(),
            "time_s": round(time.time() - self.state["started"], 2),
            "action_entropy": entropy,
        }
        with open(self.run_dir / "evaluations.csv", "a", newline="") as f:
            csv.DictWriter(f, fieldnames=EVAL_COLUMNS).writerow(row)
        self.model.logger.record("eval/mean_return", row["mean_return"])
        self.model.logger.record("eval/success_rate", row["success_rate"])
        self.state["last_eval"] = self.raw
        if self.pbar is not None:
            self.pbar.set_postfix(ret=f"{row['mean_return']:.2f}", success=f"{row['success_rate']:.2f}", refresh=False)
        if self.on_eval is not None:
            self.on_eval(row)
        self.last_row = row
        return row

    def checkpoint(self) -> None:
        """Save a checkpoint, unless a weight or a stored transition is NaN or inf: a non-finite model (or a replay
        buffer that would make the resumed run diverge) never replaces the last good checkpoint.

        :raises NonFiniteError: naming the weight or buffer field (the learners' own guard catches most cases earlier)
        """
        step = int(getattr(self.model, "_n_updates", 0))
        bad = nonfinite_weight(self.model)
        if bad is not None:
            raise NonFiniteError(f"weight {bad}", step, GENERIC_CAUSE)
        buffer = getattr(self.model, "replay_buffer", None)
        field = None if buffer is None or not self.cfg.save_replay_buffer else nonfinite_buffer_field(buffer)
        if field is not None:  # a transition not sampled yet; saving it would make every resume diverge again
            raise NonFiniteError(
                f"replay buffer field {field!r}", step, "the env or decoder produced it; fix them before resuming"
            )
        self.state["last_checkpoint"] = self.state["raw_env_steps"] = self.raw
        save_checkpoint(self.run_dir, self.model, self.venv, dict(self.state), self.cfg.save_replay_buffer)

    # ------------------------------------------------------------------ main
    def run(self) -> dict[str, Any]:
        """Train (or resume) to ``cfg.steps`` raw env steps; return the final evaluation row."""
        cfg = self.cfg
        self._check_existing()
        ckpt = _find_checkpoint(self.run_dir)
        rows = read_csv_rows(self.run_dir / "evaluations.csv")
        if ckpt is not None and (self.run_dir / "model.zip").is_file() and rows:
            done = int(rows[-1]["raw_env_steps"])
            if done >= cfg.steps:  # config.yaml keeps the budget that ran (a smaller --steps does not rewrite it)
                print(f"{self.run_dir}: already complete ({done} env steps); skipping")
                return rows[-1]
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cfg.write()
        self._build()
        if self.state["last_checkpoint"] is not None:
            print(f"{self.run_dir}: resuming at {self.raw} env steps")
        final = self.run_dir / "model.zip"
        if final.is_file() and self.raw < cfg.steps:
            # extending a finished run: its model.zip belongs to the earlier budget, while config.yaml already holds
            # the new one; keep it under its own name so nothing reads it as this budget's final model
            kept = self.run_dir / f"model_{self.raw}.zip"
            os.replace(final, kept)
            print(
                f"{self.run_dir}: extending to {cfg.steps} env steps; the final model at {self.raw} is now {kept.name}"
            )
        if self.progress:
            desc = f"{cfg.name} {cfg.env_id} seed {cfg.seed}"
            self.pbar = tqdm(
                total=cfg.steps, initial=min(self.raw, cfg.steps), desc=desc, unit="step", dynamic_ncols=True
            )
        callbacks: list[BaseCallback] = [_RunCallback(self)]
        if self.extra_callback is not None:
            callbacks.append(self.extra_callback)
        try:
            try:
                if self.raw < cfg.steps:
                    self.model.learn(cfg.steps, callback=CallbackList(callbacks), reset_num_timesteps=False)
            except _BudgetReached:
                pass
            except KeyboardInterrupt:
                if self.pbar is not None:
                    self.pbar.close()
                print(
                    f"\n{self.run_dir}: interrupted at {self.raw} env steps; the last checkpoint holds "
                    f"{self.state['last_checkpoint'] or 0}; re-run the same command to resume",
                    file=sys.stderr,
                )
                raise
            if self.state["last_eval"] != self.raw:
                self.evaluate()
            row = self.last_row or read_csv_rows(self.run_dir / "evaluations.csv")[-1]
            if self.state["last_checkpoint"] != self.raw:
                self.checkpoint()
            atomic_copy(self.run_dir / "checkpoint" / "model.zip", self.run_dir / "model.zip")
            log_final_evaluation(self.model.logger, row, self.model.num_timesteps)
        except (NonFiniteError, NonFiniteValueError) as exc:
            good = self.state["last_checkpoint"]
            where = (
                f"the last good checkpoint ({good} env steps) is kept: fix the cause and re-run the same command to "
                "resume from it"
                if good is not None
                else "no checkpoint was written yet: fix the cause and re-run the same command to start over"
            )
            raise TrainingDiverged(
                f"{self.run_dir}: training stopped at {self.raw} env steps: {exc}; {where}"
            ) from None
        finally:
            if self.pbar is not None:
                self.pbar.close()
            self.model.logger.close()
            self.venv.close()
            self.eval_env.close()
        print(
            f"{self.run_dir}: return {float(row['mean_return']):.2f}, success {float(row['success_rate']):.2f} "
            f"after {self.raw} env steps"
        )
        return row


def train_run(cfg: RunConfig, **kwargs: Any) -> dict[str, Any]:
    """Train one run to its budget, resuming it when its folder holds a checkpoint; see :class:`TrainingRun`."""
    return TrainingRun(cfg, **kwargs).run()


def train_seeds(
    cfgs: list[RunConfig],
    jobs: int = 1,
    child_args: Callable[[RunConfig], list[str]] | None = None,
    progress: bool = True,
) -> int:
    """Run ``cfgs`` one after another (``jobs=1``) or as up to ``jobs`` ``lpds train`` subprocesses.

    :param child_args: the ``lpds`` arguments that run one config (needed for ``jobs > 1``)
    :return: the number of failed runs
    """
    if jobs <= 1 or len(cfgs) == 1:
        for cfg in cfgs:
            train_run(cfg, progress=progress)
        return 0
    if child_args is None:
        raise ValueError("jobs > 1 needs child_args")
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", threads)}
    pending, running, failed = list(cfgs), [], 0
    bar = tqdm(total=len(cfgs), desc=f"{len(cfgs)} runs, {jobs} at a time", unit="run", disable=not progress)
    while pending or running:
        while pending and len(running) < jobs:
            cfg = pending.pop(0)
            cfg.run_dir.mkdir(parents=True, exist_ok=True)
            log = open(cfg.run_dir / "train.log", "a")
            cmd = [sys.executable, "-m", "lpds_envs.experiment.cli", *child_args(cfg)]
            running.append((cfg, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log))
        time.sleep(0.2)
        for item in list(running):
            cfg, proc, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            bar.update(1)
            if proc.returncode != 0:
                failed += 1
                tail = (cfg.run_dir / "train.log").read_text().strip().splitlines()[-1:] or [""]
                bar.write(
                    f"seed {cfg.seed} failed (exit {proc.returncode}): {tail[0]}; see {cfg.run_dir / 'train.log'}"
                )
            else:
                rows = read_csv_rows(cfg.run_dir / "evaluations.csv")
                last = rows[-1] if rows else {"mean_return": "nan", "success_rate": "nan", "raw_env_steps": "?"}
                bar.write(
                    f"seed {cfg.seed}: return {float(last['mean_return']):.2f}, success "
                    f"{float(last['success_rate']):.2f} after {last['raw_env_steps']} env steps"
                )
    bar.close()
    return failed


def command_line(argv: list[str]) -> str:
    return "lpds " + " ".join(shlex.quote(a) for a in argv)
