"""``lpds demo``: the shipped toy backbone, its four-goal coverage, a short steering run, before/after figures."""

from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from stable_baselines3 import SAC

from algorithms import LagrangianSAC

from ..envs.multigoal import GOAL_RADIUS, GOALS
from ..evaluation import multigoal_coverage
from ..vector import make_latent_vec_env


def _print_coverage(name: str, cov: dict) -> None:
    fr = cov["goal_fractions"]
    print(
        f"  {name:<22} return {cov['mean_return']:7.2f}   goals BL {fr[0]:.2f}  TR {fr[1]:.2f}  "
        f"TL {fr[2]:.2f}  BR {fr[3]:.2f}   none {cov['no_goal']:.2f}"
    )


def plot_paths(panels: list[tuple[str, list]], path: Path) -> None:
    """Trajectory panels in the paper's Fig. 1 layout (goals shaded)."""
    matplotlib.use("Agg")
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    for ax, (title, paths) in zip(axes[0], panels):
        for g in GOALS:
            ax.add_patch(plt.Circle(g, GOAL_RADIUS, color="tab:green", alpha=0.3))
        for p in paths[:100]:
            p = np.asarray(p)
            ax.plot(p[:, 0], p[:, 1], "-", color="tab:blue", alpha=0.15, lw=1)
        ax.plot(0, 0, "k*", ms=10)
        ax.set(xlim=(-2, 2), ylim=(-2, 2), aspect="equal", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run_demo(steps: int = 4000, rollouts: int = 1000, seed: int = 0, out: str = "lpds_demo") -> dict:
    """Run the demo and return its summary (also written to ``out/demo_summary.json``)."""
    torch.set_num_threads(2)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    print("lpds demo: steering a frozen diffusion policy on the 4-goal toy task (paper App. B)")
    lpds_env = make_latent_vec_env("LPDS-MultiGoal-v0", n_envs=1, seed=seed)  # latent box 2.5
    dsrl_env = make_latent_vec_env("LPDS-MultiGoal-v0", n_envs=1, seed=seed, latent_bound=1.5)  # App. B's b_W
    decoder = lpds_env.decoder
    n_params = sum(p.numel() for p in decoder.parameters())
    print(
        f"frozen backbone: {type(decoder).__name__}, {n_params:,} parameters, latent {decoder.latent_shape}, "
        f"{decoder.sampler.num_inference_steps} DDIM steps"
    )
    print(f"\n1) backbone with latents from the prior N(0, I), {rollouts} rollouts from the origin:")
    before = multigoal_coverage(decoder, n_rollouts=rollouts, seed=seed + 1)
    _print_coverage("frozen backbone", before)

    print(f"\n2) LP-DS (LagrangianSAC, delta = 0.05) for {steps} env steps ...")
    lpds = LagrangianSAC(
        "MlpPolicy", lpds_env, delta=0.05, learning_starts=500, seed=seed, policy_kwargs={"net_arch": [128, 128]}
    )
    lpds.learn(total_timesteps=steps)
    print(f"   alpha = {lpds.alpha:.3f}, E||Delta||^2 = {lpds.logger.name_to_value['train/perturbation_sq']:.3f}")
    print(f"3) DSRL-SAC (SB3 SAC on the latent env, |w| <= 1.5) for {steps} env steps ...")
    dsrl = SAC("MlpPolicy", dsrl_env, learning_starts=500, seed=seed, policy_kwargs={"net_arch": [128, 128]})
    dsrl.learn(total_timesteps=steps)

    # LP-DS's policy is w = eps + Delta(s) (stochastic); DSRL-SAC is evaluated with its deterministic latent
    lpds_cov = multigoal_coverage(decoder, rollouts, seed + 1, latent_fn=lambda o: lpds.predict(o)[0])
    dsrl_cov = multigoal_coverage(
        decoder, rollouts, seed + 1, latent_fn=lambda o: dsrl.predict(o, deterministic=True)[0]
    )
    print(f"\n4) after {steps} env steps, {rollouts} rollouts each:")
    _print_coverage("frozen backbone", before)
    _print_coverage("LP-DS (delta 0.05)", lpds_cov)
    _print_coverage("DSRL-SAC", dsrl_cov)
    png = out_dir / "demo_trajectories.png"
    plot_paths(
        [
            ("frozen backbone (prior latents)", before["paths"]),
            ("LP-DS, delta = 0.05", lpds_cov["paths"]),
            ("DSRL-SAC", dsrl_cov["paths"]),
        ],
        png,
    )
    keys = ("goal_fractions", "no_goal", "mean_return")
    summary = {
        "steps": steps,
        "rollouts": rollouts,
        "seed": seed,
        "seconds": round(time.time() - t0, 1),
        "backbone": {k: before[k] for k in keys},
        "lpds": {k: lpds_cov[k] for k in keys} | {"alpha": lpds.alpha, "delta": lpds.delta},
        "dsrl_sac": {k: dsrl_cov[k] for k in keys},
    }
    (out_dir / "demo_summary.json").write_text(json.dumps(summary, indent=1))

    def n_goals(cov: dict) -> int:
        return sum(f >= 0.05 for f in cov["goal_fractions"])

    print(
        f"\nmean return: backbone {before['mean_return']:.2f}, LP-DS {lpds_cov['mean_return']:.2f}, "
        f"DSRL-SAC {dsrl_cov['mean_return']:.2f}; goals reached by >= 5% of rollouts: "
        f"{n_goals(before)}, {n_goals(lpds_cov)}, {n_goals(dsrl_cov)}."
    )
    print(f"wrote {png} and {out_dir / 'demo_summary.json'} in {summary['seconds']:.0f} s")
    return summary
