"""DPPO (Ren et al., 2024, "Diffusion Policy Policy Optimization"): PPO on the two-level MDP of a diffusion policy.

The fine-tuning baseline of the paper's Fig. 3 and Fig. 10. It acts on the chunked raw task env
(:class:`~lpds_envs.wrappers.ChunkedActionWrapper`), trains a copy of the diffusion backbone (never the backbone
itself) and returns the adapted policy as a decoder from :meth:`DPPO.fine_tuned_decoder`.

Each iteration (read against :meth:`DPPO.collect_rollouts` and :meth:`DPPO.train`)::

    for n_steps env steps (per env):  x_0 ~ N(0, I); the K DDIM steps run stochastically (eta, min std), the last
        K' with the trainable network; keep the chain x_{K-K'} .. x_K and each transition's log-prob; execute x_K
    rewards <- rewards / std(running discounted return)                       (reward_scale_running)
    A_t <- GAE(gamma, gae_lambda) with V(s), truncated episodes bootstrapped
    for n_epochs, minibatches of batch_size (env step t, fine-tuned step k) pairs:
        A <- normalise(A_t) gamma_denoise^(K'-1-k)
        ratio = exp(log pi(x_{k+1} | x_k, s) - old)              (mean over the chunk of clipped log-densities)
        L = E max(-A ratio, -A clip(ratio, 1 - c_k, 1 + c_k)) + vf_coef 0.5 (V(s) - R_t)^2
        stop the epoch loop once the approximate KL exceeds target_kl

The defaults are DPPO's gym configs (``cfg/gym/finetune/hopper-v2/ft_ppo_diffusion_mlp.yaml``); the presets in
``algorithms/hyperparams/dppo.yml`` follow its configs per env family.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar, cast

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.utils import explained_variance, obs_as_tensor

from lpds_envs.decoders.base import Decoder
from lpds_envs.decoders.diffusion import DiffusionDecoder
from lpds_envs.wrappers import executed_steps

from .dppo_policy import DPPOPolicy
from .dppo_rollouts import DenoisingRolloutBuffer, RunningRewardScale, clip_ranges, denoising_discounts
from .faults import check_weights
from .finetune import check_backbone, package_decoder
from .progress import RawStepProgressMixin

SelfDPPO = TypeVar("SelfDPPO", bound="DPPO")


class DPPO(RawStepProgressMixin, OnPolicyAlgorithm):
    """DPPO: PPO over env steps and the last ``ft_denoising_steps`` denoising steps of a diffusion backbone.

    :param policy: ``"MlpPolicy"`` (:class:`~algorithms.dppo_policy.DPPOPolicy`)
    :param env: the chunked task env (``ChunkedActionWrapper``; actions are chunks ``(Ta, act_dim)``)
    :param learning_rate: the fine-tuned network's learning rate (DPPO's ``actor_lr``)
    :param critic_learning_rate: the value network's (``critic_lr``)
    :param n_steps: env steps (chunks) per env per iteration
    :param batch_size: (env step, denoising step) pairs per minibatch
    :param n_epochs: passes over the iteration's data (``update_epochs``)
    :param gamma: discount per env step (chunk)
    :param gae_lambda: GAE's lambda
    :param gamma_denoise: discount per denoising step (``gamma_denoising``)
    :param ft_denoising_steps: how many of the last DDIM steps are fine-tuned (``None``: all of them); the earlier ones
        run the frozen copy of the backbone
    :param clip_range: PPO clip at the last denoising step (``clip_ploss_coef``)
    :param clip_range_first: PPO clip at the first fine-tuned step (``clip_ploss_coef_base``)
    :param clip_range_rate: curvature of the exponential rise between them (``clip_ploss_coef_rate``)
    :param clip_range_vf: clip of the value update around the old values (``clip_vloss_coef``; ``None``: none)
    :param normalize_advantage: normalise the advantages within each minibatch (``norm_adv``)
    :param vf_coef: weight of the value loss
    :param max_grad_norm: clip of the actor's gradient norm (``None``: none, DPPO's default)
    :param target_kl: stop the iteration's updates once the approximate KL exceeds it (``None``: never)
    :param eta: DDIM eta of the exploration chain (1: DDPM posterior variance)
    :param min_sampling_std: smallest std of a sampled denoising transition (``min_sampling_denoising_std``)
    :param min_logprob_std: smallest std in the transitions' log-probabilities (``min_logprob_denoising_std``)
    :param noise_clip: clip of the chain's standard normal draws (``randn_clip_value``)
    :param log_prob_clip: clip of the elementwise log-probabilities before averaging over the chunk (DPPO: -5, 2)
    :param reward_scale_running: divide rewards by the running std of the discounted return
    :param n_critic_warmup_iters: iterations that train only the value network (``n_critic_warmup_itr``)
    :param decoder: the frozen diffusion backbone (its weights initialise the fine-tuned copy and are never changed)
    :param policy_kwargs: :class:`~algorithms.dppo_policy.DPPOPolicy`'s (``net_arch``, ``activation_fn``)
    :param stats_window_size: episodes averaged in the rollout logs
    :param tensorboard_log: TensorBoard log directory
    :param verbose: 0 silent, 1 info, 2 debug
    :param seed: seed of the pseudo-random generators
    :param device: torch device
    :param _init_setup_model: build the networks now (SB3's ``load`` passes False)
    """

    policy_aliases: ClassVar[dict[str, type[DPPOPolicy]]] = {"MlpPolicy": DPPOPolicy}  # type: ignore[assignment]
    policy: DPPOPolicy  # type: ignore[assignment]
    rollout_buffer: DenoisingRolloutBuffer
    reward_scale: RunningRewardScale | None
    #: the learner counts raw env steps itself (``raw_env_steps``), as the steering learners do
    counts_raw_steps = True

    def __init__(
        self,
        policy: str | type[DPPOPolicy],
        env: Any,
        learning_rate: float = 1e-4,
        critic_learning_rate: float = 1e-3,
        n_steps: int = 500,
        batch_size: int = 50_000,
        n_epochs: int = 5,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        gamma_denoise: float = 0.99,
        ft_denoising_steps: int | None = None,
        clip_range: float = 0.01,
        clip_range_first: float = 0.01,
        clip_range_rate: float = 3.0,
        clip_range_vf: float | None = None,
        normalize_advantage: bool = True,
        vf_coef: float = 0.5,
        max_grad_norm: float | None = None,
        target_kl: float | None = 1.0,
        eta: float = 1.0,
        min_sampling_std: float = 0.1,
        min_logprob_std: float = 0.1,
        noise_clip: float | None = 3.0,
        log_prob_clip: tuple[float, float] | None = (-5.0, 2.0),
        reward_scale_running: bool = True,
        n_critic_warmup_iters: int = 0,
        decoder: Decoder | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        for name, value in (("batch_size", batch_size), ("n_steps", n_steps), ("n_epochs", n_epochs)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if not 0 < gamma_denoise <= 1 or not 0 <= gae_lambda <= 1:
            raise ValueError(
                f"gamma_denoise must be in (0, 1] and gae_lambda in [0, 1], got {gamma_denoise}, {gae_lambda}"
            )
        if clip_range <= 0 or clip_range_first <= 0:
            raise ValueError(f"clip_range and clip_range_first must be > 0, got {clip_range}, {clip_range_first}")
        if log_prob_clip is not None and not log_prob_clip[0] < log_prob_clip[1]:
            raise ValueError(f"log_prob_clip must be (low, high) with low < high, got {log_prob_clip}")
        self.decoder = decoder
        self.critic_learning_rate = float(critic_learning_rate)
        self.batch_size = int(batch_size)
        self.n_epochs = int(n_epochs)
        self.gamma_denoise = float(gamma_denoise)
        self.ft_denoising_steps = ft_denoising_steps
        self.clip_range = float(clip_range)
        self.clip_range_first = float(clip_range_first)
        self.clip_range_rate = float(clip_range_rate)
        self.clip_range_vf = clip_range_vf
        self.normalize_advantage = bool(normalize_advantage)
        self.target_kl = target_kl
        self.noise_kwargs = {
            "eta": float(eta),
            "min_sampling_std": float(min_sampling_std),
            "min_logprob_std": float(min_logprob_std),
            "noise_clip": noise_clip,
        }
        self.log_prob_clip = None if log_prob_clip is None else (float(log_prob_clip[0]), float(log_prob_clip[1]))
        self.reward_scale_running = bool(reward_scale_running)
        self.n_critic_warmup_iters = int(n_critic_warmup_iters)
        self.raw_env_steps = 0
        self._iterations = 0
        super().__init__(
            policy,  # type: ignore[arg-type]
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=0.0,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,  # type: ignore[arg-type]
            use_sde=False,
            sde_sample_freq=-1,
            rollout_buffer_class=DenoisingRolloutBuffer,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
            supported_action_spaces=(spaces.Box,),
        )
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------ setup
    def _setup_model(self) -> None:
        backbone = self.decoder if self.decoder is not None else self._env_decoder()
        if backbone is not None:
            config = check_backbone(backbone).get_config()
        elif "decoder_config" in self.policy_kwargs:  # loaded: the policy's weights come from the zip
            config = self.policy_kwargs["decoder_config"]
        else:
            raise ValueError("DPPO needs the diffusion backbone: pass decoder= (the env's shipped DiffusionDecoder)")
        K = int(DiffusionDecoder(**config).sampler.num_inference_steps)
        ft = K if self.ft_denoising_steps is None else int(self.ft_denoising_steps)
        if not 1 <= ft <= K:
            raise ValueError(f"ft_denoising_steps must be in [1, {K}] (the backbone's DDIM steps), got {ft}")
        self.ft_denoising_steps = ft
        self.policy_kwargs = {
            **self.policy_kwargs,
            "decoder_config": config,
            "ft_denoising_steps": ft,
            "noise": self.noise_kwargs,
            "critic_lr": self.critic_learning_rate,
        }
        chunk = tuple(config[k] for k in ("chunk_size", "action_dim"))
        self.rollout_buffer_kwargs = {"chain_shape": (ft + 1, *chunk)}
        super()._setup_model()
        if backbone is not None:
            self.policy.load_backbone(backbone)  # type: ignore[arg-type]
        loaded = getattr(self, "reward_scale", None)  # a loaded model keeps its running statistics
        if not self.reward_scale_running:
            self.reward_scale = None
        elif not isinstance(loaded, RunningRewardScale) or len(loaded.ret) != self.n_envs:
            self.reward_scale = RunningRewardScale(self.n_envs, self.gamma)
        self.discounts = denoising_discounts(ft, self.gamma_denoise).to(self.device)
        self.clip_ranges = clip_ranges(ft, self.clip_range, self.clip_range_first, self.clip_range_rate).to(self.device)

    def _env_decoder(self) -> Decoder | None:
        if self.env is None:
            return None
        try:
            found = self.env.get_attr("decoder")[0]
        except AttributeError:
            return None
        return found if isinstance(found, Decoder) else None

    def _excluded_save_params(self) -> list[str]:
        # the backbone is not pickled (the policy holds its own copies); rollouts are rebuilt every iteration
        return [*super()._excluded_save_params(), "decoder", "discounts", "clip_ranges"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "policy.actor_optimizer", "policy.critic_optimizer"], []

    # ------------------------------------------------------------------ rollouts
    def collect_rollouts(self, env: Any, callback: Any, rollout_buffer: RolloutBuffer, n_rollout_steps: int) -> bool:
        """Run the exploration chain for ``n_rollout_steps`` env steps per env; store chains, log-probabilities,
        values and rewards; then rescale the rewards and compute GAE.

        :return: False when a callback asked to stop
        """
        assert self._last_obs is not None, "learn() sets the first observation"
        assert isinstance(rollout_buffer, DenoisingRolloutBuffer), "DPPO fills a DenoisingRolloutBuffer"
        self.policy.set_training_mode(False)
        rollout_buffer.reset()
        callback.on_rollout_start()
        box = cast(spaces.Box, self.action_space)  # supported_action_spaces=(spaces.Box,)
        low, high = box.low, box.high
        for _ in range(n_rollout_steps):
            with torch.no_grad():
                obs_tensor = obs_as_tensor(self._last_obs, self.device)
                actions_t, chain = self.policy.sample(obs_tensor)  # type: ignore[arg-type]
                values = self.policy.predict_values(obs_tensor)  # type: ignore[arg-type]
            actions = actions_t.cpu().numpy()
            new_obs, rewards, dones, infos = env.step(np.clip(actions, low, high))
            self.num_timesteps += env.num_envs
            self.raw_env_steps += executed_steps(infos)
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            bootstrap = np.zeros(env.num_envs, dtype=np.float32)
            for i, done in enumerate(dones):  # a truncated episode continues beyond the rollout: bootstrap V(s_T)
                if done and infos[i].get("TimeLimit.truncated", False) and "terminal_observation" in infos[i]:
                    terminal = self.policy.obs_to_tensor(infos[i]["terminal_observation"])[0]
                    with torch.no_grad():
                        bootstrap[i] = self.gamma * float(self.policy.predict_values(terminal)[0])  # type: ignore[arg-type]
            rollout_buffer.add_chain(chain.chain, self._chunk_log_prob(chain.log_probs), bootstrap)
            rollout_buffer.add(
                self._last_obs,  # type: ignore[arg-type]
                actions.reshape(env.num_envs, -1),
                rewards,
                self._last_episode_starts,  # type: ignore[arg-type]
                values,
                self._chunk_log_prob(chain.log_probs).sum(dim=1),
            )
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_episode_starts = dones
        if self.reward_scale is not None:
            rollout_buffer.rewards = self.reward_scale.update_and_scale(
                rollout_buffer.rewards, rollout_buffer.episode_starts
            )
        rollout_buffer.rewards += rollout_buffer.bootstrap
        with torch.no_grad():
            last_values = self.policy.predict_values(obs_as_tensor(new_obs, self.device))  # type: ignore[arg-type]
        rollout_buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _chunk_log_prob(self, elementwise: torch.Tensor) -> torch.Tensor:
        """DPPO's per-transition log-probability: elementwise log-densities clipped to ``log_prob_clip`` and averaged
        over the chunk, ``(..., Ta, act_dim) -> (...)``."""
        if self.log_prob_clip is not None:
            elementwise = elementwise.clamp(*self.log_prob_clip)
        return elementwise.mean(dim=(-1, -2))

    # ------------------------------------------------------------------ update
    def train(self) -> None:
        """PPO epochs over (env step, fine-tuned denoising step) pairs of the last rollout; logs every loss."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.actor_optimizer)
        data = self.rollout_buffer.samples()
        n_env_steps, ft = data.chains.shape[0], int(self.ft_denoising_steps or 0)
        n_pairs = n_env_steps * ft
        n_batches = max(1, n_pairs // self.batch_size)  # the last partial minibatch is skipped, as DPPO does
        update_actor = self._iterations >= self.n_critic_warmup_iters
        policy_losses, value_losses, kls, clip_fractions, ratios = [], [], [], [], []
        stopped_early = False
        for _epoch in range(self.n_epochs):
            order = torch.randperm(n_pairs, device=self.device)
            for b in range(n_batches):
                pairs = order[b * self.batch_size : (b + 1) * self.batch_size]
                t, k = pairs // ft, pairs % ft
                obs = data.observations[t]
                # log-probabilities of the sampled transitions under the current network
                new_log_prob = self._chunk_log_prob(
                    self.policy.step_log_probs(obs, data.chains[t, k], data.chains[t, k + 1], k)
                )
                log_ratio = new_log_prob - data.old_log_probs[t, k]
                ratio = log_ratio.exp()
                # advantages: env-step GAE, normalised in the minibatch, discounted to the denoising step
                advantages = data.advantages[t]
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                advantages = advantages * self.discounts[k]
                # clipped surrogate, with the clip range of each denoising step
                clip = self.clip_ranges[k]
                policy_loss = torch.max(
                    -advantages * ratio, -advantages * torch.clamp(ratio, 1 - clip, 1 + clip)
                ).mean()
                # value regression on the GAE returns (optionally clipped around the old values)
                values = self.policy.value(obs)
                if self.clip_range_vf is None:
                    value_loss = 0.5 * ((values - data.returns[t]) ** 2).mean()
                else:
                    clipped = data.old_values[t] + (values - data.old_values[t]).clamp(
                        -self.clip_range_vf, self.clip_range_vf
                    )
                    value_loss = (
                        0.5 * torch.max((values - data.returns[t]) ** 2, (clipped - data.returns[t]) ** 2).mean()
                    )
                loss = policy_loss + self.vf_coef * value_loss
                with torch.no_grad():
                    approx_kl = float(((ratio - 1) - log_ratio).mean())
                    clip_fractions.append(float(((ratio - 1).abs() > clip).float().mean()))
                policy_losses.append(policy_loss.item())
                value_losses.append(value_loss.item())
                kls.append(approx_kl)
                ratios.append(ratio.mean().item())
                self.policy.actor_optimizer.zero_grad()
                self.policy.critic_optimizer.zero_grad()
                loss.backward()
                if update_actor:
                    if self.max_grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(self.policy.actor.net.parameters(), self.max_grad_norm)
                    self.policy.actor_optimizer.step()
                self.policy.critic_optimizer.step()
                self._n_updates += 1
                if self.target_kl is not None and approx_kl > self.target_kl:
                    stopped_early = True
                    break
            if stopped_early:
                break
        self._iterations += 1
        check_weights(self, self._n_updates)
        self._record_train_logs(data, policy_losses, value_losses, kls, clip_fractions, ratios, update_actor)

    def _record_train_logs(
        self,
        data: Any,
        policy_losses: list[float],
        value_losses: list[float],
        kls: list[float],
        clip_fractions: list[float],
        ratios: list[float],
        update_actor: bool,
    ) -> None:
        returns, values = data.returns.cpu().numpy(), data.old_values.cpu().numpy()
        self.logger.record("train/policy_gradient_loss", float(np.mean(policy_losses)))
        self.logger.record("train/value_loss", float(np.mean(value_losses)))
        self.logger.record("train/loss", float(np.mean(policy_losses) + self.vf_coef * np.mean(value_losses)))
        self.logger.record("train/approx_kl", float(np.mean(kls)))
        self.logger.record("train/clip_fraction", float(np.mean(clip_fractions)))
        self.logger.record("train/ratio", float(np.mean(ratios)))
        self.logger.record("train/explained_variance", float(explained_variance(values, returns)))
        self.logger.record("train/advantage_mean", float(data.advantages.mean()))
        self.logger.record("train/return_mean", float(returns.mean()))
        self.logger.record("train/old_log_prob", float(data.old_log_probs.mean()))
        self.logger.record("train/clip_range", self.clip_range)
        self.logger.record("train/actor_updated", float(update_actor))
        if self.reward_scale is not None:
            self.logger.record("train/reward_scale_std", float(np.sqrt(self.reward_scale.rms.var + 1e-8)))
        self.logger.record("train/learning_rate", self.lr_schedule(self._current_progress_remaining))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("time/raw_env_steps", self.raw_env_steps)

    def dump_logs(self, iteration: int = 0) -> None:
        """SB3's ``dump_logs`` plus ``time/raw_env_steps`` (executed env steps)."""
        self.logger.record("time/raw_env_steps", self.raw_env_steps)
        super().dump_logs(iteration)

    # ------------------------------------------------------------------ results
    def learn(
        self: SelfDPPO,
        total_timesteps: int,
        callback: Any = None,
        log_interval: int = 1,
        tb_log_name: str = "DPPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDPPO:
        """SB3's ``learn``: ``total_timesteps`` counts chunks (env steps of the chunked env); ``raw_env_steps`` counts
        executed actions."""
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)

    def fine_tuned_decoder(self) -> DiffusionDecoder:
        """The fine-tuned policy as a frozen decoder: deterministic DDIM (eta = 0) from prior noise ``w``, the
        fine-tuned network for the last ``ft_denoising_steps`` steps and the backbone's before them. It saves with
        ``save_pretrained`` and loads with ``load_decoder``; ``LatentSteeringWrapper(env, dec)`` with prior latents
        evaluates it exactly like the backbone. For the same ``w`` it gives ``predict(obs, deterministic=True)``.
        """
        return package_decoder(self.policy.actor, self.policy.base, int(self.ft_denoising_steps or 0))
