"""The steered policy as a plain ``nn.Module`` for deployment: ``obs -> Phi(clip(eps + Delta(obs)); obs)``."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import maybe_transpose
from torch import nn

from lpds_envs.decoders.base import Decoder

from .policies import SquashedGaussianActor


class SteeredPolicy(nn.Module):
    """``obs -> Phi(clip(eps + Delta(obs)); obs)``; see :meth:`SteeringAlgorithm.steered_policy`.

    With a :class:`~algorithms.policies.SquashedGaussianActor` (DSRL-NA) the latent is the actor's own
    ``bound * tanh(mu(obs) + sigma(obs) eps)`` instead.

    :param decoder: the frozen decoder ``Phi``
    :param actor: the perturbation actor ``Delta(s)`` (a frozen copy is kept)
    :param latent_bound: the latent box's bound (``None``: unbounded)
    :param deterministic: use ``eps = 0`` when ``forward`` is given no noise
    """

    def __init__(self, decoder: Decoder, actor: nn.Module, latent_bound: float | None, deterministic: bool) -> None:
        super().__init__()
        self.decoder, self.actor = decoder, copy_module(actor)
        self.latent_bound, self.deterministic = latent_bound, deterministic

    @torch.no_grad()
    def forward(self, obs: torch.Tensor | dict[str, Any], eps: torch.Tensor | None = None) -> torch.Tensor:
        """The steered chunks.

        :param obs: raw observations (batched; dict of arrays or tensors for Dict observations, channel-last images)
        :param eps: the noise ``(B, d)``; ``None`` draws ``N(0, I)`` (zeros when ``deterministic``); for DSRL-NA the
            noise of the actor's pre-tanh Gaussian
        :return: the decoded action chunks
        """
        device = next(self.actor.parameters()).device
        actor_obs: Any
        if isinstance(obs, dict):  # Dict observations keep their dtypes (uint8 images)
            obs = {k: np.asarray(v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in obs.items()}
            space = getattr(self.actor.features_extractor, "observation_space", None)
            # the actor saw images as SB3 stores them (channel-first); the decoder takes the raw layout
            actor_obs = {
                k: torch.as_tensor(maybe_transpose(v, space[k]) if isinstance(space, spaces.Dict) else v, device=device)
                for k, v in obs.items()
            }
            obs = {k: torch.as_tensor(v, device=device) for k, v in obs.items()}
        else:
            obs = actor_obs = torch.as_tensor(obs, dtype=torch.float32, device=device)
        if isinstance(self.actor, SquashedGaussianActor):
            # DSRL-NA: the actor's output *is* the latent, w = bound * tanh(mu + sigma eps)
            if eps is None and not self.deterministic:
                n = len(next(iter(obs.values()))) if isinstance(obs, dict) else len(obs)
                eps = torch.randn(n, self.actor.mu.out_features, device=device)
            w = self.actor.latent(actor_obs, None if eps is None else eps.to(device))
        else:
            perturbation = self.actor(actor_obs)
            if eps is None:
                eps = torch.zeros_like(perturbation) if self.deterministic else torch.randn_like(perturbation)
            w = eps.reshape(perturbation.shape).to(perturbation) + perturbation
        if self.latent_bound is not None:
            w = w.clamp(-self.latent_bound, self.latent_bound)
        return self.decoder(obs, w)


def copy_module(module: nn.Module) -> nn.Module:
    """A frozen copy of ``module``: deep-copied, in eval mode, without gradients.

    :param module: the module to copy
    :return: the copy
    """
    return copy.deepcopy(module).eval().requires_grad_(False)
