"""Frozen decoders ``a = Phi(w; s)``: diffusion (DDIM), flow matching (ODE), and any callable."""

from .base import CallableDecoder, Decoder, PretrainedDecoder, load_decoder
from .diffusion import DDIMSampler, DiffusionDecoder, ddim_timesteps, make_betas
from .flow import FlowDecoder, integrate_ode

__all__ = [
    "CallableDecoder",
    "DDIMSampler",
    "Decoder",
    "DiffusionDecoder",
    "FlowDecoder",
    "PretrainedDecoder",
    "ddim_timesteps",
    "integrate_ode",
    "load_decoder",
    "make_betas",
]
