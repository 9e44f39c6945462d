"""SB3 callbacks that measure what the paper plots against raw env steps: evaluation return and success, the
action entropy of the steered policy (App. C) and the per-goal mode coverage of the toy task (App. B).

They work with every learner on a latent env (LagrangianSAC, DSRLNA, plain SB3 SAC = DSRL-SAC). Each keeps its
measurements in ``self.history`` (a list of dicts) besides logging them, so scripts can save curves directly.

Example::

    >>> import gymnasium as gym, lpds_envs
    >>> from algorithms import LagrangianSAC
    >>> from lpds_envs.evaluation.callbacks import EntropyCallback, ModeCoverageCallback
    >>> model = LagrangianSAC("MlpPolicy", gym.make("LPDS-MultiGoal-v0"), delta=0.05, learning_starts=50)
    >>> cov = ModeCoverageCallback(eval_freq=100, n_rollouts=50)
    >>> ent = EntropyCallback(eval_freq=100, n_probe=4, n_samples=64)
    >>> _ = model.learn(200, callback=[cov, ent])
    >>> [h["raw_env_steps"] for h in cov.history], len(cov.history[-1]["goal_fractions"])
    ([0, 100, 200], 4)
    >>> sorted(ent.history[-1])
    ['action_entropy', 'raw_env_steps']
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from algorithms.registry import learner_counts_raw_steps
from algorithms.steering import UNBOUNDED_STANDIN, resolve_decoder

from ..metrics import action_entropy, model_sampler
from ..vector import make_latent_vec_env
from ..wrappers import executed_steps
from .episodes import evaluate_policy, goal_coverage, run_episodes


class RawStepCallback(BaseCallback):
    """Fires :meth:`_measure` every ``eval_freq`` raw env steps (and once at the start and end of training), for any
    SB3 learner. The steering learners and the fine-tuning baselines count raw env steps themselves
    (``model.raw_env_steps``, class attribute ``counts_raw_steps``); for others (SB3's
    SAC, DSRL-SAC) this callback counts them with :func:`~lpds_envs.wrappers.executed_steps` and keeps
    ``model.raw_env_steps`` up to date, so every learner reports the same count."""

    def __init__(self, eval_freq: int, verbose: int = 0) -> None:
        super().__init__(verbose)
        if eval_freq <= 0:
            raise ValueError(f"eval_freq must be a positive number of raw env steps, got {eval_freq}")
        self.eval_freq = int(eval_freq)
        self.raw_env_steps = 0
        self._next = 0
        self.history: list[dict[str, Any]] = []

    def _on_training_start(self) -> None:
        self._counts_itself = learner_counts_raw_steps(self.model)
        model: Any = self.model  # SB3's learners get raw_env_steps from this callback
        if not hasattr(model, "raw_env_steps"):
            model.raw_env_steps = 0
        self.raw_env_steps = int(model.raw_env_steps)
        self._next = self.raw_env_steps
        self._maybe_measure()

    def _on_step(self) -> bool:
        executed = executed_steps(self.locals.get("infos", []))
        self.raw_env_steps += executed  # a steering learner adds the same when it stores this transition (next)
        if not self._counts_itself:
            model: Any = self.model  # SB3's learners get raw_env_steps from this callback
            model.raw_env_steps += executed
        self._maybe_measure()
        return True

    def _on_training_end(self) -> None:
        if not self.history or self.history[-1]["raw_env_steps"] != self.raw_env_steps:
            self._record()

    def _maybe_measure(self) -> None:
        if self.raw_env_steps >= self._next:
            self._record()
            self._next = (self.raw_env_steps // self.eval_freq + 1) * self.eval_freq

    log_prefix = "eval"  # logger namespace of the measurements

    def _record(self) -> None:
        entry = {"raw_env_steps": self.raw_env_steps, **self._measure()}
        self.history.append(entry)
        for key, value in entry.items():
            if np.isscalar(value):
                self.logger.record(f"{self.log_prefix}/{key}", value)
        self.logger.dump(self.num_timesteps)

    def _measure(self) -> dict[str, Any]:
        raise NotImplementedError


def _latent_bound(model: Any) -> float | None:
    high = float(np.max(model.action_space.high))
    return None if high >= UNBOUNDED_STANDIN else high


def _decoder(model: Any) -> Any:
    return resolve_decoder(model.get_env(), getattr(model, "decoder", None))


class EntropyCallback(RawStepCallback):
    """Logs ``train/action_entropy`` (eq. 11): the k-NN entropy of ``n_samples`` decoded chunks of the current
    policy at each of ``n_probe`` probe states drawn from the replay buffer (the reset observations before it has
    any), averaged over the probe states.

    :param eval_freq: raw env steps between measurements
    :param n_probe: probe states ``B``
    :param n_samples: decoded samples ``K`` per probe state
    :param k: neighbour order of the estimator
    :param deterministic: evaluate the deterministic policy (a single latent per state: entropy -> -inf-like)
    :param seed: seed of the probe-state draw
    """

    log_prefix = "train"

    def __init__(
        self,
        eval_freq: int,
        n_probe: int = 32,
        n_samples: int = 256,
        k: int = 3,
        deterministic: bool = False,
        seed: int = 0,
        verbose: int = 0,
    ) -> None:
        super().__init__(eval_freq, verbose)
        self.n_probe, self.n_samples, self.k = int(n_probe), int(n_samples), int(k)
        self.deterministic = bool(deterministic)
        self._rng = np.random.default_rng(seed)

    def probe_states(self) -> np.ndarray:
        buf = getattr(self.model, "replay_buffer", None)
        n = 0 if buf is None else (buf.buffer_size if buf.full else buf.pos)
        if buf is None or n == 0:
            if self.model._last_obs is not None:
                return np.asarray(self.model._last_obs)
            if self.model.env is None:
                raise RuntimeError(f"{type(self).__name__} needs the learner's env (or a filled replay buffer)")
            return np.asarray(self.model.env.reset())
        idx = self._rng.integers(0, n, size=self.n_probe)
        env_idx = self._rng.integers(0, buf.n_envs, size=self.n_probe)
        return buf.observations[idx, env_idx]

    def _measure(self) -> dict[str, Any]:
        decoder = _decoder(self.model)
        with torch.inference_mode():
            h = action_entropy(
                decoder,
                self.probe_states(),
                model_sampler(self.model, self.deterministic),
                n_samples=self.n_samples,
                k=self.k,
            )
        return {"action_entropy": h}


class ModeCoverageCallback(RawStepCallback):
    """Per-goal fractions of ``n_rollouts`` vectorised episodes of the toy task (paper Fig. 10), from the origin,
    with the model's current latent policy through the training env's decoder and latent bound. A trajectory counts
    for the first goal region it enters (``info["goal"]``); logs ``eval/goal_<i>``, ``eval/no_goal`` and
    ``eval/mean_return``.

    :param eval_freq: raw env steps between evaluations
    :param n_rollouts: episodes per evaluation (the paper uses 1000)
    :param deterministic: evaluate the deterministic latent (``Delta(s)`` for LP-DS) instead of the policy's samples
    :param seed: seed of the evaluation env (the same rollouts' noise at every evaluation)
    :param keep_paths: keep up to this many trajectories of the last evaluation in ``self.last_paths``
    """

    def __init__(
        self,
        eval_freq: int,
        n_rollouts: int = 1000,
        deterministic: bool = False,
        seed: int = 12345,
        keep_paths: int = 200,
        env_id: str = "lpds/MultiGoal-v0",
        verbose: int = 0,
    ) -> None:
        super().__init__(eval_freq, verbose)
        self.n_rollouts, self.deterministic, self.seed = int(n_rollouts), bool(deterministic), int(seed)
        self.keep_paths, self.env_id = int(keep_paths), env_id
        self.last_paths: list[list[list[float]]] = []
        self._venv = None

    def _eval_env(self):
        if self._venv is None:
            decoder = _decoder(self.model)
            self._venv = make_latent_vec_env(
                self.env_id, n_envs=self.n_rollouts, decoder=decoder, latent_bound=_latent_bound(self.model)
            )
        self._venv.seed(self.seed)
        return self._venv

    def _measure(self) -> dict[str, Any]:
        sampler = model_sampler(self.model, self.deterministic)
        batch = run_episodes(self._eval_env(), lambda obs: sampler(torch.as_tensor(obs)).numpy())
        fractions = goal_coverage(batch)
        self.last_paths = [p.tolist() for p in batch.paths[: self.keep_paths]]
        out: dict[str, Any] = {f"goal_{i}": float(f) for i, f in enumerate(fractions)}
        out.update(
            goal_fractions=[float(f) for f in fractions],
            no_goal=float(1.0 - fractions.sum()),
            mean_return=float(batch.returns.mean()),
        )
        return out

    def _on_training_end(self) -> None:
        super()._on_training_end()
        if self._venv is not None:
            self._venv.close()
            self._venv = None


class SteeringEvalCallback(RawStepCallback):
    """Periodic evaluation on a separate latent env (:func:`~lpds_envs.evaluation.evaluate_policy`, under its own RNG
    streams): :class:`~lpds_envs.evaluation.EvalResult`'s summary of one episode per sub-env of ``eval_env``, logged
    as ``eval/*`` against raw env steps.

    :param eval_env: a :class:`~lpds_envs.vector.VecLatentSteeringWrapper` (e.g. ``make_latent_vec_env(id, n)``)
    :param eval_freq: raw env steps between evaluations
    :param deterministic: evaluate the deterministic latent instead of the policy's samples
    :param seed: reset seed of the first episode at each evaluation (the same initial states every time)
    """

    def __init__(self, eval_env: Any, eval_freq: int, deterministic: bool = False, seed: int = 10_000, verbose=0):
        super().__init__(eval_freq, verbose)
        self.eval_env, self.deterministic, self.seed = eval_env, bool(deterministic), int(seed)

    def _measure(self) -> dict[str, Any]:
        return evaluate_policy(self.model, self.eval_env, self.deterministic, self.seed).to_dict()
