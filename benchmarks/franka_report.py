"""Report of the Franka study (``benchmarks/franka_study.sh``; issue 34 part 6, paper Sec. 5.7, App. G, Tables 5-6):
adapt in the nominal simulator, deploy without further learning in the shifted one (``shift="deployment"``) and in
one shifted half as far (``shift="mild"``).

Writes into ``--out``:

- ``learning_curves_LPDS-FrankaMugHang-v0.{png,pdf}`` and ``final_performance.md`` (``lpds plot``), ``records/``;
- ``final_paired.json`` (cache): each final mug-hanging model of ``lpds`` and ``dsrl`` and the frozen backbone (prior
  latents) on the same ``--episodes`` reset seeds (``--seed`` + i, separate from the training evaluations' 10000+)
  *and the same latent noise* (``compare_with_backbone``'s common random numbers: the backbone's ``w = eps``, LP-DS's
  ``eps + Delta(s)``), in the nominal, the mildly shifted and the shifted simulator; each learner with its own
  evaluation policy (the run's ``eval_deterministic``: stochastic for both); with the paired standard error and the
  discordant episodes;
- ``pick_place_paired.json`` (cache): the same for each final pick-and-place model, ``--trials`` per grid position
  (Table 5 layout);
- ``deployed.json`` (cache): each LP-DS final model exported with ``export_steered_policy`` (stochastic: the loop
  draws eps) and run by ``examples/deploy_franka.py``'s torch-only control loop in the shifted raw simulator, the
  path a robot deployment takes;
- ``shift_parts.json`` (cache): the mug-hanging backbone under each part of the shift alone (friction, mass, joint
  gain, latency);
- ``draw_noise.json`` (cache): the backbone with other prior draws and an untrained LP-DS, to size the luck of one
  set of latent draws (every LP-DS model is evaluated with the same eps draws);
- ``pick_place_backbone.json`` (cache): the pick-and-place backbone per grid position (Table 5 layout), ``--trials``
  per position, in each simulator;
- ``pick_place_shift_parts.json`` (cache): the pick-and-place backbone under each part of the shift alone, and under
  camera moves of 10, 25 and 50% of the shift's;
- ``summary.md``: those numbers in the layout of the paper's Tables 5 and 6.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/franka_report.py [--runs DIR] [--out DIR] [--episodes N] [--trials N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "examples"))
from _common import add_repo_to_path, keep_records, markdown_table  # noqa: E402

add_repo_to_path()
from lpds_envs.envs.franka.shift import DEPLOYMENT, DEPLOYMENT_NO_CAMERA  # noqa: E402

ENV_ID = "LPDS-FrankaMugHang-v0"
PICK_PLACE = "LPDS-FrankaPickPlace-v0"
POSITIONS = tuple(range(1, 9))
#: the simulators every final model is evaluated in ("shifted": the deployment preset; "mild": half of it)
SHIFTS: dict[str, dict[str, Any]] = {"nominal": {}, "mild": {"shift": "mild"}, "shifted": {"shift": "deployment"}}


def _cache(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _save(path: Path, cache: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cache, indent=1))
    tmp.replace(path)


def final_runs(runs: Path, env_id: str = ENV_ID) -> list[tuple[str, Path]]:
    """``(variant/seed_k, run folder)`` of every finished run on ``env_id``."""
    return [
        (f"{d.parent.name}/{d.name}", d)
        for d in sorted(runs.glob(f"{env_id}/*/seed_*"))
        if (d / "model.zip").is_file() and (d / "config.yaml").is_file()
    ]


def paired_comparison(run_dir: Path, env_id: str, raw_kwargs: dict[str, Any], episodes: int, seed: int) -> dict:
    """A final model and the backbone on the same ``episodes`` reset seeds and latent noise (``compare_with_backbone``
    with shared noise), in ``env_id`` built with the raw-task ``raw_kwargs`` on top of the run's own."""
    from lpds_envs.evaluation import compare_with_backbone
    from lpds_envs.experiment.config import RunConfig, make_run_env
    from lpds_envs.experiment.evaluate import load_trained

    cfg = RunConfig.read(run_dir / "config.yaml")
    env_kwargs = {**cfg.env_kwargs, "env_kwargs": {**cfg.env_kwargs.get("env_kwargs", {}), **raw_kwargs}}
    venv = make_run_env(cfg.spec, env_id, env_kwargs, min(episodes, 10), None, "cpu")
    try:
        if raw_kwargs.get("shift") and venv.envs[0].unwrapped.shift.is_nominal:  # the shifted simulator is shifted
            raise RuntimeError(f"{run_dir}: the env was built without its shift {raw_kwargs['shift']!r}")
        model = load_trained(run_dir / "model.zip", cfg.algo, venv, "cpu")
        r = compare_with_backbone(model, venv, bool(cfg.eval_deterministic), seed, episodes, shared_noise=True)
    finally:
        venv.close()
    return _paired_record(r)


