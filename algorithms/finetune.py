"""What the fine-tuning baselines (DPPO, IDQL, DQL) share: a trainable copy of the frozen diffusion backbone, the
stochastic denoising chain with per-step Gaussian log-probabilities, and the packaging of the result as a decoder.

Unlike the steering learners, a fine-tuning learner changes the backbone's weights. It never touches the decoder it
is given: :func:`trainable_copy` makes the copy it trains, and :func:`package_decoder` turns what it learned into a
frozen :class:`~lpds_envs.decoders.DiffusionDecoder` (deterministic DDIM, eta = 0) that ``save_pretrained`` and
``load_decoder`` handle, so a fine-tuned policy is evaluated exactly like a steered one (prior latents in, chunks out).

The chain works in the decoder's normalised spaces (observations through ``decoder.normalize_obs``, chunks before
``decoder.unnormalize_actions``). DDIM step ``k`` (``0`` = noisiest, ``K - 1`` = last) from ``x`` at timestep ``t_k``
with ``ab = alpha_bar(t_k)``, ``ab' = alpha_bar(t_{k+1})`` (``1`` after the last step)::

    eps   = eps_theta(x, t_k, s);  x0 = (x - sqrt(1 - ab) eps) / sqrt(ab)   (clipped, eps recomputed, as the decoder)
    sigma = eta sqrt((1 - ab') / (1 - ab) (1 - ab / ab'))
    mean  = sqrt(ab') x0 + sqrt(1 - ab' - sigma^2) eps
    x'    ~ N(mean, max(sigma, min_std)^2 I)

``eta = 0`` is the decoder's deterministic DDIM step; ``eta = 1`` is the DDPM posterior ``q(x_{t'} | x_t, x0)`` on
the decoder's timesteps (DPPO's DDPM transition when every training timestep is sampled). ``min_std`` keeps every
transition stochastic, as DPPO's ``min_sampling_denoising_std`` / ``min_logprob_denoising_std`` do.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from lpds_envs.decoders.base import Decoder
from lpds_envs.decoders.diffusion import DiffusionDecoder, FineTunedDiffusionDecoder


def check_backbone(decoder: Decoder) -> DiffusionDecoder:
    """``decoder`` itself when the fine-tuning baselines can train it: an epsilon-prediction
    :class:`~lpds_envs.decoders.DiffusionDecoder` with a DDIM schedule (not one already fine-tuned in part).

    :raises TypeError: for any other decoder (flow, pi0, callable), naming what to pass instead
    """
    if not isinstance(decoder, DiffusionDecoder) or isinstance(decoder, FineTunedDiffusionDecoder):
        raise TypeError(
            f"fine-tuning needs a DiffusionDecoder backbone, got {type(decoder).__name__}; build the env with "
            "backbone='diffusion' (env_kwargs.backbone=diffusion) or pass decoder= a DiffusionDecoder"
        )
    return decoder


def trainable_copy(decoder: Decoder) -> DiffusionDecoder:
    """A deep copy of ``decoder`` whose epsilon network trains (``requires_grad=True``, train mode); ``decoder`` itself
    is left as it was.

    :param decoder: the frozen backbone, a :class:`~lpds_envs.decoders.DiffusionDecoder`
    :return: the copy (same device, weights and normalisation)
    :raises TypeError: for any other decoder (flow, pi0, callable): the fine-tuning baselines need epsilon-prediction
        diffusion with a DDIM schedule
    """
    copy_ = copy.deepcopy(check_backbone(decoder))
    copy_.differentiable = True
    for p in copy_.net.parameters():
        p.requires_grad_(True)
    return copy_.train()


def frozen_copy(decoder: DiffusionDecoder) -> DiffusionDecoder:
    """A frozen deep copy of ``decoder`` (eval mode, no gradients)."""
    out = copy.deepcopy(decoder)
    out.differentiable = False
    return out.freeze()


@dataclass(frozen=True)
class DenoisingNoise:
    """How stochastic the denoising chain is.

    :param eta: DDIM's eta (0: deterministic DDIM; 1: DDPM posterior variance), DPPO's fixed eta of 1
    :param min_sampling_std: smallest std of a sampled transition (DPPO's ``min_sampling_denoising_std``)
    :param min_logprob_std: smallest std when a transition's log-probability is evaluated
        (``min_logprob_denoising_std``)
    :param noise_clip: clip the standard normal draws to ``[-noise_clip, noise_clip]`` (``randn_clip_value``);
        ``None``: no clipping
    """

    eta: float = 1.0
    min_sampling_std: float = 0.1
    min_logprob_std: float = 0.1
    noise_clip: float | None = 3.0

    def __post_init__(self) -> None:
        if self.eta < 0 or self.min_sampling_std < 0 or self.min_logprob_std <= 0:
            raise ValueError(
                f"eta and min_sampling_std must be >= 0 and min_logprob_std > 0, got eta={self.eta}, "
                f"min_sampling_std={self.min_sampling_std}, min_logprob_std={self.min_logprob_std}"
            )
        if self.noise_clip is not None and self.noise_clip <= 0:
            raise ValueError(f"noise_clip must be > 0 or None, got {self.noise_clip}")


def _per_row(values: torch.Tensor, k: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values[k].reshape(-1, *([1] * (like.ndim - 1)))


def step_mean_sigma(
    decoder: DiffusionDecoder, obs_n: torch.Tensor, x: torch.Tensor, k: torch.Tensor, eta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and DDIM sigma of the transition out of DDIM step ``k`` (per row) with ``decoder``'s network.

    :param decoder: the (trainable or frozen) diffusion decoder whose network predicts epsilon
    :param obs_n: normalised observations ``(B, obs_dim)``
    :param x: the chunks at step ``k``, ``(B, Ta, act_dim)``
    :param k: DDIM step index per row, ``(B,)`` long
    :param eta: DDIM's eta
    :return: ``mean (B, Ta, act_dim)`` and ``sigma (B, 1, 1)`` (before any minimum std)
    """
    s = decoder.sampler
    eps = decoder.predict_noise(x, s.timesteps[k], obs_n)
    sqrt_ab, sqrt_1m_ab = _per_row(s.sqrt_ab, k, x), _per_row(s.sqrt_1m_ab, k, x)
    sqrt_ab_prev = _per_row(s.sqrt_ab_prev, k, x)
    x0 = (x - sqrt_1m_ab * eps) / sqrt_ab
    if s.clip_sample:
        x0 = x0.clamp(-s.clip_sample_range, s.clip_sample_range)
        if s.eps_from_clipped_x0:
            eps = (x - sqrt_ab * x0) / sqrt_1m_ab
    ab, ab_prev = sqrt_ab**2, sqrt_ab_prev**2
    sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).clamp(min=0).sqrt()
    mean = sqrt_ab_prev * x0 + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
    return mean, sigma


