"""``lpds plot``: learning curves and a final-performance table from run folders of ``lpds train`` / ``lpds sweep``.

Runs are found recursively (a folder with ``config.yaml`` and a non-empty ``evaluations.csv``) and grouped by
env and variant (``name`` in ``config.yaml``: the algorithm, or the sweep's grid point). Each seed's evaluation
curve is interpolated onto a common grid of raw env steps (up to the shortest run of the group); the plot shows
the mean over seeds with a 95% percentile-bootstrap band over seeds (rliable-style stratified bootstrap of the
mean), one figure per env, as PNG and PDF.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .aggregates import compute_aggregates, plot_aggregates, score_matrices
from .config import CONFIG_FILE, RunConfig, UsageError
from .runs import read_csv_rows


@dataclass
class RunCurve:
    cfg: RunConfig
    folder: Path
    steps: np.ndarray  # raw env steps of each evaluation
    returns: np.ndarray
    success: np.ndarray
    entropy: np.ndarray  # action entropy (eq. 11) where the run measured it (--eval-entropy-states), else NaN


def find_runs(dirs: list[str | Path], max_steps: int | None = None) -> list[RunCurve]:
    """Every run folder under ``dirs`` that has at least one evaluation (up to ``max_steps`` raw env steps if given:
    runs extended past a common budget are then compared at that budget)."""
    runs = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise UsageError(f"{d} is not a folder; pass folders written by `lpds train` or `lpds sweep` (their --out)")
        for config in sorted(d.rglob(CONFIG_FILE)):
            rows = read_csv_rows(config.parent / "evaluations.csv")
            cfg = RunConfig.read(config)
            if max_steps is not None:
                rows = _rows_up_to(rows, max_steps, cfg.eval_freq)
            if not rows:
                continue
            runs.append(
                RunCurve(
                    cfg,
                    config.parent,
                    np.array([float(r["raw_env_steps"]) for r in rows]),
                    np.array([float(r["mean_return"]) for r in rows]),
                    np.array([float(r["success_rate"]) for r in rows]),
                    np.array([float(r.get("action_entropy") or "nan") for r in rows]),
                )
            )
    if not runs:
        shown = " ".join(str(d) for d in dirs)
        raise UsageError(f"no evaluated runs under {shown}; pass the --out folder of `lpds train` or `lpds sweep`")
    return runs


def _rows_up_to(rows: list[dict[str, str]], max_steps: int, eval_freq: int) -> list[dict[str, str]]:
    """The evaluations up to ``max_steps`` raw env steps.

    An evaluation runs at the first update boundary at or after the step it is due at (a multiple of ``eval_freq``,
    or the budget), a few raw steps late, so the first row past ``max_steps`` is kept too when it was due at or
    before ``max_steps`` (e.g. the 40,010-step row of an evaluation due at 40,000).
    """
    kept = [r for r in rows if float(r["raw_env_steps"]) <= max_steps]
    late = rows[len(kept) : len(kept) + 1]
    if late and int(float(late[0]["raw_env_steps"])) // eval_freq * eval_freq <= max_steps:
        kept += late
    return kept


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v, default=str)
    return out


def group_runs(runs: list[RunCurve]) -> dict[str, dict[str, list[RunCurve]]]:
    """``{env_id: {label: [runs]}}``: runs of one env, variant name and hyperparameters form a group (wherever they
    were written); groups sharing a name get the hyperparameters that tell them apart added to their label."""
    keyed: dict[tuple[str, str, str], list[RunCurve]] = {}
    for run in runs:
        key = (run.cfg.env_id, run.cfg.name, json.dumps(run.cfg.hyperparams, sort_keys=True, default=str))
        keyed.setdefault(key, []).append(run)
    out: dict[str, dict[str, list[RunCurve]]] = {}
    for (env_id, name, _), group in keyed.items():
        flat = _flat(group[0].cfg.hyperparams)
        rivals = [_flat(g[0].cfg.hyperparams) for (e, n, _), g in keyed.items() if (e, n) == (env_id, name)]
        differing = sorted(k for k in set().union(*rivals) if len({r.get(k) for r in rivals}) > 1)
        label = name
        if differing:
            label += " (" + ", ".join(f"{k}={flat.get(k, '-')}" for k in differing) + ")"
        out.setdefault(env_id, {})[label] = group
    return out


def _spans_decades(ax: Any) -> bool:
    """Whether the curves drawn on ``ax`` differ by more than 5x in magnitude (then a log-like axis reads better)."""
    mags = np.abs(np.concatenate([np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()] or [[]]))
    mags = mags[np.isfinite(mags)]
    return bool(len(mags)) and float(mags.max()) > 5 * max(float(mags.min()), 1.0)


def bootstrap_mean_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0, axis: int = 0) -> tuple[Any, Any]:
    """95% percentile-bootstrap interval of the mean over ``axis`` (the seeds); the mean itself when only one."""
    values = np.asarray(values, dtype=float)
    n = values.shape[axis]
    if n < 2:
        m = values.mean(axis=axis)
        return m, m
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    means = np.take(values, idx, axis=axis).mean(axis=axis + 1)  # (n_boot, ...) when axis == 0
    return np.percentile(means, 2.5, axis=0), np.percentile(means, 97.5, axis=0)


def aggregate(curves: list[tuple[np.ndarray, np.ndarray]], n_points: int = 100, n_boot: int = 2000):
    """Seeds' ``(steps, values)`` -> ``(grid, mean, lo, hi)`` on their common range of steps."""
    start = max(float(x[0]) for x, _ in curves)
    stop = min(float(x[-1]) for x, _ in curves)
    grid = np.linspace(start, stop, n_points) if stop > start else np.array([stop])
    ys = np.stack([np.interp(grid, x, y) for x, y in curves])
    lo, hi = bootstrap_mean_ci(ys, n_boot)
    return grid, ys.mean(axis=0), lo, hi


