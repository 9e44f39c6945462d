"""Report of the LPDS-AdroitPen-v0 study (``benchmarks/adroit_pen_study.sh``): curves, final table, action entropy.

Reads the ``lpds train`` run folders under ``--runs`` and writes into ``--out``:

- ``learning_curves_LPDS-AdroitPen-v0.{png,pdf}`` and ``final_performance.md`` (via ``lpds plot``: evaluation
  return and success rate against raw env steps, mean and 95% bootstrap band over seeds);
- ``backbone.json``: the frozen backbone (prior latents) under the runs' evaluation protocol;
- ``entropy.json``: the action entropy of eq. 11 (paper Fig. 5/6) of every finished run's final policy and of the
  backbone, at the same probe states (visited by the backbone from seeded resets), chunks flattened to 8 x 24;
- ``summary.md``: one table with everything above, per variant (mean ± std over seeds), and with
  ``--final-episodes N`` each finished run's final model against the frozen backbone on the same N episodes (paired
  reset seeds: return and success gains with their standard errors, cached in ``final_vs_backbone.json``).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/adroit_pen_report.py [--runs DIR] [--out DIR] [--max-steps N]
        [--final-episodes N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_repo_to_path, final_vs_backbone  # noqa: E402

add_repo_to_path()

ENV_ID = "LPDS-AdroitPen-v0"


def probe_states(n_states: int, seed: int) -> np.ndarray:
    """``n_states`` observations visited by the backbone (prior latents) from seeded resets, spread over episodes."""
    import gymnasium as gym

    import lpds_envs  # noqa: F401

    env = gym.make(ENV_ID)
    rng = np.random.default_rng(seed)
    states = []
    episode = 0
    while len(states) < n_states:
        obs, _ = env.reset(seed=seed + episode)
        keep_at = set(rng.choice(25, size=4, replace=False).tolist())  # 4 chunk boundaries of this episode
        for t in range(25):
            if t in keep_at and len(states) < n_states:
                states.append(np.asarray(obs, dtype=np.float32))
            obs, _, terminated, truncated, _ = env.step(rng.standard_normal(env.action_space.shape).clip(-2.5, 2.5))
            if terminated or truncated:
                break
        episode += 1
    env.close()
    return np.stack(states)


def load_model(run_dir: Path):
    """The final model of a finished run (``model.zip``) with its algorithm's class."""
    from lpds_envs import make_latent_vec_env
    from lpds_envs.experiment.config import RunConfig
    from lpds_envs.experiment.evaluate import load_trained

    algo = RunConfig.read(run_dir / "config.yaml").algo
    bound = None if algo == "lpds-no-lagrangian-no-bound" else 2.5
    env = make_latent_vec_env(ENV_ID, seed=0, latent_bound=bound)
    return load_trained(run_dir / "model.zip", algo, env, device="cpu")


