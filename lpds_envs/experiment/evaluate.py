"""``lpds evaluate``: load a trained model from its run folder and evaluate it with :mod:`lpds_envs.evaluation`.

Reported: :class:`~lpds_envs.evaluation.EvalResult`'s summary (mean and std undiscounted return, success rate, mean
raw env steps per episode), for latent learners the Kozachenko-Leonenko action entropy of the decoded chunks (paper
eq. 11) at states visited by the evaluation episodes and, with ``vs_backbone``, the gain over the frozen backbone
on the same episodes (:class:`~lpds_envs.evaluation.BackboneComparison`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
from stable_baselines3.common.utils import get_device

from algorithms.registry import ALGORITHMS
from algorithms.steering import resolve_decoder

from ..evaluation import (
    MAX_EVAL_ENVS,
    DecoderPriorPolicy,
    compare_with_backbone,
    entropy_at_visited,
    evaluate_policy,
)
from ..registration import TASKS, resolve_lpds_id
from .config import CONFIG_FILE, RunConfig, UsageError, check_env_id, get_algo, make_run_env


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
    cls = get_algo(algo).cls
    try:
        return cls.load(model_path, env=venv, device=device, buffer_size=1)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise UsageError(
            f"could not load {model_path} as {algo} on this env ({str(exc).splitlines()[0]}); "
            "pass the --algo and --env it was trained with"
        ) from None


def _check_video(env_id: str, env_kwargs: dict[str, Any]) -> None:
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
    shared_noise: bool = True,
) -> dict[str, Any]:
    """The ``lpds evaluate`` command: load a trained model, run ``episodes`` episodes, print and return the metrics.

    :param model: a run folder or a model ``.zip`` (its run's ``config.yaml`` gives algo, env and env settings)
    :param env_id: the env (default: the run's)
    :param algo: the algorithm (needed only for a ``.zip`` outside a run folder)
    :param deterministic: evaluation policy (default: the algorithm's)
    :param video: write videos of the first ``video_episodes`` episodes to this folder (``MUJOCO_GL=egl``); the
        episodes run in parallel sub-envs, so each recorded sub-env writes the first episode it plays
        (``<env_id>-env<i>-episode-0.mp4``), any number of ``episodes`` with any ``video_episodes`` up to their count
    :param entropy_states: probe states for the action entropy (0 skips it)
    :param vs_backbone: also run the frozen backbone (prior latents) on the same episodes and report the gain in
        return with its standard error (:func:`compare_with_backbone`)
    :param shared_noise: with ``vs_backbone``, the backbone plays the learner's noise draws (common random numbers,
        paired standard errors); ``False``: its own draws (the unpaired comparison of lpds before 2026-12)
    """
    model_path, cfg = locate_model(model)
    algo = algo or (cfg.algo if cfg is not None else None)
    if algo is None:
        raise UsageError(f"cannot tell which algorithm saved {model_path}; pass --algo one of {', '.join(ALGORITHMS)}")
    spec = get_algo(algo)
    env_id = env_id or (cfg.env_id if cfg is not None else None)
    if env_id is None:
        raise UsageError(f"cannot tell which env {model_path} was trained on; pass --env ENV_ID")
    check_env_id(env_id)
    if episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {episodes}")
    if vs_backbone and spec.env_type not in ("latent", "chunked"):
        raise UsageError(
            f"--vs-backbone compares a learner with the backbone's prior latents on the same env; {algo} acts with "
            "residual actions, where the backbone is the zero residual: evaluate it with --algo lpds-a on its own"
        )
    env_kwargs = cfg.env_kwargs if cfg is not None else {}
    if video is not None:
        if video_episodes < 1:
            raise UsageError(f"--video-episodes must be >= 1, got {video_episodes} (or run without --video)")
        os.environ.setdefault("MUJOCO_GL", "egl")  # headless MuJoCo rendering
        _check_video(env_id, env_kwargs)
        old = sorted(Path(video).glob(f"{env_id}-env*.mp4"))
        if old:
            print(f"note: overwriting {len(old)} earlier video(s) of {env_id} in {video}")
        Path(video).mkdir(parents=True, exist_ok=True)
    dev = str(get_device(device))
    n_envs = min(episodes, MAX_EVAL_ENVS)
    venv = make_run_env(spec, env_id, env_kwargs, n_envs, None, dev, video_dir=video, video_envs=video_episodes)
    learner = load_trained(model_path, algo, venv, dev)
    det = spec.eval_deterministic if deterministic is None else deterministic
    if vs_backbone:
        backbone = None  # a latent env: prior latents (PriorPolicy), clipped by the env
        if spec.env_type == "chunked":  # the fine-tuning baselines: the frozen backbone decodes the same prior
            resolved = resolve_lpds_id(env_id, backbone=env_kwargs.get("backbone"), device=dev)
            if resolved is None:
                raise UsageError(f"{env_id!r} is not an LPDS steering id (LPDS-<Task>-v0); pass one to --env")
            _, decoder, task_bound = resolved
            backbone = DecoderPriorPolicy(
                decoder, env_kwargs.get("latent_bound", task_bound), seed, shared_noise=shared_noise
            )
        comparison = compare_with_backbone(learner, venv, det, seed, episodes, backbone, shared_noise=shared_noise)
        paths, result = comparison.steered.paths, comparison.to_dict()
    else:
        evaluation = evaluate_policy(learner, venv, det, seed, episodes)
        paths, result = evaluation.paths, evaluation.to_dict()
    venv.close()  # flushes the videos
    result.update({"model": str(model_path), "algo": algo, "env_id": env_id, "deterministic": det, "seed": seed})
    result["action_entropy"] = None
    if entropy_states > 0 and spec.env_type != "residual":  # LP-DS-A: not covered (residuals on the backbone)
        decoder = resolve_decoder(venv, None) if spec.env_type == "latent" else None  # fine-tuning: its own chunks
        result["action_entropy"] = entropy_at_visited(
            learner, decoder, paths, entropy_states, entropy_samples, seed, deterministic=det
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
