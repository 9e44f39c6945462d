"""PI0 checkpoints through the library's generic loader (``load_decoder``), and the remaining bad inputs of Pi0Decoder."""

import json
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", minversion="5", reason="Pi0Decoder needs transformers>=5 (pip install 'lpds[pi0]')")

from lpds_envs.decoders import FlowDecoder, Pi0Decoder, PretrainedDecoder, load_decoder  # noqa: E402
from lpds_envs.decoders.pi0_tiny import save_tiny_pi0  # noqa: E402

ARGS = dict(instruction="go to the goal", camera_keys=["image"], state_key="state", action_dim=2, chunk_steps=5)


@pytest.fixture(scope="module")
def raw_folder(tmp_path_factory):
    """What PI0ForConditionalGeneration.save_pretrained + PI0Processor.save_pretrained write (no lpds_pi0.json)."""
    folder = save_tiny_pi0(tmp_path_factory.mktemp("pi0_raw"), actions_mean=[0.5, -1.0], actions_std=[2.0, 0.25])
    assert not (folder / "lpds_pi0.json").exists()
    return folder


@pytest.fixture(scope="module")
def dec(raw_folder):
    return Pi0Decoder.from_pretrained(raw_folder, **ARGS)


def make_obs(batch, seed=0, size=64, state_dim=4):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8),
        "state": rng.standard_normal((batch, state_dim)).astype(np.float32),
    }


def _same_decoder(a, b):
    assert a.config == b.config
    sd1, sd2 = a.state_dict(), b.state_dict()
    assert sd1.keys() == sd2.keys() and all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    obs, w = make_obs(3, seed=1), torch.randn(3, 8, 8)
    assert torch.equal(a(obs, w), b(obs, w))


def test_load_decoder_reads_a_pi0_decoder_folder(dec, tmp_path):
    folder = dec.save_pretrained(tmp_path / "saved")
    loaded = load_decoder(folder)  # the arguments come from lpds_pi0.json
    assert isinstance(loaded, Pi0Decoder)
    _same_decoder(loaded, dec)
    assert load_decoder(str(folder), device="cpu").device == torch.device("cpu")
    assert PretrainedDecoder.from_pretrained(folder).config == dec.config  # the generic entry point, too
    # explicit arguments override the stored ones, as with Pi0Decoder.from_pretrained
    assert load_decoder(folder, chunk_steps=2, num_steps=3).action_shape == (2, 2)


def test_load_decoder_reads_a_raw_pi0_folder_given_the_pi0_arguments(raw_folder, dec):
    loaded = load_decoder(raw_folder, **ARGS)
    assert isinstance(loaded, Pi0Decoder)
    _same_decoder(loaded, dec)


def test_load_decoder_on_a_raw_pi0_folder_names_what_is_missing(raw_folder):
    with pytest.raises(ValueError, match="needs instruction=, camera_keys=, state_key=, action_dim="):
        load_decoder(raw_folder)
    with pytest.raises(ValueError, match="needs state_key=") as info:
        load_decoder(raw_folder, instruction="go", camera_keys=["image"], action_dim=2)
    assert "camera_keys=" not in str(info.value).split("needs")[1]
    with pytest.raises(ValueError, match="is a PI0 checkpoint: it takes instruction=.*not num_inference_steps="):
        load_decoder(raw_folder, num_inference_steps=3, **ARGS)
    with pytest.raises(ValueError, match="holds a PI0 model; load it with lpds_envs.decoders.load_decoder"):
        FlowDecoder.from_pretrained(raw_folder)


def test_load_decoder_on_pi0_folders_with_missing_files(raw_folder, tmp_path):
    no_processor = tmp_path / "model_only"
    no_processor.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(raw_folder / name, no_processor / name)
    with pytest.raises(FileNotFoundError, match="no processor files.*processor.save_pretrained"):
        load_decoder(no_processor, **ARGS)
    no_tokenizer = shutil.copytree(raw_folder, tmp_path / "no_tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (no_tokenizer / name).unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError, match="no processor files"):
        load_decoder(no_tokenizer, **ARGS)
    no_processor_config = shutil.copytree(raw_folder, tmp_path / "no_processor_config")
    (no_processor_config / "processor_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no processor files"):
        Pi0Decoder.from_pretrained(no_processor_config, **ARGS)
    no_config = shutil.copytree(raw_folder, tmp_path / "no_config")
    (no_config / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        load_decoder(no_config, **ARGS)
    bad_lpds = shutil.copytree(raw_folder, tmp_path / "bad_lpds_config")
    (bad_lpds / "lpds_pi0.json").write_text("{not json")
    with pytest.raises(ValueError, match="lpds_pi0.json is not valid JSON"):
        load_decoder(bad_lpds)
    (bad_lpds / "lpds_pi0.json").write_text(json.dumps({"decoder_type": "flow"}))
    with pytest.raises(ValueError, match="not a Pi0Decoder config"):
        load_decoder(bad_lpds)


def test_a_pi0_hub_id_goes_to_pi0_decoder(monkeypatch, raw_folder):
    """A hub repo whose config.json is a PI0's is handed to Pi0Decoder.from_pretrained with the hub arguments."""
    calls = []
    monkeypatch.setattr(
        "lpds_envs.decoders.base.hf_hub_download",
        lambda repo_id, filename, **kw: calls.append((repo_id, filename)) or str(raw_folder / filename),
    )
    seen = {}

    def fake_from_pretrained(path, **kwargs):
        seen.update(path=path, **kwargs)
        return "loaded"

    monkeypatch.setattr(Pi0Decoder, "from_pretrained", staticmethod(fake_from_pretrained))
    assert load_decoder("someone/pi0-model", revision="main", **ARGS) == "loaded"
    assert calls == [("someone/pi0-model", "config.json")]  # no lpds weights file is looked for
    assert seen["path"] == "someone/pi0-model" and seen["revision"] == "main" and seen["camera_keys"] == ["image"]


def test_more_bad_inputs_raise_clear_errors(dec):
    obs, w = make_obs(2), torch.randn(2, 8, 8)
    with pytest.raises(KeyError, match=r"no key\(s\) \['state'\].*state 'state'"):
        dec({"image": obs["image"]}, w)
    with pytest.raises(KeyError, match=r"no key\(s\) \['image', 'state'\]"):
        dec({"pixels": obs["image"]}, w)
    with pytest.raises(ValueError, match=r"shape \(2, 64, 64, 4\), expected \(B, 64, 64, 3\)"):
        dec({**obs, "image": np.zeros((2, 64, 64, 4), np.uint8)}, w)
    with pytest.raises(ValueError, match=r"shape \(64, 64, 3\), expected \(B, 64, 64, 3\)"):
        dec({**obs, "image": obs["image"][0]}, w)  # a batch axis is required
    with pytest.raises(TypeError, match="dtype torch.int64, expected uint8"):
        dec({**obs, "image": obs["image"].astype(np.int64)}, w)
    with pytest.raises(ValueError, match=r"state 'state' has shape \(2, 6\), expected \(B, 4\)"):
        dec({**obs, "state": np.zeros((2, 6), np.float32)}, w)
    with pytest.raises(ValueError, match=r"state 'state' has shape \(4,\), expected \(B, 4\)"):
        dec({**obs, "state": obs["state"][0]}, w)
    with pytest.raises(TypeError, match="state 'state' has dtype torch.bool"):
        dec({**obs, "state": np.zeros((2, 4), bool)}, w)
    with pytest.raises(TypeError, match=r"camera 'image' image must be a torch.Tensor or np.ndarray, got list"):
        dec({**obs, "image": obs["image"].tolist()}, w)