def transition_log_prob(
    decoder: DiffusionDecoder,
    obs_n: torch.Tensor,
    x: torch.Tensor,
    x_next: torch.Tensor,
    k: torch.Tensor,
    noise: DenoisingNoise,
) -> torch.Tensor:
    """Elementwise Gaussian log-density of ``x -> x_next`` at DDIM step ``k``, std ``max(sigma, min_logprob_std)``.

    :return: ``(B, Ta, act_dim)``; differentiable in ``decoder``'s network
    """
    mean, sigma = step_mean_sigma(decoder, obs_n, x, k, noise.eta)
    std = sigma.clamp(min=noise.min_logprob_std).expand_as(mean)
    return torch.distributions.Normal(mean, std).log_prob(x_next)


@dataclass
class DenoisingChain:
    """One batch of sampled chains.

    :param actions_n: the final normalised chunks ``(B, Ta, act_dim)``
    :param chain: the fine-tuned part of the chain, ``(B, K' + 1, Ta, act_dim)``: its input and every step's output
    :param log_probs: elementwise log-probabilities of the ``K'`` fine-tuned transitions, ``(B, K', Ta, act_dim)``
    """

    actions_n: torch.Tensor
    chain: torch.Tensor
    log_probs: torch.Tensor


def sample_chain(
    fine_tuned: DiffusionDecoder,
    base: DiffusionDecoder | None,
    obs_n: torch.Tensor,
    w: torch.Tensor,
    ft_steps: int,
    noise: DenoisingNoise,
    deterministic: bool = False,
) -> DenoisingChain:
    """Run the whole denoising chain from ``x_0 = w``: the first ``K - ft_steps`` steps with ``base`` (the frozen
    network), the last ``ft_steps`` with ``fine_tuned``; each transition samples ``N(mean, max(sigma,
    min_sampling_std)^2)`` (``deterministic``: the mean with eta = 0, i.e. the decoder's DDIM).

    Differentiable in ``fine_tuned``'s network (reparameterised draws), for learners that backpropagate through the
    chain (DQL); call it under :func:`torch.no_grad` to only sample (DPPO's rollouts).

    :param fine_tuned: the decoder being trained
    :param base: the frozen decoder of the early steps (``None`` when ``ft_steps == K``)
    :param obs_n: normalised observations ``(B, obs_dim)``
    :param w: the initial noise ``(B, Ta, act_dim)``
    :param ft_steps: ``K'``, how many of the last steps are fine-tuned
    :param noise: the chain's stochasticity
    :param deterministic: deterministic DDIM (eta = 0, no noise), the fine-tuned decoder's own decode
    """
    K = fine_tuned.sampler.num_inference_steps
    if not 1 <= ft_steps <= K:
        raise ValueError(f"ft_steps must be in [1, {K}], got {ft_steps}")
    first_ft = K - ft_steps
    if first_ft > 0 and base is None:
        raise ValueError(f"the first {first_ft} denoising steps need the frozen base decoder; pass base=")
    x = w
    chain, log_probs = [], []
    for k in range(K):
        if k == first_ft:
            chain.append(x)
        decoder = fine_tuned if k >= first_ft else base
        assert decoder is not None
        k_rows = torch.full((x.shape[0],), k, dtype=torch.long, device=x.device)
        mean, sigma = step_mean_sigma(decoder, obs_n, x, k_rows, 0.0 if deterministic else noise.eta)
        if deterministic:
            x_next = mean
        else:
            z = torch.randn_like(mean)
            if noise.noise_clip is not None:
                z = z.clamp(-noise.noise_clip, noise.noise_clip)
            x_next = mean + sigma.clamp(min=noise.min_sampling_std) * z
        if k >= first_ft:
            std = sigma.clamp(min=noise.min_logprob_std).expand_as(mean)
            log_probs.append(torch.distributions.Normal(mean, std).log_prob(x_next))
            chain.append(x_next)
        x = x_next
    return DenoisingChain(x, torch.stack(chain, dim=1), torch.stack(log_probs, dim=1))


