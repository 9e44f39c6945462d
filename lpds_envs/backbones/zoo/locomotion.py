"""The Gym locomotion zoo pipeline (Hopper-v5, Walker2d-v5, HalfCheetah-v5): experts, *medium* datasets, backbones.

Neither DPPO's pre-trained policies nor D4RL/Minari data can be downloaded here, so we make our own, D4RL-style:

1. ``expert``: SB3 SAC on the raw env (RL Zoo's SAC settings for MuJoCo: 10k random warm-up steps, default
   network), checkpointing the model every ``--ckpt-every`` steps into ``ZOO/<env>/expert/step_<n>.zip`` and
   the evaluated return of each checkpoint (``--eval-episodes`` deterministic episodes) into ``returns.json``.
   Resumable: the latest ``state/`` (model + replay buffer, swapped in atomically) continues an interrupted run.
2. ``dataset``: picks the *medium* checkpoint, the one whose return is closest to ``--medium-fraction`` (default
   0.4, inside D4RL medium's third-to-half) of the best checkpoint's, and records ``--episodes`` stochastic
   episodes with it as a local Minari dataset ``lpds/<env>/medium-v0`` (plus ``medium.npz``), noting the returns
   of the policies used in ``dataset.json``.
3. ``backbone``: a diffusion and a flow backbone on the same chunks (DPPO gym defaults, see
   :data:`BACKBONE_DEFAULTS`), saved to ``ZOO/<env>/{diffusion,flow}/`` with the BC loss.
4. ``evaluate``: each backbone's return over 20 episodes with prior latents (``eval.json``).
5. ``ship`` (not part of ``all``): copy both into the lpds-zoo data package as ``packages/lpds-zoo/lpds_zoo/checkpoints/<task>-{diffusion,flow}/`` with a
   card and a fingerprint, which makes ``LPDS-<Task>-v0`` usable.

Every stage skips what is already done, so ``python -m lpds_envs.backbones.zoo.locomotion all --env Hopper-v5``
re-run after an interruption continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from lpds_envs.backbones.data import Episode, load_npz, save_minari
from lpds_envs.backbones.shipped import ZOO_SOURCE_DIR, copy_for_shipping, describe_sampler, write_fingerprint
from lpds_envs.backbones.train import train_backbone
from lpds_envs.backbones.zoo.cards import write_card as write_backbone_card
from lpds_envs.backbones.zoo.common import add_backbone_options, atomic_json, parse_stage_args
from lpds_envs.decoders import load_decoder
from lpds_envs.evaluation import prior_episodes

ENVS = ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5")
KINDS = ("diffusion", "flow")
#: DPPO's gym backbones (the ones DSRL steers): chunk Ta = 4, cosine schedule with 20 training steps and 5
#: deterministic DDIM steps, x0 clipped to [-1, 1], min-max observation scaling, a residual MLP ~3 x 512.
BACKBONE_DEFAULTS: dict[str, Any] = {
    "chunk_size": 4,
    "hidden_dim": 512,
    "n_blocks": 3,
    "time_embed_dim": 16,
    "diffusion": {"num_train_timesteps": 20, "num_inference_steps": 5, "beta_schedule": "cosine", "clip_sample": True},
    "flow": {"num_inference_steps": 5, "integrator": "euler"},
}


def evaluate_policy_return(model: Any, env_id: str, episodes: int, seed: int, deterministic: bool = True) -> list:
    """Undiscounted returns of ``episodes`` episodes of an SB3 model on the raw env."""
    import gymnasium as gym

    env = gym.make(env_id)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=deterministic)
            obs, r, term, trunc, _ = env.step(action)
            total += float(r)
            done = term or trunc
        returns.append(total)
    env.close()
    return returns


def train_expert(
    env_id: str,
    zoo: Path,
    steps: int,
    ckpt_every: int,
    eval_episodes: int,
    seed: int = 0,
    learning_starts: int = 10_000,
) -> Path:
    """Stage 1 (resumable): SB3 SAC with checkpoints and their evaluated returns."""
    from stable_baselines3 import SAC

    out = zoo / env_id / "expert"
    state = out / "state"
    out.mkdir(parents=True, exist_ok=True)
    returns_path = out / "returns.json"
    returns = json.loads(returns_path.read_text()) if returns_path.is_file() else {}
    config_path = out / "config.json"
    config = {
        "algorithm": "stable_baselines3.SAC",
        "policy": "MlpPolicy",
        "seed": seed,
        "learning_starts": learning_starts,
        "checkpoint_every": ckpt_every,
        "eval_episodes": eval_episodes,
    }
    if config_path.is_file():
        old = json.loads(config_path.read_text())
        if (old["seed"], old["checkpoint_every"]) != (seed, ckpt_every):
            raise ValueError(
                f"{out} holds an expert with seed {old['seed']} and checkpoints every "
                f"{old['checkpoint_every']} steps; resume it with --seed {old['seed']} --ckpt-every "
                f"{old['checkpoint_every']}, or pick another --zoo"
            )
    else:
        atomic_json(config, config_path)
    if returns and max(int(k) for k in returns) >= steps:
        return out  # done (the resumable state may have been deleted to save space)
    if (state / "model.zip").is_file():
        model = SAC.load(state / "model.zip", env=None, device="cpu")
        import gymnasium as gym

        model.set_env(gym.make(env_id))
        model.load_replay_buffer(state / "replay.pkl")
        print(f"[{env_id}] resuming the expert at {model.num_timesteps} steps", flush=True)
    else:
        import gymnasium as gym

        model = SAC("MlpPolicy", gym.make(env_id), learning_starts=learning_starts, seed=seed, verbose=0, device="cpu")
    t0 = time.time()
    while model.num_timesteps < steps:
        chunk = min(ckpt_every - model.num_timesteps % ckpt_every, steps - model.num_timesteps)
        model.learn(chunk, reset_num_timesteps=False)
        n = model.num_timesteps
        model.save(out / f"step_{n}.zip")
        rets = evaluate_policy_return(model, env_id, eval_episodes, seed=10_000)
        returns[str(n)] = {"mean": float(np.mean(rets)), "std": float(np.std(rets)), "episodes": eval_episodes}
        atomic_json(returns, returns_path)
        tmp = out / "state.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        model.save(tmp / "model.zip")
        model.save_replay_buffer(tmp / "replay.pkl")
        shutil.rmtree(state, ignore_errors=True)
        os.replace(tmp, state)
        print(
            f"[{env_id}] {n} steps, return {np.mean(rets):.0f} +- {np.std(rets):.0f}, {time.time() - t0:.0f} s",
            flush=True,
        )
    return out


def pick_medium(returns: dict[str, dict], fraction: float) -> tuple[int, float, int, float]:
    """The checkpoint whose return is closest to ``fraction`` x the best one's: ``(step, return, best_step, best)``."""
    steps = sorted(int(s) for s in returns)
    best = max(steps, key=lambda s: returns[str(s)]["mean"])
    best_ret = returns[str(best)]["mean"]
    medium = min(steps, key=lambda s: abs(returns[str(s)]["mean"] - fraction * best_ret))
    return medium, returns[str(medium)]["mean"], best, best_ret


