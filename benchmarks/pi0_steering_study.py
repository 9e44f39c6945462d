"""LP-DS (LagrangianSAC) vs DSRL-SAC steering the shipped tiny PI0 on ``LPDS-MultiGoalPi0-v0`` (pixels + state).

Both learners see the Dict observation through ``"MultiInputPolicy"`` (SB3's CombinedExtractor: a NatureCNN on the
64x64 image, the state flattened). Settings follow ``lpds demo``: LP-DS with delta 0.05 on the latent box 2.5,
DSRL-SAC (plain SB3 SAC on the latent env) on the box 1.5 (App. B's b_W); 128 x 128 networks, batch 64,
``learning_starts`` latent steps of prior noise first. Evaluation: ``--rollouts`` episodes from the origin, goal
fractions and mean return, LP-DS with its stochastic policy ``eps + Delta(s)``, DSRL-SAC with its deterministic
latent, the frozen backbone with prior latents. ``lpds_subspace`` (optional arm) is LP-DS on the 2-dim exact-prior
subspace (``latent_subspace="chunk_constant"``) instead of the 16-dim latent.

Every (algorithm, seed) run writes ``<out>/<algo>_seed<k>.json`` and is skipped when that file exists, so an
interrupted study resumes by re-running the command. Progress goes to ``<out>/study.log``.

Usage::

    python benchmarks/pi0_steering_study.py --seeds 0 1 2 --steps 1500 --out benchmarks/results/pi0_steering
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_repo_to_path, machine_info  # noqa: E402

GOAL_NAMES = ("BL", "TR", "TL", "BR")


def _log(out: Path, msg: str) -> None:
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}"
    print(line, flush=True)
    with (out / "study.log").open("a") as f:
        f.write(line + "\n")


def run_one(algo: str, seed: int, steps: int, rollouts: int) -> dict:
    import torch
    from stable_baselines3 import SAC

    import lpds_envs  # noqa: F401
    from algorithms import LagrangianSAC
    from lpds_envs.backbones.zoo.pi0_toy import multigoal_pixels_coverage
    from lpds_envs.vector import make_latent_vec_env

    common = dict(learning_starts=200, batch_size=64, seed=seed, policy_kwargs={"net_arch": [128, 128]})
    t0 = time.time()
    if algo == "backbone":
        env = make_latent_vec_env("LPDS-MultiGoalPi0-v0", n_envs=1, seed=seed)
        decoder, latent_fn, extra = env.decoder, None, {}
    elif algo == "lpds":
        env = make_latent_vec_env("LPDS-MultiGoalPi0-v0", n_envs=1, seed=seed)
        model = LagrangianSAC("MultiInputPolicy", env, delta=0.05, **common).learn(steps)
        decoder, latent_fn = env.decoder, (lambda o: model.predict(o)[0])
        extra = {"alpha": model.alpha, "perturbation_sq": model.logger.name_to_value.get("train/perturbation_sq")}
    elif algo == "lpds_subspace":  # LP-DS on u in R^2, z = P u + (I - P P^T) eps (chunk-constant P)
        import gymnasium as gym

        env = gym.make("LPDS-MultiGoalPi0-v0", latent_subspace="chunk_constant")
        model = LagrangianSAC("MultiInputPolicy", env, delta=0.05, **common).learn(steps)
        decoder, latent_fn = env.get_wrapper_attr("decoder"), (lambda o: model.predict(o)[0])
        extra = {"alpha": model.alpha, "perturbation_sq": model.logger.name_to_value.get("train/perturbation_sq")}
        torch.manual_seed(1000 + seed)  # the evaluation's complement noise comes from torch's global RNG
    elif algo == "dsrl_sac":
        env = make_latent_vec_env("LPDS-MultiGoalPi0-v0", n_envs=1, seed=seed, latent_bound=1.5)
        model = SAC("MultiInputPolicy", env, **common).learn(steps)
        decoder, latent_fn, extra = env.decoder, (lambda o: model.predict(o, deterministic=True)[0]), {}
    else:
        raise ValueError(algo)
    train_s = time.time() - t0
    with torch.inference_mode():
        cov = multigoal_pixels_coverage(decoder, n_rollouts=rollouts, seed=1000 + seed, latent_fn=latent_fn)
    return {"algo": algo, "seed": seed, "latent_steps": steps, "train_s": train_s, **cov, **extra}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1500, help="latent steps per run (x4 raw env steps)")
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--algos", nargs="+", default=["backbone", "lpds", "dsrl_sac"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/pi0_steering")
    args = parser.parse_args(argv)
    add_repo_to_path()
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "machine.json").write_text(json.dumps({**machine_info(), "args": vars(args)}, indent=1))
    results = []
    for seed in args.seeds:
        for algo in args.algos:
            path = out / f"{algo}_seed{seed}.json"
            if path.exists():
                results.append(json.loads(path.read_text()))
                continue
            _log(out, f"start {algo} seed {seed} ({args.steps} latent steps)")
            res = run_one(algo, seed, args.steps, args.rollouts)
            path.write_text(json.dumps(res, indent=1))
            _log(out, f"done {algo} seed {seed}: return {res['mean_return']:.2f}, goals {res['goal_fractions']}")
            results.append(res)
    print(
        "\n| algorithm | seeds | mean return (± std over seeds) | goals reached by >= 5% | goal fractions BL/TR/TL/BR |"
    )
    print("|---|---|---|---|---|")
    for algo in args.algos:
        rs = [r for r in results if r["algo"] == algo]
        ret = np.array([r["mean_return"] for r in rs])
        fr = np.array([r["goal_fractions"] for r in rs])
        modes = [int((np.array(r["goal_fractions"]) >= 0.05).sum()) for r in rs]
        per_seed = "; ".join("/".join(f"{x:.2f}" for x in f) for f in fr)
        print(f"| {algo} | {len(rs)} | {ret.mean():.2f} ± {ret.std():.2f} | {modes} | {per_seed} |")


if __name__ == "__main__":
    main()