def package_decoder(fine_tuned: DiffusionDecoder, base: DiffusionDecoder | None, ft_steps: int) -> DiffusionDecoder:
    """The fine-tuned policy as a frozen decoder (deterministic DDIM, eta = 0, from prior noise ``w``).

    :param fine_tuned: the trained decoder (its network and normalisation are copied)
    :param base: the frozen decoder of the first ``K - ft_steps`` steps (unused when ``ft_steps == K``)
    :param ft_steps: how many of the last DDIM steps were fine-tuned
    :return: a :class:`~lpds_envs.decoders.DiffusionDecoder` when every step was fine-tuned, else a
        :class:`~lpds_envs.decoders.FineTunedDiffusionDecoder` that runs ``base``'s network for the early steps
    """
    K = fine_tuned.sampler.num_inference_steps
    state = {k: v.detach().clone() for k, v in fine_tuned.state_dict().items()}
    if ft_steps < K and base is None:
        raise ValueError("packaging a partly fine-tuned chain needs the frozen base decoder")
    with torch.random.fork_rng(devices=[]):  # building the modules draws initial weights: keep the caller's stream
        if ft_steps >= K:
            out: DiffusionDecoder = DiffusionDecoder(**fine_tuned.get_config())
        else:
            out = FineTunedDiffusionDecoder(fine_tuned_steps=ft_steps, **fine_tuned.get_config())
    if base is not None and ft_steps < K:
        state.update({f"base_net.{k}": v.detach().clone() for k, v in base.net.state_dict().items()})
    out.load_state_dict(state, strict=True)
    return out.to(fine_tuned.device).freeze()