def _paired_record(r: Any) -> dict:
    """A :class:`~lpds_envs.evaluation.BackboneComparison` as a cache entry."""
    return {
        "steered_success": r.steered.success.astype(int).tolist(),
        "backbone_success": r.backbone.success.astype(int).tolist(),
        "steered_return": r.steered.mean_return,
        "backbone_return": r.backbone.mean_return,
        "success_gain_se": r.success_gain_se,
        "discordant": list(r.discordant),
        "shared_noise": r.shared_noise,
    }


def evaluate_finals(runs: list[tuple[str, Path]], out: Path, episodes: int, seed: int) -> dict:
    """Each final mug-hanging model and the backbone on the same reset seeds and noise, in each simulator (cached)."""
    from lpds_envs.experiment.config import RunConfig

    path = out / "final_paired.json"
    cache = _cache(path)
    for name, run_dir in runs:
        steps = RunConfig.read(run_dir / "config.yaml").steps
        for shift, extra in SHIFTS.items():
            key = f"{name}@{steps}/{shift}x{episodes}"
            if key not in cache:
                cache[key] = paired_comparison(run_dir, ENV_ID, extra, episodes, seed)
                _save(path, cache)
                print(key, sum(cache[key]["steered_success"]), "vs backbone", sum(cache[key]["backbone_success"]))
    return cache


def evaluate_pick_place_finals(runs: list[tuple[str, Path]], out: Path, trials: int, seed: int) -> dict:
    """Each final pick-and-place model and the backbone at each grid position, ``trials`` paired episodes each,
    in each simulator (cached): Table 5."""
    from lpds_envs.experiment.config import RunConfig

    path = out / "pick_place_paired.json"
    cache = _cache(path)
    for name, run_dir in runs:
        steps = RunConfig.read(run_dir / "config.yaml").steps
        for shift, extra in SHIFTS.items():
            for position in POSITIONS:
                key = f"{name}@{steps}/{shift}/position_{position}x{trials}"
                if key not in cache:
                    cache[key] = paired_comparison(run_dir, PICK_PLACE, {"position": position, **extra}, trials, seed)
                    _save(path, cache)
                    print(key, sum(cache[key]["steered_success"]), "vs", sum(cache[key]["backbone_success"]))
    return cache


def deploy_exported(runs: list[tuple[str, Path]], out: Path, episodes: int, seed: int) -> dict:
    """LP-DS's final models through the deployment path: one exported file, the torch-only control loop, the shifted
    raw simulator (cached)."""
    from deploy_franka import control_loop, load_exported

    from lpds_envs.experiment.config import RunConfig, make_run_env
    from lpds_envs.experiment.evaluate import load_trained
    from lpds_envs.registration import TASKS, raw_task_kwargs

    path = out / "deployed.json"
    cache = _cache(path)
    raw_id = TASKS["FrankaMugHang"].raw_id
    for name, run_dir in runs:
        cfg = RunConfig.read(run_dir / "config.yaml")
        key = f"{name}@{cfg.steps}/shiftedx{episodes}"
        if not name.startswith("lpds") or key in cache:
            continue
        venv = make_run_env(cfg.spec, ENV_ID, cfg.env_kwargs, 1, None, "cpu")
        try:
            model = load_trained(run_dir / "model.zip", cfg.algo, venv, "cpu")
            with tempfile.TemporaryDirectory() as tmp:
                result = model.export_steered_policy(Path(tmp) / "policy.pt2", deterministic=False, env_id=raw_id)
                if result.format != "torch.export":
                    raise RuntimeError(f"{name}: expected a torch.export file, got {result.format} ({result.reason})")
                policy, meta = load_exported(result.path)
                kwargs = {**raw_task_kwargs(ENV_ID), **SHIFTS["shifted"]}
                report = control_loop(policy, meta, raw_id, episodes, seed, kwargs)
        finally:
            venv.close()
        cache[key] = {"success": [int(s) for s in report["success"]], "format": result.format}
        _save(path, cache)
        print(key, "deployed:", sum(cache[key]["success"]))
    return cache


