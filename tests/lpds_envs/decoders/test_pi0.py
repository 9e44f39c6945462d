"""Pi0Decoder on tiny PI0 checkpoints built offline (transformers' real loading code, random weights)."""

import json
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", minversion="5", reason="Pi0Decoder needs transformers>=5 (pip install 'lpds[pi0]')")

from lpds_envs.decoders import Pi0Decoder  # noqa: E402
from lpds_envs.decoders.pi0_tiny import save_tiny_pi0  # noqa: E402

ARGS = dict(instruction="go to the goal", camera_keys=["image"], state_key="state", action_dim=2, chunk_steps=5)
OTHER = dict(instruction="put the cube in the tray", camera_keys=["left", "right"], state_key="proprio", action_dim=3)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_pi0(
        tmp_path_factory.mktemp("pi0"),
        state_mean=[0.1, -0.2, 0.3, 0.0],
        state_std=[1.0, 2.0, 0.5, 1.5],
        actions_mean=[0.5, -1.0],
        actions_std=[2.0, 0.25],
    )


@pytest.fixture(scope="module")
def other_folder(tmp_path_factory):
    """Another shape: 2 cameras of 32x32, chunk 4, max_action_dim 6, 3 used action dims, 5-dim state."""
    return save_tiny_pi0(
        tmp_path_factory.mktemp("pi0_other"),
        image_size=32,
        patch_size=8,
        chunk_size=4,
        max_action_dim=6,
        max_state_dim=6,
        state_dim=5,
        action_dim=3,
        hidden_size=32,
        seed=3,
    )


@pytest.fixture(scope="module")
def dec(folder):
    return Pi0Decoder.from_pretrained(folder, **ARGS)


def make_obs(batch, seed=0, size=64, cams=("image",), state_key="state", state_dim=4):
    rng = np.random.default_rng(seed)
    obs = {k: rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8) for k in cams}
    obs[state_key] = rng.standard_normal((batch, state_dim)).astype(np.float32)
    return obs


def test_shapes_frozen_and_deterministic(dec):
    assert dec.latent_shape == (8, 8) and dec.action_shape == (5, 2) and dec.chunk_size == 5
    assert all(not p.requires_grad for p in dec.parameters()) and not dec.model.training
    obs, w = make_obs(3), torch.randn(3, 8, 8)
    a1, a2 = dec(obs, w), dec({k: v.copy() for k, v in obs.items()}, w.clone())
    assert a1.shape == (3, 5, 2) and torch.equal(a1, a2)
    assert not torch.equal(a1, dec(obs, w + 1.0))  # the noise steers the chunk
    assert not torch.equal(dec(obs, w), dec(make_obs(3, seed=1), w))  # and so does the observation
    torch.nn.Linear(10, 1)(a1.flatten(1)).sum().backward()  # an ordinary tensor, usable by an autograd critic


