"""The ``>>>`` examples in the public modules' docstrings run and print what they say."""

import doctest
import importlib

import pytest
import torch

#: every first-party module with examples (test_every_module_with_examples_is_listed keeps this complete); modules
#: whose examples need an optional extra are skipped when it is missing
MODULES = {
    "algorithms.dql": None,
    "algorithms.dsrl_contrib": None,
    "algorithms.dsrl_sac": None,
    "algorithms.idql": None,
    "algorithms.lagrangian_sac": None,
    "algorithms.policies": None,
    "algorithms.presets": None,
    "algorithms.registry": None,
    "lpds_envs.decoders.base": None,
    "lpds_envs.decoders.diffusion": None,
    "lpds_envs.decoders.flow": None,
    "lpds_envs.decoders.pi0": "transformers",
    "lpds_envs.decoders.pi0_tiny": "transformers",
    "lpds_envs.envs.multigoal": None,
    "lpds_envs.envs.avoiding": None,
    "lpds_envs.envs.multigoal_pixels": None,
    "lpds_envs.envs.franka.mug_hang": "robotic",
    "lpds_envs.envs.franka.pick_place": "robotic",
    "lpds_envs.envs.libero": "libero",
    "lpds_envs.envs.robomimic": "robosuite",
    "lpds_envs.evaluation.callbacks": None,
    "lpds_envs.evaluation.episodes": None,
    "lpds_envs.metrics": None,
    "lpds_envs.subspace": None,
    "lpds_envs.wrappers": None,
}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_docstring_examples(name):
    if MODULES[name] is not None:
        pytest.importorskip(MODULES[name])
    torch.manual_seed(0)
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False, report=True)
    assert result.attempted > 0, f"{name} is listed but has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (printed above)"


def test_every_module_with_examples_is_listed():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    found = {
        ".".join(p.relative_to(root).with_suffix("").parts)
        for pkg in ("lpds_envs", "algorithms")
        for p in (root / pkg).rglob("*.py")
        if ">>>" in p.read_text()
    }
    assert found == set(MODULES), f"add to / remove from MODULES: {sorted(found ^ set(MODULES))}"
