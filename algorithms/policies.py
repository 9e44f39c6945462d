"""Networks of the steering learners: the perturbation actor Delta(s), the action critic Q^A(s, a) on decoded
chunks and the latent critic Q^W(s, w), bundled in one SB3 policy."""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    create_mlp,
)
from stable_baselines3.common.type_aliases import Schedule
from torch import nn


def mlp(input_dim: int, output_dim: int, net_arch: list[int], activation_fn: type[nn.Module], layer_norm: bool):
    """``create_mlp`` with optional LayerNorm after each hidden linear layer (as the DSRL reference MLPs).

    :param input_dim: input size
    :param output_dim: output size (0: no output layer, the last hidden layer is the output)
    :param net_arch: hidden layer sizes
    :param activation_fn: activation after each hidden layer
    :param layer_norm: LayerNorm after each hidden linear layer
    :return: the ``nn.Sequential``
    """
    post: list[type[nn.Module]] | None = [nn.LayerNorm] if layer_norm else None
    return nn.Sequential(*create_mlp(input_dim, output_dim, net_arch, activation_fn, post_linear_modules=post))


def _as_float(obs: Any) -> Any:
    """float32 view of tensor observations (float64 envs such as Adroit); Dict observations pass through (their
    extractor preprocesses each key)."""
    return obs.float() if torch.is_tensor(obs) and obs.dtype != torch.float32 else obs


