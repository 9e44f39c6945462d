"""lpds_envs: steer frozen generative robot policies through their input noise, as Gymnasium environments.

``import lpds_envs`` registers the raw task ids (``lpds/<Task>-v0``) and the steering ids (``LPDS-<Task>-v0``).
"""

from .decoders import CallableDecoder, Decoder, DiffusionDecoder, FlowDecoder, load_decoder
from .registration import register_all
from .vector import (
    LatentSteeringVectorWrapper,
    VecLatentSteeringWrapper,
    make_latent_vec_env,
    make_latent_vector_env,
)
from .wrappers import ChunkedActionWrapper, LatentSteeringWrapper

__version__ = "0.1.0"

register_all()

__all__ = [
    "CallableDecoder",
    "ChunkedActionWrapper",
    "Decoder",
    "DiffusionDecoder",
    "FlowDecoder",
    "LatentSteeringVectorWrapper",
    "LatentSteeringWrapper",
    "VecLatentSteeringWrapper",
    "__version__",
    "load_decoder",
    "make_latent_vec_env",
    "make_latent_vector_env",
]