def backbone_successes(env_id: str, env_kwargs: dict[str, Any], episodes: int, seed: int) -> list[int]:
    """The frozen backbone (prior latents) of ``env_id`` built with raw-task ``env_kwargs``: success (0/1) of each of
    ``episodes`` episodes on reset seeds ``seed`` + i; refuses an env whose requested shift did not take effect."""
    from lpds_envs import make_latent_vec_env
    from lpds_envs.evaluation import PriorPolicy, evaluate_policy

    venv = make_latent_vec_env(env_id, n_envs=min(episodes, 10), env_kwargs=env_kwargs)
    try:
        if env_kwargs.get("shift") and venv.envs[0].unwrapped.shift.is_nominal:
            raise RuntimeError(f"{env_id} was built without its shift {env_kwargs['shift']!r}")
        r = evaluate_policy(PriorPolicy(int(np.prod(venv.action_space.shape)), seed), venv, False, seed, episodes)
    finally:
        venv.close()
    return r.success.astype(int).tolist()


def pick_place_backbone(out: Path, trials: int, seed: int) -> dict:
    """The pick-and-place backbone (prior latents) at each grid position, in each simulator (cached)."""
    path = out / "pick_place_backbone.json"
    cache = _cache(path)
    for shift, extra in SHIFTS.items():
        for position in range(1, 9):
            key = f"{shift}/position_{position}x{trials}"
            if key not in cache:
                cache[key] = {"success": backbone_successes(PICK_PLACE, {"position": position, **extra}, trials, seed)}
                _save(path, cache)
                print(key, sum(cache[key]["success"]))
    return cache


#: the mug's deployment shift, one part at a time (the mug task has no camera)
MUG_SHIFT_PARTS = {k: getattr(DEPLOYMENT_NO_CAMERA, k) for k in ("friction", "mass", "joint_gain", "latency")}


#: the pick-and-place deployment shift, one part at a time
PICK_SHIFT_PARTS = {
    k: getattr(DEPLOYMENT, k) for k in ("friction", "mass", "joint_gain", "latency", "camera_offset", "depth_noise")
}
#: smaller camera moves (fractions of the deployment shift's), to find how far the depth backbone tolerates one
CAMERA_FRACTIONS = (0.1, 0.25, 0.5)


def pick_place_shift_parts(out: Path, episodes: int, seed: int) -> dict:
    """The pick-and-place backbone (random cell each reset) under each part of the deployment shift alone (cached)."""
    path = out / "pick_place_shift_parts.json"
    cache = _cache(path)
    moves = [("camera_offset", tuple(round(f * v, 6) for v in DEPLOYMENT.camera_offset)) for f in CAMERA_FRACTIONS]
    for key, value in [("nominal", None), *PICK_SHIFT_PARTS.items(), *moves]:
        name = f"{key}={value}x{episodes}" if value is not None else f"nominalx{episodes}"
        if name not in cache:
            kwargs = {"shift": {key: value}} if value is not None else {}
            cache[name] = {"success": backbone_successes(PICK_PLACE, kwargs, episodes, seed)}
            _save(path, cache)
            print("pick-and-place backbone with", name, sum(cache[name]["success"]))
    return cache


def shift_parts(out: Path, episodes: int, seed: int) -> dict:
    """The mug-hanging backbone under each part of the deployment shift alone (which perturbation it fails on)."""
    path = out / "shift_parts.json"
    cache = _cache(path)
    for key, value in MUG_SHIFT_PARTS.items():
        name = f"{key}={value}x{episodes}"
        if name not in cache:
            cache[name] = {"success": backbone_successes(ENV_ID, {"shift": {key: value}}, episodes, seed)}
            _save(path, cache)
            print("backbone with", name, sum(cache[name]["success"]))
    return cache


