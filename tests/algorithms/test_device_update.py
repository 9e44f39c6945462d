"""The update's device path, tested on the CPU: no value is read back to the host between gradient steps (so a GPU
update does not wait for the device at each step), the deferred finiteness check names what the per-step one
names, and the on-device dual step and log give the numbers of their host versions."""

import contextlib

import gymnasium as gym
import numpy as np
import pytest
import torch

from algorithms import DSRLNA, LagrangianSAC, NonFiniteError, ResidualActionSAC, ResidualActionWrapper
from algorithms.trust_region import LagrangianTrustRegion
from algorithms.updates import TrainLog
from lpds_envs import LatentSteeringWrapper
from lpds_envs.backbones.shipped import load_backbone

#: the ways a tensor's value reaches Python (each waits for the device on a GPU)
READS = ("item", "__float__", "__bool__", "__int__", "__index__", "tolist", "numpy")
FAST = {"prior_cache": 4, "td_target": "latent_critic"}


@contextlib.contextmanager
def counting_reads(counts, skip=frozenset()):
    """Count every host read of a tensor (except those whose id is in ``skip``) while the block runs."""
    saved = {name: getattr(torch.Tensor, name) for name in READS}

    def counted(name):
        def read(self, *args, **kwargs):
            if id(self) not in skip:
                counts[name] = counts.get(name, 0) + 1
            return saved[name](self, *args, **kwargs)

        return read

    for name in READS:
        setattr(torch.Tensor, name, counted(name))
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)


def reads_per_call(model, gradient_steps):
    """Host reads of one ``train(gradient_steps)`` call; Adam's step counters are left out: torch keeps them on the
    CPU (unless ``capturable``), so reading them never waits for a device."""
    optimizers = [m.optimizer for m in (model.actor, model.action_critic, model.latent_critic) if m is not None]
    optimizers += [model.ent_coef_optimizer] if getattr(model, "ent_coef_optimizer", None) is not None else []
    steps = {id(s["step"]) for opt in optimizers for s in opt.state.values() if "step" in s}
    counts = {}
    with counting_reads(counts, skip=steps):
        model.train(gradient_steps, batch_size=16)
    return sum(counts.values())


def toy_learner(cls, **kwargs):
    env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), load_backbone("multigoal-diffusion"), latent_bound=2.5)
    model = cls("MlpPolicy", env, learning_starts=20, batch_size=16, seed=0, **kwargs)
    model.learn(40)  # fills the replay (one update already ran: the optimisers have their state)
    return model


@pytest.mark.parametrize("cls", [LagrangianSAC, DSRLNA])
def test_a_fast_mode_update_reads_nothing_from_the_device_between_gradient_steps(cls):
    model = toy_learner(cls, **FAST)
    model.defer_loss_checks = True  # what a GPU update does
    short, long = reads_per_call(model, 2), reads_per_call(model, 8)
    assert short == long  # the reads are those of the end of the call (log means, the final check, alpha)
    assert short <= 4


def test_the_exact_mode_reads_once_per_decode_the_decoders_latent_check():
    model = toy_learner(LagrangianSAC)
    model.defer_loss_checks = True
    assert reads_per_call(model, 8) - reads_per_call(model, 2) == 6  # one decoder call per gradient step


def test_on_the_cpu_each_step_is_checked_at_once():
    model = toy_learner(LagrangianSAC, **FAST)
    assert not model.defer_loss_checks  # the default on the CPU, where a read costs nothing
    assert reads_per_call(model, 8) > reads_per_call(model, 2)


class NaNRewardAfter(gym.Wrapper):
    def __init__(self, env, after):
        super().__init__(env)
        self.after, self.steps = after, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        return obs, float("nan") if self.steps > self.after else reward, terminated, truncated, info


@pytest.mark.parametrize("cls", [LagrangianSAC, DSRLNA])
def test_the_deferred_check_names_the_quantity_and_step_the_per_step_check_names(cls):
    errors = {}
    for deferred in (False, True):
        raw = NaNRewardAfter(gym.make("lpds/MultiGoal-v0"), after=30)
        env = LatentSteeringWrapper(raw, load_backbone("multigoal-diffusion"), latent_bound=2.5)
        model = cls("MlpPolicy", env, learning_starts=20, batch_size=16, gradient_steps=4, seed=0, **FAST)
        model.defer_loss_checks = deferred
        with pytest.raises(NonFiniteError) as exc:
            model.learn(200)
        errors[deferred] = exc.value
    assert (errors[True].quantity, errors[True].step) == (errors[False].quantity, errors[False].step)
    assert "end of the update" in str(errors[True]) and "reward" in str(errors[False])


def test_the_dual_step_on_the_device_gives_the_host_numbers():
    host, device = LagrangianTrustRegion(), LagrangianTrustRegion()
    for tr in (host, device):
        tr._init_trust_region(0.1, alpha_init=0.3, alpha_lr=0.05, use_lagrangian=True)
    alpha = device.alpha_tensor("cpu")
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        sq = torch.rand(32, generator=gen) * 0.3
        value = torch.randn(32, generator=gen)
        loss_host = host.trust_region_actor_loss(value, sq, 0.1)
        loss_device = device.trust_region_actor_loss(value, sq, 0.1, alpha)
        assert torch.equal(loss_host, loss_device)
        host.dual_step(sq, 0.1)
        alpha = device.dual_step(sq, 0.1, alpha)
        assert float(alpha) == host.alpha  # bit for bit, clipping at 0 included
    assert device.alpha == 0.3  # the tensor form leaves the attribute to train() to set


def test_the_dual_step_without_the_lagrangian_keeps_alpha():
    tr = LagrangianTrustRegion()
    tr._init_trust_region(0.1, alpha_init=0.7, alpha_lr=0.05, use_lagrangian=False)
    alpha = tr.alpha_tensor("cpu")
    assert float(tr.dual_step(torch.ones(4), 0.1, alpha)) == 0.7


def test_train_log_means_and_first_nonfinite():
    log = TrainLog("a", "b", "c")
    for step in range(5):
        log.add(a=torch.tensor(float(step)), b=2.0 * step)
        if step % 2 == 0:
            log.add(c=torch.tensor([step + 0.5]))  # a quantity logged on some steps only
    assert log.means() == pytest.approx({"a": 2.0, "b": 4.0, "c": np.mean([0.5, 2.5, 4.5])})
    assert log.first_nonfinite() is None
    log.add(a=torch.tensor(1.0), b=float("inf"))  # step 5
    log.add(c=torch.tensor(float("nan")))  # the 4th value of c
    assert log.first_nonfinite() == ("c", 3)
    assert TrainLog("x").first_nonfinite() is None and TrainLog("x").means() == {}


def test_lpds_a_keeps_its_numbers_with_the_on_device_multiplier():
    env = ResidualActionWrapper(gym.make("lpds/MultiGoal-v0"), load_backbone("multigoal-diffusion"))
    model = ResidualActionSAC("MlpPolicy", env, learning_starts=20, batch_size=16, seed=0, alpha_init=0.5)
    model.learn(60)
    before = model.alpha
    model.train(4, batch_size=16)
    assert isinstance(model.alpha, float) and model.alpha != before  # moved by the dual steps and read back
    assert model.logger.name_to_value["train/alpha"] == model.alpha
