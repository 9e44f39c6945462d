"""Experiment tracking for ``lpds train --track``: TensorBoard event files, or a Weights & Biases run.

Both receive what SB3's logger records (training losses, ``time/raw_env_steps``, the periodic ``eval/mean_return``
and ``eval/success_rate``), next to the run's ``progress.csv``. Install them with ``pip install "lpds[tracking]"``.
When the budget is reached they also get the final evaluation, the last row of the run's ``evaluations.csv``
(:func:`log_final_evaluation`): ``final/mean_return``, ``final/std_return``, ``final/success_rate``,
``final/mean_episode_steps``, ``final/raw_env_steps`` and, with ``--eval-entropy-states``, ``final/action_entropy``,
logged at the final step (in W&B also as the run's summary).

- ``--track tensorboard`` writes event files to ``<run_dir>/tensorboard`` (``tensorboard --logdir RUN_DIR``). Without
  ``--track`` they are written too whenever tensorboard happens to be installed; ``--track tensorboard`` makes a
  missing tensorboard an error instead of a silent omission.
- ``--track wandb`` logs to a W&B run named ``<env>/<name>/seed_<k>`` (group ``<env>/<name>``, the run's
  ``config.yaml`` as its config) with its files under ``<run_dir>/wandb``. Each dump is logged with
  ``global_step`` = SB3's step count (latent steps; ``time/raw_env_steps`` is logged beside it). A resumed run
  continues the same W&B run (its id is kept in ``<run_dir>/wandb-id.txt``). W&B's own settings apply:
  ``WANDB_MODE=offline`` keeps everything on disk (``wandb sync`` uploads it later), ``WANDB_PROJECT`` /
  ``--wandb-project`` pick the project.
"""

from __future__ import annotations

import importlib.util
import numbers
import os
import uuid
from pathlib import Path
from typing import Any

from stable_baselines3.common.logger import KVWriter, Logger, TensorBoardOutputFormat

from .config import UsageError

#: the values of ``lpds train --track``
TRACKERS = ("tensorboard", "wandb")
#: the pip extra that installs them
TRACKING_EXTRA = "tracking"
#: the file that keeps a run folder's W&B run id, so a resumed run logs into the same W&B run
WANDB_ID_FILE = "wandb-id.txt"
#: the columns of the final evaluation row that :func:`log_final_evaluation` logs as ``final/<column>``
FINAL_COLUMNS = (
    "mean_return",
    "std_return",
    "success_rate",
    "mean_episode_steps",
    "raw_env_steps",
    "action_entropy",
)


def tracker_installed(track: str) -> bool:
    """Whether the package ``--track track`` needs is importable.

    :param track: one of :data:`TRACKERS`
    """
    return importlib.util.find_spec(track) is not None


def check_tracker(track: str | None) -> None:
    """Refuse an unknown tracker, or one whose package is not installed, naming the extra to install.

    :param track: ``None`` (no tracking) or one of :data:`TRACKERS`
    :raises UsageError: naming the tracker and ``pip install "lpds[tracking]"``
    """
    if track is None:
        return
    if track not in TRACKERS:
        raise UsageError(f"unknown tracker {track!r}; pass --track one of {', '.join(TRACKERS)}")
    if not tracker_installed(track):
        raise UsageError(
            f"--track {track} needs the {track} package, which is not installed; "
            f'pip install "lpds[{TRACKING_EXTRA}]" (or pip install {track})'
        )