def draw_noise(out: Path, episodes: int, seed: int) -> dict:
    """How much of a success count is the luck of one set of latent draws: the backbone on the same reset seeds with
    other prior draws, and an *untrained* LP-DS (Delta ~ 0, so the backbone's own distribution) evaluated exactly as
    the final models are (its eps draws are the ones every LP-DS model gets, whatever it learned), on two reset-seed
    sets (cached)."""
    from algorithms.presets import make_algorithm
    from lpds_envs.evaluation import PriorPolicy, evaluate_policy
    from lpds_envs.experiment.config import get_algo, make_run_env

    path = out / "draw_noise.json"
    cache = _cache(path)
    venv = make_run_env(get_algo("lpds"), ENV_ID, {}, min(episodes, 10), None, "cpu")
    dim = int(np.prod(venv.action_space.shape))
    untrained = make_algorithm("lpds", ENV_ID, seed=0)
    jobs = [(f"backbone, prior draw {d}, resets {seed}+", PriorPolicy(dim, d), seed) for d in (seed, 1, 2, 3)]
    jobs += [(f"backbone, prior draw {seed + 1000}, resets {seed + 1000}+", PriorPolicy(dim, seed + 1000), seed + 1000)]
    jobs += [(f"untrained LP-DS, resets {s}+", untrained, s) for s in (seed, seed + 1000)]
    try:
        for name, policy, reset_seed in jobs:
            key = f"{name}x{episodes}"
            if key not in cache:
                r = evaluate_policy(policy, venv, False, reset_seed, episodes)
                cache[key] = {"success": r.success.astype(int).tolist()}
                _save(path, cache)
                print(key, sum(cache[key]["success"]))
    finally:
        venv.close()
    return cache


def untrained_paired(out: Path, episodes: int, seed: int, pick_episodes: int) -> dict:
    """The simulator's own noise on a paired count: an *untrained* LP-DS (Delta ~ 1e-3, so the backbone's behaviour)
    against the backbone on the same resets and latent noise, twice; what differs between them is PhysX (not
    bit-deterministic across resets) and the tiny initial Delta (cached)."""
    from algorithms.presets import make_algorithm
    from lpds_envs.evaluation import compare_with_backbone
    from lpds_envs.experiment.config import get_algo, make_run_env

    path = out / "untrained_paired.json"
    cache = _cache(path)
    for env_id, n in ((ENV_ID, episodes), (PICK_PLACE, pick_episodes)):
        for reset_seed in (seed, seed + 1000):
            key = f"{env_id}/resets {reset_seed}+x{n}"
            if key in cache:
                continue
            venv = make_run_env(get_algo("lpds"), env_id, {}, min(n, 10), None, "cpu")
            try:
                model = make_algorithm("lpds", env_id, seed=0)
                r = compare_with_backbone(model, venv, False, reset_seed, n, shared_noise=True)
            finally:
                venv.close()
            cache[key] = _paired_record(r)
            _save(path, cache)
            print("untrained LP-DS vs backbone,", key, cache[key]["discordant"])
    return cache


#: each simulator's place in the tables (:data:`SHIFTS` order)
SHIFT_RANK = {shift: i for i, shift in enumerate(SHIFTS)}


def _shift_order(key: str) -> tuple[str, int, str]:
    """Sort a ``name@steps/shift...`` cache key by run, then simulator in :data:`SHIFTS` order."""
    name, rest = key.split("@")
    return name, SHIFT_RANK[rest.split("/")[1].split("x")[0]], rest


