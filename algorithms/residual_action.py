"""LP-DS-A (paper Sec. 5.5): the same Lagrangian trust region, but the residual acts on the decoded *action*.

``a = clip(Phi(eps; s) + Delta_a(s))`` with ``eps ~ N(0, I)`` drawn by the env, trained with the action critic
Q^A only (no latent critic). The env side is :class:`ResidualActionWrapper`: its action is the residual.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.save_util import load_from_zip_file

from lpds_envs.codec import check_finite_chunks, check_finite_obs, to_batch
from lpds_envs.decoders.base import Decoder
from lpds_envs.wrappers import ChunkedActionWrapper

from .policies import SteeringPolicy
from .steering import SteeringAlgorithm
from .trust_region import LagrangianTrustRegion
from .updates import TrainLog, optimizer_step


class ResidualActionWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """The action is a residual ``r`` on the backbone's chunk: executes ``clip(Phi(eps; s) + r, low, high)``.

    ``eps ~ N(0, I)`` is drawn by the wrapper from a generator seeded by ``reset(seed=...)`` (then continuing
    across episodes), so episodes are reproducible. ``info["decoded_action"]`` is the executed chunk,
    ``info["base_action"]`` the backbone's ``Phi(eps; s)``, ``info["latent"]`` the noise ``eps``.

    :param env: the task env (per-step ``Box`` actions, or already chunked)
    :param decoder: the frozen decoder
    """

    def __init__(self, env: gym.Env, decoder: Decoder) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, decoder=decoder)
        if getattr(env.action_space, "shape", None) == decoder.action_shape[1:]:
            env = ChunkedActionWrapper(env, decoder.chunk_size)
        if env.action_space.shape != decoder.action_shape:
            raise ValueError(f"env actions {env.action_space.shape} do not match decoder chunks {decoder.action_shape}")
        gym.Wrapper.__init__(self, env)
        self.decoder = decoder
        box = env.action_space
        if not isinstance(box, spaces.Box):
            raise ValueError(f"ResidualActionWrapper needs Box actions (a chunk box), got {box}")
        self.chunk_low = box.low.reshape(-1).astype(np.float32)
        self.chunk_high = box.high.reshape(-1).astype(np.float32)
        width = self.chunk_high - self.chunk_low  # a residual never needs to exceed the action range
        self.action_space = spaces.Box(-width, width, dtype=np.float32)
        self._rng = np.random.default_rng()
        self._obs: Any = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset the task env; a ``seed`` also reseeds the wrapper's noise generator.

        :param seed: seed of the task env and of the noise ``eps``
        :param options: passed to the task env
        :return: ``(obs, info)`` of the task env
        """
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = obs
        return obs, info

    def step(self, action):
        """Execute ``clip(Phi(eps; s) + r)`` for the residual ``r = action`` and fresh noise ``eps``.

        :param action: the residual, flat ``(Ta * act_dim,)``
        :return: the task env's ``(obs, reward, terminated, truncated, info)``, with ``decoded_action``,
            ``base_action`` and ``latent`` added to ``info``
        """
        r = np.asarray(action, dtype=np.float32).reshape(-1)
        if r.shape != self.action_space.shape:
            raise ValueError(f"residual has shape {np.shape(action)}, expected {self.action_space.shape}")
        if not np.isfinite(r).all():
            raise ValueError("residual contains NaN or inf; residuals must be finite")
        check_finite_obs(self._obs)
        eps = self._rng.standard_normal(self.decoder.latent_shape).astype(np.float32)
        if isinstance(self._obs, dict):  # Dict observations keep their dtypes (uint8 camera images)
            obs = to_batch(self._obs, single=True)
        else:
            obs = torch.as_tensor(np.asarray(self._obs, dtype=np.float32))[None]
        base = self.decoder(obs, torch.from_numpy(eps)[None])
        base = check_finite_chunks(base.detach().cpu().numpy())[0].reshape(-1)
        chunk = np.clip(base + r, self.chunk_low, self.chunk_high)
        obs, reward, terminated, truncated, info = self.env.step(chunk.reshape(self.decoder.action_shape))
        self._obs = obs
        info["decoded_action"], info["base_action"], info["latent"] = chunk, base, eps
        return obs, reward, terminated, truncated, info


