"""Scripted demonstrations and flow backbones for the Franka tasks (``lpds/FrankaPickPlace-v0``,
``lpds/FrankaMugHang-v0``; paper Sec. 5.7, App. G).

The paper's demonstrations are human teleoperation; here KOMO (``robotic``'s optimiser) plans each episode and a
noisy joint-space tracker executes it (:mod:`lpds_envs.backbones.zoo.franka_scripts`): per-demonstration speed,
Ornstein-Uhlenbeck action noise, jittered grasp and place points, hesitations, and two grasp styles per task. Only
successful episodes are kept (the acceptance rate is the scripted success rate, reported per grid position).

Measured (seed 0, ``demos --episodes 120`` / ``160``; 2026-12-06, 2 shared CPU cores): pick-and-place 117 of 120
episodes (15 of 15 at grid positions 1-5 and 7, 14 of 15 at position 6, 13 of 15 at position 8, the bottom-left cell;
style "yz" 64 of 64, "xz" 53 of 56), mug hanging 160 of 160 (80 of 80 per style); KOMO plans one episode in about
20 ms.

Depth images cost about 90 ms each (``robotic`` renders through Xvfb on the CPU), 13 times a control step, so the
pick-and-place demonstrations render the camera only every ``--render-every`` steps and only those steps become
``(observation, chunk)`` training pairs; the chunk still holds every step's action.

Stages (single-threaded)::

    python -m lpds_envs.backbones.zoo.franka demos --task pick_place --episodes 120 --out runs/franka/pick_place/demos.npz
    python -m lpds_envs.backbones.zoo.franka backbone --task pick_place --data runs/franka/pick_place/demos.npz \\
        --out runs/franka/pick_place/flow
    python -m lpds_envs.backbones.zoo.franka evaluate --task pick_place --backbone runs/franka/pick_place/flow
    python -m lpds_envs.backbones.zoo.franka ship --task pick_place --backbone runs/franka/pick_place/flow \\
        --data runs/franka/pick_place/demos.npz

``ship`` copies the backbone into ``lpds_envs/backbones/checkpoints/franka-<task>-flow`` with its card and
fingerprint, which makes ``LPDS-FrankaPickPlace-v0`` / ``LPDS-FrankaMugHang-v0`` usable.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from lpds_envs.backbones.data import ChunkDataset, chunk_trajectory
from lpds_envs.backbones.shipped import CHECKPOINT_DIR, copy_for_shipping, describe_sampler, write_fingerprint
from lpds_envs.backbones.train import train_backbone
from lpds_envs.backbones.zoo.cards import write_card as write_backbone_card
from lpds_envs.backbones.zoo.common import atomic_json, parse_stage_args
from lpds_envs.backbones.zoo.franka_scripts import SCRIPTS
from lpds_envs.decoders import load_decoder
from lpds_envs.evaluation import prior_episodes

#: task -> (raw id, steering id, vector observation keys the demonstrations record, image key or None)
TASKS: dict[str, tuple[str, str, tuple[str, ...], str | None]] = {
    "pick_place": (
        "lpds/FrankaPickPlace-v0",
        "LPDS-FrankaPickPlace-v0",
        ("joint_pos", "joint_vel", "gripper"),
        "depth",
    ),
    "mug_hang": ("lpds/FrankaMugHang-v0", "LPDS-FrankaMugHang-v0", ("joint_pos", "joint_vel", "gripper"), None),
}
#: the vector keys each backbone reads, in its order (a subset of the recorded ones). Pick-and-place leaves out the
#: joint velocities: with them its policy copies its own motion instead of reading the cube's cell from the depth image
#: (the scripted actions of the first steps hardly depend on the cell, so the velocity then carries a direction the
#: policy made up; "copycat" behaviour cloning). Trained with them it reached no cube (0/40); without them, 25/40.
DECODER_KEYS: dict[str, tuple[str, ...]] = {
    "pick_place": ("joint_pos", "gripper"),
    "mug_hang": ("joint_pos", "joint_vel", "gripper"),
}
#: pick-and-place pairs from the first ``EARLY_STEPS`` steps of an episode (where the policy must read the cell from
#: the image) are repeated ``EARLY_FACTOR`` times in training
EARLY_STEPS, EARLY_FACTOR = 30, 4
#: the steps of one decoded chunk (0.8 s at 10 Hz)
CHUNK_SIZE = 8
#: flow backbone settings: a residual MLP over (vector keys, CNN depth features), 10 Euler steps
FLOW_KWARGS: dict[str, Any] = dict(hidden_dim=256, n_blocks=3, time_embed_dim=32, num_inference_steps=10)
#: the depth encoder inside the pick-and-place decoder (:class:`~lpds_envs.decoders.networks.ImageObsEncoder`)
IMAGE_KWARGS: dict[str, Any] = dict(cnn_channels=(16, 32), image_feature_dim=64, image_pool=2, image_keypoints=True)
#: how training normalises the depth image: the mean image subtracted (the cube is a 3-9 cm dent in a 2 m range)
IMAGE_NORMALIZATION = "background"
#: the steering envs' latent box
LATENT_BOUND = 2.5


def _check_task(task: str) -> tuple[str, str, tuple[str, ...], str | None]:
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    return TASKS[task]


def record_demos(
    task: str, episodes: int, seed: int = 0, render_every: int = 3, progress: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run ``episodes`` scripted episodes of ``task`` and keep the successful ones.

    Episode ``i`` resets with seed ``seed + i``; pick-and-place starts at grid position ``i % 8 + 1`` in grasp style
    ``i // 8 % 2`` (every cell in both styles), mug hanging alternates the styles (``i % 2``). The arrays: ``observations`` (the vector keys concatenated, one row per step),
    ``actions``, ``episode_ends`` (over the kept episodes), ``positions`` and ``styles`` per kept episode, and for
    pick-and-place ``depth`` (float16 m) with ``depth_steps`` (row of ``observations`` it belongs to).

    :param task: ``"pick_place"`` or ``"mug_hang"``
    :param episodes: scripted episodes to run
    :param seed: seed of the first episode (also seeds the controllers' noise)
    :param render_every: pick-and-place: render the depth camera every this many steps (from a random offset)
    :param progress: print one line per episode
    :return: the arrays and a report (success rate overall, per grid position and per style)
    """
    raw_id, _, keys, image_key = _check_task(task)
    if episodes < 1 or render_every < 1:
        raise ValueError(f"episodes and render_every must be >= 1, got {episodes} and {render_every}")
    env = gym.make(raw_id)
    raw = env.unwrapped
    script = SCRIPTS[task]
    rng = np.random.default_rng(seed)
    obs_rows: list[np.ndarray] = []
    act_rows: list[np.ndarray] = []
    depth: list[np.ndarray] = []
    depth_steps: list[int] = []
    ends, positions, styles = [], [], []
    outcomes: list[tuple[int, str, bool, int]] = []
    start = time.time()
    for i in range(episodes):
        cycle = 8 if task == "pick_place" else 1
        style = script.styles[(i // cycle) % len(script.styles)]
        position = i % 8 + 1 if task == "pick_place" else 0
        options = {"position": position} if task == "pick_place" else {}
        obs, info = env.reset(seed=seed + i, options=options)
        controller = script.controller(raw, style, obs, rng)
        offset = int(rng.integers(0, render_every))
        ep_obs, ep_act, ep_depth, ep_depth_steps = [], [], [], []
        limit = env.spec.max_episode_steps if env.spec is not None and env.spec.max_episode_steps else 200
        for t in range(limit):
            ep_obs.append(np.concatenate([np.asarray(obs[k], np.float32).reshape(-1) for k in keys]))
            if image_key is not None and t % render_every == offset:
                full = raw.complete_observation(obs) if not info.get("depth_rendered", True) else obs
                ep_depth.append(np.asarray(full[image_key], np.float16))
                ep_depth_steps.append(t)
            action = controller(obs)
            ep_act.append(action)
            if image_key is not None:
                raw.skip_next_observation()
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        success = bool(info["success"])
        outcomes.append((position, style, success, len(ep_act)))
        if progress:
            print(f"episode {i}: position {position} style {style} success {success} steps {len(ep_act)}", flush=True)
        if not success:
            continue
        base = sum(len(a) for a in act_rows)
        obs_rows.append(np.stack(ep_obs))
        act_rows.append(np.stack(ep_act))
        depth += ep_depth
        depth_steps += [base + s for s in ep_depth_steps]
        ends.append(base + len(ep_act))
        positions.append(position)
        styles.append(script.styles.index(style))
    if not ends:
        raise RuntimeError(f"no scripted {task} episode succeeded out of {episodes}")
    arrays: dict[str, np.ndarray] = {
        "observations": np.concatenate(obs_rows),
        "actions": np.concatenate(act_rows),
        "episode_ends": np.asarray(ends),
        "positions": np.asarray(positions),
        "styles": np.asarray(styles),
    }
    if image_key is not None:
        arrays["depth"] = np.stack(depth)
        arrays["depth_steps"] = np.asarray(depth_steps)
    report = success_report(task, outcomes)
    report.update(seed=seed, render_every=render_every, seconds=round(time.time() - start, 1))
    env.close()
    return arrays, report


def success_report(task: str, outcomes: list[tuple[int, str, bool, int]]) -> dict[str, Any]:
    """Scripted success overall, per grid position (pick-and-place) and per grasp style, and episode lengths."""
    ok = np.array([o[2] for o in outcomes])
    report: dict[str, Any] = {
        "task": task,
        "episodes": len(outcomes),
        "successes": int(ok.sum()),
        "success_rate": float(ok.mean()),
        "per_style": {
            s: [int(sum(o[2] for o in outcomes if o[1] == s)), sum(o[1] == s for o in outcomes)]
            for s in sorted({o[1] for o in outcomes})
        },
        "mean_length_of_successes": float(np.mean([o[3] for o in outcomes if o[2]])) if ok.any() else None,
    }
    if task == "pick_place":
        report["per_position"] = {
            str(p): [int(sum(o[2] for o in outcomes if o[0] == p)), sum(o[0] == p for o in outcomes)]
            for p in range(1, 9)
        }
    return report


def decoder_columns(task: str) -> np.ndarray:
    """The columns of a :func:`record_demos` ``observations`` row that the task's backbone reads
    (:data:`DECODER_KEYS`, in the recorded order)."""
    raw_id, _, keys, _ = _check_task(task)
    env = gym.make(raw_id)
    space = env.observation_space
    env.close()
    sizes = [int(np.prod(space[k].shape)) for k in keys]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    return np.concatenate([np.arange(starts[i], starts[i + 1]) for i, k in enumerate(keys) if k in DECODER_KEYS[task]])


def demo_dataset(
    path: str | Path, task: str, chunk_size: int = CHUNK_SIZE, early_steps: int = 0, early_factor: int = 1
) -> ChunkDataset:
    """The ``(observation, chunk)`` pairs of a :func:`record_demos` file, as the decoder's flat observation: the vector
    keys of :data:`DECODER_KEYS` and, for pick-and-place, the depth image flattened after them; only the steps with a
    rendered depth image (pick-and-place) become pairs.

    :param path: the npz file
    :param task: its task
    :param chunk_size: steps per chunk (padded with the episode's last action)
    :param early_steps: pick-and-place: the pairs of each episode's first ``early_steps`` steps ...
    :param early_factor: ... appear this many times (after all pairs once, then the early ones ``early_factor - 1``
        more times)
    """
    _, _, _, image_key = _check_task(task)
    if early_steps < 0 or early_factor < 1:
        raise ValueError(f"early_steps must be >= 0 and early_factor >= 1, got {early_steps} and {early_factor}")
    columns = decoder_columns(task)
    with np.load(path) as data:
        obs, actions, ends = data["observations"], data["actions"], data["episode_ends"]
        full = chunk_trajectory_per_episode(obs, actions, ends, chunk_size)
        if image_key is None:
            return ChunkDataset(full.obs[:, columns], full.actions)
        steps = data["depth_steps"]
        images = data["depth"].astype(np.float32).reshape(len(steps), -1)
    pairs = ChunkDataset(np.concatenate([full.obs[steps], images], axis=1), full.actions[steps])
    starts = np.concatenate([[0], ends[:-1]])
    t = steps - starts[np.searchsorted(ends, steps, side="right")]  # step of each pair within its episode
    rows = np.concatenate([np.arange(len(pairs))] + [np.flatnonzero(t < early_steps)] * (early_factor - 1))
    keep = np.concatenate([columns, np.arange(obs.shape[1], pairs.obs.shape[1])])
    return ChunkDataset(pairs.obs[np.ix_(rows, keep)], pairs.actions[rows])  # one copy of the image rows


def chunk_trajectory_per_episode(
    obs: np.ndarray, actions: np.ndarray, ends: np.ndarray, chunk_size: int
) -> ChunkDataset:
    """Every step's pair (chunks padded within each episode), rows aligned with ``obs``."""
    starts = np.concatenate([[0], ends[:-1]])
    parts = [chunk_trajectory(obs[s:e], actions[s:e], chunk_size) for s, e in zip(starts, ends)]
    return ChunkDataset(np.concatenate([p.obs for p in parts]), np.concatenate([p.actions for p in parts]))


def obs_layout(task: str) -> dict[str, Any]:
    """The decoder keyword arguments that make it read the task's Dict observation (keys, shapes, image key)."""
    raw_id, _, _, image_key = _check_task(task)
    env = gym.make(raw_id)
    space = env.observation_space
    env.close()
    keys = DECODER_KEYS[task]
    order = [*keys, image_key] if image_key is not None else list(keys)
    layout: dict[str, Any] = {"obs_keys": {k: list(space[k].shape) for k in order}}
    if image_key is not None:
        layout.update(image_key=image_key, **IMAGE_KWARGS)
    return layout


def evaluate_backbone(task: str, decoder: Any, episodes: int, seed: int = 0) -> dict[str, Any]:
    """Prior-latent episodes (``w ~ N(0, I)`` clipped to the latent box): success overall and per grid position."""
    raw_id, _, _, _ = _check_task(task)
    batch = prior_episodes(raw_id, decoder, episodes, seed, n_envs=min(10, episodes), latent_bound=LATENT_BOUND)
    success = np.asarray(batch.success, dtype=bool)
    report: dict[str, Any] = {
        "episodes": episodes,
        "seed": seed,
        "latent_bound": LATENT_BOUND,
        "success_rate": float(success.mean()),
        "length_mean": float(np.mean(batch.lengths)),
    }
    if task == "pick_place":
        positions = np.array([info.get("position", 0) for info in batch.final_infos])
        report["per_position"] = {
            str(p): [int(success[positions == p].sum()), int((positions == p).sum())] for p in range(1, 9)
        }
    return report


# ------------------------------------------------------------------------------------------------ commands
def _cmd_demos(args: argparse.Namespace) -> None:
    arrays, report = record_demos(args.task, args.episodes, args.seed, args.render_every)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    atomic_json(report, Path(str(out) + ".json"))
    print(json.dumps(report, indent=1))


def _cmd_backbone(args: argparse.Namespace) -> None:
    image = TASKS[args.task][3] is not None
    early = (EARLY_STEPS, EARLY_FACTOR) if image else (0, 1)
    data = demo_dataset(args.data, args.task, args.chunk, *early)
    print(f"{len(data)} pairs, obs dim {data.obs_dim}, chunk {data.chunk_size} x {data.action_dim}", flush=True)
    train_backbone(
        "flow",
        data,
        args.out,
        steps=args.bc_steps,
        batch_size=args.batch_size,
        seed=args.seed,
        **({"image_normalization": IMAGE_NORMALIZATION} if image else {}),
        **FLOW_KWARGS,
        **obs_layout(args.task),
    )


def _cmd_evaluate(args: argparse.Namespace) -> None:
    report = evaluate_backbone(args.task, load_decoder(args.backbone), args.episodes, args.seed)
    atomic_json(report, Path(args.backbone) / "eval.json")
    print(json.dumps(report, indent=1))


def _cmd_ship(args: argparse.Namespace) -> None:
    raw_id, steering_id, _, image_key = _check_task(args.task)
    name = f"franka-{args.task.replace('_', '-')}-flow"
    demo_report = json.loads(Path(str(args.data) + ".json").read_text())
    training, ev, n_params = copy_for_shipping(Path(args.backbone), CHECKPOINT_DIR / name, demo_report)
    model, sampler = describe_sampler("flow", training["decoder"])
    per_position = ""
    if args.task == "pick_place":
        per_position = (
            "; per grid position (successes / episodes) "
            + ", ".join(f"{p}: {s}/{n}" for p, (s, n) in ev["per_position"].items())
            + "; scripted demonstrator per position "
            + ", ".join(f"{p}: {s}/{n}" for p, (s, n) in demo_report["per_position"].items())
        )
    encoder = (
        f"the {image_key!r} image goes through a small CNN inside the decoder ({IMAGE_KWARGS['image_pool']}x"
        f"{IMAGE_KWARGS['image_pool']} average pooling, 3x3 convolutions with {list(IMAGE_KWARGS['cnn_channels'])} "
        f"channels, a spatial softmax, {IMAGE_KWARGS['image_feature_dim']} features), normalised by subtracting "
        f"the demonstrations' mean image; it reads {list(DECODER_KEYS[args.task])} (not the joint velocities: "
        f"with them the policy copied its own motion and reached no cube); the pairs of each episode's first "
        f"{EARLY_STEPS} steps count {EARLY_FACTOR} times in training; "
        if image_key
        else ""
    )
    card = f"""# Franka {args.task.replace("_", " ")} flow backbone (`{raw_id}`)

Frozen flow policy for `{raw_id}` (a Franka Panda in the RAI `robotic` simulator; paper Sec. 5.7, App. G), shipped
as `{steering_id}`'s backbone. Needs the `franka` extra.

- **Data**: {demo_report["successes"]} successful scripted demonstrations out of {demo_report["episodes"]} (KOMO-planned,
  noisy joint-space tracking, grasp styles {sorted(demo_report["per_style"])}; seed {demo_report["seed"]}); pairs at
  {"every " + str(demo_report["render_every"]) + "rd step (the steps with a rendered depth image)" if image_key else "every step"}.
- **Model**: {model} residual MLP ({n_params:,} parameters), chunk size {training["decoder"]["chunk_size"]}, {sampler};
  {encoder}{"vector " if image_key else ""}observations and actions min-max scaled to [-1, 1].
- **Training**: {training["steps"]:,} AdamW steps, batch {training["batch_size"]}, EMA {training["ema_decay"]};
  final BC loss (EMA-smoothed) {training["final_bc_loss"]:.4f}.
- **Prior rollouts** ({ev["episodes"]} episodes, latents w ~ N(0, I) clipped to +-{ev["latent_bound"]}, seed
  {ev["seed"]}): success {ev["success_rate"]:.3f}, mean length {ev["length_mean"]:.1f} steps{per_position}.
- **Commands**:
  `python -m lpds_envs.backbones.zoo.franka demos --task {args.task} --episodes {demo_report["episodes"]} --seed {demo_report["seed"]} --out {args.data}`,
  `python -m lpds_envs.backbones.zoo.franka backbone --task {args.task} --data {args.data} --out {args.backbone} --bc-steps {training["steps"]} --batch-size {training["batch_size"]}`,
  `python -m lpds_envs.backbones.zoo.franka evaluate --task {args.task} --backbone {args.backbone} --episodes {ev["episodes"]}`,
  `python -m lpds_envs.backbones.zoo.franka ship --task {args.task} --backbone {args.backbone} --data {args.data}`.
"""
    write_fingerprint(name)
    print(card)
    print("wrote", write_backbone_card(CHECKPOINT_DIR / name, card))


def main(argv: list[str] | None = None) -> None:
    """The command line (see the module docstring).

    :param argv: arguments (``None``: ``sys.argv``)
    """
    parser = argparse.ArgumentParser(description="Franka tasks: scripted demos, flow backbones, prior success.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demos", help="scripted KOMO demonstrations (npz + report json)")
    p.add_argument("--task", choices=sorted(TASKS), required=True)
    p.add_argument("--episodes", type=int, default=120)
    p.add_argument("--render-every", type=int, default=3)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=_cmd_demos)
    p = sub.add_parser("backbone", help="train the flow backbone (resumable)")
    p.add_argument("--task", choices=sorted(TASKS), required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--bc-steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--chunk", type=int, default=CHUNK_SIZE)
    p.set_defaults(fn=_cmd_backbone)
    p = sub.add_parser("evaluate", help="prior-latent success rate (eval.json next to the backbone)")
    p.add_argument("--task", choices=sorted(TASKS), required=True)
    p.add_argument("--backbone", required=True)
    p.add_argument("--episodes", type=int, default=40)
    p.set_defaults(fn=_cmd_evaluate)
    p = sub.add_parser("ship", help="copy into lpds_envs/backbones/checkpoints/franka-<task>-flow with card")
    p.add_argument("--task", choices=sorted(TASKS), required=True)
    p.add_argument("--backbone", required=True)
    p.add_argument("--data", required=True)
    p.set_defaults(fn=_cmd_ship)
    args = parse_stage_args(parser, argv)
    torch.set_num_threads(1)
    args.fn(args)


if __name__ == "__main__":
    main()
