"""DPPO's policy: the fine-tuned diffusion decoder, a frozen copy for the early denoising steps, and a state value."""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import create_mlp
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from lpds_envs.decoders.diffusion import DiffusionDecoder

from .finetune import DenoisingChain, DenoisingNoise, frozen_copy, sample_chain, trainable_copy, transition_log_prob


class DPPOPolicy(BasePolicy):
    """The DPPO actor-critic on a chunked env.

    ``actor`` is a :class:`~lpds_envs.decoders.DiffusionDecoder` whose network trains (the last ``ft_denoising_steps``
    DDIM steps use it); ``base`` is a frozen copy of the backbone for the earlier steps (``None`` when every step is
    fine-tuned); ``value_net`` maps the decoder-normalised observation to ``V(s)``. Both decoders are rebuilt from
    ``decoder_config`` so a saved model loads without the original backbone; the algorithm copies the backbone's
    weights in when it is built.

    Actions are chunks in the env's units ``(B, Ta, act_dim)``. Stochastic actions run the exploration chain (eta,
    minimum std); deterministic ones decode fresh prior noise ``w ~ N(0, I)`` with DDIM (eta = 0), DPPO's evaluation
    policy and exactly what :meth:`~algorithms.DPPO.fine_tuned_decoder` computes for the same ``w``.

    :param observation_space: Box observations
    :param action_space: the chunk box ``(Ta, act_dim)``
    :param lr_schedule: the actor's learning-rate schedule
    :param decoder_config: the backbone's ``get_config()``
    :param ft_denoising_steps: how many of the last DDIM steps are fine-tuned
    :param noise: the chain's stochasticity (:class:`~algorithms.finetune.DenoisingNoise` fields as a dict)
    :param critic_lr: the value network's learning rate
    :param net_arch: hidden sizes of the value network (DPPO's ``CriticObs``: 256 x 3)
    :param activation_fn: its activation (DPPO: Mish)
    :param use_sde: SB3 passes it; must be False
    :param optimizer_class: optimiser of both parts
    :param optimizer_kwargs: its extra arguments
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        decoder_config: dict[str, Any],
        ft_denoising_steps: int,
        noise: dict[str, Any] | None = None,
        critic_lr: float = 1e-3,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.Mish,
        use_sde: bool = False,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if use_sde:
            raise ValueError("DPPO explores through its denoising noise; use_sde is not supported")
        super().__init__(
            observation_space, action_space, optimizer_class=optimizer_class, optimizer_kwargs=optimizer_kwargs
        )
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise TypeError(f"DPPO needs flat Box observations, got {observation_space}")
        self.decoder_config = dict(decoder_config)
        self.ft_denoising_steps = int(ft_denoising_steps)
        self.noise = DenoisingNoise(**(noise or {}))
        self.critic_lr = float(critic_lr)
        self.net_arch = list(net_arch) if net_arch is not None else [256, 256, 256]
        self.activation_fn = activation_fn
        template = DiffusionDecoder(**self.decoder_config)
        K = template.sampler.num_inference_steps
        if not 1 <= self.ft_denoising_steps <= K:
            raise ValueError(f"ft_denoising_steps must be in [1, num_inference_steps={K}], got {ft_denoising_steps}")
        if tuple(action_space.shape) != template.action_shape:
            raise ValueError(
                f"the env's actions have shape {action_space.shape}, the decoder's chunks {template.action_shape}; "
                "wrap the task in ChunkedActionWrapper(env, decoder.chunk_size)"
            )
        self.actor = trainable_copy(template)
        self.base = frozen_copy(template) if self.ft_denoising_steps < K else None
        obs_dim = int(observation_space.shape[0])
        self.value_net = nn.Sequential(*create_mlp(obs_dim, 1, self.net_arch, activation_fn))
        self.actor_optimizer = self.optimizer_class(
            self.actor.net.parameters(),
            lr=lr_schedule(1),
            **self.optimizer_kwargs,  # type: ignore[call-arg]
        )
        self.critic_optimizer = self.optimizer_class(
            self.value_net.parameters(),
            lr=self.critic_lr,
            **self.optimizer_kwargs,  # type: ignore[call-arg]
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            decoder_config=self.decoder_config,
            ft_denoising_steps=self.ft_denoising_steps,
            noise=vars(self.noise),
            critic_lr=self.critic_lr,
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
        )
        return data

    def load_backbone(self, decoder: DiffusionDecoder) -> None:
        """Initialise the fine-tuned network and the frozen copy from the backbone's weights (and normalisation)."""
        state = decoder.state_dict()
        self.actor.load_state_dict(state)
        if self.base is not None:
            self.base.load_state_dict(state)

    # ------------------------------------------------------------------ acting
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """``V(s)`` of raw observations ``(B, obs_dim)`` -> ``(B,)``."""
        return self.value_net(self.actor.normalize_obs(obs.float())).squeeze(-1)

    def sample(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, DenoisingChain]:
        """Chunks in the env's units ``(B, Ta, act_dim)`` and the chain that produced them (from fresh prior noise)."""
        obs_n = self.actor.normalize_obs(obs.float())
        w = torch.randn((obs.shape[0], *self.actor.latent_shape), device=obs.device)
        with torch.no_grad():
            chain = sample_chain(self.actor, self.base, obs_n, w, self.ft_denoising_steps, self.noise, deterministic)
        return self.actor.unnormalize_actions(chain.actions_n), chain

    def _predict(self, observation: torch.Tensor, deterministic: bool = False) -> torch.Tensor:  # type: ignore[override]
        return self.sample(observation, deterministic)[0]

    def forward(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:  # type: ignore[override]
        return self._predict(obs, deterministic)

    def predict_values(self, obs: torch.Tensor) -> torch.Tensor:
        """``V(s)`` as ``(B, 1)``, SB3's shape."""
        return self.value(obs).unsqueeze(-1)

    # ------------------------------------------------------------------ training
    def step_log_probs(
        self, obs: torch.Tensor, x: torch.Tensor, x_next: torch.Tensor, ft_index: torch.Tensor
    ) -> torch.Tensor:
        """Elementwise log-probabilities ``(B, Ta, act_dim)`` of fine-tuned transitions ``x -> x_next`` at fine-tuned
        step ``ft_index`` (``0`` = first fine-tuned step), differentiable in the actor."""
        K = self.actor.sampler.num_inference_steps
        k = ft_index + (K - self.ft_denoising_steps)
        return transition_log_prob(self.actor, self.actor.normalize_obs(obs.float()), x, x_next, k, self.noise)