def final_table(groups: dict[str, dict[str, list[RunCurve]]], n_boot: int = 2000) -> str:
    """Markdown: per env and variant, the final evaluation's mean over seeds with its 95% bootstrap interval (and
    the final action entropy's when any run measured it)."""
    with_entropy = any(np.isfinite(r.entropy[-1]) for v in groups.values() for runs in v.values() for r in runs)
    lines = [
        "| env | variant | seeds | env steps | final return [95% CI] | final success [95% CI] |"
        + (" final action entropy [95% CI] |" if with_entropy else ""),
        "|---|---|---|---|---|---|" + ("---|" if with_entropy else ""),
    ]
    for env_id, variants in groups.items():
        for label, runs in variants.items():
            ret = np.array([r.returns[-1] for r in runs])
            suc = np.array([r.success[-1] for r in runs])
            steps = int(min(r.steps[-1] for r in runs))
            (rl, rh), (sl, sh) = bootstrap_mean_ci(ret, n_boot), bootstrap_mean_ci(suc, n_boot)
            line = (
                f"| {env_id} | {label} | {len(runs)} | {steps} | {ret.mean():.2f} [{rl:.2f}, {rh:.2f}] | "
                f"{suc.mean():.2f} [{sl:.2f}, {sh:.2f}] |"
            )
            if with_entropy:
                ent = np.array([r.entropy[-1] for r in runs if np.isfinite(r.entropy[-1])])
                if len(ent):
                    el, eh = bootstrap_mean_ci(ent, n_boot)
                    line += f" {ent.mean():.2f} [{el:.2f}, {eh:.2f}] ({len(ent)} seeds) |"
                else:
                    line += " - |"
            lines.append(line)
    return "\n".join(lines) + "\n"


def plot_runs(
    dirs: list[str | Path],
    out: str | Path | None = None,
    n_boot: int = 2000,
    max_steps: int | None = None,
    summary: str = "mean",
    metric: str = "return",
    normalize: str = "auto",
) -> list[Path]:
    """Write ``learning_curves_<env>.png/.pdf`` and ``final_performance.md`` to ``out`` (default: the first dir);
    with ``summary="iqm"`` also rliable's aggregates of the final evaluations (:mod:`.aggregates`):
    ``aggregates_<metric>.{md,json,png,pdf}`` and ``performance_profile_<metric>.{png,pdf}``.

    :param dirs: output folders of ``lpds train`` / ``lpds sweep``
    :param out: where the figures and tables go
    :param n_boot: bootstrap replicates (of every interval)
    :param max_steps: use each run's evaluations up to this many raw env steps only (default: all)
    :param summary: ``"mean"`` (curves and table only) or ``"iqm"`` (also rliable's aggregates)
    :param metric: score of the aggregates: ``"return"`` or ``"success"``
    :param normalize: ``"auto"``, ``"none"`` or ``"minmax"`` (see :func:`.aggregates.score_matrices`)
    """
    if summary not in ("mean", "iqm"):
        raise UsageError(f"--aggregate must be mean or iqm, got {summary!r}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = group_runs(find_runs(dirs, max_steps))
    out = Path(out) if out is not None else Path(dirs[0])
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for env_id, variants in groups.items():
        with_success = any(np.any(r.success > 0) for runs in variants.values() for r in runs)
        with_entropy = any(np.any(np.isfinite(r.entropy)) for runs in variants.values() for r in runs)
        metrics = [("returns", "evaluation return")] + ([("success", "success rate")] if with_success else [])
        metrics += [("entropy", "action entropy (eq. 11)")] if with_entropy else []
        fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
        for ax, (attr, ylabel) in zip(axes[0], metrics):
            for i, (label, runs) in enumerate(sorted(variants.items())):
                # each seed's measured points (the entropy may be missing: runs without --eval-entropy-states)
                curves = [(r.steps[ok], y[ok]) for r in runs if (ok := np.isfinite(y := getattr(r, attr))).any()]
                if not curves:
                    continue
                grid, mean, lo, hi = aggregate(curves, n_boot=n_boot)
                color = f"C{i % 10}"
                ax.plot(grid, mean, color=color, label=f"{label} ({len(curves)} seeds)")
                ax.fill_between(grid, lo, hi, color=color, alpha=0.2, linewidth=0)
            ax.set(xlabel="env steps", ylabel=ylabel, title=env_id)
            if attr == "entropy" and _spans_decades(ax):
                ax.set_yscale("symlog", linthresh=1.0)  # a collapsed policy sits at the estimator's floor (~ -4600)
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        stem = out / f"learning_curves_{env_id}"
        for ext in ("png", "pdf"):
            fig.savefig(f"{stem}.{ext}", dpi=120)
            written.append(Path(f"{stem}.{ext}"))
        plt.close(fig)
    table = final_table(groups, n_boot)
    (out / "final_performance.md").write_text(table)
    written.append(out / "final_performance.md")
    print(table)
    if summary == "iqm":
        result = compute_aggregates(score_matrices(groups, metric, normalize), reps=n_boot)
        aggregate_files = plot_aggregates(result, out)
        print(aggregate_files[0].read_text())
        written += aggregate_files
    for path in written:
        print(f"wrote {path}")
    return written
