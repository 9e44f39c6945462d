"""Evaluation of trained learners: periodic evaluation during ``lpds train`` and the ``lpds evaluate`` command.

Reported per evaluation: mean (and std) undiscounted return, success rate (when the task reports success), mean
executed raw env steps per episode and, for latent learners, the Kozachenko-Leonenko action entropy of the decoded
chunks (paper eq. 11) at states visited by the evaluation episodes.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .evaluation import prior_latents, run_episodes
from .run_config import ALGOS, CONFIG_FILE, RunConfig, UsageError, get_algo, make_run_env


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Seed python, numpy and torch with ``seed`` inside the block and restore the previous streams after it."""
    py, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(np_state)


#: most sub-envs of one evaluation batch; more episodes run in several batches
MAX_EVAL_ENVS = 64


def evaluate_model(
    model: Any, venv: Any, deterministic: bool, seed: int = 0, episodes: int | None = None
) -> dict[str, Any]:
    """``episodes`` episodes (default one per sub-env of ``venv``), episode ``j`` reset with seed ``seed + j``,
    in batches of ``venv.num_envs``, under their own RNG streams (the caller's are left as they were).

    :return: ``mean_return``, ``std_return``, ``success_rate``, ``mean_episode_steps`` (raw env steps),
        ``episodes``, and the visited observations under ``"paths"``
    """
    episodes = episodes or venv.num_envs
    returns, lengths, success, paths = [], [], [], []
    with isolated_rng(seed):
        for offset in range(0, episodes, venv.num_envs):
            venv.seed(seed + offset)
            batch = run_episodes(venv, lambda obs: model.predict(obs, deterministic=deterministic)[0])
            take = min(venv.num_envs, episodes - offset)
            returns.append(batch.returns[:take])
            lengths.append(batch.lengths[:take])
            success.append(batch.success[:take])
            paths.extend(batch.paths[:take])
    ret = np.concatenate(returns)
    return {
        "mean_return": float(ret.mean()),
        "std_return": float(ret.std()),
        "success_rate": float(np.concatenate(success).mean()),
        "mean_episode_steps": float(np.concatenate(lengths).mean()),
        "episodes": len(ret),
        "paths": paths,
    }


class PriorPolicy:
    """The frozen backbone as a learner for :func:`evaluate_model`: ``predict`` draws prior latents ``w ~ N(0, I)``
    (the latent env clips them to its box), under its own RNG.

    :param latent_dim: the latent env's action dimension
    :param seed: seed of the latent draws
    """

    def __init__(self, latent_dim: int, seed: int | None = None) -> None:
        self.latent_dim, self._draw = latent_dim, prior_latents(latent_dim, seed)

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False):
        return self._draw(obs), None


def success_gain_se(p: float, q: float, n: int) -> float:
    """Standard error of the difference ``p - q`` of two success rates, each over ``n`` independent episodes
    (binomial variances; conservative where the episodes are paired by reset seed)."""
    return float(np.sqrt((p * (1 - p) + q * (1 - q)) / n))


def compare_with_backbone(
    model: Any, venv: Any, deterministic: bool, seed: int = 0, episodes: int | None = None
) -> dict[str, Any]:
    """:func:`evaluate_model` of ``model`` and of the frozen backbone (:class:`PriorPolicy`) on the same episodes
    (the same reset seeds), with the gain in mean return and its standard error (independent episodes' variances).

    :return: ``steered`` and ``backbone`` (:func:`evaluate_model`'s results; the backbone's without paths),
        ``gain``, ``gain_se``, ``success_gain`` and ``success_gain_se`` (the binomial standard error of a difference
        of two rates over independent episodes)
    """
    steered = evaluate_model(model, venv, deterministic, seed, episodes)
    backbone = evaluate_model(PriorPolicy(int(np.prod(venv.action_space.shape)), seed), venv, False, seed, episodes)
    backbone.pop("paths")
    n = steered["episodes"]
    p, q = steered["success_rate"], backbone["success_rate"]
    return {
        "steered": steered,
        "backbone": backbone,
        "gain": steered["mean_return"] - backbone["mean_return"],
        "gain_se": float(np.sqrt((steered["std_return"] ** 2 + backbone["std_return"] ** 2) / n)),
        "success_gain": p - q,
        "success_gain_se": success_gain_se(p, q, n),
    }


