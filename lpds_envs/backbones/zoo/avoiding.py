"""Scripted demonstrations, backbone and route coverage for D3IL's Avoiding task (``lpds/Avoiding-v0``).

D3IL's 96 human demonstrations (teleoperation) are not redistributable here, so a scripted planner stands in for the
demonstrator: for every one of D3IL's 24 routes it draws gap positions, detour depths and a speed profile at random,
passes a smooth spline through them, and keeps the demonstration only if, replayed in the env, it succeeds without
collision and D3IL's route rule labels it with the planned route.

Commands (single-threaded; each stage resumes or overwrites its own files)::

    python -m lpds_envs.backbones.zoo.avoiding demos --out runs/avoiding/demos.npz --per-route 20 --seed 0
    python -m lpds_envs.backbones.zoo.avoiding backbone --data runs/avoiding/demos.npz --out runs/avoiding/diffusion
    python -m lpds_envs.backbones.zoo.avoiding evaluate --backbone runs/avoiding/diffusion --rollouts 500
    python -m lpds_envs.backbones.zoo.avoiding ship --backbone runs/avoiding/diffusion \\
        --data runs/avoiding/demos.npz --name avoiding-diffusion

The flow backbone (``LPDS-Avoiding-v0`` with ``backbone="flow"``) is trained on the same demonstrations with
``backbone --kind flow --out runs/avoiding/flow`` and shipped with ``--name avoiding-flow``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.interpolate import CubicSpline

from lpds_envs.backbones.data import load_npz
from lpds_envs.backbones.shipped import CHECKPOINT_DIR, describe_sampler, write_fingerprint
from lpds_envs.backbones.train import train_backbone
from lpds_envs.backbones.zoo.cards import write_card as write_backbone_card
from lpds_envs.decoders import load_decoder
from lpds_envs.envs.avoiding import (
    GOAL_Y,
    LEVEL_Y,
    MAX_EPISODE_STEPS,
    N_ROUTES,
    START,
    AvoidingEnv,
    render_paths,
    route_gaps,
)
from lpds_envs.evaluation import prior_episodes
from lpds_envs.metrics import avoiding_route, behaviour_entropy

#: x ranges the planner draws its pass point from, per row and gap (counted from small x): inside each gap with
#: >= 1 cm clearance to the obstacles' rims (obstacle radius + rod radius)
GAP_X: tuple[tuple[tuple[float, float], ...], ...] = (
    ((0.40, 0.445), (0.555, 0.60)),
    ((0.33, 0.375), (0.48, 0.52), (0.625, 0.67)),
    ((0.25, 0.295), (0.405, 0.445), (0.555, 0.595), (0.705, 0.75)),
)

#: the residual MLP both backbones share
NET_KWARGS: dict[str, Any] = dict(hidden_dim=256, n_blocks=3, time_embed_dim=32)
#: each backbone kind's decoder settings: diffusion with a cosine schedule over 100 training timesteps and 10 DDIM
#: steps, x0 clipped; flow with 10 Euler steps of the learned velocity field
KIND_KWARGS: dict[str, dict[str, Any]] = {
    "diffusion": dict(
        NET_KWARGS, num_train_timesteps=100, beta_schedule="cosine", num_inference_steps=10, clip_sample=True
    ),
    "flow": dict(NET_KWARGS, num_inference_steps=10, integrator="euler"),
}
CHUNK_SIZE = 8


def plan_path(route: int, rng: np.random.Generator, start: np.ndarray | None = None) -> np.ndarray:
    """One human-like desired-position path ``(T + 1, 2)`` along ``route`` (not yet checked against the env).

    Waypoints: the start, then before and after each obstacle row a pass point in the route's gap (random depth and
    lateral jitter), then a point past the finish line; a cubic spline over chord length joins them. The path is
    sampled with a speed that ramps up over the first steps, cruises at a random speed (6 to 9 mm per step) with a
    slow random modulation, and carries a small smooth lateral wobble.
    """
    gaps = route_gaps(route)
    s0 = START.copy() if start is None else np.asarray(start, dtype=np.float64)
    pts = [s0]
    for level, gap in enumerate(gaps):
        lo, hi = GAP_X[level][gap]
        x = rng.uniform(lo, hi)
        before = LEVEL_Y[level] - rng.uniform(0.03, 0.05)
        after = LEVEL_Y[level] + rng.uniform(0.025, 0.045)
        pts.append(np.array([x + rng.normal(0, 0.004), before]))
        pts.append(np.array([np.clip(x + rng.normal(0, 0.006), lo, hi), after]))
    pts.append(np.array([pts[-1][0] + rng.normal(0, 0.02), GOAL_Y + 0.05]))
    wp = np.stack(pts)
    chord = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(wp, axis=0), axis=1))])
    spline = CubicSpline(chord, wp, bc_type="natural")
    # dense arc-length table
    u = np.linspace(0.0, chord[-1], 4000)
    dense = spline(u)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    cruise = rng.uniform(0.006, 0.009)
    ramp = rng.integers(4, 12)
    freq, phase, depth = rng.uniform(0.5, 2.0), rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.25)
    s, t, out = 0.0, 0, [s0]
    while s < arc[-1] and t < 400:
        t += 1
        v = cruise * min(1.0, t / ramp) * (1.0 + depth * np.sin(2 * np.pi * freq * s / arc[-1] + phase))
        s = min(arc[-1], s + v)
        out.append(np.array([np.interp(s, arc, dense[:, 0]), np.interp(s, arc, dense[:, 1])]))
    path = np.stack(out)
    # smooth lateral wobble (a few mm), zero at the start
    k = np.arange(len(path))
    wobble = sum(rng.normal(0, 0.0015) * np.sin(np.pi * k * (j + 1) / len(path)) for j in range(3))
    path[:, 0] += wobble
    path[0] = s0
    return path


def replay(desired: np.ndarray, env: AvoidingEnv | None = None) -> dict[str, Any]:
    """Replay a desired-position path in the env: actions are its differences (D3IL's action definition)."""
    env = env or AvoidingEnv()
    obs, info = env.reset()
    obs_list, actions, rewards = [obs], [], []
    terminated = False
    for a in np.diff(desired, axis=0):
        obs, r, terminated, _, info = env.step(a.astype(np.float32))
        obs_list.append(obs)
        actions.append(a.astype(np.float32))
        rewards.append(r)
        if terminated:
            break
    return {
        "observations": np.stack(obs_list),
        "actions": np.stack(actions),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "success": bool(info["success"]),
        "collision": bool(info["collision"]),
        "route": int(info["route"]),
    }


def make_demos(per_route: int = 20, seed: int = 0, max_tries: int = 200) -> tuple[list[dict[str, Any]], dict]:
    """``per_route`` accepted demonstrations of each of the 24 routes (seeded), and acceptance statistics."""
    if per_route < 1:
        raise ValueError(f"per_route must be >= 1, got {per_route}")
    rng = np.random.default_rng(seed)
    env = AvoidingEnv(max_step=0.01)
    demos, tries = [], np.zeros(N_ROUTES, dtype=int)
    for _ in range(per_route):
        for route in range(N_ROUTES):
            for _attempt in range(max_tries):
                tries[route] += 1
                path = plan_path(route, rng)
                if np.abs(np.diff(path, axis=0)).max() > env.max_step:
                    continue
                rec = replay(path, env)
                if rec["success"] and rec["route"] == route and avoiding_route(rec["observations"]) == route:
                    rec["planned_route"] = route
                    demos.append(rec)
                    break
            else:
                raise RuntimeError(f"the planner found no valid demonstration of route {route} in {max_tries} tries")
    stats = {"tries_per_route": tries.tolist(), "accepted_per_route": per_route}
    return demos, stats


def save_demos(demos: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Write demonstrations in lpds's npz trajectory layout (``observations``, ``actions``, ``episode_ends``; the
    final observation of each episode is dropped) plus ``routes`` and ``episode_lengths``."""
    obs = np.concatenate([d["observations"][:-1] for d in demos]).astype(np.float32)
    actions = np.concatenate([d["actions"] for d in demos]).astype(np.float32)
    lengths = np.array([len(d["actions"]) for d in demos])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        observations=obs,
        actions=actions,
        episode_ends=np.cumsum(lengths),
        routes=np.array([d["route"] for d in demos]),
        episode_lengths=lengths,
    )


def route_histogram(routes: Sequence[int] | np.ndarray) -> list[int]:
    """Counts of routes 0..23 (labels < 0 ignored)."""
    r = np.asarray(routes).reshape(-1)
    return np.bincount(r[r >= 0], minlength=N_ROUTES).tolist()


def avoiding_coverage(decoder: Any, n_rollouts: int = 200, seed: int = 0, n_envs: int = 50) -> dict[str, Any]:
    """Prior-latent rollouts (``w ~ N(0, I)``) of ``decoder`` on ``lpds/Avoiding-v0``: success, route histogram and
    D3IL's behaviour entropy over the successful rollouts (:func:`~lpds_envs.prior_episodes` seeding)."""
    batch = prior_episodes("lpds/Avoiding-v0", decoder, n_rollouts, seed, n_envs=n_envs, latent_bound=None)
    routes = np.array([info.get("route", -1) for info in batch.final_infos])
    success = np.asarray(batch.success, dtype=bool)
    hist = route_histogram(routes[success])
    return {
        "n_rollouts": n_rollouts,
        "seed": seed,
        "success_rate": float(success.mean()),
        "collision_rate": float(np.mean([bool(i.get("collision", False)) for i in batch.final_infos])),
        "mean_length": float(np.mean(batch.lengths)),
        "routes_hit": int(np.count_nonzero(hist)),
        "route_histogram": hist,
        "behaviour_entropy": behaviour_entropy(routes, success),
        "routes": routes.tolist(),
    }


def rollout_paths(
    decoder: Any, n: int = 100, seed: int = 0, latent_fn: Any = None, latent_bound: float | None = None
) -> dict[str, Any]:
    """``n`` episodes of ``decoder`` on ``AvoidingEnv`` with every raw step's position kept (for trajectory figures).

    Episode ``i`` resets with seed ``seed + i``; latents come from ``latent_fn(obs (n, 4) float32 tensor) -> (n,
    latent_dim)`` (e.g. :func:`lpds_envs.metrics.model_sampler` of a trained learner), else from ``N(0, I)`` seeded
    with ``seed``, clipped to ``latent_bound`` when given. Each chunk is executed open loop, as
    :class:`~lpds_envs.wrappers.ChunkedActionWrapper` does.

    :return: ``paths`` (list of ``(T + 1, 2)`` arrays), ``routes``, ``success`` and ``collision`` per episode
    """
    import torch

    envs = [AvoidingEnv() for _ in range(n)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    paths = [[o[2:].copy()] for o in obs]
    done = np.zeros(n, dtype=bool)
    steps = np.zeros(n, dtype=int)
    infos: list[dict[str, Any]] = [{} for _ in range(n)]
    gen = torch.Generator().manual_seed(seed)
    latent_dim = int(np.prod(decoder.latent_shape))
    while not done.all():
        o = torch.as_tensor(obs, dtype=torch.float32)
        with torch.no_grad():
            w = latent_fn(o) if latent_fn is not None else torch.randn(n, latent_dim, generator=gen)
            w = torch.as_tensor(w, dtype=torch.float32)
            if latent_bound is not None:
                w = w.clamp(-latent_bound, latent_bound)
            chunks = decoder(o, w.reshape(n, *decoder.latent_shape)).cpu().numpy()
        for i in np.flatnonzero(~done):
            for a in chunks[i]:
                obs[i], _, terminated, _, infos[i] = envs[i].step(a)
                steps[i] += 1
                paths[i].append(obs[i][2:].copy())
                if terminated or steps[i] >= MAX_EPISODE_STEPS:
                    done[i] = True
                    break
    return {
        "paths": [np.stack(p) for p in paths],
        "routes": np.array([info["route"] for info in infos]),
        "success": np.array([info["success"] for info in infos]),
        "collision": np.array([info["collision"] for info in infos]),
    }


def trajectory_figure(panels: Sequence[tuple[str, dict[str, Any]]], path: str | os.PathLike, size: int = 320) -> None:
    """Save a row of panels in the style of the paper's Fig. 4: each panel draws one method's rollout paths
    (:func:`rollout_paths` output; successes blue, failures grey) over the scene, titled with its label, success
    rate, number of routes and behaviour entropy. PNG via Pillow."""
    from PIL import Image, ImageDraw

    images = []
    for label, roll in panels:
        colors = [(40, 60, 200) if s else (170, 170, 170) for s in roll["success"]]
        img = Image.fromarray(render_paths(roll["paths"], size=size, colors=colors))
        canvas = Image.new("RGB", (img.width, img.height + 34), "white")
        canvas.paste(img, (0, 34))
        ok = np.asarray(roll["success"], dtype=bool)
        routes = np.asarray(roll["routes"])
        text = (
            f"{label}\nsuccess {ok.mean():.2f}, routes {len(set(routes[ok].tolist()))}, "
            f"H {behaviour_entropy(routes, ok):.2f}"
        )
        ImageDraw.Draw(canvas).multiline_text((4, 2), text, fill="black")
        images.append(canvas)
    out = Image.new("RGB", (sum(i.width for i in images) + 8 * (len(images) - 1), images[0].height), "white")
    x = 0
    for im in images:
        out.paste(im, (x, 0))
        x += im.width + 8
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    out.save(path)


def _cmd_demos(args: argparse.Namespace) -> None:
    demos, stats = make_demos(args.per_route, args.seed)
    save_demos(demos, args.out)
    hist = route_histogram([d["route"] for d in demos])
    lengths = [len(d["actions"]) for d in demos]
    report = {
        "n_demos": len(demos),
        "per_route": args.per_route,
        "seed": args.seed,
        "route_histogram": hist,
        "route_frequencies": [h / len(demos) for h in hist],
        "behaviour_entropy": behaviour_entropy([d["route"] for d in demos]),
        "length_min_mean_max": [int(min(lengths)), float(np.mean(lengths)), int(max(lengths))],
        **stats,
    }
    Path(str(args.out) + ".json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "tries_per_route"}, indent=1))


def _cmd_backbone(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    data = load_npz(args.data, chunk_size=args.chunk)
    train_backbone(
        args.kind,
        data,
        args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        **KIND_KWARGS[args.kind],
    )


def _cmd_evaluate(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    cov = avoiding_coverage(load_decoder(args.backbone), n_rollouts=args.rollouts, seed=args.seed)
    (Path(args.backbone) / "eval.json").write_text(json.dumps(cov, indent=1))
    print(json.dumps({k: v for k, v in cov.items() if k != "routes"}))


def _cmd_ship(args: argparse.Namespace) -> None:
    import shutil

    src, dest = Path(args.backbone), CHECKPOINT_DIR / args.name
    for f in ("config.json", "model.safetensors", "training.json", "eval.json"):
        if not (src / f).is_file():
            raise FileNotFoundError(f"{src / f} is missing; run the backbone and evaluate stages first")
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "model.safetensors", "eval.json"):
        shutil.copy2(src / f, dest / f)
    training = json.loads((src / "training.json").read_text())
    training.pop("loss_curve_every_100_steps", None)
    demo_report = json.loads(Path(str(args.data) + ".json").read_text())
    training["data"] = {k: demo_report[k] for k in ("n_demos", "per_route", "seed", "route_histogram")}
    (dest / "training.json").write_text(json.dumps(training, indent=1))
    cov = json.loads((src / "eval.json").read_text())
    decoder = load_decoder(dest)
    n_params = sum(p.numel() for p in decoder.parameters())
    kind = training["kind"]
    model, sampler = describe_sampler(kind, training["decoder"])
    card = f"""# Avoiding {kind} backbone (D3IL Avoiding, `lpds/Avoiding-v0`)

Frozen {kind} policy for `lpds/Avoiding-v0` (D3IL's Avoiding task re-implemented; see the env's docstring),
shipped as `LPDS-Avoiding-v0`'s {"default" if kind == "diffusion" else '`backbone="flow"`'} backbone.

- **Data**: {demo_report["n_demos"]} scripted demonstrations, {demo_report["per_route"]} of each of D3IL's 24 routes
  (seed {demo_report["seed"]}), lengths {demo_report["length_min_mean_max"][0]} to {demo_report["length_min_mean_max"][2]}
  steps (mean {demo_report["length_min_mean_max"][1]:.1f}); observation (desired x, y, actual x, y), action the change of
  the desired position (m per step).
- **Model**: {model} residual MLP ({n_params:,} parameters), chunk size {training["decoder"]["chunk_size"]}, {sampler};
  observations and actions min-max scaled to [-1, 1].
- **Training**: {training["steps"]:,} AdamW steps, batch {training["batch_size"]}, EMA {training["ema_decay"]};
  final BC loss (EMA-smoothed) {training["final_bc_loss"]:.4f}.
- **Prior rollouts** ({cov["n_rollouts"]} episodes, latents w ~ N(0, I) unclipped, seed {cov["seed"]}): success
  {cov["success_rate"]:.3f}, collisions {cov["collision_rate"]:.3f}, {cov["routes_hit"]} of 24 routes among the successes,
  D3IL behaviour entropy {cov["behaviour_entropy"]:.3f}; route histogram (routes 0..23, 12 i1 + 4 i2 + i3)
  {cov["route_histogram"]}.
- **Commands**:
  `python -m lpds_envs.backbones.zoo.avoiding demos --out {args.data} --per-route {demo_report["per_route"]} --seed {demo_report["seed"]}`,
  `python -m lpds_envs.backbones.zoo.avoiding backbone --kind {kind} --data {args.data} --out {args.backbone} --steps {training["steps"]}`,
  `python -m lpds_envs.backbones.zoo.avoiding evaluate --backbone {args.backbone} --rollouts {cov["n_rollouts"]} --seed {cov["seed"]}`,
  `python -m lpds_envs.backbones.zoo.avoiding ship --backbone {args.backbone} --data {args.data} --name {args.name}`.
"""
    write_fingerprint(args.name)
    print(card)
    print("wrote", write_backbone_card(dest, card))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="D3IL Avoiding: scripted demos, diffusion and flow backbones, route coverage."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demos", help="scripted planner demonstrations of all 24 routes (npz + report json)")
    p.add_argument("--out", required=True)
    p.add_argument("--per-route", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=_cmd_demos)
    p = sub.add_parser("backbone", help="train a diffusion or flow backbone (resumable)")
    p.add_argument("--kind", choices=sorted(KIND_KWARGS), default="diffusion")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--chunk", type=int, default=CHUNK_SIZE)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=_cmd_backbone)
    p = sub.add_parser("evaluate", help="prior-latent rollouts: success, route histogram, behaviour entropy")
    p.add_argument("--backbone", required=True)
    p.add_argument("--rollouts", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=_cmd_evaluate)
    p = sub.add_parser("ship", help="copy into lpds_envs/backbones/checkpoints/<name> with card and fingerprint")
    p.add_argument("--backbone", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--name", default="avoiding-diffusion")
    p.set_defaults(fn=_cmd_ship)
    args = parser.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
