"""Deploy a steered policy: export it to ONE file, then run it in a plain control loop (torch + the raw task env).

python examples/deploy_franka.py                                   # Franka pick-and-place (needs the franka extra)
python examples/deploy_franka.py --model runs/LPDS-FrankaPickPlace-v0/lpds/seed_0/model.zip
python examples/deploy_franka.py --env LPDS-MultiGoal-v0           # the toy task, no extra needed
python examples/deploy_franka.py --env LPDS-Hopper-v0 --episodes 2 # MuJoCo Hopper (locomotion extra)
python examples/deploy_franka.py --model ... --deploy-kwarg shift=deployment  # Franka: deploy in the shifted sim

Without --model a tiny LP-DS policy is trained for the demo (a few hundred steps: it shows the path, not a good
policy). The deployed side (``load_exported``, ``control_loop``) imports nothing from lpds or Stable-Baselines3 and
uses no lpds wrapper: ``torch.export.load`` gives the whole steered policy (Delta network + frozen decoder + its
sampler), the raw env executes each chunk's actions one by one. (A decoder ``torch.export`` cannot capture is
written in the state-dict format instead; the loop then runs it through ``algorithms.load_steered_policy``.) ``--compare`` also evaluates the learner with lpds' own evaluation
(SB3 + steering wrapper) on the same reset seeds: in deterministic mode the returns agree exactly.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import lpds_envs  # noqa: F401  (registers the raw task ids; the loop uses none of its wrappers)
from algorithms import LagrangianSAC, load_steered_policy
from lpds_envs.evaluation import evaluate_policy
from lpds_envs.experiment.config import get_algo
from lpds_envs.experiment.evaluate import locate_model
from lpds_envs.registration import TASKS, raw_task_kwargs
from lpds_envs.vector import make_latent_vec_env

DEFAULT_ENV = "LPDS-FrankaPickPlace-v0"


# ---------------------------------------------------------------- the deployed side: torch + the raw env only
def load_exported(policy_file: str | Path) -> tuple[Any, dict[str, Any]]:
    """The policy and its metadata from a ``torch.export`` file: torch is all it takes.

    :param policy_file: a ``.pt2`` file written by ``export_steered_policy`` (format ``"torch.export"``)
    :return: ``(policy, metadata)``; ``policy(obs_batch, **noise) -> (B, Ta, act_dim)``
    """
    extra = {"lpds_policy.json": ""}
    policy = torch.export.load(str(policy_file), extra_files=extra).module()
    return policy, json.loads(extra["lpds_policy.json"])


def control_loop(
    policy: Any,
    meta: dict[str, Any],
    raw_env_id: str,
    episodes: int,
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``episodes`` episodes of the exported policy in the raw task env; episode ``j`` resets with ``seed + j``.

    :param policy: the loaded policy (:func:`load_exported`)
    :param meta: its metadata (inputs, observation dtypes and shapes)
    :param raw_env_id: the raw task (per-step actions), e.g. ``lpds/FrankaPickPlace-v0``
    :param episodes: number of episodes
    :param seed: reset seed of the first episode (and of the noise in stochastic mode)
    :param env_kwargs: ``gym.make`` keyword arguments of the raw task
    :return: per-episode ``returns``, ``success``, ``steps`` and ``paths`` (the observations at each chunk boundary)
    """
    noise_gen = torch.Generator().manual_seed(seed)
    env = gym.make(raw_env_id, **(env_kwargs or {}))
    returns, successes, steps, paths = [], [], [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, success, n, done, path = 0.0, False, 0, False, [obs]
        while not done:
            inputs = {}
            if "eps" in meta["inputs"]:  # stochastic mode: the loop draws the noise
                inputs["eps"] = torch.randn(1, meta["noise_dim"], generator=noise_gen)
            if "complement_noise" in meta["inputs"]:  # subspace steering: prior noise outside the steered subspace
                inputs["complement_noise"] = torch.randn(1, *meta["complement_noise_shape"], generator=noise_gen)
            with torch.inference_mode():
                chunk = policy(batch_of_one(obs, meta["observation"]), **inputs)[0]
            for action in chunk.numpy():  # execute the chunk, stopping at the end of the episode
                obs, reward, terminated, truncated, info = env.step(action)
                total, n = total + float(reward), n + 1
                success = success or bool(info.get("success", info.get("is_success", False)))
                done = terminated or truncated
                if done:
                    break
            path.append(obs)
        returns.append(total)
        paths.append(path)
        successes.append(success)
        steps.append(n)
    env.close()
    return {"returns": returns, "success": successes, "steps": steps, "paths": paths}


def batch_of_one(obs: Any, spec: dict[str, Any]) -> Any:
    """One raw observation as the exported program takes it: float32 ``(1, *shape)``, or a dict of tensors with
    the dtypes in the file's metadata (e.g. uint8 images, channel-last as the env gives them)."""
    if spec["type"] == "dict":
        return {k: torch.as_tensor(np.asarray(obs[k], dtype=s["dtype"]))[None] for k, s in spec["keys"].items()}
    return torch.as_tensor(np.asarray(obs, dtype=np.float32))[None]


# ---------------------------------------------------------------- the training side: lpds + SB3
def steering_env(env_id: str) -> gym.Env:
    """``gym.make(env_id)``, or a one-line exit saying what is missing (Franka: id, backbone or extra)."""
    if env_id not in gym.registry:
        hint = ' (the Franka tasks need the franka extra: pip install "lpds[franka]")' if "Franka" in env_id else ""
        sys.exit(f"{env_id} is not available in this lpds install{hint}; try --env LPDS-MultiGoal-v0")
    try:
        return gym.make(env_id)
    except (ImportError, FileNotFoundError, OSError) as exc:
        sys.exit(f"{env_id} cannot be made here: {str(exc).splitlines()[0]}; try --env LPDS-MultiGoal-v0")


def trained_model(args: argparse.Namespace, env: gym.Env) -> Any:
    """The learner to deploy: loaded from ``--model`` (a model .zip or an ``lpds train`` run folder), or a tiny
    LP-DS policy trained for the demo."""
    if args.model:
        path, config = locate_model(args.model)
        algo = config.algo if config is not None else args.algo
        return get_algo(algo).cls.load(path, env=env, buffer_size=1)
    policy = "MultiInputPolicy" if isinstance(env.observation_space, gym.spaces.Dict) else "MlpPolicy"
    start = min(100, args.train_steps // 2)
    model = LagrangianSAC(
        policy, env, learning_starts=start, batch_size=64, policy_kwargs={"net_arch": [64, 64]}, seed=0
    )
    print(f"no --model: training a tiny LP-DS policy on {args.env} for {args.train_steps} steps (demo only)")
    return model.learn(args.train_steps)


def parse_kwarg(item: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, value)``, the value read as JSON when it parses (``3``, ``true``), else a string."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        sys.exit(f"--deploy-kwarg takes KEY=VALUE, got {item!r}")
    try:
        return key, json.loads(text)
    except json.JSONDecodeError:
        return key, text


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=DEFAULT_ENV, help="LPDS-<Task>-v0 steering id (its raw task is deployed)")
    parser.add_argument(
        "--model", help="a saved learner (.zip) or an `lpds train` run folder; default: train a tiny one"
    )
    parser.add_argument("--algo", default="lpds", help="the learner of --model when it is a bare .zip")
    parser.add_argument("--out", default="steered_policy.pt2", help="where the exported policy is written")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--stochastic", action="store_true", help="export eps + Delta(s) (noise drawn by the loop)")
    parser.add_argument("--compare", action="store_true", help="also run lpds' evaluation on the same seeds")
    parser.add_argument(
        "--deploy-kwarg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a gym.make keyword of the raw task in the control loop only, e.g. shift=deployment (Franka's shifted "
        "simulator); VALUE is read as JSON when it parses, else as a string",
    )
    args = parser.parse_args(argv)

    extra_kwargs = dict(parse_kwarg(item) for item in args.deploy_kwarg)  # checked before any training
    env = steering_env(args.env)
    deploy_kwargs = {**raw_task_kwargs(args.env), **extra_kwargs}
    model = trained_model(args, env)
    raw_id = TASKS[gym.spec(args.env).kwargs["task"]].raw_id
    result = model.export_steered_policy(args.out, deterministic=not args.stochastic, env_id=raw_id)
    print(f"exported {result.metadata['decoder']} steered policy to {result.path} ({result.format})")
    if result.format == "torch.export":
        policy, meta = load_exported(result.path)
    else:  # a decoder torch.export cannot capture: the Delta program + the decoder, joined by lpds' loader
        print(f"{result.reason}: loading it with algorithms.load_steered_policy and the decoder")
        policy = load_steered_policy(result.path, decoder=model.decoder)
        meta = policy.metadata

    report = control_loop(policy, meta, raw_id, args.episodes, args.seed, deploy_kwargs)
    print(f"control loop on {raw_id}: returns {np.round(report['returns'], 3).tolist()}, success {report['success']}")
    if args.compare:
        venv = make_latent_vec_env(args.env, n_envs=1, seed=args.seed)
        evaluation = evaluate_policy(
            model, venv, deterministic=not args.stochastic, seed=args.seed, episodes=args.episodes
        )
        report["evaluate_returns"], report["evaluate_paths"] = evaluation.returns.tolist(), evaluation.paths
        print(f"lpds evaluation, same seeds:  returns {np.round(evaluation.returns, 3).tolist()}")
    return report


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
