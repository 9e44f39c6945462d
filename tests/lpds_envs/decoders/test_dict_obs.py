"""Flow decoders that read Dict observations, with an image encoded by a small CNN inside the decoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lpds_envs.backbones import ChunkDataset, train_backbone
from lpds_envs.decoders import FlowDecoder, load_decoder
from lpds_envs.decoders.dict_obs import ObsLayout
from lpds_envs.decoders.networks import ImageObsEncoder, SpatialSoftmax

KEYS = {"joint_pos": [3], "gripper": [1], "depth": [8, 8]}


def _dict_obs(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "joint_pos": rng.normal(size=(batch, 3)).astype(np.float32),
        "gripper": rng.uniform(0, 0.04, (batch, 1)).astype(np.float32),
        "depth": rng.uniform(0.5, 1.5, (batch, 8, 8)).astype(np.float32),
    }


def _flat(obs: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([obs[k].reshape(len(obs[k]), -1) for k in KEYS], axis=1)


def _decoder() -> FlowDecoder:
    torch.manual_seed(0)
    return FlowDecoder(
        obs_dim=68,
        action_dim=2,
        chunk_size=4,
        hidden_dim=32,
        n_blocks=1,
        obs_keys=KEYS,
        image_key="depth",
        cnn_channels=(4, 8),
        image_feature_dim=16,
    ).freeze()


def test_dict_observation_decodes_like_its_flat_vector_and_the_image_matters():
    dec = _decoder()
    obs = _dict_obs(5)
    w = dec.sample_prior(5, torch.Generator().manual_seed(0))
    out = dec(obs, w)
    assert out.shape == (5, 4, 2)
    torch.testing.assert_close(out, dec(_flat(obs), w), rtol=0, atol=0)  # the documented flat order
    moved = {**obs, "depth": obs["depth"] + 0.3}
    assert (dec(moved, w) - out).abs().max() > 1e-4  # the CNN sees the image
    assert isinstance(dec.net.obs_encoder, ImageObsEncoder) and dec.net.obs_encoder.out_dim == 4 + 16


def test_dict_decoder_saves_and_loads_bit_exactly(tmp_path):
    dec = _decoder()
    dec.save_pretrained(tmp_path / "dec")
    again = load_decoder(tmp_path / "dec")
    assert again.get_config()["obs_keys"] == [[k, v] for k, v in KEYS.items()]  # stored in order
    assert again.get_config()["image_key"] == "depth"
    obs, w = _dict_obs(3), dec.sample_prior(3, torch.Generator().manual_seed(1))
    torch.testing.assert_close(again(obs, w), dec(obs, w), rtol=0, atol=0)


def test_plain_flow_decoders_keep_their_tensor_names_and_config():
    dec = FlowDecoder(obs_dim=3, action_dim=2, chunk_size=2)
    assert dec.net.obs_encoder is None and "obs_keys" not in dec.get_config()
    assert not any("obs_encoder" in k for k in dec.state_dict())


def test_training_normalises_the_image_with_one_shift_and_scale():
    obs = _dict_obs(64)
    data = ChunkDataset(_flat(obs), np.random.default_rng(0).normal(size=(64, 4, 2)))
    dec = train_backbone(
        "flow",
        data,
        None,
        steps=5,
        batch_size=16,
        progress=False,
        hidden_dim=32,
        n_blocks=1,
        obs_keys=KEYS,
        image_key="depth",
        cnn_channels=(4, 8),
        image_feature_dim=16,
    )
    image_shift, image_scale = dec.obs_shift[4:], dec.obs_scale[4:]
    assert torch.all(image_shift == image_shift[0]) and torch.all(image_scale == image_scale[0])
    depth = obs["depth"]
    assert image_scale[0].item() == pytest.approx((depth.max() - depth.min()) / 2, rel=1e-5)
    assert dec.obs_scale[0].item() == pytest.approx(np.ptp(obs["joint_pos"][:, 0]) / 2, rel=1e-5)  # vectors: per column


def test_background_image_normalisation_subtracts_the_mean_image_and_keeps_one_scale(tmp_path):
    obs = _dict_obs(64)
    obs["depth"][:, 2:4, 5:7] -= 0.03 * np.random.default_rng(1).integers(0, 2, (64, 1, 1))  # a faint object
    data = ChunkDataset(_flat(obs), np.random.default_rng(0).normal(size=(64, 4, 2)))
    kwargs = dict(
        hidden_dim=32, n_blocks=1, obs_keys=KEYS, image_key="depth", cnn_channels=(4, 8), image_feature_dim=16
    )
    dec = train_backbone(
        "flow", data, tmp_path, steps=5, batch_size=16, progress=False, image_normalization="background", **kwargs
    )
    depth = obs["depth"].reshape(64, -1)
    np.testing.assert_allclose(dec.obs_shift[4:].numpy(), depth.mean(0), rtol=1e-6)
    image_scale = dec.obs_scale[4:]
    assert torch.all(image_scale == image_scale[0])
    assert image_scale[0].item() == pytest.approx((depth - depth.mean(0)).std(), rel=1e-5)
    assert dec.obs_scale[0].item() == pytest.approx(np.ptp(obs["joint_pos"][:, 0]) / 2, rel=1e-5)  # vectors unchanged
    loaded = load_decoder(tmp_path)  # the per-pixel shift is saved with the weights
    torch.testing.assert_close(loaded.obs_shift, dec.obs_shift, rtol=0, atol=0)
    assert "images `background`" in (tmp_path / "README.md").read_text()
    with pytest.raises(ValueError, match="image_normalization must be one of"):
        train_backbone("flow", data, None, steps=1, progress=False, image_normalization="per-pixel", **kwargs)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(obs_keys=KEYS, image_key="depth", obs_dim=67), ValueError, "flatten to 68 entries, but obs_dim is 67"),
        (dict(obs_keys=KEYS, image_key="gripper"), ValueError, "must be the last of obs_keys"),
        (dict(obs_keys={"joint_pos": [3], "depth": [65]}, image_key="depth"), ValueError, r"expected \(H, W\)"),
        (dict(image_key="depth"), ValueError, "needs obs_keys"),
        (dict(obs_keys={}), ValueError, "non-empty mapping"),
    ],
)
def test_bad_layouts_are_clear_errors(kwargs, error, match):
    kwargs = {"obs_dim": 68, "action_dim": 2, **kwargs}
    with pytest.raises(error, match=match):
        FlowDecoder(**kwargs)


def test_bad_dict_observations_are_clear_errors():
    dec = _decoder()
    obs = _dict_obs(2)
    w = dec.sample_prior(2)
    with pytest.raises(KeyError, match=r"no key\(s\) \['depth'\]"):
        dec({k: v for k, v in obs.items() if k != "depth"}, w)
    with pytest.raises(ValueError, match=r"observation\['depth'\] has shape \(2, 8, 7\), expected \(B, 8, 8\)"):
        dec({**obs, "depth": obs["depth"][:, :, :7]}, w)
    with pytest.raises(ValueError, match="observation has shape"):
        dec(np.zeros((2, 5), np.float32), w)


def test_layout_without_image_flattens_in_order():
    layout = ObsLayout.make({"b": [2], "a": 1}, None, 3)
    flat = layout.flatten({"a": np.ones((1, 1), np.float32), "b": np.zeros((1, 2), np.float32)})
    assert flat.tolist() == [[0.0, 0.0, 1.0]] and layout.shared_columns() == [] and layout.image_shape is None


def test_keypoint_encoder_ends_in_a_spatial_softmax_of_expected_coordinates():
    enc = ImageObsEncoder(2, (8, 8, 1), channels=(4, 3), feature_dim=5, pool=2, keypoints=True)
    assert isinstance(enc.cnn[-1], SpatialSoftmax) and enc.cnn[3].stride == (1, 1)  # the last convolution keeps 2x2
    assert enc(torch.zeros(3, 2 + 64)).shape == (3, 2 + 5)
    peak = torch.full((1, 1, 4, 4), -50.0)
    peak[0, 0, 3, 0] = 50.0  # bottom-left
    torch.testing.assert_close(SpatialSoftmax()(peak), torch.tensor([[-1.0, 1.0]]))
    with pytest.raises(ValueError, match="pool must be >= 1 and divide"):
        ImageObsEncoder(2, (8, 8, 1), pool=3)
