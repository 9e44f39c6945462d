"""The shared update pieces of the steering learners (algorithms.updates, algorithms.trust_region)."""

import numpy as np
import pytest
import torch

from algorithms.steering import check_sb3_arguments as reexported_check
from algorithms.trust_region import LagrangianTrustRegion
from algorithms.updates import TrainLog, optimizer_step
from algorithms.validation import check_sb3_arguments


def test_train_log_keeps_each_quantity_in_order_and_logs_its_mean():
    log = TrainLog("critic_loss", "actor_loss", "ent_coef_loss")
    log.add(critic_loss=torch.tensor(2.0), actor_loss=-1.0)
    assert log.latest() == {"critic_loss": 2.0, "actor_loss": -1.0}  # a key never added is left out
    log.add(critic_loss=4.0, actor_loss=torch.tensor(-3.0), ent_coef_loss=0.5)
    assert list(log.latest()) == ["critic_loss", "actor_loss", "ent_coef_loss"]
    assert log.means() == {"critic_loss": 3.0, "actor_loss": -2.0, "ent_coef_loss": 0.5}
    with pytest.raises(KeyError):
        log.add(q_w=1.0)  # a quantity not declared up front


def test_optimizer_step_is_zero_grad_backward_step():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = torch.optim.SGD([w], lr=0.5)
    w.grad = torch.tensor([100.0, 100.0])  # a stale gradient must be cleared first
    optimizer_step(opt, (w**2).sum())
    np.testing.assert_allclose(w.detach().numpy(), [1.0 - 0.5 * 2.0, -2.0 + 0.5 * 4.0])


def test_trust_region_actor_loss_is_the_negated_lagrangian():
    tr = LagrangianTrustRegion()
    tr._init_trust_region(0.1, alpha_init=2.0, alpha_lr=0.5, use_lagrangian=True)
    value, sq = torch.tensor([1.0, 3.0]), torch.tensor([0.3, 0.1])
    expected = np.mean([-1.0 + 2.0 * (0.3 - 0.1), -3.0 + 2.0 * (0.1 - 0.1)])
    assert float(tr.trust_region_actor_loss(value, sq, 0.1)) == pytest.approx(expected)
    tr.dual_step(sq, 0.1)
    assert tr.alpha == pytest.approx(2.0 + 0.5 * (0.2 - 0.1))


def test_moved_helpers_stay_importable_from_steering():
    assert reexported_check is check_sb3_arguments
