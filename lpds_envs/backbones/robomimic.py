"""The robomimic zoo pipeline (``lift``, ``can``, ``square`` on robosuite): scripted demonstrations recorded in
robomimic's HDF5 layout.

robomimic's human demonstrations cannot be downloaded here, so we make our own with the scripted controllers of
:mod:`lpds_envs.backbones.robomimic_scripts` (privileged object, handle, peg and bin poses; waypoints, per-episode
styles and parameters, correlated action noise).

``demos`` records ``--episodes`` controller episodes into ``ZOO/<task>/demos.hdf5`` (robomimic's layout, see
:mod:`lpds_envs.backbones.robomimic_hdf5`; episode ``i`` resets with seed ``seed + i``) and ``dataset.json`` (how the
data were made, the controller's success rate overall and per style). An episode ends ``--tail`` steps after the
first successful step (robomimic's demos end at success) or at the task's time limit. Resumable: every finished
episode is flushed to the file, and an interrupted run continues from the demos already there.

Example::

    python -m lpds_envs.backbones.robomimic demos --task lift --episodes 200 --out zoo/robomimic
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..envs.robomimic import EXTRA_OBS_KEYS, OBS_KEYS, TASKS, env_args
from .robomimic_hdf5 import RobomimicDemo, count_demos, open_writer, write_demo, write_masks
from .robomimic_scripts import CONTROLLERS, RobomimicController

#: default controller action noise (OU std in action units, per-episode scale drawn in [0.5, 1.5] x this)
DEMO_NOISE: dict[str, float] = {"lift": 0.1, "can": 0.1, "square": 0.1}
#: steps recorded after the first successful step
DEMO_TAIL = 10


def make_raw_env(task: str, **kwargs: Any):
    """``gym.make("lpds/<Task>-v0")`` for ``task`` in ``lift``, ``can``, ``square``."""
    import gymnasium as gym

    import lpds_envs  # noqa: F401  (registers the ids)

    if task not in TASKS:
        raise ValueError(f"unknown robomimic task {task!r}; known: {sorted(TASKS)}")
    return gym.make(f"lpds/{task.capitalize()}-v0", **kwargs)


def run_controller(env, controller: RobomimicController, seed: int, tail: int | None = DEMO_TAIL,
                   model_file: bool = True) -> tuple[RobomimicDemo, bool]:
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
        done = terminated or truncated or (
            tail is not None and first_success is not None and len(actions) >= first_success + tail)
    n = len(actions)
    attrs: dict[str, Any] = {"seed": seed, "style": controller.style, "success": first_success is not None,
                             "first_success": -1 if first_success is None else first_success,
                             "retries": controller.retries}
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


def _atomic_json(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def record_demos(task: str, out: str | Path, episodes: int, seed: int = 0, noise: float | None = None,
                 tail: int | None = DEMO_TAIL, model_file: bool = True, progress: bool = True) -> Path:
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
        bar = tqdm(range(start, episodes), initial=start, total=episodes, desc=f"demos {task}",
                   disable=not progress, mininterval=2.0)
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
        "task": task, "robosuite_env": TASKS[task].env_name, "episodes": len(names), "transitions": int(sum(lengths)),
        "success_rate": float(np.mean(success)), "success_rate_by_style": by_style,
        "style_counts": {s: styles.count(s) for s in sorted(set(styles))},
        "mean_length": float(np.mean(lengths)), "obs_keys": list(OBS_KEYS), "config": config,
        "max_episode_steps": TASKS[task].max_episode_steps,
        "how": f"scripted {CONTROLLERS[task].__name__} (privileged simulator state, waypoints, styles, OU noise)",
        "command": f"python -m lpds_envs.backbones.robomimic demos --task {task} --episodes {episodes} "
                   f"--seed {seed} --noise {noise} --out {out}",
        "seconds_this_run": round(time.time() - t0, 1),
    }
    _atomic_json(meta, folder / "dataset.json")
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="robomimic zoo: scripted demonstrations in robomimic's HDF5 layout")
    p.add_argument("stage", choices=["demos"])
    p.add_argument("--task", required=True, choices=sorted(TASKS))
    p.add_argument("--out", default="zoo/robomimic", help="working folder (not committed)")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--noise", type=float, default=None, help="controller action noise (default: per task)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tail", type=int, default=DEMO_TAIL, help="steps kept after the first success (-1: all)")
    args = p.parse_args(argv)
    if args.stage == "demos":
        path = record_demos(args.task, Path(args.out), args.episodes, seed=args.seed, noise=args.noise,
                            tail=None if args.tail < 0 else args.tail)
        meta = json.loads((path.parent / "dataset.json").read_text())
        print(f"{path}: {meta['episodes']} episodes, {meta['transitions']} transitions, "
              f"success {meta['success_rate']:.2f} {meta['success_rate_by_style']}")


if __name__ == "__main__":
    main()