def evaluate_backbone(episodes: int, seed: int) -> dict:
    """The frozen backbone (prior latents, clipped to the 2.5 box as the env does) over ``episodes`` episodes."""
    from lpds_envs import make_latent_vec_env
    from lpds_envs.evaluation import prior_latents, run_episodes

    venv = make_latent_vec_env(ENV_ID, n_envs=10, seed=seed)
    latents = prior_latents(venv.action_space.shape[0], seed=seed)
    batches = [run_episodes(venv, latents) for _ in range(max(1, episodes // 10))]
    returns = np.concatenate([b.returns for b in batches])
    success = np.concatenate([b.success for b in batches])
    return {
        "episodes": int(len(returns)),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "success_rate": float(success.mean()),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", default="benchmarks/results/runs_adroit")
    p.add_argument("--out", default="benchmarks/results/adroit_pen")
    p.add_argument("--probe-states", type=int, default=32)
    p.add_argument("--samples", type=int, default=256, help="decoded samples per probe state")
    p.add_argument("--backbone-episodes", type=int, default=100)
    p.add_argument(
        "--max-steps", type=int, default=0, help="report each run's evaluations up to this many raw env steps (0: all)"
    )
    p.add_argument(
        "--final-episodes",
        type=int,
        default=0,
        help="also evaluate each finished run's final model and the frozen backbone on the same N "
        "episodes (lpds evaluate --vs-backbone); 0: skip",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from lpds_envs.backbones import load_backbone
    from lpds_envs.experiment.plotting import plot_runs
    from lpds_envs.metrics import action_entropy, model_sampler, prior_sampler
    from lpds_envs.registration import TASKS

    max_steps = args.max_steps or None
    plot_runs([args.runs], out=out, max_steps=max_steps)

    backbone_path = out / "backbone.json"
    if not backbone_path.is_file():
        backbone_path.write_text(json.dumps(evaluate_backbone(args.backbone_episodes, seed=20_000), indent=1))
    backbone = json.loads(backbone_path.read_text())

    decoder = load_backbone(TASKS["AdroitPen"].backbones["flow"])
    probes = probe_states(args.probe_states, seed=30_000)
    entropy_path = out / "entropy.json"
    entropy = json.loads(entropy_path.read_text()) if entropy_path.is_file() else {}
    if "backbone" not in entropy:
        gen = torch.Generator().manual_seed(0)
        dim = int(np.prod(decoder.latent_shape))
        entropy["backbone"] = action_entropy(decoder, probes, prior_sampler(dim, 2.5, gen), n_samples=args.samples)
    from lpds_envs.experiment.config import RunConfig

    for run_dir in sorted(Path(args.runs).glob(f"{ENV_ID}/*/seed_*")):
        if not (run_dir / "model.zip").is_file():
            continue  # not finished
        budget = RunConfig.read(run_dir / "config.yaml").steps
        key = f"{run_dir.parent.name}/{run_dir.name}@{budget}"  # the budget too: a run may be extended later
        if key in entropy or (max_steps and budget > max_steps):
            continue  # done already, or a model past the reported budget
        torch.manual_seed(0)
        model = load_model(run_dir)
        entropy[key] = action_entropy(decoder, probes, model_sampler(model), n_samples=args.samples)
        print(f"{key}: action entropy {entropy[key]:.2f}", flush=True)
        entropy_path.write_text(json.dumps(entropy, indent=1))
    entropy_path.write_text(json.dumps(entropy, indent=1))

    # one summary table per variant: final evaluation (last row of each run, up to --max-steps) and final entropy
    from lpds_envs.experiment.plotting import find_runs

    rows = [
        "| policy | seeds | final env steps | return (mean ± std) | success (mean ± std) | action entropy |",
        "|---|---|---|---|---|---|",
        f"| frozen backbone (prior latents, {backbone['episodes']} episodes) | - | - | {backbone['return_mean']:.1f} | "
        f"{backbone['success_rate']:.2f} | {entropy['backbone']:.2f} |",
    ]
    variants: dict[str, list] = {}
    for run in find_runs([args.runs], max_steps):
        if run.cfg.env_id == ENV_ID:
            variants.setdefault(run.folder.parent.name, []).append(run)
    for name, runs in sorted(variants.items()):
        steps = sorted({int(run.steps[-1]) for run in runs})
        ret = np.array([run.returns[-1] for run in runs])
        suc = np.array([run.success[-1] for run in runs])
        # a run's entropy is of its model.zip, i.e. at its own budget: only when that is within --max-steps
        ents = [
            entropy[k]
            for run in runs
            if (k := f"{name}/{run.folder.name}@{run.cfg.steps}") in entropy
            and (max_steps is None or run.cfg.steps <= max_steps)
        ]
        ent = f"{np.mean(ents):.2f} ± {np.std(ents):.2f} ({len(ents)})" if ents else "-"
        rows.append(
            f"| {name} | {len(runs)} | {', '.join(map(str, steps))} | {ret.mean():.1f} ± {ret.std():.1f} | "
            f"{suc.mean():.2f} ± {suc.std():.2f} | {ent} |"
        )
    table = "\n".join(rows) + "\n"
    if args.final_episodes:
        table += "\n" + final_vs_backbone(Path(args.runs), out, ENV_ID, args.final_episodes, max_steps, success=True)
    (out / "summary.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