def summary(finals: dict, deployed: dict, pick: dict, episodes: int, trials: int, parts: dict | None = None) -> str:
    """Tables 5 and 6 of the paper, in simulation."""
    lines = []
    rows = []
    per_variant: dict[str, dict[str, list[int]]] = {}
    backbone: dict[str, list[int]] = {}
    for key, r in sorted(finals.items(), key=lambda kv: _shift_order(kv[0])):
        name, rest = key.split("@")
        shift = rest.split("/")[1].split("x")[0]
        variant = name.split("/")[0]
        per_variant.setdefault(variant, {}).setdefault(shift, []).append(sum(r["steered_success"]))
        backbone.setdefault(f"{variant}/{shift}", []).append(sum(r["backbone_success"]))  # the run's paired trials
        dep = deployed.get(f"{name}@{rest.split('/')[0]}/shiftedx{episodes}")
        rows.append(
            [
                name,
                shift,
                f"{sum(r['backbone_success'])}/{episodes}",
                f"{sum(r['steered_success'])}/{episodes}",
                f"{sum(r['steered_success']) - sum(r['backbone_success']):+d}",
                f"{r['success_gain_se'] * episodes:.1f}",
                "{} / {}".format(*r["discordant"]),
                f"{sum(dep['success'])}/{episodes}" if dep is not None and shift == "shifted" else "-",
            ]
        )
    lines.append(
        f"Mug hanging (Table 6 layout, in simulation): successes in {episodes} trials on the same reset seeds for the "
        "frozen backbone (prior latents) and each final policy, sharing their latent noise (the backbone's w = eps, "
        "LP-DS's eps + Delta(s)), adapted in the nominal simulator and run unchanged in the shifted ones (`mild`: half "
        "the `shifted` perturbations); `SE` is the paired standard error of the difference (in trials), "
        "`only steered / only backbone` the discordant trials; "
        "`exported` is the same LP-DS policy exported to one torch.export file and run by the torch-only control "
        "loop of `examples/deploy_franka.py` (its own noise draws):\n"
    )
    lines.append(
        markdown_table(
            [
                "run",
                "simulator",
                "backbone",
                "steered",
                "difference",
                "SE",
                "only steered / only backbone",
                "exported, control loop",
            ],
            rows,
        )
    )
    agg = []
    for variant, by_shift in sorted(per_variant.items()):
        for shift in SHIFTS:
            xs = by_shift.get(shift, [])
            if xs:
                agg.append(
                    [
                        variant,
                        shift,
                        " / ".join(str(b) for b in backbone[f"{variant}/{shift}"]) + f" (of {episodes})",
                        " / ".join(f"{x}" for x in xs) + f" (of {episodes})",
                        f"{np.mean(xs) / episodes:.2f}",
                    ]
                )
    lines.append("\nPer learner, each seed's successes (and the backbone's on each run's paired trials):\n")
    lines.append(markdown_table(["learner", "simulator", "backbone", "seeds", "mean success rate"], agg))
    if parts:
        lines.append(
            f"\nThe mug-hanging backbone under one part of the deployment shift at a time ({episodes} trials, the same "
            "reset seeds):\n"
        )
        lines.append(
            markdown_table(
                ["perturbation", "backbone successes"],
                [[k.split("x")[0], f"{sum(v['success'])}/{episodes}"] for k, v in parts.items()],
            )
        )
    if pick:
        lines.append(
            f"\nPick-and-place backbone per grid position (Table 5 layout: top row 7, 5, 3, 1; bottom row 8, 6, 4, 2), "
            f"successes in {trials} trials each with prior latents (its own latent draws):\n"
        )
        grid_rows = []
        for shift in SHIFTS:
            for row in ((7, 5, 3, 1), (8, 6, 4, 2)):
                cells = []
                for p in row:
                    r = pick.get(f"{shift}/position_{p}x{trials}")
                    cells.append(f"{p}: {sum(r['success'])}/{trials}" if r else f"{p}: -")
                grid_rows.append([shift, *cells])
        lines.append(markdown_table(["simulator", "col 1", "col 2", "col 3", "col 4"], grid_rows))
    return "\n".join(lines) + "\n"


