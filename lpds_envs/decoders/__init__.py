"""Frozen decoders ``a = Phi(w; s)``: diffusion (DDIM), flow matching (ODE), PI0 (transformers), and any callable."""

from .base import CallableDecoder, Decoder, PretrainedDecoder, load_decoder
from .diffusion import DDIMSampler, DiffusionDecoder, FineTunedDiffusionDecoder, ddim_timesteps, make_betas
from .flow import FlowDecoder, integrate_ode
from .pi0 import Pi0Decoder

__all__ = [
    "CallableDecoder",
    "DDIMSampler",
    "Decoder",
    "DiffusionDecoder",
    "FineTunedDiffusionDecoder",
    "FlowDecoder",
    "Pi0Decoder",
    "PretrainedDecoder",
    "ddim_timesteps",
    "integrate_ode",
    "load_decoder",
    "make_betas",
]