def test_batch_matches_single_calls(dec):
    obs, w = make_obs(6, seed=2), torch.randn(6, 64)  # flat latents are accepted
    batched = dec(obs, w)
    single = torch.cat([dec({k: v[i : i + 1] for k, v in obs.items()}, w[i : i + 1]) for i in range(6)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


def test_matches_processor_plus_sample_actions(dec, folder):
    """Our inputs are bit-identical to PI0Processor's and the output is sample_actions(noise=w), un-normalised."""
    from transformers import PI0Processor

    processor = PI0Processor.from_pretrained(folder)
    obs, w = make_obs(4, seed=3), torch.randn(4, 8, 8)
    inputs = processor(
        images=[[img] for img in obs["image"]],
        text=[ARGS["instruction"]] * 4,
        state=torch.from_numpy(obs["state"]),
        return_tensors="pt",
    )
    ours = dec.model_inputs(dec.check_obs(obs))
    for key, value in inputs.items():
        assert torch.equal(value, ours[key]), key
    with torch.inference_mode():
        ref = dec.model.sample_actions(**inputs, noise=w)
    std = torch.tensor([2.0, 0.25]) + 1e-8
    assert torch.equal(dec(obs, w), ref[:, :5, :2] * std + torch.tensor([0.5, -1.0]))
    # channel-first images (as SB3's VecTransposeImage stores them) decode identically
    chw = {**obs, "image": np.ascontiguousarray(obs["image"].transpose(0, 3, 1, 2))}
    assert torch.equal(dec(chw, w), dec(obs, w))


def test_save_pretrained_round_trip_is_bit_exact(dec, tmp_path):
    dec.save_pretrained(tmp_path / "saved")
    stored = json.loads((tmp_path / "saved" / "lpds_pi0.json").read_text())
    assert stored["camera_keys"] == ["image"] and stored["chunk_steps"] == 5
    back = Pi0Decoder.from_pretrained(tmp_path / "saved")  # arguments come from lpds_pi0.json
    assert back.config == dec.config
    sd1, sd2 = dec.state_dict(), back.state_dict()
    assert sd1.keys() == sd2.keys() and all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    obs, w = make_obs(3, seed=4), torch.randn(3, 8, 8)
    assert torch.equal(dec(obs, w), back(obs, w))
    # explicit arguments override the stored ones
    assert Pi0Decoder.from_pretrained(tmp_path / "saved", chunk_steps=2, num_steps=3).action_shape == (2, 2)


def test_a_checkpoint_of_another_shape_loads_and_decodes(other_folder):
    dec = Pi0Decoder.from_pretrained(other_folder, **OTHER)
    assert dec.latent_shape == (4, 6) and dec.action_shape == (4, 3) and dec.image_size == (32, 32)
    obs = make_obs(5, size=32, cams=("left", "right"), state_key="proprio", state_dim=5)
    out = dec(obs, dec.sample_prior(5))
    assert out.shape == (5, 4, 3) and torch.isfinite(out).all()
    swapped = {**obs, "left": obs["right"], "right": obs["left"]}  # camera order matters
    w = dec.sample_prior(5)
    assert not torch.equal(dec(obs, w), dec(swapped, w))


def test_bad_inputs_raise_clear_errors(dec):
    obs, w = make_obs(2), torch.randn(2, 8, 8)
    with pytest.raises(KeyError, match="no key.*'image'"):
        dec({"state": obs["state"]}, w)
    with pytest.raises(ValueError, match=r"shape \(2, 32, 32, 3\), expected \(B, 64, 64, 3\)"):
        dec({**obs, "image": np.zeros((2, 32, 32, 3), np.uint8)}, w)
    with pytest.raises(TypeError, match="dtype torch.float32, expected uint8"):
        dec({**obs, "image": obs["image"].astype(np.float32)}, w)
    with pytest.raises(ValueError, match=r"state 'state' has shape \(2, 3\), expected \(B, 4\)"):
        dec({**obs, "state": obs["state"][:, :3]}, w)
    with pytest.raises(ValueError, match="3 rows, the images have 2"):
        dec({**obs, "state": np.zeros((3, 4), np.float32)}, w)
    with pytest.raises(ValueError, match="latent has shape"):
        dec(obs, torch.randn(2, 5, 2))
    with pytest.raises(TypeError, match="dict observation"):
        dec(torch.zeros(2, 4), w)


def test_bad_folders_and_arguments(folder, tmp_path):
    import shutil

    no_processor = tmp_path / "model_only"
    no_processor.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(folder / name, no_processor / name)
    with pytest.raises(FileNotFoundError, match="no processor files.*processor.save_pretrained"):
        Pi0Decoder.from_pretrained(no_processor, **ARGS)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Pi0Decoder.from_pretrained(tmp_path / "nowhere", **ARGS)
    with pytest.raises(ValueError, match="needs camera_keys=, state_key="):
        Pi0Decoder.from_pretrained(folder, instruction="go", action_dim=2)
    with pytest.raises(ValueError, match="action_dim must be in"):
        Pi0Decoder.from_pretrained(folder, **{**ARGS, "action_dim": 9})
    with pytest.raises(ValueError, match="chunk_steps must be in"):
        Pi0Decoder.from_pretrained(folder, **{**ARGS, "chunk_steps": 9})


def test_torchvision_only_image_processor_config_loads(folder, tmp_path, dec):
    """A hub pi0 names PI0ImageProcessor (torchvision); it loads through SigLIP's PIL processor instead."""
    import shutil

    target = shutil.copytree(folder, tmp_path / "pi0_hub_style")
    config = json.loads((target / "processor_config.json").read_text())
    config["image_processor"]["image_processor_type"] = "PI0ImageProcessor"
    (target / "processor_config.json").write_text(json.dumps(config))
    loaded = Pi0Decoder.from_pretrained(target, **ARGS)
    assert type(loaded.processor.image_processor).__name__ == "SiglipImageProcessorPil"
    obs, w = make_obs(2, seed=5), torch.randn(2, 8, 8)
    assert torch.equal(loaded(obs, w), dec(obs, w))


def test_without_transformers_the_error_names_the_extra(monkeypatch, folder):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` raise ImportError
    with pytest.raises(ImportError, match=r'pip install "lpds\[pi0\]"') as info:
        Pi0Decoder.from_pretrained(folder, **ARGS)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------- the shipped tiny PI0 and its task
@pytest.fixture(scope="module")
def shipped_env():
    import gymnasium as gym

    return gym.make("LPDS-MultiGoalPi0-v0")


def test_shipped_backbone_and_registered_task(shipped_env):
    from lpds_envs import LatentSteeringWrapper
    from lpds_envs.backbones import backbone_path

    env = shipped_env
    dec = env.get_wrapper_attr("decoder")
    assert isinstance(dec, Pi0Decoder) and dec.latent_shape == (4, 4) and dec.action_shape == (4, 2)
    wrapper = env
    while not isinstance(wrapper, LatentSteeringWrapper):
        wrapper = wrapper.env
    assert wrapper._saved_kwargs["decoder"] is dec  # recorded without a copy (a pi0 copy would double its memory)
    folder = backbone_path("multigoal-pi0")
    assert sum(f.stat().st_size for f in folder.iterdir()) < 4 * 2**20  # a few MB at most
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (64, 64, 3) and env.action_space.shape == (16,)
    obs, reward, terminated, truncated, info = env.step(np.zeros(16, np.float32))
    assert info["executed_steps"] == 4 and info["decoded_action"].shape == (4, 2)
    # w = 0 is the mode of the prior: the backbone's chunk from the origin
    torch.testing.assert_close(
        torch.from_numpy(info["decoded_action"]),
        dec({k: v[None] for k, v in env.reset(seed=0)[0].items()}, torch.zeros(1, 16))[0],
    )


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
@pytest.mark.filterwarnings("ignore:.*(image|channel).*")
def test_registered_task_passes_the_env_checkers_with_a_subspace():
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    from lpds_envs import LatentSteeringWrapper
    from lpds_envs.backbones import load_backbone

    env = gym.make("LPDS-MultiGoalPi0-v0", latent_subspace="chunk_constant")
    assert env.action_space.shape == (2,) and env.get_wrapper_attr("decoder").base.used_action_dims == (0, 1)
    sb3_check(env)
    gym_check(env)  # re-makes the id from env.spec, subspace included
    raw = gym.make("lpds/MultiGoalPixels-v0")
    gym_check(LatentSteeringWrapper(raw, load_backbone("multigoal-pi0"), latent_subspace="chunk_constant"))


def test_readme_pi0_snippet_runs():
    """The docs' VLA snippet runs as written (on a smaller learning budget)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "docs/concepts.md").read_text()
    section = text[text.index("## Exact-prior subspace steering") :]
    code = re.search(r"```python\n(.+?)\n```", section, re.S).group(1)
    for old, new in (("learning_starts=50, batch_size=32", "learning_starts=6, batch_size=4"), ("=100)", "=8)")):
        assert old in code, f"README snippet changed: {old!r} not found"
        code = code.replace(old, new)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["model"].num_timesteps == 8