def record_dataset(env_id: str, zoo: Path, episodes: int, fraction: float, seed: int = 0) -> Path:
    """Stage 2: record the medium policy's episodes (stochastic actions) as Minari + npz."""
    import gymnasium as gym
    from stable_baselines3 import SAC

    out = zoo / env_id / "data"
    if (out / "dataset.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    returns = json.loads((zoo / env_id / "expert" / "returns.json").read_text())
    step, ret, best, best_ret = pick_medium(returns, fraction)
    expert_config_path = zoo / env_id / "expert" / "config.json"
    expert_config = json.loads(expert_config_path.read_text()) if expert_config_path.is_file() else {}
    model = SAC.load(zoo / env_id / "expert" / f"step_{step}.zip", device="cpu")
    env = gym.make(env_id)
    eps: list[Episode] = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        o, a, r, te, tr = [obs], [], [], [], []
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=False)
            obs, rew, term, trunc, _ = env.step(action)
            o.append(obs), a.append(action), r.append(rew), te.append(term), tr.append(trunc)
            done = term or trunc
        eps.append(Episode(np.array(o), np.array(a), np.array(r), np.array(te), np.array(tr), seed=seed + i))
    data_returns = [float(e.rewards.sum()) for e in eps]
    np.savez_compressed(
        out / "medium.npz",
        observations=np.concatenate([e.observations[:-1] for e in eps]),
        actions=np.concatenate([e.actions for e in eps]),
        episode_ends=np.cumsum([len(e.actions) for e in eps]),
    )
    dataset_id = f"lpds/{env_id.split('-')[0].lower()}/medium-v0"
    try:
        save_minari(
            dataset_id,
            eps,
            env,
            algorithm_name="SB3 SAC (medium checkpoint)",
            author="lpds",
            author_email="lpds@users.noreply.github.com",
            eval_env=env_id,
            description=f"{env_id}: {episodes} episodes of a medium SB3 SAC checkpoint (lpds locomotion zoo)",
        )
    except Exception as exc:  # the npz is the source of truth for training; Minari is a convenience copy
        print(f"[{env_id}] Minari dataset not written ({type(exc).__name__}: {exc})")
        dataset_id = None
    atomic_json(
        {
            "env": env_id,
            "minari_id": dataset_id,
            "episodes": episodes,
            "transitions": int(sum(len(e.actions) for e in eps)),
            "medium_checkpoint": step,
            "medium_eval_return": ret,
            "expert_checkpoint": best,
            "expert_eval_return": best_ret,
            "fraction_target": fraction,
            "expert": expert_config,
            "dataset_return_mean": float(np.mean(data_returns)),
            "dataset_return_std": float(np.std(data_returns)),
        },
        out / "dataset.json",
    )
    return out