def pick_place_table(finals: dict, trials: int) -> str:
    """Table 5 in simulation: per final pick-and-place model, simulator and grid position, the backbone's and the
    steered policy's successes on the same paired trials."""
    by_run: dict[tuple[str, str], dict[int, dict]] = {}
    for key, r in finals.items():
        name, rest = key.split("@")
        _, shift, cell = rest.split("/")
        by_run.setdefault((name, shift), {})[int(cell.split("_")[1].split("x")[0])] = r
    rows = []
    for (name, shift), cells in sorted(by_run.items(), key=lambda kv: (kv[0][0], SHIFT_RANK[kv[0][1]])):
        for row in ((7, 5, 3, 1), (8, 6, 4, 2)):
            rows.append(
                [
                    name,
                    shift,
                    *(
                        f"{p}: {sum(cells[p]['backbone_success'])} → {sum(cells[p]['steered_success'])}"
                        if p in cells
                        else f"{p}: -"
                        for p in row
                    ),
                ]
            )
        total_b = sum(sum(c["backbone_success"]) for c in cells.values())
        total_s = sum(sum(c["steered_success"]) for c in cells.values())
        only_s = sum(c["discordant"][0] for c in cells.values())
        only_b = sum(c["discordant"][1] for c in cells.values())
        n = trials * len(cells)
        rows.append(
            [
                name,
                shift,
                f"total {total_b}/{n} → {total_s}/{n}",
                f"only steered {only_s}",
                f"only backbone {only_b}",
                "",
            ]
        )
    return (
        f"Pick-and-place (Table 5 layout, in simulation; top row 7, 5, 3, 1, bottom row 8, 6, 4, 2): backbone → "
        f"steered successes in {trials} paired trials per grid position (same reset seeds and latent noise):\n\n"
        + markdown_table(["run", "simulator", "col 1", "col 2", "col 3", "col 4"], rows)
        + "\n"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", default="benchmarks/results/runs_franka")
    p.add_argument("--out", default="benchmarks/results/franka")
    p.add_argument("--episodes", type=int, default=40, help="mug-hanging trials per policy and simulator")
    p.add_argument("--trials", type=int, default=5, help="pick-and-place trials per grid position")
    p.add_argument(
        "--pick-episodes", type=int, default=24, help="pick-and-place trials (random cells) per shift part / check"
    )
    p.add_argument("--seed", type=int, default=30_000)
    p.add_argument("--skip-pick-place", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    from lpds_envs.experiment.plotting import plot_runs

    out, runs = Path(args.out), Path(args.runs)
    out.mkdir(parents=True, exist_ok=True)
    finished = final_runs(runs)
    if finished:
        keep_records(runs, ENV_ID, out)
        plot_runs([runs], out=out)
    pick_finished = final_runs(runs, PICK_PLACE)
    if pick_finished:
        keep_records(runs, PICK_PLACE, out / "pick_place")  # its own records/ (same run names as the mug runs)
    finals = evaluate_finals(finished, out, args.episodes, args.seed)
    pick_finals = evaluate_pick_place_finals(pick_finished, out, args.trials, args.seed)
    deployed = deploy_exported(finished, out, args.episodes, args.seed)
    pick = {} if args.skip_pick_place else pick_place_backbone(out, args.trials, args.seed)
    parts = shift_parts(out, args.episodes, args.seed)
    pick_parts = {} if args.skip_pick_place else pick_place_shift_parts(out, args.pick_episodes, args.seed)
    noise = draw_noise(out, args.episodes, args.seed)
    untrained = untrained_paired(out, args.episodes, args.seed, args.pick_episodes)
    text = summary(finals, deployed, pick, args.episodes, args.trials, parts)
    text += (
        "\nThe simulator's own noise on a paired count: an untrained LP-DS (Delta ~ 0) against the backbone on the "
        "same resets and latent noise (successes, and the discordant trials: only LP-DS / only the backbone):\n\n"
        + markdown_table(
            ["task, resets", "untrained LP-DS", "backbone", "only LP-DS / only backbone"],
            [
                [
                    k.rsplit("x", 1)[0],
                    sum(v["steered_success"]),
                    sum(v["backbone_success"]),
                    "{} / {}".format(*v["discordant"]),
                ]
                for k, v in untrained.items()
            ],
        )
        + "\n"
    )
    if pick_parts:
        text += (
            f"\nThe pick-and-place backbone (a random grid cell each reset) under one part of the deployment shift at "
            f"a time ({args.pick_episodes} trials, the same reset seeds):\n\n"
            + markdown_table(
                ["perturbation", "backbone successes"],
                [[k.rsplit("x", 1)[0], f"{sum(v['success'])}/{args.pick_episodes}"] for k, v in pick_parts.items()],
            )
            + "\n"
        )
    if pick_finals:
        text += "\n" + pick_place_table(pick_finals, args.trials)
    text += (
        "\nThe luck of one set of latent draws (successes, nominal simulator):\n\n"
        + markdown_table(
            ["policy and episodes", "successes"],
            [[k.rsplit("x", 1)[0], f"{sum(v['success'])}/{args.episodes}"] for k, v in noise.items()],
        )
        + "\n"
    )
    (out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
