"""The one evaluation path: episodes of a latent policy on a batched steering env, and what they measure.

Every consumer (``lpds train``'s periodic evaluation, ``lpds evaluate``,
:class:`~lpds_envs.evaluation.callbacks.SteeringEvalCallback`, the benchmark reports) calls :func:`evaluate_policy`
(or :func:`compare_with_backbone`) and gets an :class:`EvalResult`. Raw env steps are counted the way every learner
counts them (:func:`lpds_envs.wrappers.executed_steps`: one executed action = one step).

Example::

    >>> import lpds_envs
    >>> from lpds_envs.evaluation import PriorPolicy, evaluate_policy
    >>> venv = lpds_envs.make_latent_vec_env("LPDS-MultiGoal-v0", n_envs=4)
    >>> result = evaluate_policy(PriorPolicy(venv.action_space.shape[0], seed=0), venv, deterministic=False, seed=0)
    >>> result.episodes, sorted(result.to_dict())[:3]
    (4, ['episodes', 'mean_episode_steps', 'mean_return'])
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch

from ..codec import to_batch
from ..decoders.base import Decoder
from ..envs.multigoal import GOAL_RADIUS, GOALS
from ..metrics import action_entropy, knn_entropy, mode_coverage, model_sampler
from ..vector import VecLatentSteeringWrapper, make_latent_vec_env
from ..wrappers import executed_steps

LatentFn = Callable[[np.ndarray], np.ndarray]


def _batch_size(obs: Any) -> int:
    """Sub-envs in a batched observation (Dict observations: the length of any key)."""
    return len(next(iter(obs.values()))) if isinstance(obs, dict) else len(obs)


def prior_latents(decoder_latent_dim: int, seed: int | None = None) -> LatentFn:
    """A latent policy that draws ``w ~ N(0, I)`` (the frozen backbone itself)."""
    rng = np.random.default_rng(seed)

    def draw(obs: Any) -> np.ndarray:
        return rng.standard_normal((_batch_size(obs), decoder_latent_dim)).astype(np.float32)

    return draw


@dataclass
class EpisodeBatch:
    """One finished episode per sub-env."""

    returns: np.ndarray  # (N,) undiscounted return
    lengths: np.ndarray  # (N,) raw env steps
    success: np.ndarray  # (N,) bool, False where the task reports none
    final_infos: list[dict] = field(default_factory=list)
    paths: list[np.ndarray] = field(default_factory=list)  # observations visited, (T+1, obs_dim) each; [] for Dict obs

    def result(self) -> EvalResult:
        """These episodes as an :class:`EvalResult`."""
        return EvalResult(self.returns, self.lengths, self.success, self.paths)


def run_episodes(venv: VecLatentSteeringWrapper, latent_fn: LatentFn, max_latent_steps: int = 100_000) -> EpisodeBatch:
    """Reset ``venv`` and run until each sub-env has finished one episode; later episodes are ignored."""
    n = venv.num_envs
    obs = venv.reset()
    returns, lengths = np.zeros(n), np.zeros(n, dtype=np.int64)
    success = np.zeros(n, dtype=bool)
    done_mask = np.zeros(n, dtype=bool)
    final_infos: list[dict] = [{} for _ in range(n)]
    record = not isinstance(obs, dict)  # paths of array observations only (Dict observations: images, text)
    paths: list[list[np.ndarray]] = [[np.array(o, copy=True)] for o in obs] if record else [[] for _ in range(n)]
    for _ in range(max_latent_steps):
        with torch.inference_mode():
            latents = latent_fn(obs)
        obs, rewards, dones, infos = venv.step(latents)
        for i in np.flatnonzero(~done_mask):
            returns[i] += rewards[i]
            lengths[i] += executed_steps([infos[i]])
            success[i] |= bool(infos[i].get("success", False))
            if record:
                last = infos[i]["terminal_observation"] if dones[i] else cast(np.ndarray, obs)[i]
                paths[i].append(np.array(last, copy=True))
            if dones[i]:
                done_mask[i] = True
                final_infos[i] = infos[i]
        if done_mask.all():
            break
    else:
        raise RuntimeError(f"episodes did not finish within {max_latent_steps} latent steps")
    return EpisodeBatch(returns, lengths, success, final_infos, [np.stack(p) for p in paths] if record else [])


def prior_episodes(
    env: str | Callable,
    decoder: Decoder,
    episodes: int,
    seed: int,
    n_envs: int = 10,
    latent_bound: float | None = None,
) -> EpisodeBatch:
    """``episodes`` full episodes of the frozen ``decoder`` with prior latents ``w ~ N(0, I)`` (clipped to
    ``latent_bound``), ``n_envs`` at a time: sub-env ``i`` of the round starting at episode ``k`` resets with seed
    ``seed + k + i`` and the round's latents are drawn with seed ``seed + k``. ``env``: an id or a raw-env factory."""
    latent_dim = int(np.prod(decoder.latent_shape))
    batches = []
    for k in range(0, episodes, n_envs):
        venv = make_latent_vec_env(
            env, n_envs=min(n_envs, episodes - k), seed=seed + k, decoder=decoder, latent_bound=latent_bound
        )
        batches.append(run_episodes(venv, prior_latents(latent_dim, seed=seed + k)))
        venv.close()
    return EpisodeBatch(
        np.concatenate([b.returns for b in batches]),
        np.concatenate([b.lengths for b in batches]),
        np.concatenate([b.success for b in batches]),
        [i for b in batches for i in b.final_infos],
        [q for b in batches for q in b.paths],
    )


