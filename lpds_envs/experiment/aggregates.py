"""``lpds plot --aggregate iqm``: rliable's aggregate metrics over run folders (Agarwal et al., 2021).

The final evaluation of every run forms, per variant, a ``(runs, tasks)`` score matrix (tasks = env ids, runs =
seeds). From it this module reports the interquartile mean (IQM), median, mean and optimality gap, the probability
of improvement of each variant over each other, and performance profiles (the fraction of runs scoring above each
threshold), each with a 95% stratified-bootstrap confidence interval: every bootstrap replicate redraws the runs of
each task with replacement, tasks kept fixed.

The point metrics are :mod:`rliable.metrics`' own functions. The stratified bootstrap is this module's
:func:`stratified_bootstrap_ci`, which draws the same replicates as ``rliable.library.StratifiedBootstrap`` /
``StratifiedIndependentBootstrap`` seeded through NumPy's legacy global generator, and takes the same percentile
interval: ``tests/lpds_envs/experiment/test_aggregates.py`` checks that both give the same numbers. (rliable's
bootstrap lives in ``rliable.library``, which imports ``arch``; arch 7.x, the newest rliable 1.2 accepts, does not
import under pandas 3, so the bootstrap is not called through it at run time.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import UsageError

if TYPE_CHECKING:
    from .plotting import RunCurve

METRICS = ("return", "success")
NORMALIZATIONS = ("auto", "none", "minmax")
AGGREGATES = ("iqm", "median", "mean", "optimality_gap")


def rliable_metrics() -> Any:
    """:mod:`rliable.metrics`, or a usage error saying how to install it."""
    try:
        from rliable import metrics
    except ImportError:
        raise UsageError("--aggregate iqm needs rliable: pip install 'lpds[plot]' (or pip install rliable)") from None
    return metrics


def stratified_bootstrap_ci(
    func: Callable[..., Any], *scores: np.ndarray, reps: int = 2000, size: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point estimate and percentile interval of ``func(*scores)`` under the stratified bootstrap.

    Each score array is ``(runs, tasks)``; a replicate redraws, for every task separately, ``runs`` runs with
    replacement (each array independently, in order, when there are several: the probability of improvement). The
    replicates are those of rliable's ``StratifiedBootstrap`` after ``np.random.seed(seed)``.

    :param func: ``(*scores) -> scalar or 1-D array``
    :param scores: ``(runs, tasks)`` arrays
    :param reps: bootstrap replicates
    :param size: coverage of the interval
    :param seed: seed of the replicates
    :return: ``(point, lower, upper)``, 1-D arrays of ``func``'s output size
    """
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    if not 0.0 < size < 1.0:
        raise ValueError(f"size must be strictly between 0 and 1, got {size}")
    arrays = [np.asarray(s, dtype=float) for s in scores]
    for a in arrays:
        if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
            raise ValueError(f"scores must be (runs, tasks) arrays with at least one of each, got shape {a.shape}")
    point = np.atleast_1d(np.asarray(func(*arrays), dtype=float))
    rng = np.random.RandomState(seed)
    columns = [np.arange(a.shape[1])[None, :] for a in arrays]
    values = np.empty((reps, point.size))
    for r in range(reps):
        resampled = [a[rng.choice(a.shape[0], a.shape, replace=True), col] for a, col in zip(arrays, columns)]
        values[r] = np.atleast_1d(np.asarray(func(*resampled), dtype=float))
    alpha = (1.0 - size) / 2
    lower = np.array([np.percentile(values[:, i], 100 * alpha) for i in range(point.size)])
    upper = np.array([np.percentile(values[:, i], 100 * (1 - alpha)) for i in range(point.size)])
    return point, lower, upper


