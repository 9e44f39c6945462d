"""The registered toy steering task with SB3: batched latent VecEnv, SAC (DSRL-SAC), goal coverage before/after.

python examples/lpds_multigoal_sb3.py
"""

import torch
from stable_baselines3 import SAC

from lpds_envs import make_latent_vec_env
from lpds_envs.evaluation import multigoal_coverage

torch.set_num_threads(2)
venv = make_latent_vec_env("LPDS-MultiGoal-v0", n_envs=4, seed=0, latent_bound=1.5)  # shipped diffusion backbone
print("backbone goal fractions:", multigoal_coverage(venv.decoder, n_rollouts=500)["goal_fractions"])

model = SAC("MlpPolicy", venv, learning_starts=500, seed=0, verbose=0).learn(8_000)
steered = multigoal_coverage(venv.decoder, n_rollouts=500, latent_fn=lambda o: model.predict(o, deterministic=True)[0])
print("steered goal fractions:", steered["goal_fractions"], "mean return", round(steered["mean_return"], 2))