@dataclass
class EvalResult:
    """What an evaluation measured, per episode and summarised (the one result type of evaluation).

    :param returns: undiscounted return of each episode
    :param lengths: raw env steps of each episode
    :param success: whether each episode succeeded (``False`` where the task reports no success)
    :param paths: the observations each episode visited, ``(T + 1, *obs_shape)`` each (not part of :meth:`to_dict`)
    """

    returns: np.ndarray
    lengths: np.ndarray
    success: np.ndarray
    paths: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def episodes(self) -> int:
        return len(self.returns)

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns))

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.success))

    @property
    def mean_episode_steps(self) -> float:
        return float(np.mean(self.lengths))

    def to_dict(self) -> dict[str, Any]:
        """The summary: ``episodes``, ``mean_return``, ``std_return``, ``success_rate``, ``mean_episode_steps``."""
        return {
            "episodes": self.episodes,
            "mean_return": self.mean_return,
            "std_return": self.std_return,
            "success_rate": self.success_rate,
            "mean_episode_steps": self.mean_episode_steps,
        }

    @classmethod
    def concatenate(cls, parts: list[EvalResult]) -> EvalResult:
        """One result from the episodes of several."""
        return cls(
            np.concatenate([p.returns for p in parts]),
            np.concatenate([p.lengths for p in parts]),
            np.concatenate([p.success for p in parts]),
            [q for p in parts for q in p.paths],
        )


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


def evaluate_policy(
    model: Any, venv: VecLatentSteeringWrapper, deterministic: bool, seed: int = 0, episodes: int | None = None
) -> EvalResult:
    """Run ``episodes`` episodes of ``model.predict`` (default: one per sub-env of ``venv``); episode ``j`` is reset
    with seed ``seed + j``, in batches of ``venv.num_envs``, under RNG streams of its own (the caller's are left as
    they were, so evaluating during training never changes what is learned).

    :param model: anything with SB3's ``predict(obs, deterministic=...)`` (a learner, :class:`PriorPolicy`)
    :param venv: the batched steering env (a latent env for latent learners)
    :param deterministic: the policy's deterministic action (LP-DS: ``Delta(s)``) instead of its samples
    :param seed: reset seed of the first episode
    :param episodes: number of episodes
    """
    episodes = episodes or venv.num_envs
    parts = []
    with isolated_rng(seed):
        for offset in range(0, episodes, venv.num_envs):
            venv.seed(seed + offset)
            batch = run_episodes(venv, lambda obs: model.predict(obs, deterministic=deterministic)[0])
            take = min(venv.num_envs, episodes - offset)
            parts.append(
                EvalResult(batch.returns[:take], batch.lengths[:take], batch.success[:take], batch.paths[:take])
            )
    return EvalResult.concatenate(parts)


