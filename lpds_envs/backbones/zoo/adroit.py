"""The Adroit zoo pipeline (gymnasium-robotics ``AdroitHand{Door,Relocate,Hammer,Pen}-v1``): scripted
demonstrations, flow (or diffusion) backbones, and their evaluation with prior latents.

The D4RL/Minari human demonstrations cannot be downloaded here, so we make our own with the scripted controllers
of :mod:`lpds_envs.backbones.zoo.adroit_scripts`, which read the simulator's privileged state (object, target and
site poses; MuJoCo Jacobians of the arm) and add per-episode styles, perturbed parameters and correlated action
noise, so the data are competent but imperfect and multimodal.

1. ``demos``: records ``--episodes`` controller episodes (200 raw steps each) into
   ``ZOO/<task>/data/demos.npz`` (``observations``, ``actions``, ``episode_ends``, ``success``, ``styles``,
   ``returns``) and a local Minari dataset ``lpds/adroit-<task>/scripted-v0``, with ``dataset.json`` (how the
   data were made, the controller's success rate and return). Resumable: finished episodes are kept in
   ``partial.npz`` and an interrupted run continues from there.
2. ``backbone``: a flow-matching backbone (Ta = 8, deterministic Euler ODE, App. A.2) trained on the chunks
   (resumable through :func:`~lpds_envs.backbones.train.train_backbone`), saved to ``ZOO/<task>/flow/``.
   ``--kind diffusion`` trains a DDIM diffusion backbone instead (same chunks, network and observation scaling;
   the sampler of the locomotion zoo's DPPO-style backbones, :data:`DIFFUSION_SAMPLER`: cosine schedule with 20
   training steps, 5 deterministic DDIM steps, x0 clipped to [-1, 1]) into ``ZOO/<task>/diffusion/`` (``--name``
   defaults to the kind). The shipped Adroit backbones are flow ones; a diffusion one is what the fine-tuning
   baselines (``algorithms.DPPO``) need, e.g. ``gym.make("LPDS-AdroitPen-v0", backbone="ZOO/pen/diffusion")``.
3. ``evaluate``: success rate and return of a backbone (``ZOO/<task>/<name>``, any kind) over ``--episodes``
   episodes with prior latents ``w ~ N(0, I)`` through :func:`~lpds_envs.vector.make_latent_vec_env`, written to
   ``eval.json``.

Example::

    python -m lpds_envs.backbones.zoo.adroit demos --task door --episodes 200 --out zoo/adroit
    python -m lpds_envs.backbones.zoo.adroit backbone --task door --out zoo/adroit
    python -m lpds_envs.backbones.zoo.adroit evaluate --task door --out zoo/adroit --episodes 50
    python -m lpds_envs.backbones.zoo.adroit backbone --task pen --kind diffusion --out zoo/adroit
    python -m lpds_envs.backbones.zoo.adroit evaluate --task pen --kind diffusion --out zoo/adroit --episodes 50
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from lpds_envs.backbones.data import Episode, make_chunks, save_minari, split_episodes
from lpds_envs.backbones.train import train_backbone
from lpds_envs.backbones.zoo.adroit_scripts import DoorController, HammerController, PenController, RelocateController
from lpds_envs.backbones.zoo.adroit_ship import ship_backbone
from lpds_envs.backbones.zoo.adroit_sim import ScriptedController
from lpds_envs.backbones.zoo.common import atomic_json, parse_stage_args
from lpds_envs.decoders import load_decoder
from lpds_envs.envs.adroit import require_gymnasium_robotics
from lpds_envs.evaluation import prior_episodes

#: task name -> (gymnasium-robotics id, controller class)
TASKS: dict[str, tuple[str, type[ScriptedController]]] = {
    "door": ("AdroitHandDoor-v1", DoorController),
    "relocate": ("AdroitHandRelocate-v1", RelocateController),
    "pen": ("AdroitHandPen-v1", PenController),
    "hammer": ("AdroitHandHammer-v1", HammerController),
}
EPISODE_STEPS = 200
#: default controller action-noise scale per task (the pen, held only by a resting grip, drops under more)
DEMO_NOISE: dict[str, float] = {"door": 0.05, "relocate": 0.05, "pen": 0.03, "hammer": 0.05}
#: flow backbone of the Adroit zoo: chunk Ta = 8 (App. A.2), residual MLP 3 x 512, deterministic Euler ODE
BACKBONE_DEFAULTS: dict[str, Any] = {
    "chunk_size": 8,
    "hidden_dim": 512,
    "n_blocks": 3,
    "time_embed_dim": 32,
    "num_inference_steps": 10,
    "integrator": "euler",
}
#: ``--kind diffusion``: the sampler of the locomotion zoo's diffusion backbones (DPPO's gym ones), replacing the two
#: flow-sampler entries of :data:`BACKBONE_DEFAULTS` (the network and chunk stay)
DIFFUSION_SAMPLER: dict[str, Any] = {
    "num_train_timesteps": 20,
    "num_inference_steps": 5,
    "beta_schedule": "cosine",
    "clip_sample": True,
}


def make_raw_env(task: str, **kwargs: Any):
    """The raw gymnasium-robotics env of ``task`` (``door``, ...), 200-step episodes."""
    import gymnasium as gym

    require_gymnasium_robotics()
    if task not in TASKS:
        raise ValueError(f"unknown Adroit task {task!r}; known: {sorted(TASKS)}")
    return gym.make(TASKS[task][0], max_episode_steps=EPISODE_STEPS, **kwargs)


def run_controller(env, controller: ScriptedController, seed: int) -> tuple[Episode, bool, str]:
    """One episode of ``controller`` from ``env.reset(seed=seed)``: ``(episode, success at any step, style)``."""
    obs, _ = env.reset(seed=seed)
    controller.reset(env, np.random.default_rng(seed + 1_000_003))
    observations, actions, rewards = [obs], [], []
    success, done = False, False
    while not done:
        action = controller.act()
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        success |= bool(info.get("success", False))
        done = terminated or truncated
    n = len(actions)
    episode = Episode(
        observations=np.asarray(observations, dtype=np.float32),
        actions=np.asarray(actions, dtype=np.float32),
        rewards=np.asarray(rewards, dtype=np.float32),
        terminations=np.zeros(n, dtype=bool) | bool(terminated) & (np.arange(n) == n - 1),
        truncations=np.zeros(n, dtype=bool) | bool(truncated) & (np.arange(n) == n - 1),
        seed=seed,
    )
    return episode, success, controller.style


def _save_partial(path: Path, episodes: list[Episode], success: list[bool], styles: list[str], config: str) -> None:
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(
        tmp,
        config=np.array(config),
        observations=np.concatenate([e.observations for e in episodes]),
        actions=np.concatenate([e.actions for e in episodes]),
        rewards=np.concatenate([e.rewards for e in episodes]),
        terminations=np.concatenate([e.terminations for e in episodes]),
        truncations=np.concatenate([e.truncations for e in episodes]),
        episode_ends=np.cumsum([len(e.actions) for e in episodes]),
        seeds=np.array([e.seed for e in episodes]),
        success=np.array(success, dtype=bool),
        styles=np.array(styles),
    )
    os.replace(tmp, path)


def _load_partial(path: Path, config: str) -> tuple[list[Episode], list[bool], list[str]]:
    with np.load(path) as d:
        if str(d["config"]) != config:
            raise ValueError(f"{path} was recorded with {d['config']}, not {config}; delete it to record anew")
        ends = d["episode_ends"]
        starts = np.concatenate([[0], ends[:-1]])
        obs_starts = starts + np.arange(len(ends))  # observations hold one extra row per episode
        episodes = []
        for i, (s, e) in enumerate(zip(starts, ends)):
            o = obs_starts[i]
            episodes.append(
                Episode(
                    d["observations"][o : o + e - s + 1],
                    d["actions"][s:e],
                    d["rewards"][s:e],
                    d["terminations"][s:e],
                    d["truncations"][s:e],
                    int(d["seeds"][i]),
                )
            )
        return episodes, [bool(x) for x in d["success"]], [str(x) for x in d["styles"]]


def record_demos(
    task: str,
    out: Path,
    episodes: int,
    seed: int = 0,
    noise: float | None = None,
    save_every: int = 10,
    progress: bool = True,
) -> Path:
    """Stage 1 (resumable): record ``episodes`` scripted episodes as npz + local Minari + ``dataset.json``.

    :param task: ``door``, ...
    :param out: zoo folder; the data go to ``out/<task>/data/``
    :param episodes: number of episodes (episode ``i`` resets with seed ``seed + i``)
    :param noise: action-noise scale of the controller (default :data:`DEMO_NOISE`)
    :param save_every: episodes between resumable saves
    :return: the data folder
    """
    from tqdm.auto import tqdm

    env = make_raw_env(task)
    noise = DEMO_NOISE.get(task, 0.05) if noise is None else noise
    controller = TASKS[task][1](noise=noise)
    data_dir = Path(out) / task / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = data_dir / "partial.npz"
    config = json.dumps({"task": task, "seed": seed, "noise": noise})
    eps, succ, styles = _load_partial(partial, config) if partial.is_file() else ([], [], [])
    eps, succ, styles = eps[:episodes], succ[:episodes], styles[:episodes]
    t0 = time.time()
    bar = tqdm(
        range(len(eps), episodes),
        initial=len(eps),
        total=episodes,
        desc=f"demos {task}",
        disable=not progress,
        mininterval=2.0,
    )
    for i in bar:
        ep, ok, style = run_controller(env, controller, seed + i)
        eps.append(ep)
        succ.append(ok)
        styles.append(style)
        bar.set_postfix(success=f"{np.mean(succ):.2f}")
        if (i + 1) % save_every == 0 or i + 1 == episodes:
            _save_partial(partial, eps, succ, styles, config)
    steps = sum(len(e.actions) for e in eps)
    np.savez_compressed(
        data_dir / "demos.npz",
        observations=np.concatenate([e.observations[:-1] for e in eps]),
        actions=np.concatenate([e.actions for e in eps]),
        episode_ends=np.cumsum([len(e.actions) for e in eps]),
        success=np.array(succ, dtype=bool),
        styles=np.array(styles),
        returns=np.array([float(e.rewards.sum()) for e in eps]),
    )
    dataset_id = f"lpds/adroit-{task}/scripted-v0"
    try:
        import minari

        if dataset_id in minari.list_local_datasets():
            minari.delete_dataset(dataset_id)
        save_minari(
            dataset_id,
            eps,
            env,
            algorithm_name=f"lpds scripted {TASKS[task][1].__name__}",
            author="lpds",
            author_email="lpds@users.noreply.github.com",
            eval_env=TASKS[task][0],
            description=f"{TASKS[task][0]}: {episodes} episodes of a noisy scripted controller with privileged state",
        )
    except Exception as exc:  # the npz is the source of truth for training; Minari is a convenience copy
        print(f"[{task}] Minari dataset not written ({type(exc).__name__}: {exc})")
        dataset_id = None
    style_names = sorted(set(styles))
    returns = [float(e.rewards.sum()) for e in eps]
    atomic_json(
        {
            "task": task,
            "env": TASKS[task][0],
            "minari_id": dataset_id,
            "episodes": len(eps),
            "transitions": steps,
            "episode_steps": EPISODE_STEPS,
            "controller": TASKS[task][1].__name__,
            "noise": noise,
            "seed": seed,
            "how": " ".join(TASKS[task][1].__doc__.split()),
            "success_rate": float(np.mean(succ)),
            "success_definition": "info['success'] at any step of the episode",
            "return_mean": float(np.mean(returns)),
            "return_std": float(np.std(returns)),
            "styles": {
                s: {
                    "episodes": int(sum(x == s for x in styles)),
                    "success_rate": float(np.mean([o for o, x in zip(succ, styles) if x == s])),
                }
                for s in style_names
            },
            "seconds": round(time.time() - t0, 1),
            "command": f"python -m lpds_envs.backbones.zoo.adroit demos --task {task} --episodes {episodes} "
            f"--out {out} --seed {seed} --noise {noise}",
        },
        data_dir / "dataset.json",
    )
    env.close()
    return data_dir


def load_demo_chunks(
    task: str, out: Path, chunk_size: int = BACKBONE_DEFAULTS["chunk_size"], successful_only: bool = False
):
    """The ``(obs, chunk)`` pairs of the recorded demos (optionally only the successful episodes)."""

    path = Path(out) / task / "data" / "demos.npz"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; record it with: python -m lpds_envs.backbones.zoo.adroit demos "
            f"--task {task} --out {out}"
        )
    with np.load(path) as d:
        trajectories = split_episodes(d["observations"], d["actions"], d["episode_ends"])
        if successful_only:
            trajectories = [tr for tr, ok in zip(trajectories, d["success"]) if ok]
    return make_chunks(trajectories, chunk_size)


def train_task_backbone(
    task: str,
    out: Path,
    steps: int,
    batch_size: int = 512,
    seed: int = 0,
    successful_only: bool = False,
    name: str | None = None,
    progress: bool = True,
    kind: str = "flow",
):
    """Stage 2 (resumable through ``train_backbone``): a ``kind`` (``flow`` or ``diffusion``) backbone on the demo
    chunks, in ``out/<task>/<name>`` (``name`` defaults to ``kind``)."""

    if kind not in ("flow", "diffusion"):
        raise ValueError(f"kind must be 'flow' or 'diffusion', got {kind!r}")
    data = load_demo_chunks(task, out, successful_only=successful_only)
    arch = {k: v for k, v in BACKBONE_DEFAULTS.items() if k != "chunk_size"}
    if kind == "diffusion":
        arch = {k: v for k, v in arch.items() if k not in ("num_inference_steps", "integrator")} | DIFFUSION_SAMPLER
    folder = Path(out) / task / (name or kind)
    decoder = train_backbone(
        kind,
        data,
        out_dir=folder,
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        obs_normalization="standard",
        progress=progress,
        **arch,
    )
    meta = json.loads((folder / "training.json").read_text())
    meta["successful_only"] = successful_only
    atomic_json(meta, folder / "training.json")
    return decoder


def evaluate_backbone(
    task: str, decoder, episodes: int = 50, seed: int = 10_000, n_envs: int = 10, latent_bound: float | None = 2.5
) -> dict[str, Any]:
    """Success rate and return of ``decoder`` with prior latents ``w ~ N(0, I)`` (the frozen backbone itself).

    Episodes run ``n_envs`` at a time through :func:`~lpds_envs.vector.make_latent_vec_env`; sub-env ``i`` of
    round ``k`` resets with seed ``seed + k * n_envs + i``.
    """

    batch = prior_episodes(lambda: make_raw_env(task), decoder, episodes, seed, n_envs, latent_bound)
    return {
        "episodes": episodes,
        "success_rate": float(batch.success.mean()),
        "return_mean": float(batch.returns.mean()),
        "return_std": float(batch.returns.std()),
        "seed": seed,
        "latent_bound": latent_bound,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Adroit zoo: scripted demonstrations, backbones (resumable)")
    p.add_argument("stage", choices=["demos", "backbone", "evaluate", "ship"])
    p.add_argument("--bc-steps", type=int, default=30_000)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--successful-only", action="store_true", help="train on the successful episodes only")
    p.add_argument("--kind", choices=["flow", "diffusion"], default="flow", help="backbone kind (backbone stage)")
    p.add_argument("--name", default=None, help="backbone folder name under ZOO/<task>/ (default: the kind)")
    p.add_argument("--task", required=True, choices=sorted(TASKS))
    p.add_argument("--out", default="zoo/adroit", help="working folder (not committed)")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--noise", type=float, default=None, help="controller action noise (default: per task)")
    args = parse_stage_args(p, argv)
    out = Path(args.out)
    if args.stage == "ship" and args.kind != "flow":
        p.error("ship copies flow backbones only (the package's Adroit backbones are flow ones)")
    args.name = args.name or args.kind
    if args.stage == "demos":
        data_dir = record_demos(args.task, out, args.episodes, args.seed, args.noise)
        print((data_dir / "dataset.json").read_text())
    if args.stage == "backbone":
        train_task_backbone(
            args.task, out, args.bc_steps, args.batch_size, args.seed, args.successful_only, args.name, kind=args.kind
        )
    if args.stage == "evaluate":
        folder = out / args.task / args.name
        result = evaluate_backbone(args.task, load_decoder(folder), episodes=args.episodes)
        result["backbone"] = str(folder)
        atomic_json(result, folder / "eval.json")
        print(json.dumps(result))
    if args.stage == "ship":
        print(f"shipped to {ship_backbone(args.task, out, args.name)}")


if __name__ == "__main__":
    main()
