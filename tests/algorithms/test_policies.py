"""The batched critic ensemble equals independent SB3-style MLPs, member by member."""

import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch import nn

from algorithms.policies import QEnsemble, mlp


@pytest.mark.parametrize("layer_norm", [False, True])
def test_q_ensemble_matches_independent_mlps(layer_norm):
    torch.manual_seed(0)
    extractor = FlattenExtractor(spaces.Box(-1, 1, (3,)))
    ens = QEnsemble(extractor, 4, [16, 8], nn.ReLU, n_critics=3, layer_norm=layer_norm)
    obs, x = torch.randn(5, 3), torch.randn(5, 2, 2)
    with torch.no_grad():  # give the LayerNorm affine parameters non-trivial values
        for p in ens.parameters():
            p.add_(0.1 * torch.randn_like(p))
    out = ens(obs, x)
    assert out.shape == (5, 3)
    h = torch.cat([obs, x.flatten(1)], dim=1)
    for j in range(3):
        ref = mlp(7, 1, [16, 8], nn.ReLU, layer_norm)
        ens_layers = [m for m in ens.q_nets if list(m.parameters())]
        ref_layers = [m for m in ref if list(m.parameters())]
        assert len(ens_layers) == len(ref_layers)
        with torch.no_grad():
            for e, r in zip(ens_layers, ref_layers):
                if isinstance(r, nn.Linear):
                    r.weight.copy_(e.weight[j].t())
                    r.bias.copy_(e.bias[j, 0])
                else:
                    r.weight.copy_(e.weight[j, 0])
                    r.bias.copy_(e.bias[j, 0])
        torch.testing.assert_close(out[:, j : j + 1], ref(h), atol=1e-6, rtol=1e-5)


def test_q_ensemble_members_are_independent():
    torch.manual_seed(0)
    ens = QEnsemble(FlattenExtractor(spaces.Box(-1, 1, (3,))), 2, [8], nn.ReLU, n_critics=2, layer_norm=False)
    ens(torch.randn(4, 3), torch.randn(4, 2))[:, 0].sum().backward()
    for p in ens.parameters():
        assert p.grad[0].abs().sum() > 0 and p.grad[1].abs().sum() == 0


def test_q_ensemble_init_matches_nn_linear_scale():
    ens = QEnsemble(FlattenExtractor(spaces.Box(-1, 1, (100,))), 0, [400], nn.ReLU, n_critics=2, layer_norm=False)
    w = ens.q_nets[0].weight
    assert float(w.abs().max()) <= 0.1 and float(w.std()) == pytest.approx(0.1 / 3**0.5, rel=0.05)