def shared_noise_latents(latent_dim: int, device: str | torch.device = "cpu") -> LatentFn:
    """A latent policy that draws ``w ~ N(0, I)`` from torch's global generator (of ``device``), the stream a
    steering policy's ``eps + Delta(s)`` draws its ``eps`` from: under the same seed (:func:`evaluate_policy` seeds
    it per evaluation), the ``k``-th call returns exactly the ``eps`` of the steering policy's ``k``-th ``predict``
    (common random numbers, :func:`compare_with_backbone`)."""

    def draw(obs: Any) -> np.ndarray:
        return torch.randn(_batch_size(obs), latent_dim, device=device).cpu().numpy()

    return draw


class PriorPolicy:
    """The frozen backbone as a learner for :func:`evaluate_policy`: ``predict`` draws prior latents ``w ~ N(0, I)``
    (the latent env clips them to its box).

    :param latent_dim: the latent env's action dimension
    :param seed: seed of the latent draws (their own numpy stream; ignored with ``shared_noise``)
    :param shared_noise: draw from torch's global generator instead (:func:`shared_noise_latents`), the one a
        steering policy draws its ``eps`` from, so that the backbone's ``w = eps`` and the steered ``eps + Delta(s)``
        share their noise step by step when both are evaluated under the same seed
    :param device: the device whose generator ``shared_noise`` draws from (the steered model's)
    """

    def __init__(
        self,
        latent_dim: int,
        seed: int | None = None,
        shared_noise: bool = False,
        device: str | torch.device = "cpu",
    ) -> None:
        self.latent_dim, self.shared_noise = latent_dim, bool(shared_noise)
        self._draw = shared_noise_latents(latent_dim, device) if shared_noise else prior_latents(latent_dim, seed)

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False):
        return self._draw(obs), None


class DecoderPriorPolicy:
    """The frozen backbone on an action-chunk env (:class:`~lpds_envs.wrappers.ChunkedActionWrapper`, where the
    fine-tuning baselines act): ``predict`` decodes prior latents ``w ~ N(0, I)``, clipped to ``latent_bound`` as the
    task's latent env clips them, so it is the same backbone policy as :class:`PriorPolicy` on the latent env.

    :param decoder: the frozen backbone
    :param latent_bound: the latent box (the task's ``latent_bound``); ``None`` leaves the latents unclipped
    :param seed: seed of the latent draws (ignored with ``shared_noise``)
    :param shared_noise: draw the latents from torch's global generator (:class:`PriorPolicy`)
    """

    def __init__(
        self, decoder: Decoder, latent_bound: float | None, seed: int | None = None, shared_noise: bool = False
    ) -> None:
        self.decoder, self.latent_bound, self.shared_noise = decoder, latent_bound, bool(shared_noise)
        self._draw = (
            shared_noise_latents(decoder.latent_dim, decoder.device)
            if shared_noise
            else prior_latents(decoder.latent_dim, seed)
        )

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False):
        w = torch.from_numpy(self._draw(obs)).reshape(-1, *self.decoder.latent_shape)
        if self.latent_bound is not None:
            w = w.clamp(-self.latent_bound, self.latent_bound)
        with torch.no_grad():
            chunks = self.decoder(to_batch(obs, single=False), w.to(self.decoder.device))
        return chunks.cpu().numpy(), None


def success_gain_se(p: float, q: float, n: int) -> float:
    """Standard error of the difference ``p - q`` of two success rates, each over ``n`` independent episodes
    (binomial variances; conservative where the episodes are paired by reset seed)."""
    return float(np.sqrt((p * (1 - p) + q * (1 - q)) / n))