class EnsembleLinear(nn.Module):
    """``n`` independent linear layers applied at once: ``(n, B, in) -> (n, B, out)`` with one batched matmul.
    Each member is initialised as ``nn.Linear`` would (uniform in ``+-1/sqrt(in)``).

    :param n: ensemble members
    :param in_features: input size
    :param out_features: output size
    """

    def __init__(self, n: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        self.weight = nn.Parameter(torch.empty(n, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:param x: ``(n, B, in)``
        :return: ``(n, B, out)``
        """
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last dimension with a separate affine transform per ensemble member.

    :param n: ensemble members
    :param dim: size of the normalised (last) dimension
    """

    def __init__(self, n: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n, 1, dim))
        self.bias = nn.Parameter(torch.zeros(n, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:param x: ``(n, B, dim)``
        :return: ``(n, B, dim)``
        """
        return torch.addcmul(self.bias, F.layer_norm(x, x.shape[-1:]), self.weight)


class QEnsemble(nn.Module):
    """``n_critics`` independent Q-networks ``Q_j(s, x)``, evaluated together with batched matmuls (one kernel per
    layer for the whole ensemble; the members share no parameters). ``forward`` returns ``(B, n_critics)``.

    Each member is the MLP SB3 would build (``net_arch`` hidden layers, ``activation_fn``, optional LayerNorm after
    each hidden linear layer as in the DSRL reference critics), initialised like ``nn.Linear``.

    :param features_extractor: the observation features extractor (shared by the members)
    :param input_dim: size of the second input ``x`` (a flat decoded chunk for Q^A, a flat latent for Q^W)
    :param net_arch: hidden layer sizes of each member
    :param activation_fn: activation after each hidden layer
    :param n_critics: ensemble members
    :param layer_norm: LayerNorm after each hidden linear layer
    """

    optimizer: torch.optim.Optimizer  # set by SteeringPolicy

    def __init__(
        self,
        features_extractor: BaseFeaturesExtractor,
        input_dim: int,
        net_arch: list[int],
        activation_fn: type[nn.Module],
        n_critics: int,
        layer_norm: bool,
    ) -> None:
        super().__init__()
        self.features_extractor = features_extractor
        self.n_critics = int(n_critics)
        dims = [features_extractor.features_dim + input_dim, *net_arch]
        layers: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            layers.append(EnsembleLinear(self.n_critics, d_in, d_out))
            if layer_norm:
                layers.append(EnsembleLayerNorm(self.n_critics, d_out))
            layers.append(activation_fn())
        layers.append(EnsembleLinear(self.n_critics, dims[-1], 1))
        self.q_nets = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """:param obs: a batch of observations
        :param x: the matching actions (chunks or latents), flattened from the second dimension on
        :return: ``Q_j(s, x)`` of every member, ``(B, n_critics)``
        """
        h = torch.cat([self.features_extractor(_as_float(obs)), x.flatten(1).float()], dim=1)
        return self.q_nets(h.unsqueeze(0).expand(self.n_critics, *h.shape)).squeeze(-1).t()


class PerturbationActor(nn.Module):
    """``Delta_theta(s)``: an MLP whose last layer starts near zero, so the first steered policy is the backbone.

    :param features_extractor: the observation features extractor
    :param latent_dim: size of the flat latent (the output)
    :param net_arch: hidden layer sizes
    :param activation_fn: activation after each hidden layer
    :param layer_norm: LayerNorm after each hidden linear layer
    :param init_scale: factor on the last layer's initial weights (its bias starts at 0)
    """

    optimizer: torch.optim.Optimizer  # set by SteeringPolicy

    def __init__(
        self,
        features_extractor: BaseFeaturesExtractor,
        latent_dim: int,
        net_arch: list[int],
        activation_fn: type[nn.Module],
        layer_norm: bool,
        init_scale: float,
    ) -> None:
        super().__init__()
        self.features_extractor = features_extractor
        self.net = mlp(features_extractor.features_dim, latent_dim, net_arch, activation_fn, layer_norm)
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():
            last.weight.mul_(init_scale)
            last.bias.zero_()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """:param obs: a batch of observations
        :return: the perturbations ``Delta(s)``, ``(B, latent_dim)``
        """
        return self.net(self.features_extractor(_as_float(obs)))


class SquashedGaussianActor(nn.Module):
    """SAC actor in latent space: ``w = bound * tanh(u)``, ``u ~ N(mu(s), sigma(s)^2)`` (DSRL-NA's latent policy).

    ``action_log_prob`` returns the latent and its log-density *as a latent* (tanh and scale corrections included),
    so an entropy target refers to the distribution the decoder actually sees.

    :param features_extractor: the observation features extractor
    :param latent_dim: size of the flat latent
    :param net_arch: hidden layer sizes of the shared trunk
    :param activation_fn: activation after each hidden layer
    :param layer_norm: LayerNorm after each hidden linear layer
    :param bound: the latent box's bound (the scale of the tanh)
    """

    LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
    optimizer: torch.optim.Optimizer  # set by SteeringPolicy

    def __init__(
        self,
        features_extractor: BaseFeaturesExtractor,
        latent_dim: int,
        net_arch: list[int],
        activation_fn: type[nn.Module],
        layer_norm: bool,
        bound: float,
    ) -> None:
        super().__init__()
        self.features_extractor = features_extractor
        self.trunk = mlp(features_extractor.features_dim, 0, net_arch, activation_fn, layer_norm)
        hidden = net_arch[-1] if net_arch else features_extractor.features_dim
        self.mu = nn.Linear(hidden, latent_dim)
        self.log_std = nn.Linear(hidden, latent_dim)
        self.bound = float(bound)

    def _dist(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(self.features_extractor(_as_float(obs)))
        return self.mu(h), self.log_std(h).clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)

    def forward(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """:param obs: a batch of observations
        :param deterministic: return ``bound * tanh(mu(s))`` instead of a sample
        :return: latents ``(B, latent_dim)``
        """
        mu, log_std = self._dist(obs)
        u = mu if deterministic else mu + log_std.exp() * torch.randn_like(mu)
        return self.bound * torch.tanh(u)

    def latent(self, obs: Any, noise: torch.Tensor | None) -> torch.Tensor:
        """``bound * tanh(mu(s) + sigma(s) * noise)``: the latent for given standard-normal ``noise``.

        ``noise=None`` (or zeros) gives the deterministic latent ``bound * tanh(mu(s))``; ``forward`` draws the noise.

        :param obs: a batch of observations
        :param noise: ``(B, latent_dim)`` standard-normal noise of the pre-tanh Gaussian, or ``None``
        :return: latents ``(B, latent_dim)``
        """
        mu, log_std = self._dist(obs)
        u = mu if noise is None else mu + log_std.exp() * noise.reshape(mu.shape).to(mu)
        return self.bound * torch.tanh(u)

    def action_log_prob(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A sampled latent and its log-density as a latent.

        :param obs: a batch of observations
        :return: ``(w, log_prob)`` of shapes ``(B, latent_dim)`` and ``(B,)``
        """
        mu, log_std = self._dist(obs)
        u = mu + log_std.exp() * torch.randn_like(mu)
        log_prob = torch.distributions.Normal(mu, log_std.exp()).log_prob(u).sum(dim=1)
        # change of variables w = bound * tanh(u): log|dw/du| = log(bound) + log(1 - tanh(u)^2), computed stably
        log_prob = log_prob - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(dim=1)
        log_prob = log_prob - u.shape[1] * math.log(self.bound)
        return self.bound * torch.tanh(u), log_prob


class SteeringPolicy(BasePolicy):
    """Actor Delta(s), action critic Q^A (with Polyak target) and latent critic Q^W, with their optimizers.

    ``predict(obs, deterministic=True)`` returns ``Delta(s)``; stochastic returns ``eps + Delta(s)``,
    ``eps ~ N(0, I)`` (then clipped to the latent box by SB3).

    :param observation_space: the observation space
    :param action_space: the latent box (the actor's output space)
    :param lr_schedule: learning-rate schedule (its value at progress 1 initialises the optimizers)
    :param decoded_action_dim: size of a flattened decoded chunk (Q^A's action input)
    :param net_arch: hidden layers of every network (default ``[256, 256]``; the paper's Adroit runs use 3 x 256)
    :param activation_fn: activation of every network
    :param n_critics: members of each critic ensemble
    :param layer_norm: LayerNorm after each hidden layer of every network
    :param actor_init_scale: scale of the actor's last-layer weights at initialisation (bias 0)
    :param features_extractor_class: features extractor of each network (one instance per network)
    :param features_extractor_kwargs: its keyword arguments
    :param normalize_images: divide image observations by 255
    :param optimizer_class: optimizer of actor and critics
    :param optimizer_kwargs: passed to ``optimizer_class``; ``None`` means ``{"fused": True}`` for Adam and AdamW
        (one fused kernel per step instead of a loop over tensors: about 3x faster on CPU for these network sizes,
        the same update up to float rounding; see benchmarks/RESULTS.md). Pass ``{}`` for PyTorch's default.
    :param with_latent_critic: ``False`` leaves out Q^W (``latent_critic`` is ``None``, no optimizer), for learners
        that train Q^A only (LP-DS-A). The random draws of its initialisation are still made, so that a seed gives
        the same actor and action critic, and the same training, with or without it.
    :param with_latent_critic_target: also keep a Polyak target ``latent_critic_target`` of Q^W (a frozen copy, in
        evaluation mode), for learners that bootstrap their TD target from it (``td_target="latent_critic"``);
        ``None`` otherwise. Copying draws no random numbers, so the other networks are the same either way.
    """

    actor: PerturbationActor | SquashedGaussianActor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        decoded_action_dim: int,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        n_critics: int = 2,
        layer_norm: bool = False,
        actor_init_scale: float = 1e-3,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        with_latent_critic: bool = True,
        with_latent_critic_target: bool = False,
    ) -> None:
        if optimizer_kwargs is None and optimizer_class in (torch.optim.Adam, torch.optim.AdamW):
            optimizer_kwargs = {"fused": True}
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class,
            features_extractor_kwargs,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            normalize_images=normalize_images,
            squash_output=False,
        )
        if n_critics < 1:
            raise ValueError(f"n_critics must be >= 1, got {n_critics}")
        if net_arch is not None and (
            isinstance(net_arch, (str, bytes))
            or not isinstance(net_arch, (list, tuple))
            or not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1 for n in net_arch)
        ):
            raise ValueError(
                f"net_arch must be a list of hidden layer sizes (integers >= 1), got {net_arch!r}; "
                "e.g. policy_kwargs={'net_arch': [256, 256]}"
            )
        self.net_arch = list(net_arch) if net_arch is not None else [256, 256]
        self.activation_fn, self.n_critics, self.layer_norm = activation_fn, n_critics, layer_norm
        self.decoded_action_dim, self.actor_init_scale = int(decoded_action_dim), actor_init_scale
        self.with_latent_critic = bool(with_latent_critic)
        latent_dim = int(action_space.shape[0])
        args = (self.net_arch, activation_fn)
        self.actor = self.make_actor(latent_dim)
        self.action_critic = QEnsemble(
            self.make_features_extractor(), self.decoded_action_dim, *args, n_critics, layer_norm
        )
        self.action_critic_target = copy.deepcopy(self.action_critic).requires_grad_(False)
        # Q^W is initialised last; without it, the same initialisation is run and discarded so that the random
        # streams (torch's, and the observation space's for image extractors) end where they did with it
        latent_critic = QEnsemble(self.make_features_extractor(), latent_dim, *args, n_critics, layer_norm)
        self.latent_critic: QEnsemble | None = latent_critic if self.with_latent_critic else None
        if with_latent_critic_target and self.latent_critic is None:
            raise ValueError("with_latent_critic_target=True needs the latent critic (with_latent_critic=True)")
        self.with_latent_critic_target = bool(with_latent_critic_target)
        self.latent_critic_target: QEnsemble | None = None
        if self.latent_critic is not None and self.with_latent_critic_target:
            self.latent_critic_target = copy.deepcopy(self.latent_critic).requires_grad_(False)
            self.latent_critic_target.train(False)
        lr = lr_schedule(1)
        make_optimizer: Callable[..., torch.optim.Optimizer] = optimizer_class  # takes lr= (Optimizer's base doesn't)
        self.actor.optimizer = make_optimizer(self.actor.parameters(), lr=lr, **self.optimizer_kwargs)
        self.action_critic.optimizer = make_optimizer(self.action_critic.parameters(), lr=lr, **self.optimizer_kwargs)
        if self.latent_critic is not None:
            self.latent_critic.optimizer = make_optimizer(
                self.latent_critic.parameters(), lr=lr, **self.optimizer_kwargs
            )
        self.action_critic_target.train(False)

    def make_actor(self, latent_dim: int) -> PerturbationActor | SquashedGaussianActor:
        """The actor network (subclasses override it; e.g. :class:`DSRLNAPolicy`'s squashed Gaussian).

        :param latent_dim: size of the flat latent
        :return: a :class:`PerturbationActor` ``Delta(s)``
        """
        return PerturbationActor(
            self.make_features_extractor(),
            latent_dim,
            self.net_arch,
            self.activation_fn,
            self.layer_norm,
            self.actor_init_scale,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            decoded_action_dim=self.decoded_action_dim,
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            n_critics=self.n_critics,
            layer_norm=self.layer_norm,
            actor_init_scale=self.actor_init_scale,
            with_latent_critic=self.with_latent_critic,
            with_latent_critic_target=self.with_latent_critic_target,
        )
        return data

    def forward(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """The policy's action (latent), as ``predict`` returns it before clipping.

        :param obs: a batch of (preprocessed by SB3) observations
        :param deterministic: return ``Delta(s)`` instead of ``eps + Delta(s)``
        :return: latents ``(B, d)``
        """
        return self._predict(obs, deterministic)

    def _predict(
        self, observation: torch.Tensor | dict[str, torch.Tensor], deterministic: bool = False
    ) -> torch.Tensor:
        perturbation = self.actor(observation)
        return perturbation if deterministic else perturbation + torch.randn_like(perturbation)

    def set_training_mode(self, mode: bool) -> None:
        """Put every network in training (``True``) or evaluation mode; the targets stay in evaluation mode.

        :param mode: training mode
        """
        self.actor.train(mode)
        self.action_critic.train(mode)
        if self.latent_critic is not None:
            self.latent_critic.train(mode)
        self.training = mode


class DSRLNAPolicy(SteeringPolicy):
    """Steering policy whose actor is a tanh-squashed Gaussian scaled to the latent bound (DSRL-NA).

    ``predict(deterministic=True)`` returns ``bound * tanh(mu(s))``; stochastic samples the latent policy.
    The parameters are those of :class:`SteeringPolicy`; the latent box must be bounded.
    """

    actor: SquashedGaussianActor

    def make_actor(self, latent_dim: int) -> SquashedGaussianActor:
        """:param latent_dim: size of the flat latent
        :return: a :class:`SquashedGaussianActor` scaled to the latent box
        """
        high = float(cast(spaces.Box, self.action_space).high.max())
        if not math.isfinite(high) or high >= 1e6:  # 1e6: SteeringAlgorithm's stand-in for an unbounded box
            raise ValueError(
                "DSRL-NA squashes its latent actor into the latent box: give the env a finite latent_bound"
            )
        return SquashedGaussianActor(
            self.make_features_extractor(), latent_dim, self.net_arch, self.activation_fn, self.layer_norm, high
        )

    def _predict(
        self, observation: torch.Tensor | dict[str, torch.Tensor], deterministic: bool = False
    ) -> torch.Tensor:
        return self.actor(observation, deterministic)


MlpPolicy = SteeringPolicy


class PreprocessedExtractor(nn.Module):
    """A features extractor that first applies SB3's ``preprocess_obs`` (uint8 images to [0, 1], one-hot discrete
    observations, key by key for a Dict), as SB3's own policies do in ``extract_features``.

    :param extractor: the wrapped features extractor (e.g. ``CombinedExtractor``)
    :param observation_space: the policy's observation space
    :param normalize_images: divide image observations by 255
    """

    def __init__(self, extractor: BaseFeaturesExtractor, observation_space: spaces.Space, normalize_images: bool):
        super().__init__()
        self.extractor = extractor
        self.features_dim = extractor.features_dim
        self.observation_space, self.normalize_images = observation_space, normalize_images

    def forward(self, obs: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        """:param obs: raw observations as SB3 stores them (dict of tensors for Dict spaces)
        :return: the features ``(B, features_dim)``
        """
        return self.extractor(preprocess_obs(obs, self.observation_space, normalize_images=self.normalize_images))


class PooledImageExtractor(BaseFeaturesExtractor):
    """Flattens a Dict observation key by key (in the space's order), average-pooling each 2-D ``(H, W)`` key (a
    depth image) by ``pool`` first: a parameter-free extractor for small nets on image + state observations, where
    SB3's ``CombinedExtractor`` would flatten a 64 x 64 depth image into 4,096 inputs of every network.

    Example::

        >>> import numpy as np, torch
        >>> from gymnasium import spaces
        >>> space = spaces.Dict({"q": spaces.Box(-1, 1, (7,)), "depth": spaces.Box(0, 3, (64, 64))})
        >>> ext = PooledImageExtractor(space, pool=8)
        >>> ext.features_dim, ext({"q": torch.zeros(2, 7), "depth": torch.ones(2, 64, 64)}).shape
        (71, torch.Size([2, 71]))

    :param observation_space: a Dict of Box spaces
    :param pool: the pooling factor of the 2-D keys (must divide their sides)
    """

    def __init__(self, observation_space: spaces.Dict, pool: int = 8) -> None:
        if not isinstance(observation_space, spaces.Dict):
            raise ValueError(f"PooledImageExtractor needs a Dict observation space, got {observation_space}")
        if isinstance(pool, bool) or not isinstance(pool, numbers.Integral) or pool < 1:
            raise ValueError(f"image_pool must be a positive integer, got {pool!r}")
        sizes: dict[str, int] = {}
        pooled: list[str] = []
        for key, space in observation_space.spaces.items():
            shape = tuple(space.shape or ())
            if len(shape) == 2:
                if shape[0] % pool or shape[1] % pool:
                    raise ValueError(f"image_pool={pool} must divide the sides of {key!r} {shape}")
                sizes[key] = (shape[0] // pool) * (shape[1] // pool)
                pooled.append(key)
            else:
                sizes[key] = int(math.prod(shape))
        super().__init__(observation_space, sum(sizes.values()))
        self.keys: list[str] = list(sizes)
        self.pooled: frozenset[str] = frozenset(pooled)
        self.pool: int = int(pool)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """:param observations: a batch of Dict observations (tensors)
        :return: ``(B, features_dim)``"""
        parts = []
        for key in self.keys:
            x = observations[key]
            if key in self.pooled:
                x = F.avg_pool2d(x.unsqueeze(1), self.pool)
            parts.append(x.flatten(1))
        return torch.cat(parts, dim=1)


if TYPE_CHECKING:
    _PolicyBase = BasePolicy  # what ImagePoolMixin is mixed into (checked as such)
    _MultiInputBase = SteeringPolicy  # what _MultiInput is mixed into
else:
    _PolicyBase = _MultiInputBase = object


class ImagePoolMixin(_PolicyBase):
    """Mixin giving a Dict-observation SB3 policy the ``image_pool`` argument: a :class:`PooledImageExtractor` with
    that pooling factor instead of ``features_extractor_class`` (a number, so presets and
    ``--set policy_kwargs.image_pool=8`` can name it); saved and loaded as ``image_pool``.

    :param args: as the policy it is mixed into
    :param features_extractor_class: default ``CombinedExtractor``
    :param image_pool: the pooling factor, or ``None`` for ``features_extractor_class``
    :param kw: as the policy it is mixed into
    """

    def __init__(
        self,
        *args: Any,
        features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor,
        image_pool: int | None = None,
        **kw: Any,
    ):
        if image_pool is not None:
            features_extractor_class = PooledImageExtractor
            kw["features_extractor_kwargs"] = {**(kw.get("features_extractor_kwargs") or {}), "pool": image_pool}
        kw["features_extractor_class"] = features_extractor_class
        self.image_pool = image_pool
        super().__init__(*args, **kw)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["image_pool"] = self.image_pool
        if self.image_pool is not None:  # rebuilt from image_pool
            data.pop("features_extractor_class", None)
            data.pop("features_extractor_kwargs", None)
        return data


class _MultiInput(ImagePoolMixin, _MultiInputBase):
    """Mixin turning a steering policy into SB3's ``MultiInputPolicy``: a ``CombinedExtractor`` (one CNN per image
    key, flattened vectors) on preprocessed Dict observations, one extractor per network as the MLP policies;
    ``image_pool`` as :class:`ImagePoolMixin`.

    :param args: as the steering policy it is mixed into
    :param kw: as the steering policy it is mixed into (and ``features_extractor_class``, ``image_pool``)
    """

    # PreprocessedExtractor is a duck-typed BaseFeaturesExtractor (features_dim + forward), not a subclass
    def make_features_extractor(self) -> PreprocessedExtractor:  # type: ignore[override]
        """:return: a new features extractor wrapped in :class:`PreprocessedExtractor`"""
        extractor = super().make_features_extractor()
        return PreprocessedExtractor(extractor, self.observation_space, self.normalize_images)


class MultiInputSteeringPolicy(_MultiInput, SteeringPolicy):
    """:class:`SteeringPolicy` for Dict observations (images + state): ``"MultiInputPolicy"`` of LagrangianSAC."""


class MultiInputDSRLNAPolicy(_MultiInput, DSRLNAPolicy):
    """:class:`DSRLNAPolicy` for Dict observations: ``"MultiInputPolicy"`` of DSRLNA."""


MultiInputPolicy = MultiInputSteeringPolicy
