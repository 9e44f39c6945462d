"""LP-DS-A (ResidualActionSAC) on Dict observations (camera image + state) through "MultiInputPolicy"."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from algorithms import ResidualActionSAC, ResidualActionWrapper
from algorithms.buffers import LatentDictReplayBuffer
from algorithms.policies import MultiInputSteeringPolicy, PreprocessedExtractor
from lpds_envs.decoders import Decoder
from lpds_envs.envs.multigoal_pixels import MultiGoalPixelsEnv


class DictStateDecoder(Decoder):
    """A toy decoder of Dict observations: the chunk is ``0.5 tanh(w) - 0.1 state``; it checks the image is uint8."""

    def __init__(self) -> None:
        super().__init__(latent_shape=(4, 2), action_shape=(4, 2))
        self.seen_image_shapes: set[tuple[int, ...]] = set()

    def forward(self, obs, w):
        image, state = torch.as_tensor(np.asarray(obs["image"])), torch.as_tensor(np.asarray(obs["state"])).float()
        assert image.dtype == torch.uint8
        self.seen_image_shapes.add(tuple(image.shape[1:]))
        return 0.5 * torch.tanh(self.check_latent(w, batch_size=state.shape[0])) - 0.1 * state[:, None, :]


def make_env(decoder=None, size=40):
    return ResidualActionWrapper(MultiGoalPixelsEnv(image_size=size, horizon=8), decoder or DictStateDecoder())


SMALL = dict(learning_starts=100, batch_size=16, policy_kwargs={"net_arch": [32]}, seed=0)


def test_residual_wrapper_decodes_dict_observations():
    dec = DictStateDecoder()
    env = make_env(dec)
    obs, _ = env.reset(seed=2)
    r = np.full(8, 0.3, np.float32)
    _, _, _, _, info = env.step(r)
    assert (40, 40, 3) in dec.seen_image_shapes  # the env's channel-last uint8 image reached the decoder
    batch = {k: v[None] for k, v in obs.items()}
    base = dec(batch, torch.from_numpy(info["latent"])[None])[0].numpy().ravel()
    np.testing.assert_allclose(info["base_action"], base, atol=1e-6)
    np.testing.assert_allclose(info["decoded_action"], np.clip(base + r, -1, 1), atol=1e-6)


def test_lpds_a_multi_input_policy_learns_saves_loads_predicts(tmp_path):
    env = make_env()
    model = ResidualActionSAC("MultiInputPolicy", env, delta=0.1, alpha_lr=0.1, **SMALL)
    assert isinstance(model.policy, MultiInputSteeringPolicy)
    assert isinstance(model.actor.features_extractor, PreprocessedExtractor)
    model.learn(300)
    buf = model.replay_buffer
    assert isinstance(buf, LatentDictReplayBuffer) and buf.pos == 300
    assert buf.observations["image"].dtype == np.uint8 and buf.observations["image"].shape[-3:] == (3, 40, 40)
    assert np.all(buf.actions[:100] == 0)  # warm-up = the backbone itself
    assert not np.all(buf.actions[100:300] == 0)
    # training decodes got SB3's channel-first images, rollouts the env's channel-last ones
    assert {(3, 40, 40), (40, 40, 3)} <= env.decoder.seen_image_shapes
    for key in ("train/alpha", "train/critic_loss", "train/actor_loss", "train/perturbation_sq"):
        assert key in model.logger.name_to_value
    assert model.alpha != 1.0
    obs, _ = env.reset(seed=1)
    r, _ = model.predict(obs)
    assert r.shape == (8,) and np.isfinite(r).all()
    batch = {k: np.stack([v, v]) for k, v in obs.items()}
    assert model.predict(batch)[0].shape == (2, 8)
    model.save(tmp_path / "a.zip")
    back = ResidualActionSAC.load(tmp_path / "a.zip", env=make_env())
    np.testing.assert_allclose(back.predict(obs)[0], r, atol=1e-6)
    assert back.alpha == model.alpha and isinstance(back.policy, MultiInputSteeringPolicy)
    back.learn(20, reset_num_timesteps=False)  # training resumes on the loaded model


@pytest.mark.filterwarnings("ignore:.*(image|channel).*")
def test_lpds_a_steers_the_shipped_tiny_pi0():
    pytest.importorskip("transformers", minversion="5")
    from lpds_envs.backbones import load_backbone

    dec = load_backbone("multigoal-pi0")
    env = ResidualActionWrapper(gym.make("lpds/MultiGoalPixels-v0"), dec)
    assert env.action_space.shape == (8,)
    model = ResidualActionSAC(
        "MultiInputPolicy",
        env,
        delta=0.1,
        learning_starts=100,
        batch_size=8,
        policy_kwargs={"net_arch": [32], "features_extractor_kwargs": {"cnn_output_dim": 32}},
        seed=0,
    )
    model.learn(200)
    assert model.replay_buffer.pos == 200 and "train/actor_loss" in model.logger.name_to_value
    obs, _ = env.reset(seed=0)
    r, _ = model.predict(obs)
    assert r.shape == (8,) and np.isfinite(r).all()