@dataclass
class BackboneComparison:
    """A steered policy and the frozen backbone on the same episodes (the same reset seeds).

    :param steered: the steered policy's episodes
    :param backbone: the backbone's (prior latents ``w ~ N(0, I)``)
    :param shared_noise: whether episode ``i`` of both also shared its latent noise (common random numbers); the
        standard errors are then those of the per-episode differences
    """

    steered: EvalResult
    backbone: EvalResult
    shared_noise: bool = False

    @property
    def gain(self) -> float:
        """Gain in mean return."""
        return self.steered.mean_return - self.backbone.mean_return

    @property
    def gain_se(self) -> float:
        """Standard error of :attr:`gain`: of the paired per-episode differences with ``shared_noise``, else from
        the two sets' variances as if independent (conservative where the reset seeds pair them)."""
        n = self.steered.episodes
        if self.shared_noise:
            return float(np.std(self.steered.returns - self.backbone.returns, ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        return float(np.sqrt((self.steered.std_return**2 + self.backbone.std_return**2) / n))

    @property
    def success_gain(self) -> float:
        return self.steered.success_rate - self.backbone.success_rate

    @property
    def success_gain_se(self) -> float:
        """Standard error of :attr:`success_gain`: of the paired differences with ``shared_noise``, else binomial
        (:func:`success_gain_se`)."""
        n = self.steered.episodes
        if self.shared_noise:
            diff = self.steered.success.astype(float) - self.backbone.success.astype(float)
            return float(np.std(diff, ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        return success_gain_se(self.steered.success_rate, self.backbone.success_rate, n)

    @property
    def discordant(self) -> tuple[int, int]:
        """Episodes only the steered policy succeeded in, and only the backbone (McNemar's counts)."""
        s, b = self.steered.success.astype(bool), self.backbone.success.astype(bool)
        return int(np.sum(s & ~b)), int(np.sum(b & ~s))

    def to_dict(self) -> dict[str, Any]:
        """The steered policy's summary, ``backbone`` (its summary), ``gain``, ``gain_se``, ``success_gain``,
        ``success_gain_se``, ``shared_noise`` and ``discordant`` (successes of one side only: steered, backbone)."""
        return {
            **self.steered.to_dict(),
            "backbone": self.backbone.to_dict(),
            "gain": self.gain,
            "gain_se": self.gain_se,
            "success_gain": self.success_gain,
            "success_gain_se": self.success_gain_se,
            "shared_noise": self.shared_noise,
            "discordant": list(self.discordant),
        }


def compare_with_backbone(
    model: Any,
    venv: VecLatentSteeringWrapper,
    deterministic: bool,
    seed: int = 0,
    episodes: int | None = None,
    backbone: Any = None,
    shared_noise: bool = True,
) -> BackboneComparison:
    """:func:`evaluate_policy` of ``model`` and of the frozen backbone on the same episodes (reset seeds).

    With ``shared_noise`` (default) the two also share their latent noise: the backbone draws ``w = eps`` from the
    torch stream that the steered policy draws the ``eps`` of its ``eps + Delta(s)`` from, under the same seed, so the
    ``k``-th decision of each uses the same ``eps`` (common random numbers; exact for LP-DS's stochastic policy, which
    evaluates as ``eps + Delta(s)``). A steered policy with ``Delta = 0`` then plays exactly the backbone's episodes,
    and the gain's standard error is that of the paired differences. Without it the backbone draws its own latents
    (a numpy stream seeded by ``seed``) and the standard errors treat the two sets as independent: the comparison
    of earlier lpds versions.

    :param backbone: the backbone as a policy on ``venv`` (default: :class:`PriorPolicy`, for a latent env; pass a
        :class:`DecoderPriorPolicy` on an action-chunk env, built with the same ``shared_noise``)
    :param shared_noise: share the latent noise (above)
    """
    steered = evaluate_policy(model, venv, deterministic, seed, episodes)
    if backbone is None:
        device = getattr(model, "device", "cpu")
        backbone = PriorPolicy(int(np.prod(venv.action_space.shape)), seed, shared_noise=shared_noise, device=device)
    paired = bool(shared_noise and getattr(backbone, "shared_noise", False))
    return BackboneComparison(steered, evaluate_policy(backbone, venv, False, seed, episodes), shared_noise=paired)


def policy_action_entropy(
    model: Any, decoder: Any, observations: np.ndarray, n_samples: int = 64, seed: int = 0
) -> float:
    """Action entropy (paper eq. 11) of the steered policy ``Phi(clip(w); s)``, ``w ~ pi(.|s)``, at ``observations``.

    :func:`lpds_envs.metrics.action_entropy` with latents drawn from the learner's stochastic policy
    (:func:`lpds_envs.metrics.model_sampler`), under its own RNG streams.
    """
    with isolated_rng(seed), torch.no_grad():
        return action_entropy(decoder, observations, model_sampler(model, deterministic=False), n_samples, k=3)


def chunk_policy_entropy(
    model: Any, observations: np.ndarray, n_samples: int = 64, seed: int = 0, deterministic: bool = False, k: int = 3
) -> float:
    """Action entropy (paper eq. 11) of a learner that acts with action chunks itself (the fine-tuning baselines
    DPPO, IDQL and DQL on :class:`~lpds_envs.wrappers.ChunkedActionWrapper`): the mean over ``observations`` of
    :func:`~lpds_envs.metrics.knn_entropy` of ``n_samples`` chunks of ``model.predict(obs, deterministic)`` (the
    chunks it executes), under its own RNG streams; the estimator of :func:`policy_action_entropy`.

    Pass the policy whose return is reported: DPPO's evaluation policy (``deterministic=True``) decodes fresh prior
    noise with DDIM, a distribution; IDQL's and DQL's deterministic policies are functions of the state, whose
    entropy is the estimator's floor (their ``deterministic=False`` policies sample).

    :param observations: ``(B, obs_dim)`` probe states
    """
    if n_samples <= k:
        raise ValueError(f"n_samples must exceed k, got n_samples={n_samples}, k={k}")
    obs = np.asarray(observations)
    with isolated_rng(seed), torch.no_grad():
        chunks, _ = model.predict(np.repeat(obs, n_samples, axis=0), deterministic=deterministic)
    per_state = np.asarray(chunks, dtype=np.float64).reshape(len(obs), n_samples, -1)
    return float(np.mean([knn_entropy(c, k=k) for c in per_state]))


def entropy_at_visited(
    model: Any,
    decoder: Any,
    paths: list[np.ndarray],
    n_states: int,
    n_samples: int = 64,
    seed: int = 0,
    deterministic: bool = False,
) -> float:
    """:func:`policy_action_entropy` at ``n_states`` states drawn (with ``seed``) from evaluation episodes; with
    ``decoder=None``, :func:`chunk_policy_entropy` of ``model.predict(obs, deterministic)`` (a learner that acts
    with chunks and has no latents; a latent learner's entropy is always its stochastic policy's).

    :param paths: each episode's observations (:attr:`EvalResult.paths`: ``T + 1`` per episode); the
        states the policy acted in (all but the last of each) are the candidates
    """
    if not paths:
        raise ValueError(
            "the action entropy is measured at visited states, and these episodes kept none (an env with Dict "
            "observations keeps no paths): leave eval_entropy_states / --entropy-states at 0 for this env"
        )
    states = np.concatenate([p[:-1] for p in paths])
    pick = np.random.default_rng(seed).choice(len(states), size=min(n_states, len(states)), replace=False)
    if decoder is None:
        return chunk_policy_entropy(model, states[pick], n_samples, seed, deterministic)
    return policy_action_entropy(model, decoder, states[pick], n_samples, seed)


def goal_coverage(batch: EpisodeBatch) -> np.ndarray:
    """Per-goal fractions of toy-task episodes: a trajectory counts for the first goal region it enters
    (``info["goal"]``); for an env without it, for the goal region it ends in."""
    if all("goal" in info for info in batch.final_infos):
        goals = np.array([info["goal"] for info in batch.final_infos])
        return np.array([np.mean(goals == g) for g in range(len(GOALS))])
    return mode_coverage(np.stack([p[-1] for p in batch.paths]), GOALS, GOAL_RADIUS)


def multigoal_coverage(
    decoder: Decoder, n_rollouts: int = 1000, seed: int = 0, latent_fn: LatentFn | None = None
) -> dict[str, Any]:
    """Per-goal fractions of ``n_rollouts`` MultiGoal episodes from the origin (prior latents by default; paper
    Fig. 10), with :class:`EvalResult`'s summary keys and up to 200 trajectories under ``"paths"``."""
    venv = make_latent_vec_env("lpds/MultiGoal-v0", n_envs=n_rollouts, seed=seed, decoder=decoder)
    batch = run_episodes(venv, latent_fn or prior_latents(decoder.latent_dim, seed))
    venv.close()
    fractions = goal_coverage(batch)
    goals = np.array([info.get("goal", -1) for info in batch.final_infos])
    return {
        "n_rollouts": n_rollouts,
        "goal_fractions": [float(f) for f in fractions],
        "no_goal": float(1.0 - fractions.sum()),
        **batch.result().to_dict(),
        "goals": goals.tolist(),
        "paths": [p.tolist() for p in batch.paths[:200]],
    }