class WandbOutputFormat(KVWriter):
    """An SB3 logger output that logs each dump's numbers to a W&B run (``global_step`` = SB3's step).

    :param run: a W&B run (``wandb.init(...)``); finished when the logger closes
    """

    def __init__(self, run: Any) -> None:
        self.run = run
        run.define_metric("*", step_metric="global_step")  # resumed runs may repeat steps: no monotonic step needed

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        """Log the numeric values of one dump (values excluded for ``"wandb"`` are left out).

        :param key_values: what SB3's logger recorded since the last dump
        :param key_excluded: the output formats each key is excluded from
        :param step: SB3's step count (latent steps)
        """
        data: dict[str, Any] = {"global_step": int(step)}
        for key, value in key_values.items():
            excluded = key_excluded.get(key) or ()
            if "wandb" in excluded or isinstance(value, bool) or not isinstance(value, numbers.Number):
                continue
            data[key] = value
        self.run.log(data)
        final = {key: value for key, value in data.items() if key.startswith("final/")}
        if final:  # the final evaluation is what a W&B table of runs should show
            self.run.summary.update(final)

    def close(self) -> None:
        """Finish the W&B run (its files are complete once this returns)."""
        self.run.finish()


def wandb_run(run_dir: Path, cfg: dict[str, Any], project: str | None = None) -> Any:
    """Start (or, for a resumed run folder, continue) the W&B run of ``run_dir``.

    :param run_dir: the run folder; W&B's files go to ``run_dir/wandb``
    :param cfg: the run's configuration (:meth:`~lpds_envs.experiment.config.RunConfig.to_dict`), W&B's config
    :param project: the W&B project (default: ``WANDB_PROJECT``, else ``lpds``)
    """
    import wandb  # the optional tracking extra (check_tracker says how to install it)

    id_file = run_dir / WANDB_ID_FILE
    if id_file.is_file():
        run_id = id_file.read_text().strip()
    else:
        run_id = uuid.uuid4().hex[:12]
        id_file.write_text(run_id + "\n")
    name = f"{cfg['env_id']}/{cfg['name']}/seed_{cfg['seed']}"
    return wandb.init(
        project=project or os.environ.get("WANDB_PROJECT") or "lpds",
        name=name,
        group=f"{cfg['env_id']}/{cfg['name']}",
        config=cfg,
        dir=str(run_dir),
        id=run_id,
        resume="allow",
        reinit="create_new",
    )


def tracking_formats(
    track: str | None, run_dir: Path, cfg: dict[str, Any], project: str | None = None
) -> list[KVWriter]:
    """The SB3 logger outputs of ``--track track`` (see the module docstring).

    :param track: ``None``, ``"tensorboard"`` or ``"wandb"``
    :param run_dir: the run folder
    :param cfg: the run's configuration, as a dict
    :param project: the W&B project (``--wandb-project``)
    """
    check_tracker(track)
    formats: list[KVWriter] = []
    if track == "tensorboard" or (track is None and tracker_installed("tensorboard")):
        formats.append(TensorBoardOutputFormat(str(run_dir / "tensorboard")))
    if track == "wandb":
        formats.append(WandbOutputFormat(wandb_run(run_dir, cfg, project or None)))
    return formats


def log_final_evaluation(logger: Logger, row: dict[str, Any], step: int) -> dict[str, float]:
    """Write a run's final evaluation to its trackers (TensorBoard, W&B) as ``final/<column>`` scalars at ``step``.

    Only the tracker outputs get them (``progress.csv`` and stdout are left as they are); the values SB3's logger
    recorded since its last dump (the final ``eval/...`` numbers) go with them, so the trackers see the last periodic
    evaluation too. Empty columns (``action_entropy`` without ``--eval-entropy-states``) are left out.

    :param logger: the run's SB3 logger
    :param row: the final row of ``evaluations.csv`` (strings or numbers)
    :param step: SB3's step count at the end of the run (latent steps)
    :return: the ``final/...`` values written
    """
    final = {f"final/{key}": float(row[key]) for key in FINAL_COLUMNS if row.get(key) is not None and row[key] != ""}
    trackers = [f for f in logger.output_formats if isinstance(f, (TensorBoardOutputFormat, WandbOutputFormat))]
    if not trackers:
        return final
    values = {**logger.name_to_value, **final}
    excluded = {**logger.name_to_excluded, **{key: () for key in final}}
    for fmt in trackers:
        fmt.write(values, excluded, step)
    return final
