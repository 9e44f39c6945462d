"""LP-DS (LagrangianSAC) against DSRL-SAC on the toy task: return and goal coverage, from the shipped presets.

    python examples/lpds_vs_dsrl_toy.py [--steps 5000]

LP-DS with a small trust region (delta = 0.05) raises the return while its steered policy eps + Delta(s) still
reaches all four goals; DSRL-SAC's deterministic latent policy collapses onto one.
"""

import argparse

import torch

from algorithms.presets import make_algorithm
from lpds_envs.evaluation import multigoal_coverage

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=5000)
args = parser.parse_args()
torch.set_num_threads(2)

for algo, deterministic in (("lpds", False), ("dsrl", True)):
    model = make_algorithm(algo, "LPDS-MultiGoal-v0", seed=0)
    decoder = model.get_env().decoder
    before = multigoal_coverage(decoder, 1000, seed=1)
    model.learn(args.steps)
    after = multigoal_coverage(
        decoder, 1000, seed=1, latent_fn=lambda o, m=model, d=deterministic: m.predict(o, deterministic=d)[0]
    )
    print(
        f"{algo:5s} return {before['mean_return']:.2f} -> {after['mean_return']:.2f}   goal fractions "
        f"{[round(f, 2) for f in before['goal_fractions']]} -> {[round(f, 2) for f in after['goal_fractions']]}"
    )