def policy_action_entropy(
    model: Any, decoder: Any, observations: np.ndarray, n_samples: int = 64, seed: int = 0
) -> float:
    """Action entropy (paper eq. 11) of the steered policy ``Phi(clip(w); s)``, ``w ~ pi(.|s)``, at ``observations``.

    :func:`lpds_envs.metrics.action_entropy` with latents drawn from the learner's stochastic policy
    (:func:`lpds_envs.metrics.model_sampler`), under its own RNG streams.
    """
    from .metrics import action_entropy, model_sampler  # imported here: the CLI stays light without it

    with isolated_rng(seed), torch.no_grad():
        return action_entropy(decoder, observations, model_sampler(model, deterministic=False), n_samples, k=3)


def entropy_at_visited(
    model: Any, decoder: Any, paths: list[np.ndarray], n_states: int, n_samples: int = 64, seed: int = 0
) -> float:
    """:func:`policy_action_entropy` at ``n_states`` states drawn (with ``seed``) from evaluation episodes.

    :param paths: each episode's observations (:func:`evaluate_model`'s ``paths``: ``T + 1`` per episode); the
        states the policy acted in (all but the last of each) are the candidates
    """
    states = np.concatenate([p[:-1] for p in paths])
    pick = np.random.default_rng(seed).choice(len(states), size=min(n_states, len(states)), replace=False)
    return policy_action_entropy(model, decoder, states[pick], n_samples, seed)


# ---------------------------------------------------------------------------------------------- saved models


