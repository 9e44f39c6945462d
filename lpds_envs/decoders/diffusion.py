"""Diffusion decoder: an epsilon-prediction MLP sampled with deterministic DDIM (eta = 0)."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from .base import PretrainedDecoder
from .networks import ConditionalResidualMLP

BETA_SCHEDULES = ("cosine", "linear")
TIMESTEP_SPACINGS = ("trailing", "leading")


def make_betas(num_train_timesteps: int, schedule: str = "cosine", max_beta: float = 0.999) -> torch.Tensor:
    """DDPM noise schedule ``beta_1..beta_T`` (float64).

    ``cosine``: Nichol & Dhariwal's ``alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) pi/2)`` with ``s = 0.008``
    (as DPPO). ``linear``: ``linspace(1e-4, 0.02)`` rescaled by ``1000 / T`` so short schedules still end
    near pure noise (Nichol & Dhariwal's rule).
    """
    T = int(num_train_timesteps)
    if T < 1:
        raise ValueError(f"num_train_timesteps must be >= 1, got {T}")
    if schedule == "cosine":
        s = 0.008
        steps = torch.arange(T + 1, dtype=torch.float64) / T
        alpha_bar = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    elif schedule == "linear":
        scale = 1000.0 / T
        betas = torch.linspace(scale * 1e-4, scale * 0.02, T, dtype=torch.float64)
    else:
        raise ValueError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {schedule!r}")
    return betas.clamp(max=max_beta)


def ddim_timesteps(num_train_timesteps: int, num_inference_steps: int, spacing: str = "trailing") -> torch.Tensor:
    """Descending DDIM timesteps, with the same conventions as ``diffusers.DDIMScheduler.set_timesteps``
    (``steps_offset=0``)."""
    T, K = int(num_train_timesteps), int(num_inference_steps)
    if not 1 <= K <= T:
        raise ValueError(f"num_inference_steps must be in [1, num_train_timesteps={T}], got {K}")
    if spacing == "trailing":
        ts = torch.round(torch.arange(T, 0, -T / K, dtype=torch.float64)).long() - 1
    elif spacing == "leading":
        ts = (torch.arange(K) * (T // K)).flip(0)
    else:
        raise ValueError(f"timestep_spacing must be one of {TIMESTEP_SPACINGS}, got {spacing!r}")
    return ts.long()


class DDIMSampler(nn.Module):
    """Deterministic DDIM (eta = 0) over precomputed tensors.

    For inference step ``k`` with timestep ``t_k`` and previous timestep ``t_{k+1}`` (``alpha_bar = 1``
    after the last step, diffusers' ``set_alpha_to_one=True``)::

        x0   = (x - sqrt(1 - ab_t) eps) / sqrt(ab_t)          # predicted clean chunk
        x0   = clip(x0, -r, r)                                 # if clip_sample
        eps  = (x - sqrt(ab_t) x0) / sqrt(1 - ab_t)            # if eps_from_clipped_x0 (DPPO; diffusers'
                                                               #   use_clipped_model_output=True)
        x'   = sqrt(ab_prev) x0 + sqrt(1 - ab_prev) eps

    :param betas: the DDPM training schedule
    :param num_inference_steps: K
    :param timestep_spacing: ``trailing`` (``T-1, T-1-T/K, ...``: starts from pure noise) or ``leading``
        (``(K-1) T/K, ..., 0``, DPPO's and diffusers' default)
    """

    # buffers (registered in __init__)
    alphas_cumprod: torch.Tensor
    timesteps: torch.Tensor
    sqrt_ab: torch.Tensor
    sqrt_1m_ab: torch.Tensor
    sqrt_ab_prev: torch.Tensor
    sqrt_1m_ab_prev: torch.Tensor

    def __init__(
        self,
        betas: torch.Tensor,
        num_inference_steps: int,
        timestep_spacing: str = "trailing",
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
        eps_from_clipped_x0: bool = True,
    ) -> None:
        super().__init__()
        alphas_cumprod = torch.cumprod(1.0 - betas.double(), dim=0)
        ts = ddim_timesteps(len(betas), num_inference_steps, timestep_spacing)
        ab = alphas_cumprod[ts]
        ab_prev = torch.cat([alphas_cumprod[ts[1:]], torch.ones(1, dtype=torch.float64)])
        self.clip_sample = bool(clip_sample)
        self.clip_sample_range = float(clip_sample_range)
        self.eps_from_clipped_x0 = bool(eps_from_clipped_x0)
        self.num_inference_steps = int(num_inference_steps)
        self.register_buffer("alphas_cumprod", alphas_cumprod.float(), persistent=False)
        self.register_buffer("timesteps", ts, persistent=False)
        self.register_buffer("sqrt_ab", ab.sqrt().float(), persistent=False)
        self.register_buffer("sqrt_1m_ab", (1 - ab).sqrt().float(), persistent=False)
        self.register_buffer("sqrt_ab_prev", ab_prev.sqrt().float(), persistent=False)
        self.register_buffer("sqrt_1m_ab_prev", (1 - ab_prev).sqrt().float(), persistent=False)

    def step(self, eps: torch.Tensor, k: int, x: torch.Tensor) -> torch.Tensor:
        """One DDIM update from inference step ``k`` to ``k + 1``."""
        x0 = (x - self.sqrt_1m_ab[k] * eps) / self.sqrt_ab[k]
        if self.clip_sample:
            x0 = x0.clamp(-self.clip_sample_range, self.clip_sample_range)
            if self.eps_from_clipped_x0:
                eps = (x - self.sqrt_ab[k] * x0) / self.sqrt_1m_ab[k]
        return self.sqrt_ab_prev[k] * x0 + self.sqrt_1m_ab_prev[k] * eps

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Forward process ``x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) noise`` (training)."""
        ab = self.alphas_cumprod[t].reshape(-1, *([1] * (x0.ndim - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


class DiffusionDecoder(PretrainedDecoder):
    """Frozen diffusion policy: ``Phi(w; s)`` = deterministic DDIM from ``x_K = w``.

    :param obs_dim: observation size
    :param action_dim: action size of one env step
    :param chunk_size: Ta, env steps per decoded chunk
    :param hidden_dim: residual MLP width
    :param n_blocks: residual blocks
    :param time_embed_dim: sinusoidal time embedding size
    :param num_train_timesteps: T of the DDPM training schedule
    :param beta_schedule: ``cosine`` or ``linear``
    :param num_inference_steps: K deterministic DDIM steps (default 10)
    :param timestep_spacing: see :class:`DDIMSampler`
    :param clip_sample: clip the predicted x0 to ``[-clip_sample_range, clip_sample_range]`` (DPPO default)
    :param eps_from_clipped_x0: recompute epsilon from the clipped x0 (DPPO's DDIM)
    :param compile: ``torch.compile`` the whole sampling loop (falls back to eager with a warning)

    Example::

        >>> import torch
        >>> from lpds_envs.decoders import DiffusionDecoder
        >>> dec = DiffusionDecoder(obs_dim=2, action_dim=2, chunk_size=4).freeze()
        >>> dec(torch.zeros(8, 2), dec.sample_prior(8)).shape
        torch.Size([8, 4, 2])
    """

    decoder_type = "diffusion"

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        chunk_size: int = 1,
        hidden_dim: int = 256,
        n_blocks: int = 3,
        time_embed_dim: int = 32,
        num_train_timesteps: int = 100,
        beta_schedule: str = "cosine",
        num_inference_steps: int = 10,
        timestep_spacing: str = "trailing",
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
        eps_from_clipped_x0: bool = True,
        compile: bool = False,
    ) -> None:
        super().__init__(obs_dim, action_dim, chunk_size)
        self._config = dict(
            obs_dim=obs_dim,
            action_dim=action_dim,
            chunk_size=chunk_size,
            hidden_dim=hidden_dim,
            n_blocks=n_blocks,
            time_embed_dim=time_embed_dim,
            num_train_timesteps=num_train_timesteps,
            beta_schedule=beta_schedule,
            num_inference_steps=num_inference_steps,
            timestep_spacing=timestep_spacing,
            clip_sample=clip_sample,
            clip_sample_range=clip_sample_range,
            eps_from_clipped_x0=eps_from_clipped_x0,
        )
        self.net = ConditionalResidualMLP(chunk_size * action_dim, obs_dim, hidden_dim, n_blocks, time_embed_dim)
        self.sampler = DDIMSampler(
            make_betas(num_train_timesteps, beta_schedule),
            num_inference_steps,
            timestep_spacing,
            clip_sample,
            clip_sample_range,
            eps_from_clipped_x0,
        )
        self.num_train_timesteps = int(num_train_timesteps)
        self._maybe_compile(compile)

    def get_config(self) -> dict[str, Any]:
        return dict(self._config)

    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, obs_n: torch.Tensor) -> torch.Tensor:
        """epsilon_theta(x_t, t, obs) for chunks ``(B, Ta, act_dim)`` and integer timesteps ``(B,)``."""
        return self.net(x_t.flatten(1), t.float(), obs_n).view_as(x_t)

    def _ddim_loop(self, obs_n: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # same as calling predict_noise at each step; obs and time parts of the input layer are computed once
        obs_proj = self.net.obs_projection(obs_n)
        time_proj = self.net.time_projection(self.sampler.timesteps.float())
        w_x = self.net.x_weight()
        x = w
        for k in range(self.sampler.num_inference_steps):
            eps = self.net.forward_projected(x.flatten(1), w_x, obs_proj, time_proj[k : k + 1]).view_as(x)
            x = self.sampler.step(eps, k, x)
        return x

    def _sample(self, obs_n: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self._run_sampler(obs_n, w, self._ddim_loop)

    def training_loss(
        self, obs_n: torch.Tensor, actions_n: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """DDPM epsilon loss on normalised observations and chunks ``(B, Ta, act_dim)``."""
        B = actions_n.shape[0]
        t = torch.randint(0, self.num_train_timesteps, (B,), device=actions_n.device, generator=generator)
        noise = torch.randn(actions_n.shape, device=actions_n.device, generator=generator)
        x_t = self.sampler.add_noise(actions_n, noise, t)
        return torch.nn.functional.mse_loss(self.predict_noise(x_t, t, obs_n), noise)


class FineTunedDiffusionDecoder(DiffusionDecoder):
    """A diffusion decoder whose last ``fine_tuned_steps`` DDIM steps run a fine-tuned network.

    What a DPPO-style fine-tuning of only the last denoising steps produces (:class:`algorithms.DPPO`): the first
    ``num_inference_steps - fine_tuned_steps`` steps keep the original network (``base_net``), the last ones use
    ``net``. Decoding is deterministic DDIM (eta = 0) as for :class:`DiffusionDecoder`, and it saves and loads the same
    way (``decoder_type = "diffusion-finetuned"``, both networks in ``model.safetensors``).

    :param fine_tuned_steps: how many of the last DDIM steps use ``net`` (1 to ``num_inference_steps``)
    :param kwargs: :class:`DiffusionDecoder`'s arguments
    """

    decoder_type = "diffusion-finetuned"

    def __init__(self, fine_tuned_steps: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        K = self.sampler.num_inference_steps
        if not 1 <= int(fine_tuned_steps) <= K:
            raise ValueError(f"fine_tuned_steps must be in [1, num_inference_steps={K}], got {fine_tuned_steps}")
        self.fine_tuned_steps = int(fine_tuned_steps)
        self._config["fine_tuned_steps"] = self.fine_tuned_steps
        self.base_net = copy.deepcopy(self.net)  # same architecture; the weights come from the state dict

    def step_network(self, k: int) -> ConditionalResidualMLP:
        """The network of DDIM step ``k`` (0 = the noisiest): ``base_net`` before the fine-tuned steps, then ``net``."""
        return self.net if k >= self.sampler.num_inference_steps - self.fine_tuned_steps else self.base_net

    def _ddim_loop(self, obs_n: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = w
        t_all = self.sampler.timesteps.float()
        for k in range(self.sampler.num_inference_steps):
            t = t_all[k : k + 1].expand(x.shape[0])
            eps = self.step_network(k)(x.flatten(1), t, obs_n).view_as(x)
            x = self.sampler.step(eps, k, x)
        return x