def train_backbones(
    env_id: str, zoo: Path, steps: int, batch_size: int = 256, seed: int = 0, kinds: tuple[str, ...] = KINDS
) -> dict[str, Path]:
    """Stage 3 (resumable through ``train_backbone``): diffusion and flow backbones on the same chunks (``kinds``
    picks some, e.g. to train the two in parallel processes)."""

    data = load_npz(zoo / env_id / "data" / "medium.npz", chunk_size=BACKBONE_DEFAULTS["chunk_size"])
    common = {k: BACKBONE_DEFAULTS[k] for k in ("hidden_dim", "n_blocks", "time_embed_dim")}
    outs = {}
    for kind in kinds:
        out = zoo / env_id / kind
        train_backbone(
            kind,
            data,
            out_dir=out,
            steps=steps,
            batch_size=batch_size,
            seed=seed,
            obs_normalization="minmax",
            **common,
            **BACKBONE_DEFAULTS[kind],
        )
        outs[kind] = out
    return outs


#: DSRL's latent box per task (``action_magnitude`` in ajwagen/dsrl cfg/gym): the LPDS ids' default latent bound
LATENT_BOUNDS: dict[str, float] = {"Hopper-v5": 1.5, "Walker2d-v5": 2.5, "HalfCheetah-v5": 1.5}


def checkpoint_name(env_id: str, kind: str) -> str:
    """Package checkpoint folder of a locomotion backbone, e.g. ``hopper-diffusion``."""
    return f"{env_id.split('-')[0].lower()}-{kind}"


def evaluate_backbones(env_id: str, zoo: Path, episodes: int = 20, seed: int = 10_000, n_envs: int = 10) -> dict:
    """Stage 4: return of each backbone with prior latents ``w ~ N(0, I)`` (clipped to the task's latent box),
    ``episodes`` full episodes (up to 1000 raw steps), sub-env ``i`` of round ``k`` reset with ``seed + k + i``."""

    results = {}
    for kind in KINDS:
        path = zoo / env_id / kind / "eval.json"
        if path.is_file():
            results[kind] = json.loads(path.read_text())
            continue
        batch = prior_episodes(env_id, load_decoder(zoo / env_id / kind), episodes, seed, n_envs, LATENT_BOUNDS[env_id])
        results[kind] = {
            "episodes": episodes,
            "return_mean": float(batch.returns.mean()),
            "return_std": float(batch.returns.std()),
            "length_mean": float(batch.lengths.mean()),
            "seed": seed,
            "latent_bound": LATENT_BOUNDS[env_id],
        }
        atomic_json(results[kind], path)
        print(
            f"[{env_id}] {kind} backbone with prior latents: return {results[kind]['return_mean']:.1f} "
            f"+- {results[kind]['return_std']:.1f} over {episodes} episodes",
            flush=True,
        )
    return results


CARD = """# {env} {kind} backbone (lpds locomotion zoo)

Frozen {kind} policy for Gymnasium `{env}`, shipped with lpds as `LPDS-{task}-v0`'s {role} backbone
(`gym.make("LPDS-{task}-v0", backbone="{kind}")`; paper Sec. 5.1, App. A.1, D).

- **Data**: {episodes} episodes ({transitions:,} transitions) of a *medium* SB3 SAC policy (D4RL-style; the
  D4RL/Minari data and DPPO's checkpoints cannot be downloaded here). The expert (SB3 SAC, seed {expert_seed},
  checkpoints every {ckpt_every:,} steps, {expert_eval} deterministic evaluation episodes each) peaked at
  {expert_return:.0f} at step {expert_step:,}; the medium checkpoint is step {medium_step:,} (evaluation return {medium_return:.0f}, {actual:.0%} of the best; the
  checkpoint nearest the {fraction:.0%} target); its stochastic episodes in the dataset average {data_return:.0f}
  +- {data_std:.0f}. Minari id `{minari_id}` (local). Regenerated (resumable) by
  `python -m lpds_envs.backbones.zoo.locomotion all --env {env} --seed {expert_seed} --expert-steps {expert_steps}
  --ckpt-every {ckpt_every} --episodes {episodes} --bc-steps {steps}`, then `... ship --env {env}`.
- **Model**: {model} residual MLP ({params:,} parameters, hidden {hidden_dim} x {n_blocks} blocks, time embedding
  {time_embed_dim}), action chunk Ta = {chunk_size}, {sampler}; observations min-max scaled to [-1, 1] and actions to
  [-1, 1], both stored in the checkpoint.
- **Training**: {steps:,} AdamW steps, batch {batch_size}, EMA {ema_decay}; final BC loss (EMA-smoothed) {bc_loss:.4f}.
- **With prior latents** (the frozen backbone itself), {eval_episodes} episodes (seeds {eval_seed}..), latent box
  {latent_bound}: return **{return_mean:.1f} +- {return_std:.1f}**, mean length {length_mean:.0f} raw steps.
"""


