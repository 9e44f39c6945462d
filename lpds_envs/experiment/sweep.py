"""``lpds sweep``: a grid over hyperparameters x seeds, run as Ray Tune trials (pip extra ``sweep``).

Every trial is an ordinary ``lpds train`` run written to ``<out>/<env_id>/<algo>_<key>=<value>.../seed_<k>/``
(same files as ``train``, so ``lpds plot`` reads both, and a re-run of the sweep resumes or skips finished runs).
Without ``address`` Ray starts locally and runs as many trials at once as there are CPUs (one CPU per trial);
with ``address`` the same command runs on an existing Ray cluster (``ray start --head`` / ``auto``), which must
see the same output folder (a shared file system) and have lpds installed.
"""

from __future__ import annotations

import itertools
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from algorithms.presets import deep_merge

from .config import RunConfig, UsageError, check_env_id, get_algo, parse_value, resolve_hyperparams
from .runs import read_csv_rows, train_run

GRID_HELP = (
    "use --grid key=v1,v2,... e.g. --grid delta=0.01,0.1,0.35 (nested: --grid policy_kwargs.net_arch=[64,64],[256,256])"
)


def _split_values(text: str) -> list[str]:
    """Split on commas outside brackets/braces: ``"[64,64],[256,256]"`` -> ``["[64,64]", "[256,256]"]``."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def parse_grid(items: list[str] | None) -> list[dict[str, Any]]:
    """``["delta=0.01,0.1", "gamma=0.9,0.99"]`` -> the 4 points of the cartesian product, as flat ``{key: value}``."""
    axes: list[tuple[str, list[Any]]] = []
    for item in items or []:
        key, sep, text = item.partition("=")
        values = _split_values(text) if sep else []
        if not sep or not key.strip() or not all(values):
            raise UsageError(f"malformed --grid {item!r}; {GRID_HELP}")
        try:
            axes.append((key.strip(), [parse_value(v) for v in values]))
        except Exception:
            raise UsageError(f"malformed --grid {item!r}: a value is not valid YAML; {GRID_HELP}") from None
    if not axes:
        raise UsageError(f"the sweep needs a grid; {GRID_HELP}")
    keys = [k for k, _ in axes]
    return [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in axes))]


def point_name(algo: str, point: dict[str, Any]) -> str:
    """The variant folder of a grid point, e.g. ``lpds_delta=0.1``."""
    label = "_".join(f"{k}={v}" for k, v in point.items()).replace(" ", "")
    return re.sub(r"[^A-Za-z0-9._=,\[\]+-]", "_", f"{algo}_{label}")


def point_overrides(point: dict[str, Any]) -> dict[str, Any]:
    """Flat dotted keys -> nested overrides, as ``--set`` builds them."""
    out: dict[str, Any] = {}
    for key, value in point.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def build_sweep(
    algo: str,
    env_id: str,
    grid: list[str],
    seeds: int,
    steps: int,
    out: str | Path,
    hyperparams_file: str | None = None,
    overrides: dict[str, Any] | None = None,
    **run_kwargs: Any,
) -> list[RunConfig]:
    """All trials' configs (validated here, before Ray starts)."""
    spec = get_algo(algo)
    check_env_id(env_id)
    if seeds < 1:
        raise UsageError(f"--seeds must be >= 1 (the number of seeds 0..N-1), got {seeds}")
    cfgs = []
    for point in parse_grid(grid):
        extra = deep_merge(overrides or {}, point_overrides(point))
        hp = resolve_hyperparams(spec, env_id, hyperparams_file, extra)
        for seed in range(seeds):
            cfgs.append(
                RunConfig(
                    algo=algo,
                    env_id=env_id,
                    seed=seed,
                    steps=steps,
                    out=str(Path(out).resolve()),
                    name=point_name(algo, point),
                    hyperparams=hp,
                    overrides=extra,
                    hyperparams_file=hyperparams_file,
                    **run_kwargs,
                )
            )
    return cfgs


def _trial(config: dict[str, Any]) -> None:
    """A Ray Tune function trainable: one ``lpds train`` run, reporting every evaluation."""
    from ray import tune  # the optional sweep extra

    cfg = RunConfig(**config["run"])
    final = train_run(cfg, progress=False, on_eval=lambda row: tune.report(dict(row)))
    tune.report({**{k: float(v) for k, v in final.items()}, "done": True})


def run_sweep(cfgs: list[RunConfig], address: str | None = None, cpus_per_trial: float = 1.0, verbose: int = 1) -> int:
    """Run ``cfgs`` as Ray Tune trials; print the final table; return the number of failed trials."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise UsageError('lpds sweep needs Ray Tune: pip install "lpds[sweep]" (or pip install "ray[tune]")') from None
    out = Path(cfgs[0].out)
    out.mkdir(parents=True, exist_ok=True)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=verbose > 1, configure_logging=verbose > 0)
    trials = [{"run": cfg.to_dict()} for cfg in cfgs]
    tuner = tune.Tuner(
        tune.with_resources(_trial, {"cpu": cpus_per_trial}),
        param_space={"run": tune.grid_search([t["run"] for t in trials])},
        tune_config=tune.TuneConfig(
            trial_dirname_creator=lambda trial: f"{trial.config['run']['name']}_seed_{trial.config['run']['seed']}"
        ),
        run_config=tune.RunConfig(
            name=f"sweep-{cfgs[0].env_id}-{cfgs[0].algo}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(out / "_ray"),
            verbose=verbose,
        ),
    )
    try:
        results = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    failed = 0
    for result in results:
        if result.error is not None:
            failed += 1
            cfg = result.config["run"]
            print(f"trial {cfg['name']} seed {cfg['seed']} failed: {str(result.error).strip().splitlines()[-1]}")
    print(final_table(cfgs))
    return failed


def final_table(cfgs: list[RunConfig]) -> str:
    """Markdown table of each grid point's final evaluation (mean over seeds)."""
    lines = ["| variant | seeds | final return | final success |", "|---|---|---|---|"]
    by_name: dict[str, list[RunConfig]] = {}
    for cfg in cfgs:
        by_name.setdefault(cfg.name, []).append(cfg)
    for name, group in by_name.items():
        finals = [rows[-1] for cfg in group if (rows := read_csv_rows(cfg.run_dir / "evaluations.csv"))]
        ret = np.array([float(r["mean_return"]) for r in finals]) if finals else np.array([np.nan])
        suc = np.array([float(r["success_rate"]) for r in finals]) if finals else np.array([np.nan])
        lines.append(f"| {name} | {len(finals)}/{len(group)} | {ret.mean():.3f} | {suc.mean():.3f} |")
    return "\n".join(lines)
