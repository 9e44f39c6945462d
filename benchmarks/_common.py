"""Helpers shared by the benchmark scripts: import path, machine description, table formatting, interleaved
training blocks."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent


def add_repo_to_path() -> None:
    """Make ``lpds_envs`` importable when a script is run as ``python benchmarks/<script>.py``."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def background_jobs(pattern: str = "lpds_envs.backbones") -> list[str]:
    """Command lines of running processes matching ``pattern`` (``pgrep -af``); empty if none or no pgrep."""
    try:
        out = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True, check=False).stdout
    except OSError:
        return []
    return [line for line in out.splitlines() if line.strip()]


def git_state() -> str:
    """``<HEAD commit>`` plus ``+dirty`` when the library's .py sources differ from it (read-only git calls)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "lpds_envs/*.py", "algorithms/*.py"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def machine_info() -> dict[str, Any]:
    import torch

    return {
        "git": git_state(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "background_backbone_jobs": background_jobs(),
    }


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def iqr(xs: list[float]) -> tuple[float, float]:
    """Lower and upper quartile (for a spread column)."""
    if len(xs) < 2:
        return float(xs[0]), float(xs[0])
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return float(q[0]), float(q[2])


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds:.2f} s"


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


#: the shared-machinery methods of a steering learner that the training benchmarks time, and the part each counts in
TIMED_CALLS = {"decode": "decode", "action_critic_step": "q_a", "latent_critic_distill": "q_w"}


class CallTimer:
    """Accumulates the wall time of a steering learner's decoder calls (both decode paths, with and without
    ``prior_cache``, go through ``decode``), Q^A steps and Q^W distillations, by wrapping those methods on the model.

    :param model: a steering learner (LagrangianSAC, DSRLNA, ...)
    """

    def __init__(self, model: Any) -> None:
        self.t = dict.fromkeys(TIMED_CALLS.values(), 0.0)
        for name, key in TIMED_CALLS.items():
            setattr(model, name, self._wrap(getattr(model, name), key))

    def _wrap(self, fn: Any, key: str) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            self.t[key] += time.perf_counter() - t0
            return out

        return run

    def reset(self) -> None:
        for k in self.t:
            self.t[k] = 0.0


def train_in_blocks(
    models: dict[str, Any],
    timers: dict[str, CallTimer],
    blocks: int,
    steps: int,
    batch: int,
    reference: str,
    rest: str = "rest",
    progress: bool = False,
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, dict[str, list[float]]]]:
    """Round-robin blocks of one ``train(gradient_steps=steps)`` call per learner, interleaved so that load on the
    machine hits every learner alike.

    :param models: the learners by name, their buffers filled
    :param timers: a :class:`CallTimer` per steering learner to split its time
    :param blocks: how many rounds
    :param steps: gradient steps per ``train`` call
    :param batch: minibatch size
    :param reference: the learner the ratios are taken to, block by block
    :param rest: the name of the part of a block that no timer covers
    :param progress: print each block's rates
    :return: ``(rates, ratios, split)``: gradient steps/s per block, the ratio to ``reference`` per block, and per
        timed learner the fraction of each block spent in each timed part and in ``rest``
    """
    rates: dict[str, list[float]] = {n: [] for n in models}
    ratios: dict[str, list[float]] = {n: [] for n in models}
    split = {n: {k: [] for k in (*TIMED_CALLS.values(), rest)} for n in timers}
    for b in range(blocks):
        block = {}
        for name, model in models.items():
            if name in timers:
                timers[name].reset()
            t0 = time.perf_counter()
            model.train(gradient_steps=steps, batch_size=batch)
            dt = time.perf_counter() - t0
            block[name] = steps / dt
            if name in timers:
                t = timers[name].t
                for k in TIMED_CALLS.values():
                    split[name][k].append(t[k] / dt)
                split[name][rest].append(1 - sum(t.values()) / dt)
        for name in models:
            rates[name].append(block[name])
            ratios[name].append(block[name] / block[reference])
        if progress:
            print(f"block {b + 1}/{blocks}: " + ", ".join(f"{n} {r:.1f}/s" for n, r in block.items()), flush=True)
    return rates, ratios, split


def final_vs_backbone(
    runs: Path,
    out: Path,
    env_id: str,
    episodes: int,
    max_steps: int | None = None,
    variants: list[str] | None = None,
    success: bool = False,
    seed: int = 20_000,
) -> str:
    """Each finished run's final model against the frozen backbone on the same ``episodes`` reset seeds
    (``lpds evaluate --vs-backbone``), as a markdown table; results are cached in ``out/final_vs_backbone.json`` so a
    re-run evaluates only new runs. Runs whose budget exceeds ``max_steps`` are left out (their model is a later one).

    :param success: also report the success rates and their paired difference (tasks with ``info["success"]``)
    """
    from lpds_envs.evaluation import success_gain_se
    from lpds_envs.experiment.config import RunConfig
    from lpds_envs.experiment.evaluate import evaluate_saved

    cache_path = out / "final_vs_backbone.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    header = ["run", "raw env steps", "steered return", "backbone return", "gain ± SE", "gain / SE"]
    if success:
        header += ["steered success", "backbone success", "success gain ± SE"]
    rows: list[list[Any]] = []
    per_variant: dict[str, list[dict[str, float]]] = {}
    for config in sorted(runs.glob(f"{env_id}/*/seed_*/config.yaml")):
        run_dir, cfg = config.parent, RunConfig.read(config)
        if not (run_dir / "model.zip").is_file() or (max_steps and cfg.steps > max_steps):
            continue
        if variants is not None and run_dir.parent.name not in variants:
            continue
        key = f"{run_dir.parent.name}/{run_dir.name}@{cfg.steps}x{episodes}"
        if key not in cache or (success and "success_rate" not in cache[key]):
            r = evaluate_saved(run_dir, episodes=episodes, seed=seed, entropy_states=0, device="cpu", vs_backbone=True)
            cache[key] = {k: r[k] for k in ("mean_return", "gain", "gain_se", "success_rate")} | {
                "backbone_return": r["backbone"]["mean_return"],
                "backbone_success": r["backbone"]["success_rate"],
            }
            cache_path.write_text(json.dumps(cache, indent=1))
        c = cache[key]
        per_variant.setdefault(f"{run_dir.parent.name}@{cfg.steps}", []).append(c)
        row = [
            f"{run_dir.parent.name}/{run_dir.name}",
            cfg.steps,
            f"{c['mean_return']:.1f}",
            f"{c['backbone_return']:.1f}",
            f"{c['gain']:+.1f} ± {c['gain_se']:.1f}",
            f"{c['gain'] / c['gain_se']:+.1f}",
        ]
        if success:
            p, q = c["success_rate"], c["backbone_success"]
            row += [f"{p:.2f}", f"{q:.2f}", f"{p - q:+.2f} ± {success_gain_se(p, q, episodes):.2f}"]
        rows.append(row)
    title = f"Final models against the frozen backbone, {episodes} episodes each on the same reset seeds ({seed}+):"
    return f"{title}\n\n{markdown_table(header, rows)}\n" + seed_level_comparison(per_variant, success)


def seed_level_comparison(per_variant: dict[str, list[dict[str, float]]], success: bool = False) -> str:
    """Variants compared with each seed as one number (its final model's gain over the backbone): the mean gain
    with its across-seed SE, and for each pair of variants Welch's t-test on the per-seed return gains. Empty when
    fewer than two variants have two seeds or more."""
    from scipy import stats

    groups = {k: v for k, v in per_variant.items() if len(v) >= 2}
    if not groups:
        return ""
    header = ["variant@steps", "seeds", "mean return gain ± SE over seeds"] + (["mean success gain"] if success else [])
    rows: list[list[Any]] = []
    for name, cs in groups.items():
        g = np.array([c["gain"] for c in cs])
        row = [name, len(g), f"{g.mean():+.1f} ± {g.std(ddof=1) / len(g) ** 0.5:.1f}"]
        if success:
            row.append(f"{np.mean([c['success_rate'] - c['backbone_success'] for c in cs]):+.3f}")
        rows.append(row)
    text = (
        "\nPer variant, each seed one number (its gain above). The SE is the seed-to-seed spread only: every seed is"
        " compared with the same backbone episodes, whose own noise (in each run's SE above) it leaves out, so it is"
        " not a test against the backbone; across variants that shared noise cancels.\n\n"
        + markdown_table(header, rows)
        + "\n"
    )
    names = sorted(groups)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    if pairs:
        rows = []
        for a, b in pairs:
            ga, gb = (np.array([c["gain"] for c in groups[n]]) for n in (a, b))
            va, vb = ga.var(ddof=1) / len(ga), gb.var(ddof=1) / len(gb)
            test = stats.ttest_ind(ga, gb, equal_var=False)
            rows.append(
                [
                    f"{a} − {b}",
                    f"{ga.mean() - gb.mean():+.1f} ± {(va + vb) ** 0.5:.1f}",
                    f"{test.statistic:+.2f}",
                    f"{test.df:.1f}",
                    f"{test.pvalue:.3f}",
                ]
            )
        header = ["variants", "difference of mean return gains ± SE", "Welch t", "dof", "two-sided p"]
        text += "\nPairwise, Welch's t-test on the per-seed return gains (few seeds: read p as a rough guide):\n\n"
        text += markdown_table(header, rows) + "\n"
    return text


def keep_records(runs: Path, env_id: str, out: Path) -> int:
    """Copy each run's small records (``config.yaml``, ``evaluations.csv`` and the last logged row of
    ``progress.csv``) to ``out/records/<variant>_<seed>_*`` (run folders do not survive a session; these stay in the
    repository). Returns the number of runs copied."""
    import csv
    import shutil

    dest = out / "records"
    dest.mkdir(parents=True, exist_ok=True)
    n = 0
    for config in sorted(runs.glob(f"{env_id}/*/seed_*/config.yaml")):
        run_dir = config.parent
        stem = f"{run_dir.parent.name.replace('=', '-')}_{run_dir.name}"
        shutil.copyfile(config, dest / f"{stem}_config.yaml")
        if (run_dir / "evaluations.csv").is_file():
            shutil.copyfile(run_dir / "evaluations.csv", dest / f"{stem}_evaluations.csv")
        progress = run_dir / "progress.csv"
        if progress.is_file():
            with open(progress) as f:
                rows = list(csv.DictReader(f))
            if rows:
                last = {k: v for k, v in rows[-1].items() if v not in ("", None)}
                (dest / f"{stem}_progress_last.json").write_text(json.dumps(last, indent=1))
        n += 1
    return n