def ship_backbones(env_id: str, zoo: Path, dest_root: Path | None = None) -> list[Path]:
    """Stage 5: copy both evaluated backbones into the lpds-zoo data package (``lpds_zoo/checkpoints/<task>-<kind>``) with cards and
    fingerprints."""

    data = json.loads((zoo / env_id / "data" / "dataset.json").read_text())
    expert_steps = max(int(k) for k in json.loads((zoo / env_id / "expert" / "returns.json").read_text()))
    expert = data.get("expert", {})  # datasets recorded before the expert wrote its config lack it
    written = []
    for kind in KINDS:
        dest = (Path(dest_root) if dest_root is not None else ZOO_SOURCE_DIR) / checkpoint_name(env_id, kind)
        training, ev, params = copy_for_shipping(zoo / env_id / kind, dest, data)
        cfg = dict(training["decoder"])
        model, sampler = describe_sampler(kind, cfg)
        for key in ("num_inference_steps", "num_train_timesteps"):
            cfg.pop(key, None)
        write_backbone_card(
            dest,
            CARD.format(
                env=env_id,
                kind=kind,
                task=env_id.split("-")[0],
                role="default" if kind == "diffusion" else "alternative",
                episodes=data["episodes"],
                transitions=data["transitions"],
                expert_seed=expert.get("seed", "?"),
                ckpt_every=expert.get("checkpoint_every", 20_000),
                expert_eval=expert.get("eval_episodes", 5),
                expert_return=data["expert_eval_return"],
                expert_step=data["expert_checkpoint"],
                medium_step=data["medium_checkpoint"],
                medium_return=data["medium_eval_return"],
                fraction=data["fraction_target"],
                actual=data["medium_eval_return"] / data["expert_eval_return"],
                expert_steps=expert_steps,
                data_return=data["dataset_return_mean"],
                data_std=data["dataset_return_std"],
                minari_id=data["minari_id"],
                model=model,
                params=params,
                sampler=sampler,
                steps=training["steps"],
                batch_size=training["batch_size"],
                ema_decay=training["ema_decay"],
                bc_loss=training["final_bc_loss"],
                eval_episodes=ev["episodes"],
                eval_seed=ev["seed"],
                latent_bound=ev["latent_bound"],
                return_mean=ev["return_mean"],
                return_std=ev["return_std"],
                length_mean=ev["length_mean"],
                **{k: cfg[k] for k in ("hidden_dim", "n_blocks", "time_embed_dim", "chunk_size")},
            ),
        )
        if dest_root is None:
            write_fingerprint(dest.name)
        written.append(dest)
    return written


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Locomotion zoo: experts, medium datasets, backbones (resumable)")
    p.add_argument(
        "stage",
        choices=["expert", "dataset", "backbone", "evaluate", "ship", "all"],
        help="'all' runs expert, dataset, backbone and evaluate; 'ship' copies the backbones into packages/lpds-zoo",
    )
    p.add_argument("--env", required=True, choices=ENVS)
    p.add_argument("--zoo", default="zoo", help="working folder (not committed)")
    p.add_argument("--expert-steps", type=int, default=300_000)
    p.add_argument("--ckpt-every", type=int, default=20_000)
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--medium-fraction", type=float, default=0.4)
    p.add_argument("--episodes", type=int, default=200, help="dataset episodes")
    add_backbone_options(
        p,
        KINDS,
        50_000,
        "backbones to train in the backbone stage (default both; one per process runs them in parallel)",
    )
    args = parse_stage_args(p, argv)
    zoo = Path(args.zoo)
    if args.stage in ("expert", "all"):
        train_expert(args.env, zoo, args.expert_steps, args.ckpt_every, args.eval_episodes, args.seed)
    if args.stage in ("dataset", "all"):
        print(
            json.dumps(
                json.loads(
                    (
                        record_dataset(args.env, zoo, args.episodes, args.medium_fraction, args.seed) / "dataset.json"
                    ).read_text()
                )
            )
        )
    if args.stage in ("backbone", "all"):
        train_backbones(args.env, zoo, args.bc_steps, seed=args.seed, kinds=tuple(args.kinds))
    if args.stage in ("evaluate", "all"):
        evaluate_backbones(args.env, zoo)
    if args.stage == "ship":
        for path in ship_backbones(args.env, zoo):
            print(f"shipped {path}")


if __name__ == "__main__":
    main()
