"""Every shipped checkpoint loads exactly what was shipped: files, weights and decodes match its fingerprint."""

import json

import pytest
import torch
from safetensors.torch import load_file

from lpds_envs.backbones.shipped import (
    FINGERPRINT_FILE,
    backbone_path,
    compute_fingerprint,
    fingerprint_inputs,
    load_backbone,
    shipped_backbones,
)
from lpds_envs.decoders.base import load_decoder

SHIPPED = shipped_backbones()


def test_something_is_shipped():
    assert {"multigoal-diffusion", "adroit-pen-flow"} <= set(SHIPPED)


def test_every_registered_backbone_is_shipped_in_lpds_or_the_lpds_zoo_data_package():
    from lpds_envs.backbones import shipped
    from lpds_envs.registration import TASKS

    registered = {name for task in TASKS.values() for name in task.backbones.values()}
    assert registered <= set(SHIPPED), sorted(registered - set(SHIPPED))
    in_zoo = {name for name in SHIPPED if backbone_path(name).parent != shipped.CHECKPOINT_DIR}
    assert in_zoo == set(shipped.ZOO_PACKAGE_BACKBONES)


def test_a_backbone_of_the_missing_data_package_says_what_to_install(tmp_path, monkeypatch):
    from lpds_envs.backbones import shipped

    monkeypatch.setattr(shipped, "ZOO_SOURCE_DIR", tmp_path / "absent")
    monkeypatch.setattr(shipped.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(shipped, "_CACHE", {})  # as in a fresh process: nothing loaded yet
    assert "hopper-diffusion" not in shipped.shipped_backbones()
    with pytest.raises(FileNotFoundError, match=r"lpds-zoo data package.*pip install lpds-zoo"):
        shipped.backbone_path("hopper-diffusion")
    with pytest.raises(FileNotFoundError, match="no shipped backbone 'nope'"):
        shipped.backbone_path("nope")
    shipped.backbone_path("multigoal-diffusion")  # the package's own are unaffected
    from lpds_envs.registration import task_decoder

    with pytest.raises(FileNotFoundError, match=r"LPDS-Hopper-v0's diffusion backbone .* lpds-zoo data package"):
        task_decoder("Hopper", "diffusion")  # what gym.make("LPDS-Hopper-v0") says


@pytest.mark.parametrize("name", SHIPPED)
def test_checkpoint_matches_its_fingerprint(name):
    path = backbone_path(name)
    fp_path = path / FINGERPRINT_FILE
    assert fp_path.is_file(), f"{fp_path} missing: run `python -m lpds_envs.backbones.shipped fingerprint {name}`"
    recorded = json.loads(fp_path.read_text())
    now = compute_fingerprint(name)
    # the files that loading reads are byte-identical to the ones fingerprinted at shipping time
    assert now["files"] == recorded["files"]
    if (path / "lpds_pi0.json").is_file():
        return  # PI0 folders: covered by the file hashes and by tests/lpds_envs/decoders/test_pi0.py's save/load round trip
    # the loaded weights are the file's tensors, bit for bit
    decoder = load_decoder(path)
    stored = load_file(str(path / "model.safetensors"))
    state = decoder.state_dict()
    assert set(stored) == set(state)
    for key, tensor in stored.items():
        assert torch.equal(state[key].cpu(), tensor), key
    # and decode what they decoded when shipped. The weights above are bit-exact; the decode runs float32 kernels that
    # round differently on another CPU: halfcheetah-diffusion's 10 DDIM steps, fingerprinted on an AMD EPYC, differ
    # by up to 3.8e-5 (relative 1.2e-4, 1 of 96 elements) on an Intel Xeon, so the tolerance is 1e-4 / 5e-4.
    obs, w = fingerprint_inputs(decoder)
    with torch.no_grad():
        actions = decoder(obs, w)
    torch.testing.assert_close(actions, torch.tensor(recorded["decode"]["actions"]), atol=1e-4, rtol=5e-4)
    # the cached loader returns the same model
    with torch.no_grad():
        torch.testing.assert_close(load_backbone(name)(obs, w), actions, atol=0, rtol=0)


def test_verify_backbone_names_a_damaged_file(tmp_path, monkeypatch):
    import shutil

    from lpds_envs.backbones import shipped

    src = shipped.backbone_path("multigoal-diffusion")
    copy = tmp_path / "multigoal-diffusion"
    shutil.copytree(src, copy)
    monkeypatch.setattr(shipped, "CHECKPOINT_DIR", tmp_path)
    shipped.verify_backbone("multigoal-diffusion")  # intact
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 0x01  # one flipped bit in the last weight
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="model.safetensors does not match its fingerprint"):
        shipped.load_backbone("multigoal-diffusion", verify=True)
