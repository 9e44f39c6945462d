"""Wrap any Gymnasium env and any decoder into a latent-action MDP, then run SB3 SAC on it (DSRL-SAC).

python examples/steer_any_env.py
"""

import gymnasium as gym
import torch
from stable_baselines3 import SAC

import lpds_envs  # noqa: F401  (registers lpds/MultiGoal-v0)
from lpds_envs import LatentSteeringWrapper
from lpds_envs.decoders import CallableDecoder

torch.set_num_threads(2)

# A "frozen policy" written as a plain function: chunk of 4 actions = tanh of the latent, plus a pull to the origin.
decoder = CallableDecoder(
    lambda obs, w: torch.tanh(w) - 0.3 * obs[:, None, :], latent_shape=(4, 2), action_shape=(4, 2)
)
env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), decoder, latent_bound=2.5)

model = SAC("MlpPolicy", env, learning_starts=200, verbose=0, seed=0)
model.learn(total_timesteps=1_500)

obs, _ = env.reset(seed=1)
total = 0.0
for _ in range(5):  # 5 chunks of 4 = one 20-step episode
    w, _ = model.predict(obs, deterministic=True)
    obs, reward, terminated, truncated, info = env.step(w)
    total += reward
print(f"steered return {total:.2f}; last chunk decoded to\n{info['decoded_action']}")
