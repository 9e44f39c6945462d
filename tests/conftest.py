import numpy as np
import pytest
import torch

import lpds_envs  # noqa: F401  (registers the ids)
from lpds_envs.decoders import DiffusionDecoder, FlowDecoder


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Undo a test's ``torch.set_num_threads`` (learning tests and zoo commands set it): CPU kernels round by thread
    count, so a later test comparing this process's numbers with a subprocess's would see a different path."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def small_decoder(kind: str = "diffusion", obs_dim: int = 5, action_dim: int = 3, chunk_size: int = 4, **kw):
    """A tiny random-init decoder with non-trivial normalisation buffers."""
    cls = DiffusionDecoder if kind == "diffusion" else FlowDecoder
    dec = cls(
        obs_dim=obs_dim,
        action_dim=action_dim,
        chunk_size=chunk_size,
        hidden_dim=32,
        n_blocks=2,
        time_embed_dim=16,
        **kw,
    )
    g = torch.Generator().manual_seed(1)
    dec.set_normalization(
        torch.randn(obs_dim, generator=g),
        torch.rand(obs_dim, generator=g) + 0.5,
        torch.randn(action_dim, generator=g),
        torch.rand(action_dim, generator=g) + 0.5,
    )
    return dec.freeze()


@pytest.fixture(params=["diffusion", "flow"])
def decoder(request):
    return small_decoder(request.param)
