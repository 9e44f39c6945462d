"""Report of ``benchmarks/adroit_pen_dppo_study.sh`` (paper Fig. 5, issue 31): action entropy of DPPO and LP-DS on
LPDS-AdroitPen-v0 with a diffusion backbone (the Adroit zoo's ``backbone --kind diffusion``, not shipped).

Reads the ``lpds train`` run folders under ``--runs`` (``dppo`` and ``lpds``) and writes into ``--out``:

- ``entropy.json``: the action entropy of eq. 11 (:func:`lpds_envs.metrics.action_entropy`, chunks flattened to
  8 x 24) at the same probe states (visited by the diffusion backbone with prior latents from seeded resets) of
  (a) the frozen backbone with prior latents ``w ~ N(0, I)`` clipped to the 2.5 box, (b) each DPPO run's fine-tuned
  policy ``model.fine_tuned_decoder()`` with the *same* prior latents (one generator seed for both), (c) each LP-DS
  run's steered policy, the backbone decoded at ``eps + Delta(s)`` (:func:`~lpds_envs.metrics.model_sampler`);
  and how far each policy moved: the distance between its mean chunk and the backbone's at each probe state, in
  units of the backbone's spread there (RMS distance of its chunks from their mean), averaged over the states
  (``shift``); both also for the backbone with other prior draws (generator seed 1), the estimators' noise floor;
- ``summary.md``: the table per policy (mean ± std over seeds; with each run's first and last entropy logged by its
  evaluations, at visited states, ``evaluations.csv``), and with ``--final-episodes N`` each finished run's final
  model against the frozen backbone on the same N episodes (``lpds evaluate --vs-backbone``).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/adroit_pen_dppo_report.py --backbone zoo/adroit/pen/diffusion \
        [--runs DIR] [--out DIR] [--final-episodes N]
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
LATENT_BOUND = 2.5


def probe_states(backbone: str, n_states: int, seed: int) -> np.ndarray:
    """``n_states`` observations visited by ``backbone`` (prior latents) from seeded resets, 4 chunk boundaries per
    episode (as ``adroit_pen_report.probe_states``, with the diffusion backbone)."""
    import gymnasium as gym

    import lpds_envs  # noqa: F401

    env = gym.make(ENV_ID, backbone=backbone)
    rng = np.random.default_rng(seed)
    states = []
    episode = 0
    while len(states) < n_states:
        obs, _ = env.reset(seed=seed + episode)
        keep_at = set(rng.choice(25, size=4, replace=False).tolist())
        for t in range(25):
            if t in keep_at and len(states) < n_states:
                states.append(np.asarray(obs, dtype=np.float32))
            w = rng.standard_normal(env.action_space.shape).clip(-LATENT_BOUND, LATENT_BOUND)
            obs, _, terminated, truncated, _ = env.step(w)
            if terminated or truncated:
                break
        episode += 1
    env.close()
    return np.stack(states)


def chunks(decoder, probes: np.ndarray, sampler, n: int) -> np.ndarray:
    """``n`` decoded chunks per probe state, ``(B, n, Ta * act_dim)``."""
    obs = torch.as_tensor(probes).repeat_interleave(n, dim=0)
    with torch.no_grad():
        out = decoder(obs, sampler(obs).view(len(obs), *decoder.latent_shape))
    return out.reshape(len(probes), n, -1).numpy()


def shift(policy: np.ndarray, backbone: np.ndarray) -> float:
    """Mean over states of ||mean chunk - backbone mean chunk|| / backbone RMS spread (both ``(B, n, D)``)."""
    spread = np.sqrt(((backbone - backbone.mean(1, keepdims=True)) ** 2).sum(-1).mean(1))
    return float(np.mean(np.linalg.norm(policy.mean(1) - backbone.mean(1), axis=-1) / spread))


def load_run(run_dir: Path):
    """``(algo, model)`` of a finished run, loaded on the env it was trained on (its config's backbone path)."""
    from lpds_envs.experiment.config import RunConfig, get_algo, make_run_env
    from lpds_envs.experiment.evaluate import load_trained

    cfg = RunConfig.read(run_dir / "config.yaml")
    venv = make_run_env(get_algo(cfg.algo), cfg.env_id, cfg.env_kwargs, 1, 0, "cpu")
    return cfg, load_trained(run_dir / "model.zip", cfg.algo, venv, device="cpu")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbone", required=True, help="the diffusion backbone's folder (the runs' env_kwargs.backbone)")
    p.add_argument("--runs", default="benchmarks/results/runs_adroit_dppo")
    p.add_argument("--out", default="benchmarks/results/adroit_pen_dppo")
    p.add_argument("--probe-states", type=int, default=32)
    p.add_argument("--samples", type=int, default=256, help="decoded samples per probe state")
    p.add_argument("--final-episodes", type=int, default=0, help="paired final evaluation vs the backbone; 0: skip")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from lpds_envs.decoders import load_decoder
    from lpds_envs.metrics import action_entropy, model_sampler, prior_sampler

    backbone = load_decoder(Path(args.backbone))
    dim = int(np.prod(backbone.latent_shape))
    probes = probe_states(args.backbone, args.probe_states, seed=30_000)

    def prior(seed: int = 0):  # the same prior latents for the backbone and every DPPO policy
        return prior_sampler(dim, LATENT_BOUND, torch.Generator().manual_seed(seed))

    base_chunks = chunks(backbone, probes, prior(), args.samples)
    result = {
        "backbone": str(args.backbone),
        "probe_states": args.probe_states,
        "samples": args.samples,
        "entropy": {
            "backbone": action_entropy(backbone, probes, prior(), n_samples=args.samples),
            "backbone_other_draws": action_entropy(backbone, probes, prior(1), n_samples=args.samples),
        },
        "shift": {"backbone_other_draws": shift(chunks(backbone, probes, prior(1), args.samples), base_chunks)},
        "raw_env_steps": {},
        "logged_entropy": {},
    }
    print(f"backbone: action entropy {result['entropy']['backbone']:.2f}", flush=True)
    for run_dir in sorted(Path(args.runs).glob(f"{ENV_ID}/*/seed_*")):
        if not (run_dir / "model.zip").is_file():
            continue  # not finished
        cfg, model = load_run(run_dir)
        key = f"{run_dir.parent.name}/{run_dir.name}"
        if cfg.algo == "dppo":
            decoder, sampler = model.fine_tuned_decoder(), prior
        else:  # a latent learner: the backbone at eps + Delta(s), under a fixed torch seed
            decoder = backbone

            def sampler(model=model):
                torch.manual_seed(0)
                return model_sampler(model)

        result["entropy"][key] = action_entropy(decoder, probes, sampler(), n_samples=args.samples)
        result["shift"][key] = shift(chunks(decoder, probes, sampler(), args.samples), base_chunks)
        result["raw_env_steps"][key] = cfg.steps
        evaluations = np.genfromtxt(run_dir / "evaluations.csv", delimiter=",", names=True)
        logged = [float(x) for x in np.atleast_1d(evaluations["action_entropy"])]
        result["logged_entropy"][key] = [x for x in logged if np.isfinite(x)]
        print(f"{key}: action entropy {result['entropy'][key]:.2f}, shift {result['shift'][key]:.3f}", flush=True)
    (out / "entropy.json").write_text(json.dumps(result, indent=1))

    rows = [
        "| policy | seeds | raw env steps | action entropy (mean ± std over seeds) | per seed | shift of the mean chunk "
        "| logged entropy, first → last evaluation |",
        "|---|---|---|---|---|---|---|",
        f"| frozen diffusion backbone (prior latents) | - | - | {result['entropy']['backbone']:.2f} | - | 0 | - |",
        f"| same, other prior draws (estimator noise) | - | - | {result['entropy']['backbone_other_draws']:.2f} | - | "
        f"{result['shift']['backbone_other_draws']:.3f} | - |",
    ]
    for name in sorted({k.split("/")[0] for k in result["raw_env_steps"]}):
        keys = sorted(k for k in result["raw_env_steps"] if k.split("/")[0] == name)
        ent = np.array([result["entropy"][k] for k in keys])
        shf = np.array([result["shift"][k] for k in keys])
        rows.append(
            f"| {name} | {len(keys)} | {', '.join(sorted({str(result['raw_env_steps'][k]) for k in keys}))} | "
            f"{ent.mean():.2f} ± {ent.std():.2f} | {' / '.join(f'{e:.2f}' for e in ent)} | "
            f"{' / '.join(f'{s:.3f}' for s in shf)} | "
            + " / ".join(
                f"{result['logged_entropy'][k][0]:.1f} → {result['logged_entropy'][k][-1]:.1f}"
                for k in keys
                if result["logged_entropy"][k]
            )
            + " |"
        )
    table = "\n".join(rows) + "\n"
    if args.final_episodes:
        table += "\n" + final_vs_backbone(Path(args.runs), out, ENV_ID, args.final_episodes, success=True)
    (out / "summary.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
