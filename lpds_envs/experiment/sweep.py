"""``lpds sweep``: a grid over hyperparameters x seeds, run as Ray Tune trials (pip extra ``sweep``).

Every trial is an ordinary ``lpds train`` run written to ``<out>/<env_id>/<algo>_<key>=<value>.../seed_<k>/``
(same files as ``train``, so ``lpds plot`` reads both, and a re-run of the sweep resumes or skips finished runs).
Without ``address`` Ray starts locally, bound to the loopback address (127.0.0.1, no dashboard), and runs as many
trials at once as there are CPUs (one CPU per trial); with ``address`` the same command runs on an existing Ray
cluster (``ray start --head`` / ``auto`` / ``HOST:PORT``), which must see the same output folder (a shared file
system) and have lpds installed. A failed trial makes the sweep report its error and count as failed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import sys
import time
from collections.abc import Iterator
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


def tune_metrics(row: dict[str, Any]) -> dict[str, float]:
    """An evaluation row as Ray Tune metrics: numbers as floats, empty cells (e.g. ``action_entropy`` when entropy
    logging is off) left out. Rows read back from ``evaluations.csv`` (a resumed or finished run) hold strings.
    """
    metrics = {}
    for key, value in row.items():
        if value is None or value == "":
            continue
        try:
            metrics[key] = float(value)
        except (TypeError, ValueError):
            continue
    return metrics


def _trial(config: dict[str, Any]) -> None:
    """A Ray Tune function trainable: one ``lpds train`` run, reporting every evaluation."""
    from ray import tune  # the optional sweep extra

    cfg = RunConfig(**config["run"])
    reported = []

    def report(row: dict[str, Any]) -> None:
        reported.append(row)
        tune.report(tune_metrics(row))

    final = train_run(cfg, progress=False, on_eval=report)
    if not reported:  # the run was already complete: report its final evaluation once
        tune.report(tune_metrics(final))


def trial_error(error: BaseException | str) -> str:
    """The one line of a failed trial's error that names the exception (``ValueError: ...``), not Ray's wrapper."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b.*:", line):
            return line
    return lines[-1] if lines else type(error).__name__


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Make a local Ray start bound to 127.0.0.1 instead of the machine's routable address.

    Ray resolves ``127.0.0.1`` to the routable address unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (the
    switch that keeps Ray local on macOS and Windows): with it, the GCS, raylet, workers and agents all listen on
    loopback. The variable is set for the processes Ray starts here and restored afterwards, so a later
    ``--address`` connection in the same process is unaffected.
    """
    from ray._private import ray_constants  # the optional sweep extra; read at call time by ray's services

    name = getattr(ray_constants, "ENABLE_RAY_CLUSTERS_ENV_VAR", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    saved_env, saved_flag = os.environ.get(name), getattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    os.environ[name], ray_constants.ENABLE_RAY_CLUSTER = "0", False  # the flag was read when ray was imported
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved_env


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
        quiet = {"include_dashboard": False, "log_to_driver": verbose > 1, "configure_logging": verbose > 0}
        if address is None:  # a private local Ray on loopback only (never an existing cluster found by chance)
            with loopback_only():
                ray.init(address="local", _node_ip_address="127.0.0.1", **quiet)
        else:
            loopback = address.rpartition("://")[2].startswith(("127.", "localhost"))
            try:  # a cluster started on loopback is reached on loopback (else Ray rewrites 127.0.0.1)
                with loopback_only() if loopback else contextlib.nullcontext():
                    ray.init(address=address, **quiet)
            except ConnectionError as exc:
                raise UsageError(
                    f"could not connect to the Ray cluster at {address} ({exc}); check `ray status` on the head node, "
                    "and if the cluster uses token authentication (on by default since Ray 2.59), "
                    "export RAY_AUTH_MODE=token on this machine"
                ) from None
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
            print(
                f"lpds sweep: trial {cfg['name']} seed {cfg['seed']} failed: {trial_error(result.error)}",
                file=sys.stderr,
            )
    print(final_table(cfgs))
    if failed:
        print(f"lpds sweep: {failed} of {len(cfgs)} trials failed (logs under {out / '_ray'})", file=sys.stderr)
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
