"""The robomimic zoo pipeline (``lift``, ``can``, ``square`` on robosuite): scripted demonstrations recorded in
robomimic's HDF5 layout, then diffusion and flow backbones on them.

robomimic's human demonstrations cannot be downloaded here, so we make our own with the scripted controllers of
:mod:`lpds_envs.backbones.zoo.robomimic_scripts` (privileged object, handle, peg and bin poses; waypoints, per-episode
styles and parameters, correlated action noise).

``demos`` records ``--episodes`` controller episodes into ``ZOO/<task>/demos.hdf5`` (robomimic's layout, see
:mod:`lpds_envs.backbones.zoo.robomimic_hdf5`; episode ``i`` resets with seed ``seed + i``) and ``dataset.json`` (how the
data were made, the controller's success rate overall and per style). An episode ends ``--tail`` steps after the
first successful step (robomimic's demos end at success) or at the task's time limit. Resumable: every finished
episode is flushed to the file, and an interrupted run continues from the demos already there.

Stages (each skips what is already done, so re-running a command resumes it):

1. ``demos``: the scripted episodes (above).
2. ``backbone``: a diffusion and a flow backbone on the successful demos' ``(obs, chunk)`` pairs (robomimic's human
   datasets hold successful demos only), DPPO's robomimic backbone where it fits (:data:`BACKBONE_DEFAULTS`), saved
   to ``ZOO/<task>/{diffusion,flow}/`` with the BC loss.
3. ``evaluate``: each backbone's success rate over ``--eval-episodes`` (default 50) full episodes with prior latents
   ``w ~ N(0, I)`` clipped to the task's latent box (``eval.json``).
4. ``ship`` (not part of ``all``): copy both into the lpds-zoo data package as ``packages/lpds-zoo/lpds_zoo/checkpoints/robomimic-<task>-{diffusion,flow}/``
   with a card and a fingerprint, which makes ``LPDS-<Task>-v0`` usable.

Example::

    python -m lpds_envs.backbones.zoo.robomimic all --task lift --episodes 200 --out zoo/robomimic
    python -m lpds_envs.backbones.zoo.robomimic ship --task lift --out zoo/robomimic
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from lpds_envs.backbones.shipped import ZOO_SOURCE_DIR, copy_for_shipping, describe_sampler, write_fingerprint
from lpds_envs.backbones.train import train_backbone
from lpds_envs.backbones.zoo.cards import write_card as write_backbone_card
from lpds_envs.backbones.zoo.common import add_backbone_options, atomic_json, parse_stage_args
from lpds_envs.backbones.zoo.robomimic_hdf5 import (
    RobomimicDemo,
    count_demos,
    load_robomimic_chunks,
    open_writer,
    write_demo,
    write_masks,
)
from lpds_envs.backbones.zoo.robomimic_scripts import CONTROLLERS, RobomimicController
from lpds_envs.decoders import load_decoder
from lpds_envs.envs.robomimic import EXTRA_OBS_KEYS, OBS_KEYS, TASKS, env_args
from lpds_envs.evaluation import prior_episodes

#: default controller action noise (OU std in action units, per-episode scale drawn in [0.5, 1.5] x this)
DEMO_NOISE: dict[str, float] = {"lift": 0.1, "can": 0.1, "square": 0.1}
#: steps recorded after the first successful step
DEMO_TAIL = 10
KINDS = ("diffusion", "flow")
#: DPPO's robomimic Lift/Can backbone (``DiffusionMLP`` of ajwagen/dsrl ``cfg/robomimic/dsrl_lift.yaml``): chunk Ta = 4,
#: residual MLP 3 x 512, time embedding 16, x0 clipped to [-1, 1], min-max observation scaling; DDIM with ``ddim_steps``
#: (8) deterministic steps of the task's training schedule (``denoising_steps``: 20; Square 100). DPPO's Square backbone
#: is larger (3 x 1024, time 32, an observation MLP); ours is 3 x 512 (Square: see :data:`HIDDEN_DIM`).
BACKBONE_DEFAULTS: dict[str, Any] = {"chunk_size": 4, "n_blocks": 3, "time_embed_dim": 16}
#: per-task hidden width (``--hidden-dim`` overrides it). Square's backbones are 3 x 256 (1.7 MB each instead of
#: ~6.3 MB): the wheel carries every shipped checkpoint and must stay under PyPI's 100 MB file limit
#: (tests/test_package.py), which two more 3 x 512 checkpoints would cross.
HIDDEN_DIM: dict[str, int] = {"lift": 512, "can": 512, "square": 256}
#: DSRL's latent box for the robomimic tasks (``train.action_magnitude`` of its robomimic configs)
LATENT_BOUND = 1.5


def make_raw_env(task: str, **kwargs: Any):
    """``gym.make("lpds/<Task>-v0")`` for ``task`` in ``lift``, ``can``, ``square``."""
    if task not in TASKS:
        raise ValueError(f"unknown robomimic task {task!r}; known: {sorted(TASKS)}")
    return gym.make(f"lpds/{task.capitalize()}-v0", **kwargs)


def run_controller(
    env, controller: RobomimicController, seed: int, tail: int | None = DEMO_TAIL, model_file: bool = True
) -> tuple[RobomimicDemo, bool]:
    """One episode of ``controller`` from ``env.reset(seed=seed)`` (controller noise seeded from ``seed`` too).

    :param tail: stop this many steps after the first successful step (``None``: run to the time limit)
    :param model_file: store the episode's MuJoCo XML in the demo's attrs (robomimic's ``model_file``)
    :return: the demo and whether any step succeeded
    """
    env.reset(seed=seed)
    raw = env.unwrapped
    controller.reset(env, np.random.default_rng(seed + 1_000_003))
    keys = OBS_KEYS + EXTRA_OBS_KEYS
    obs, next_obs = defaultdict(list), defaultdict(list)
    actions, rewards, states = [], [], []
    current = raw.observation_dict()
    first_success, done = None, False
    while not done:
        states.append(raw.get_state())
        action = controller.act()
        _, _, terminated, truncated, info = env.step(action)
        after = raw.observation_dict()
        for k in keys:
            obs[k].append(current[k])
            next_obs[k].append(after[k])
        current = after
        actions.append(action)
        rewards.append(float(info["success"]))
        if info["success"] and first_success is None:
            first_success = len(actions)
        done = (
            terminated
            or truncated
            or (tail is not None and first_success is not None and len(actions) >= first_success + tail)
        )
    n = len(actions)
    attrs: dict[str, Any] = {
        "seed": seed,
        "style": controller.style,
        "success": first_success is not None,
        "first_success": -1 if first_success is None else first_success,
        "retries": controller.retries,
    }
    if model_file:
        attrs["model_file"] = raw.model_xml()
    demo = RobomimicDemo(
        obs={k: np.asarray(v) for k, v in obs.items()},
        next_obs={k: np.asarray(v) for k, v in next_obs.items()},
        actions=np.asarray(actions, dtype=np.float64),
        rewards=np.asarray(rewards, dtype=np.float64),
        dones=(np.arange(n) == n - 1).astype(np.int64),
        states=np.asarray(states, dtype=np.float64),
        attrs=attrs,
    )
    return demo, first_success is not None


def record_demos(
    task: str,
    out: str | Path,
    episodes: int,
    seed: int = 0,
    noise: float | None = None,
    tail: int | None = DEMO_TAIL,
    model_file: bool = True,
    progress: bool = True,
) -> Path:
    """Record ``episodes`` scripted episodes into ``out/<task>/demos.hdf5`` (resumable) and ``dataset.json``.

    :param task: ``lift``, ``can`` or ``square``
    :param out: zoo folder
    :param episodes: number of episodes wanted in the file (episode ``i`` resets with seed ``seed + i``)
    :param noise: controller action noise (default :data:`DEMO_NOISE`)
    :param tail: steps kept after the first success (``None``: whole episodes)
    :return: the path of the HDF5 file
    """
    import h5py
    from tqdm.auto import tqdm

    noise = DEMO_NOISE[task] if noise is None else float(noise)
    folder = Path(out) / task
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demos.hdf5"
    config = {"task": task, "seed": seed, "noise": noise, "tail": tail, "controller": CONTROLLERS[task].__name__}
    env = make_raw_env(task)
    controller = CONTROLLERS[task](noise=noise)
    t0 = time.time()
    f = open_writer(path, env_args(task), config)
    try:
        start = count_demos(f)
        bar = tqdm(
            range(start, episodes),
            initial=start,
            total=episodes,
            desc=f"demos {task}",
            disable=not progress,
            mininterval=2.0,
        )
        for i in bar:
            demo, _ = run_controller(env, controller, seed + i, tail=tail, model_file=model_file)
            write_demo(f, i, demo)
        write_masks(f)
    finally:
        f.close()
        env.close()
    with h5py.File(path, "r") as f:
        data = f["data"]
        names = sorted(data.keys(), key=lambda k: int(k.split("_")[1]))[:episodes]
        success = [bool(data[n].attrs["success"]) for n in names]
        styles = [str(data[n].attrs["style"]) for n in names]
        lengths = [int(data[n].attrs["num_samples"]) for n in names]
    by_style = {s: float(np.mean([ok for ok, st in zip(success, styles) if st == s])) for s in sorted(set(styles))}
    meta = {
        "task": task,
        "robosuite_env": TASKS[task].env_name,
        "episodes": len(names),
        "transitions": int(sum(lengths)),
        "success_rate": float(np.mean(success)),
        "success_rate_by_style": by_style,
        "style_counts": {s: styles.count(s) for s in sorted(set(styles))},
        "mean_length": float(np.mean(lengths)),
        "obs_keys": list(OBS_KEYS),
        "config": config,
        "max_episode_steps": TASKS[task].max_episode_steps,
        "how": f"scripted {CONTROLLERS[task].__name__} (privileged simulator state, waypoints, styles, OU noise)",
        "command": f"python -m lpds_envs.backbones.zoo.robomimic demos --task {task} --episodes {episodes} "
        f"--seed {seed} --noise {noise} --out {out}",
        "seconds_this_run": round(time.time() - t0, 1),
    }
    atomic_json(meta, folder / "dataset.json")
    return path


def _sampler_kwargs(task: str, kind: str) -> dict[str, Any]:
    spec = TASKS[task]
    if kind == "diffusion":
        return {
            "num_train_timesteps": spec.denoising_steps,
            "num_inference_steps": spec.ddim_steps,
            "beta_schedule": "cosine",
            "clip_sample": True,
        }
    return {"num_inference_steps": spec.ddim_steps, "integrator": "euler"}


def train_backbones(
    task: str,
    out: Path,
    steps: int,
    batch_size: int = 256,
    seed: int = 0,
    kinds: tuple[str, ...] = KINDS,
    successful_only: bool = True,
    max_demos: int | None = None,
    hidden_dim: int | None = None,
) -> dict[str, Path]:
    """Stage 2 (resumable through ``train_backbone``): diffusion and flow backbones on the same chunks of
    ``out/<task>/demos.hdf5`` (``kinds`` picks some, e.g. to train the two in parallel processes).

    :param max_demos: train on the first ``max_demos`` (successful) demos only, in the file's order; fewer demos give
        a weaker backbone (robomimic's low-data regime), which leaves steering room on an easy task such as Lift
    :param hidden_dim: width of the residual MLP (default: the task's :data:`HIDDEN_DIM`)
    """

    path = Path(out) / task / "demos.hdf5"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; run the demos stage first "
            f"(python -m lpds_envs.backbones.zoo.robomimic demos --task {task} --out {out})"
        )
    data = load_robomimic_chunks(
        path, BACKBONE_DEFAULTS["chunk_size"], filter_key="successful" if successful_only else None, max_demos=max_demos
    )
    width = HIDDEN_DIM[task] if hidden_dim is None else int(hidden_dim)
    if width < 1:
        raise ValueError(f"hidden_dim must be >= 1, got {hidden_dim}")
    common = {
        "hidden_dim": width,
        "n_blocks": BACKBONE_DEFAULTS["n_blocks"],
        "time_embed_dim": BACKBONE_DEFAULTS["time_embed_dim"],
    }
    outs = {}
    for kind in kinds:
        folder = Path(out) / task / kind
        train_backbone(
            kind,
            data,
            out_dir=folder,
            steps=steps,
            batch_size=batch_size,
            seed=seed,
            obs_normalization="minmax",
            **common,
            **_sampler_kwargs(task, kind),
        )
        note = folder / "data.json"
        if not note.is_file():
            atomic_json(
                {
                    "hdf5": str(path),
                    "filter_key": "successful" if successful_only else None,
                    "max_demos": max_demos,
                    "pairs": len(data),
                },
                note,
            )
        outs[kind] = folder
    return outs


def evaluate_backbones(
    task: str, out: Path, episodes: int = 50, seed: int = 10_000, n_envs: int = 10, kinds: tuple[str, ...] = KINDS
) -> dict[str, dict]:
    """Stage 3: success rate of each backbone with prior latents ``w ~ N(0, I)`` clipped to :data:`LATENT_BOUND`,
    ``episodes`` full episodes (DSRL runs to the time limit), sub-env ``i`` of round ``k`` reset with ``seed + k + i``."""

    results = {}
    for kind in kinds:
        folder = Path(out) / task / kind
        path = folder / "eval.json"
        if path.is_file():
            results[kind] = json.loads(path.read_text())
            continue
        t0 = time.time()
        batch = prior_episodes(
            f"lpds/{task.capitalize()}-v0", load_decoder(folder), episodes, seed, n_envs, LATENT_BOUND
        )
        results[kind] = {
            "episodes": episodes,
            "success_rate": float(batch.success.mean()),
            "successes": int(batch.success.sum()),
            "length_mean": float(batch.lengths.mean()),
            "seed": seed,
            "latent_bound": LATENT_BOUND,
            "success_definition": "info['success'] at any step of the episode",
            "seconds": round(time.time() - t0, 1),
        }
        atomic_json(results[kind], path)
        print(
            f"[{task}] {kind} backbone with prior latents: success {results[kind]['success_rate']:.2f} "
            f"({results[kind]['successes']}/{episodes})",
            flush=True,
        )
    return results


def checkpoint_name(task: str, kind: str) -> str:
    """Package checkpoint folder of a robomimic backbone, e.g. ``robomimic-lift-diffusion``."""
    return f"robomimic-{task}-{kind}"


CARD = """# robomimic {Task} {kind} backbone (lpds robomimic zoo)

Frozen {kind} policy for the robomimic task {Task} (robosuite `{suite_env}`, Panda, OSC_POSE, low-dim observations),
shipped with lpds as `LPDS-{Task}-v0`'s {role} backbone (`gym.make("LPDS-{Task}-v0", backbone="{kind}")`; paper
Sec. 5.1, App. A.1). Needs the `robomimic` extra (robosuite 1.5.2 on mujoco 3.3.7-3.9.0).

- **Data**: robomimic's human demonstrations and DPPO's checkpoints cannot be downloaded here, so the data are
  {episodes} episodes of the scripted controller `{controller}` (privileged object and gripper poses, waypoints,
  per-episode approach styles, OU action noise {noise}); controller success {script_success:.0%} ({styles}).
  Trained on the {pairs:,} `(obs, chunk)` pairs of {subset}, in robomimic's HDF5 layout. Regenerated (resumable) by
  `python -m lpds_envs.backbones.zoo.robomimic all --task {task} --episodes {episodes} --noise {noise} --bc-steps {steps}{demos_flag}{width_flag}`,
  then `... ship --task {task}`.
- **Model**: {model} residual MLP ({params:,} parameters, hidden {hidden_dim} x {n_blocks} blocks, time embedding
  {time_embed_dim}), action chunk Ta = {chunk_size}, {sampler}; observations min-max scaled to [-1, 1] and actions to
  [-1, 1], both stored in the checkpoint.
- **Training**: {steps:,} AdamW steps, batch {batch_size}, EMA {ema_decay}; final BC loss (EMA-smoothed) {bc_loss:.4f}.
- **With prior latents** (the frozen backbone itself), {eval_episodes} full episodes of {max_steps} steps (reset seeds
  {eval_seed}..), latent box {latent_bound}: success **{success_rate:.0%}** ({successes}/{eval_episodes}).{range_note}
"""

#: the backbone success band the zoo aims for (steering needs room to improve, the backbone must work sometimes)
TARGET_SUCCESS = (0.2, 0.7)


def _range_note(success: float) -> str:
    low, high = TARGET_SUCCESS
    if low <= success <= high:
        return ""
    room = (
        f"only {1 - success:.0%} of episodes fail, less room for steering to raise success"
        if success > high
        else f"it succeeds in {success:.0%} of episodes, so sparse-reward steering sees few successes early on"
    )
    return (
        f"\n- **Outside the {low:.0%}-{high:.0%} band** the zoo aims for: {room}. With DSRL's reward "
        "(-1 per raw step until the task is done, episodes to the time limit) the return still measures how "
        "fast and how steadily the task is done, which steering can improve."
    )


def ship_backbones(task: str, out: Path, dest_root: Path | None = None) -> list[Path]:
    """Stage 4: copy both evaluated backbones into the lpds-zoo data package (``lpds_zoo/checkpoints/robomimic-<task>-<kind>``) with cards
    and fingerprints."""

    meta = json.loads((Path(out) / task / "dataset.json").read_text())
    written = []
    for kind in KINDS:
        src = Path(out) / task / kind
        dest = (Path(dest_root) if dest_root is not None else ZOO_SOURCE_DIR) / checkpoint_name(task, kind)
        notes = src / "data.json"  # which demos the backbone was trained on (written by the backbone stage)
        if not notes.is_file():
            raise FileNotFoundError(f"{notes} is missing; run the backbone and evaluate stages first")
        data = {**meta, **json.loads(notes.read_text())}
        notes_max = data.get("max_demos")
        data.pop("hdf5", None)  # a local path
        training, ev, params = copy_for_shipping(src, dest, data)
        cfg = training["decoder"]
        model, sampler = describe_sampler(kind, cfg)
        styles = ", ".join(f"{k} {v:.0%}" for k, v in meta["success_rate_by_style"].items())
        write_backbone_card(
            dest,
            CARD.format(
                Task=task.capitalize(),
                task=task,
                kind=kind,
                suite_env=meta["robosuite_env"],
                role="default" if kind == "diffusion" else "alternative",
                episodes=meta["episodes"],
                controller=meta["config"]["controller"],
                noise=meta["config"]["noise"],
                script_success=meta["success_rate"],
                styles=styles,
                pairs=training["data"]["pairs"],
                subset=(
                    "its successful episodes (`mask/successful`)"
                    if notes_max is None
                    else f"the first {notes_max} of its successful episodes (`mask/successful`; few demos, robomimic's "
                    "low-data regime, give a backbone that fails sometimes)"
                ),
                demos_flag="" if notes_max is None else f" --max-demos {notes_max}",
                width_flag="" if cfg["hidden_dim"] == HIDDEN_DIM[task] else f" --hidden-dim {cfg['hidden_dim']}",
                model=model,
                params=params,
                sampler=sampler,
                steps=training["steps"],
                batch_size=training["batch_size"],
                ema_decay=training["ema_decay"],
                bc_loss=training["final_bc_loss"],
                eval_episodes=ev["episodes"],
                max_steps=TASKS[task].max_episode_steps,
                eval_seed=ev["seed"],
                latent_bound=ev["latent_bound"],
                success_rate=ev["success_rate"],
                successes=ev["successes"],
                range_note=_range_note(ev["success_rate"]),
                **{k: cfg[k] for k in ("hidden_dim", "n_blocks", "time_embed_dim", "chunk_size")},
            ),
        )
        if dest_root is None:
            write_fingerprint(dest.name)
        written.append(dest)
    return written


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description="robomimic zoo: scripted demonstrations in robomimic's HDF5 layout, diffusion and flow backbones"
    )
    p.add_argument(
        "stage",
        choices=["demos", "backbone", "evaluate", "ship", "all"],
        help="all = demos, backbone, evaluate (ship is separate: it writes into packages/lpds-zoo)",
    )
    p.add_argument("--task", required=True, choices=sorted(TASKS))
    p.add_argument("--out", default="zoo/robomimic", help="working folder (not committed)")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--noise", type=float, default=None, help="controller action noise (default: per task)")
    p.add_argument("--tail", type=int, default=DEMO_TAIL, help="steps kept after the first success (-1: all)")
    add_backbone_options(
        p, KINDS, 20_000, "backbones of the backbone/evaluate stages (one per process runs them in parallel)"
    )
    p.add_argument(
        "--max-demos",
        type=int,
        default=None,
        help="backbone stage: train on the first N successful demos only (default: all)",
    )
    p.add_argument(
        "--hidden-dim",
        type=int,
        default=None,
        help="backbone stage: residual MLP width (default: per task, HIDDEN_DIM: 512; Square 256)",
    )
    p.add_argument("--eval-episodes", type=int, default=50)
    args = parse_stage_args(p, argv)
    out = Path(args.out)
    if args.stage in ("demos", "all"):
        path = record_demos(
            args.task, out, args.episodes, seed=args.seed, noise=args.noise, tail=None if args.tail < 0 else args.tail
        )
        meta = json.loads((path.parent / "dataset.json").read_text())
        print(
            f"{path}: {meta['episodes']} episodes, {meta['transitions']} transitions, "
            f"success {meta['success_rate']:.2f} {meta['success_rate_by_style']}"
        )
    if args.stage in ("backbone", "all"):
        train_backbones(
            args.task,
            out,
            args.bc_steps,
            seed=args.seed,
            kinds=tuple(args.kinds),
            max_demos=args.max_demos,
            hidden_dim=args.hidden_dim,
        )
    if args.stage in ("evaluate", "all"):
        evaluate_backbones(args.task, out, episodes=args.eval_episodes, kinds=tuple(args.kinds))
    if args.stage == "ship":
        for dest in ship_backbones(args.task, out):
            print("shipped", dest)


if __name__ == "__main__":
    main()