def score_distribution(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Performance profile (rliable's score distribution): the fraction of all ``(run, task)`` scores above each tau."""
    return np.array([np.mean(scores > tau) for tau in taus])


@dataclass
class ScoreTable:
    """Per variant, the ``(runs, tasks)`` matrix of final scores, and how it was made."""

    tasks: list[str]
    scores: dict[str, np.ndarray]
    metric: str
    normalized: bool
    notes: list[str] = field(default_factory=list)


def score_matrices(
    groups: dict[str, dict[str, list[RunCurve]]], metric: str = "return", normalize: str = "auto"
) -> ScoreTable:
    """The final evaluations of ``groups`` (``{env_id: {variant: [runs]}}``, from
    :func:`~lpds_envs.experiment.plotting.group_runs`) as one ``(runs, tasks)`` matrix per variant.

    Runs are ordered by seed; a variant with more seeds on one env than on another keeps its first ``k`` (the
    smallest count) on every env, so that each matrix is rectangular. ``normalize="minmax"`` maps each env's scores
    to ``(x - min) / (max - min)`` over all variants' runs on it (needed to aggregate returns of different envs);
    ``"auto"`` does that for returns of several envs and nothing otherwise (success rates are already in [0, 1]).

    :param metric: ``"return"`` (final mean evaluation return) or ``"success"`` (final success rate)
    :param normalize: ``"auto"``, ``"none"`` or ``"minmax"``
    """
    if metric not in METRICS:
        raise UsageError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if normalize not in NORMALIZATIONS:
        raise UsageError(f"--normalize must be one of {', '.join(NORMALIZATIONS)}, got {normalize!r}")
    tasks = sorted(groups)
    variants = sorted({label for env_variants in groups.values() for label in env_variants})
    missing = [(v, t) for v in variants for t in tasks if v not in groups[t]]
    if missing:
        shown = ", ".join(f"{v} on {t}" for v, t in missing[:4])
        raise UsageError(
            f"rliable aggregates need every variant on every env; no runs of {shown}. Pass only the folders of a "
            "common set of envs and variants"
        )
    notes: list[str] = []
    columns: dict[str, list[np.ndarray]] = {v: [] for v in variants}
    for v in variants:
        k = min(len(groups[t][v]) for t in tasks)
        if any(len(groups[t][v]) != k for t in tasks):
            notes.append(f"{v}: {k} seeds per env used (the first by seed), as some env has only {k}")
        for t in tasks:
            runs = sorted(groups[t][v], key=lambda r: r.cfg.seed)[:k]
            attr = "returns" if metric == "return" else "success"
            columns[v].append(np.array([float(getattr(r, attr)[-1]) for r in runs]))
    minmax = normalize == "minmax" or (normalize == "auto" and metric == "return" and len(tasks) > 1)
    if minmax:
        for j, t in enumerate(tasks):
            every = np.concatenate([columns[v][j] for v in variants])
            lo, hi = float(every.min()), float(every.max())
            span = hi - lo if hi > lo else 1.0
            for v in variants:
                columns[v][j] = (columns[v][j] - lo) / span
            notes.append(f"{t}: {metric} min-max normalised over all runs shown, 0 = {lo:.4g}, 1 = {hi:.4g}")
    scores = {v: np.stack(columns[v], axis=1) for v in variants}
    return ScoreTable(tasks, scores, metric, minmax or metric == "success", notes)


def compute_aggregates(table: ScoreTable, reps: int = 2000, seed: int = 0, n_taus: int = 101) -> dict[str, Any]:
    """IQM, median, mean and optimality gap per variant, pairwise probabilities of improvement and performance
    profiles, each with its 95% stratified-bootstrap interval (``reps`` replicates, seed ``seed``).

    The optimality gap (threshold 1) is reported only for scores in [0, 1] units (success rates or normalised
    returns); it is ``None`` for raw returns.
    """
    m = rliable_metrics()
    with_gap = table.normalized

    def aggregates(x: np.ndarray) -> np.ndarray:
        values = [m.aggregate_iqm(x), m.aggregate_median(x), m.aggregate_mean(x)]
        return np.array(values + ([m.aggregate_optimality_gap(x, 1.0)] if with_gap else []))

    every = np.concatenate([s.ravel() for s in table.scores.values()])
    taus = np.linspace(float(every.min()), float(every.max()), n_taus)
    out: dict[str, Any] = {
        "metric": table.metric,
        "normalized": table.normalized,
        "tasks": table.tasks,
        "reps": reps,
        "seed": seed,
        "notes": table.notes,
        "aggregates": {},
        "probability_of_improvement": {},
        "profiles": {"taus": taus.tolist()},
    }
    for v, s in table.scores.items():
        point, lo, hi = stratified_bootstrap_ci(aggregates, s, reps=reps, seed=seed)
        entry = {name: [float(point[i]), float(lo[i]), float(hi[i])] for i, name in enumerate(AGGREGATES[:3])}
        entry["optimality_gap"] = [float(point[3]), float(lo[3]), float(hi[3])] if with_gap else None
        out["aggregates"][v] = {"runs": int(s.shape[0]), **entry}
        prof, plo, phi = stratified_bootstrap_ci(lambda x: score_distribution(x, taus), s, reps=reps, seed=seed)
        out["profiles"][v] = {"fraction": prof.tolist(), "lower": plo.tolist(), "upper": phi.tolist()}
    for x in table.scores:
        for y in table.scores:
            if x == y:
                continue
            point, lo, hi = stratified_bootstrap_ci(
                m.probability_of_improvement, table.scores[x], table.scores[y], reps=reps, seed=seed
            )
            out["probability_of_improvement"][f"{x} > {y}"] = [float(point[0]), float(lo[0]), float(hi[0])]
    return out


def _cell(value: list[float] | None) -> str:
    return "-" if value is None else f"{value[0]:.3f} [{value[1]:.3f}, {value[2]:.3f}]"


def aggregates_markdown(result: dict[str, Any]) -> str:
    """The tables of :func:`compute_aggregates` as markdown."""
    unit = ("normalised " if result["normalized"] and result["metric"] == "return" else "") + result["metric"]
    lines = [
        f"Final {unit} over {len(result['tasks'])} env(s) ({', '.join(result['tasks'])}); 95% stratified-bootstrap "
        f"intervals, {result['reps']} replicates, seed {result['seed']} (rliable).",
        "",
        "| variant | runs per env | IQM | median | mean | optimality gap |",
        "|---|---|---|---|---|---|",
    ]
    for v, a in result["aggregates"].items():
        cells = " | ".join(_cell(a[k]) for k in AGGREGATES)
        lines.append(f"| {v} | {a['runs']} | {cells} |")
    if result["probability_of_improvement"]:
        lines += ["", "| probability of improvement | P(X > Y) [95% CI] |", "|---|---|"]
        lines += [f"| {pair} | {_cell(p)} |" for pair, p in result["probability_of_improvement"].items()]
    if result["notes"]:
        lines += [""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def plot_aggregates(result: dict[str, Any], out: Path) -> list[Path]:
    """Write ``aggregates_<metric>.{md,json,png,pdf}`` and ``performance_profile_<metric>.{png,pdf}`` to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = result["metric"]
    unit = ("normalised " if result["normalized"] and metric == "return" else "") + metric
    variants = list(result["aggregates"])
    written = [out / f"aggregates_{metric}.md", out / f"aggregates_{metric}.json"]
    written[0].write_text(aggregates_markdown(result))
    written[1].write_text(json.dumps(result, indent=1))
    shown = [k for k in AGGREGATES if all(result["aggregates"][v][k] is not None for v in variants)]
    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 0.5 * len(variants) + 1.5), squeeze=False)
    for ax, key in zip(axes[0], shown):
        for i, v in enumerate(variants):
            point, lo, hi = result["aggregates"][v][key]
            ax.barh(i, hi - lo, left=lo, height=0.6, color=f"C{i % 10}", alpha=0.6)
            ax.plot([point, point], [i - 0.3, i + 0.3], color="k", linewidth=2)
        ax.set_yticks(range(len(variants)), variants if ax is axes[0][0] else [""] * len(variants))
        ax.set_title(key.replace("_", " ").replace("iqm", "IQM"))
        ax.grid(axis="x", alpha=0.3)
    fig.supxlabel(unit)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(out / f"aggregates_{metric}.{ext}", dpi=120)
        written.append(out / f"aggregates_{metric}.{ext}")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    taus = np.array(result["profiles"]["taus"])
    for i, v in enumerate(variants):
        prof = result["profiles"][v]
        ax.plot(taus, prof["fraction"], color=f"C{i % 10}", label=v)
        ax.fill_between(taus, prof["lower"], prof["upper"], color=f"C{i % 10}", alpha=0.2, linewidth=0)
    ax.set(xlabel=f"{unit} threshold tau", ylabel="fraction of runs with score > tau", title="performance profile")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(out / f"performance_profile_{metric}.{ext}", dpi=120)
        written.append(out / f"performance_profile_{metric}.{ext}")
    plt.close(fig)
    return written