def locate_model(path: str | Path) -> tuple[Path, RunConfig | None]:
    """``path`` (a run folder, or a ``.zip`` inside one) -> (model file, the run's config if there is one)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path} not found; pass --model a run folder or a model .zip written by `lpds train`")
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise UsageError(f"{path} is not a run folder (no {CONFIG_FILE}); pass --model OUT/<env>/<algo>/seed_<k>")
        for candidate in (path / "model.zip", path / "checkpoint" / "model.zip", path / "checkpoint.old" / "model.zip"):
            if candidate.is_file():
                if candidate.parent != path:
                    print(f"note: {path} has not finished; evaluating its last checkpoint")
                return candidate, RunConfig.read(path)
        raise UsageError(f"{path} holds no model yet; run `lpds train` for it first (or let it reach a checkpoint)")
    for folder in (path.parent, path.parent.parent):
        if (folder / CONFIG_FILE).is_file():
            return path, RunConfig.read(folder)
    return path, None


def load_trained(model_path: Path, algo: str, venv: Any, device: str = "auto") -> Any:
    """Load a learner of ``algo`` for prediction on ``venv`` (with a 1-transition replay buffer)."""
    cls = get_algo(algo).load_class()
    try:
        return cls.load(model_path, env=venv, device=device, buffer_size=1)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise UsageError(
            f"could not load {model_path} as {algo} on this env ({str(exc).splitlines()[0]}); "
            "pass the --algo and --env it was trained with"
        ) from None


def _check_video(env_id: str, env_kwargs: dict[str, Any]) -> None:
    import gymnasium as gym

    from .registration import TASKS

    try:
        import moviepy  # noqa: F401
    except ImportError:
        raise UsageError(
            "--video needs moviepy (gymnasium's RecordVideo writes mp4 with it): pip install moviepy"
        ) from None
    raw_id = TASKS[gym.spec(env_id).kwargs["task"]].raw_id
    env = gym.make(raw_id, **(env_kwargs.get("env_kwargs") or {}))
    modes = env.metadata.get("render_modes", [])
    env.close()
    if "rgb_array" not in modes:
        raise UsageError(f"{env_id} cannot render rgb_array frames (render modes: {modes}); run without --video")


def evaluate_saved(
    model: str | Path,
    env_id: str | None = None,
    episodes: int = 10,
    algo: str | None = None,
    seed: int = 0,
    deterministic: bool | None = None,
    video: str | Path | None = None,
    video_episodes: int = 1,
    entropy_states: int = 32,
    entropy_samples: int = 64,
    device: str = "auto",
    json_path: str | Path | None = None,
    vs_backbone: bool = False,
) -> dict[str, Any]:
    """The ``lpds evaluate`` command: load a trained model, run ``episodes`` episodes, print and return the metrics.

    :param model: a run folder or a model ``.zip`` (its run's ``config.yaml`` gives algo, env and env settings)
    :param env_id: the env (default: the run's)
    :param algo: the algorithm (needed only for a ``.zip`` outside a run folder)
    :param deterministic: evaluation policy (default: the algorithm's)
    :param video: write videos of the first ``video_episodes`` episodes to this folder (``MUJOCO_GL=egl``)
    :param entropy_states: probe states for the action entropy (0 skips it)
    :param vs_backbone: also run the frozen backbone (prior latents) on the same episodes and report the gain in
        return with its standard error (:func:`compare_with_backbone`)
    """
    from stable_baselines3.common.utils import get_device

    from .checkpoint import _env_decoder
    from .run_config import check_env_id

    model_path, cfg = locate_model(model)
    algo = algo or (cfg.algo if cfg is not None else None)
    if algo is None:
        raise UsageError(f"cannot tell which algorithm saved {model_path}; pass --algo one of {', '.join(ALGOS)}")
    spec = get_algo(algo)
    env_id = env_id or (cfg.env_id if cfg is not None else None)
    if env_id is None:
        raise UsageError(f"cannot tell which env {model_path} was trained on; pass --env ENV_ID")
    check_env_id(env_id)
    if episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {episodes}")
    if vs_backbone and spec.env_type != "latent":
        raise UsageError(f"--vs-backbone compares latent learners with prior latents; {algo} acts in action space")
    env_kwargs = cfg.env_kwargs if cfg is not None else {}
    if video is not None:
        os.environ.setdefault("MUJOCO_GL", "egl")  # headless MuJoCo rendering
        _check_video(env_id, env_kwargs)
        Path(video).mkdir(parents=True, exist_ok=True)
    dev = str(get_device(device))
    n_envs = min(episodes, MAX_EVAL_ENVS)
    venv = make_run_env(spec, env_id, env_kwargs, n_envs, None, dev, video_dir=video, video_envs=video_episodes)
    learner = load_trained(model_path, algo, venv, dev)
    det = spec.eval_deterministic if deterministic is None else deterministic
    if vs_backbone:
        comparison = compare_with_backbone(learner, venv, det, seed, episodes)
        result = {**comparison.pop("steered"), **comparison}
    else:
        result = evaluate_model(learner, venv, det, seed, episodes)
    paths = result.pop("paths")
    venv.close()  # flushes the videos
    result.update({"model": str(model_path), "algo": algo, "env_id": env_id, "deterministic": det, "seed": seed})
    result["action_entropy"] = None
    if entropy_states > 0 and spec.env_type == "latent":
        result["action_entropy"] = entropy_at_visited(
            learner, _env_decoder(venv), paths, entropy_states, entropy_samples, seed
        )
    if video is not None:
        result["videos"] = sorted(str(p) for p in Path(video).glob("*.mp4"))
    _print_result(result)
    if json_path is not None:
        Path(json_path).write_text(json.dumps(result, indent=1))
    return result


def _print_result(r: dict[str, Any]) -> None:
    policy = "deterministic" if r["deterministic"] else "stochastic"
    print(f"{r['algo']} on {r['env_id']} ({r['model']}), {r['episodes']} episodes, {policy} policy:")
    print(f"  return              {r['mean_return']:.3f} +- {r['std_return']:.3f}")
    print(f"  success rate        {r['success_rate']:.3f}")
    print(f"  mean executed steps {r['mean_episode_steps']:.1f}")
    ent = r["action_entropy"]
    print(f"  action entropy      {'n/a' if ent is None else f'{ent:.3f}'}")
    if "backbone" in r:
        b = r["backbone"]
        print(
            f"  frozen backbone     return {b['mean_return']:.3f} +- {b['std_return']:.3f}, success {b['success_rate']:.3f}"
        )
        print(
            f"  gain over backbone  return {r['gain']:+.3f} (standard error {r['gain_se']:.3f}), "
            f"success {r['success_gain']:+.3f} (standard error {r['success_gain_se']:.3f})"
        )
    for v in r.get("videos", []):
        print(f"  video               {v}")