class ResidualActionSAC(LagrangianTrustRegion, SteeringAlgorithm):
    """LP-DS-A: ``a = clip(Phi(eps; s) + Delta_a(s))``, Lagrangian trust region on ``||Delta_a||^2``, Q^A only.

    Each gradient step::

        eps', eps ~ N(0, I);  b' = Phi(eps'; s'),  b = Phi(eps; s)                 # one decoder call
        y = r + gamma (1 - done) min_j Q^A_targ,j(s', clip(b' + Delta_a(s')))
        Q^A <- TD on the executed chunks
        theta <- theta + lr grad [min_j Q^A_j(s, clip(b + Delta_a(s))) - alpha (||Delta_a(s)||^2 - delta)]
        alpha <- max(0, alpha + alpha_lr mean(||Delta_a(s)||^2 - delta))

    Use it on a :class:`ResidualActionWrapper` env. Exploration comes from the backbone's own noise ``eps``;
    the residual is deterministic (``predict`` returns ``Delta_a(s)`` either way); warm-up uses residual 0.
    The policy has no latent critic (``latent_critic`` is ``None``); models saved by versions that built an unused
    one still load (its weights are dropped). ``"MultiInputPolicy"`` (SB3's ``CombinedExtractor``) takes Dict
    observations such as camera images + state.

    :param policy: ``"MlpPolicy"``, ``"MultiInputPolicy"`` or a :class:`~algorithms.policies.SteeringPolicy` subclass
    :param env: a :class:`ResidualActionWrapper` env (its action is the residual on the decoded chunk)
    :param delta: trust-region target of ``E||Delta_a(s)||^2`` (float, or a schedule of the remaining progress)
    :param alpha_init: initial Lagrange multiplier (>= 0)
    :param alpha_lr: step size of the projected dual ascent on alpha
    :param use_lagrangian: ``False`` freezes alpha at ``alpha_init``
    :param decoder: the frozen decoder, when the env does not expose one (or to override it)
    :param learning_rate: Adam learning rate of actor and action critic (float or schedule)
    :param buffer_size: replay capacity (transitions)
    :param learning_starts: steps with residual 0 (the backbone itself) before learning starts
    :param batch_size: minibatch size
    :param tau: Polyak coefficient of the Q^A target
    :param gamma: discount per executed chunk
    :param train_freq: update the model every ``train_freq`` steps
    :param gradient_steps: gradient steps per update (the UTD ratio)
    :param target_update_interval: Polyak-update the target every this many gradient steps
    :param policy_kwargs: ``net_arch``, ``n_critics``, ``layer_norm``, ``activation_fn``, ``actor_init_scale``, ...
    :param stats_window_size: episodes averaged in the rollout logs
    :param tensorboard_log: TensorBoard log directory (``None``: none)
    :param verbose: 0 silent, 1 info, 2 debug
    :param seed: seed of the pseudo-random generators
    :param device: torch device of the networks
    :param compile_decoder: decode the training batches through a ``torch.compile`` copy of the decoder
    :param _init_setup_model: build the networks now (SB3's convention; ``load`` passes ``False``)
    """

    uses_latent_critic = False  # trained with Q^A only: the policy gets no Q^W

    def __init__(
        self,
        policy: str | type[SteeringPolicy],
        env: Any,
        delta: float | Callable[[float], float] = 0.35,
        alpha_init: float = 1.0,
        alpha_lr: float = 0.01,
        use_lagrangian: bool = True,
        decoder: Decoder | None = None,
        learning_rate: float | Callable[[float], float] = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 1000,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        target_update_interval: int = 1,
        policy_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        compile_decoder: bool = False,
        _init_setup_model: bool = True,
    ) -> None:
        self._init_trust_region(delta, alpha_init, alpha_lr, use_lagrangian)
        super().__init__(
            policy=policy,
            env=env,
            learning_rate=learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            latent_critic_steps=1,
            decoder=decoder,
            target_update_interval=target_update_interval,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            seed=seed,
            device=device,
            compile_decoder=compile_decoder,
        )
        if _init_setup_model:
            self._setup_model()

    def _expected_action_dim(self) -> int:
        return int(np.prod(self._require_decoder().action_shape))

    def _setup_model(self) -> None:
        super()._setup_model()
        needs_env = "ResidualActionSAC needs a ResidualActionWrapper env (its action is the residual)"
        if self.env is None:
            raise ValueError(needs_env)
        try:
            low, high = self.env.get_attr("chunk_low")[0], self.env.get_attr("chunk_high")[0]
        except AttributeError as exc:
            raise ValueError(needs_env) from exc
        self.chunk_low = torch.as_tensor(low, device=self.device)
        self.chunk_high = torch.as_tensor(high, device=self.device)

    def _sample_action(self, learning_starts: int, action_noise: Any = None, n_envs: int = 1):
        """Warm-up: residual 0 (the backbone itself); then the deterministic residual ``Delta_a(s)``."""
        if self.num_timesteps < learning_starts:
            r = np.zeros((n_envs, self.action_space.shape[0]), dtype=np.float32)  # the backbone itself
        else:
            r, _ = self.predict(self._last_obs, deterministic=True)
        return r, r

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        """The residual ``Delta_a(s)``: deterministic whatever ``deterministic`` says (the env draws the noise).

        :param observation: the observation(s)
        :param state: unused (no recurrent state)
        :param episode_start: unused
        :param deterministic: ignored
        :return: ``(residual, None)``
        """
        return super().predict(observation, state, episode_start, deterministic=True)

    def steered_policy(self, deterministic: bool = False):
        """Not available: LP-DS-A steers the decoded action, not the latent.

        :param deterministic: unused
        :raises NotImplementedError: always
        """
        raise NotImplementedError("steered_policy() is for latent steering; LP-DS-A acts as ResidualActionWrapper does")

    def set_parameters(self, load_path_or_dict: Any, exact_match: bool = True, device: torch.device | str = "auto"):
        """SB3's ``set_parameters``; parameters saved by versions that built an unused latent critic for LP-DS-A
        (``latent_critic.*`` weights and ``latent_critic.optimizer``) are accepted and those entries dropped.

        :param load_path_or_dict: a saved zip (path or file-like) or a dict as ``get_parameters`` returns
        :param exact_match: the parameters must cover every module (as SB3)
        :param device: device of the loaded tensors
        """
        if isinstance(load_path_or_dict, dict):
            params = dict(load_path_or_dict)
        else:
            _, params, _ = load_from_zip_file(load_path_or_dict, device=device, load_data=False)
        params.pop("latent_critic.optimizer", None)
        if "policy" in params and any(k.startswith("latent_critic.") for k in params["policy"]):
            policy_state = copy.copy(params["policy"])  # keeps the state dict's module versions
            for key in [k for k in policy_state if k.startswith("latent_critic.")]:
                del policy_state[key]
            params["policy"] = policy_state
        super().set_parameters(params, exact_match=exact_match, device=device)

    def _executed_chunk(self, base: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``clip(base + residual)`` to the chunk box, as :class:`ResidualActionWrapper` executes it."""
        return torch.max(torch.min(base + residual, self.chunk_high), self.chunk_low)

    def train(self, gradient_steps: int, batch_size: int = 256) -> None:
        """``gradient_steps`` LP-DS-A updates (see the class doc), then their mean losses and values logged.

        Logs ``train/critic_loss``, ``train/actor_loss``, ``train/perturbation_sq`` (mean ``||Delta_a(s)||^2``),
        ``train/q_a`` (mean ``min_j Q^A_j(s, clip(b + Delta_a(s)))``), ``train/alpha``, ``train/delta`` (the target),
        ``train/n_updates`` and ``time/raw_env_steps``.

        :param gradient_steps: gradient steps to take
        :param batch_size: minibatch size of each step
        """
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.action_critic.optimizer])
        delta = self.delta  # the trust-region target of this update
        log = TrainLog("critic_loss", "actor_loss", "perturbation_sq", "q_a")
        alpha = self.alpha_tensor(self.device)  # the multiplier stays on the device until the call ends
        decoder = self._require_decoder()
        latent = (-1, *decoder.latent_shape)
        for step, replay in enumerate(self.sample_call_batches(gradient_steps, batch_size)):
            obs, next_obs = replay.observations, replay.next_observations
            n = replay.rewards.shape[0]  # observations may be a dict (images + state)

            # the backbone's chunks b' = Phi(eps'; s') and b = Phi(eps; s) in one call; TD target on Q^A
            with torch.no_grad():
                eps = torch.randn((2 * n, decoder.latent_dim), device=self.device)
                next_base, base = self.decode_batches((next_obs, eps[:n].view(latent)), (obs, eps[n:].view(latent)))
                next_a = self._executed_chunk(next_base, self.actor(next_obs))
                next_q = self.action_critic_target(next_obs, next_a).min(dim=1, keepdim=True).values
                target_q = self.bellman_target(replay, next_q)

            # action critic on the executed chunks
            log.add(critic_loss=self.action_critic_step(replay, target_q))

            # actor: maximise Q^A(s, clip(b + Delta_a(s))) - alpha (||Delta_a(s)||^2 - delta)
            residual = self.actor(obs)
            perturbation_sq = residual.pow(2).sum(dim=1)
            q_a = self.action_critic(obs, self._executed_chunk(base, residual)).min(dim=1).values
            actor_loss = self.trust_region_actor_loss(q_a, perturbation_sq, delta, alpha)
            optimizer_step(self.actor.optimizer, actor_loss)
            log.add(actor_loss=actor_loss, perturbation_sq=perturbation_sq.mean(), q_a=q_a.mean())

            self.check_update(log, step, replay, {"next chunks": next_base, "prior chunks": base})

            # projected dual ascent on alpha; target network
            alpha = self.dual_step(perturbation_sq, delta, alpha)
            if step % self.target_update_interval == 0:
                self.polyak_update_targets()

        self.alpha = float(alpha)
        self.record_train_logs(gradient_steps, log, alpha=self.alpha, delta=delta)
