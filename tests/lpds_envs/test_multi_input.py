"""Dict observations (camera image + state) through "MultiInputPolicy" for LagrangianSAC, DSRLNA and plain SB3 SAC."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from algorithms import DSRLNA, LagrangianSAC
from algorithms.buffers import LatentDictReplayBuffer
from algorithms.policies import PreprocessedExtractor
from lpds_envs import LatentSteeringWrapper
from lpds_envs.decoders import Decoder
from lpds_envs.envs.multigoal_pixels import MultiGoalPixelsEnv
from lpds_envs.evaluation import entropy_at_visited, evaluate_policy
from lpds_envs.metrics import action_entropy, knn_entropy, model_sampler, prior_sampler
from lpds_envs.vector import make_latent_vec_env


class DictStateDecoder(Decoder):
    """A toy decoder of Dict observations: the chunk is ``tanh(w + state)``; it checks the image is uint8."""

    def __init__(self) -> None:
        super().__init__(latent_shape=(4, 2), action_shape=(4, 2))
        self.seen_image_shapes: set[tuple[int, ...]] = set()

    def forward(self, obs, w):
        image, state = torch.as_tensor(np.asarray(obs["image"])), torch.as_tensor(np.asarray(obs["state"])).float()
        assert image.dtype == torch.uint8
        self.seen_image_shapes.add(tuple(image.shape[1:]))
        return torch.tanh(self.check_latent(w, batch_size=state.shape[0]) + state[:, None, :])


def make_env(size=40):
    return LatentSteeringWrapper(MultiGoalPixelsEnv(image_size=size, horizon=8), DictStateDecoder(), latent_bound=2.5)


SMALL = dict(learning_starts=16, batch_size=8, policy_kwargs={"net_arch": [32]}, seed=0)


def test_pixels_env_observation():
    env = MultiGoalPixelsEnv(image_size=64)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    obs, *_ = env.step(np.array([1.0, 1.0], np.float32))
    obs, *_ = env.step(np.array([1.0, 1.0], np.float32))  # the agent sits on the top-right goal
    red = (obs["image"] == (220, 40, 40)).all(-1)
    rows, cols = np.nonzero(red)
    assert red.sum() > 0 and rows.mean() < 32 and cols.mean() > 32  # top right, y axis up


def test_lagrangian_sac_multi_input_policy(tmp_path):
    env = make_env()
    model = LagrangianSAC("MultiInputPolicy", env, delta=0.1, **SMALL)
    assert isinstance(model.actor.features_extractor, PreprocessedExtractor)
    model.learn(40)
    buf = model.replay_buffer
    assert isinstance(buf, LatentDictReplayBuffer) and buf.pos == 40
    assert buf.observations["image"].dtype == np.uint8 and buf.observations["image"].shape[-3:] == (3, 40, 40)
    # training decodes got SB3's channel-first images, rollouts the env's channel-last ones
    assert {(3, 40, 40), (40, 40, 3)} <= env.decoder.seen_image_shapes
    obs, _ = env.reset(seed=1)
    w, _ = model.predict(obs, deterministic=True)
    assert w.shape == (8,) and np.isfinite(w).all()
    chunk = model.steered_policy(deterministic=True)({k: v[None] for k, v in obs.items()})
    assert chunk.shape == (1, 4, 2)
    model.save(tmp_path / "m.zip")
    back = LagrangianSAC.load(tmp_path / "m.zip", env=make_env())
    np.testing.assert_allclose(back.predict(obs, deterministic=True)[0], w, atol=1e-6)


def test_dsrl_na_and_plain_sac_multi_input_policy():
    from stable_baselines3 import SAC

    model = DSRLNA("MultiInputPolicy", make_env(), **SMALL)
    model.learn(40)
    assert isinstance(model.replay_buffer, LatentDictReplayBuffer)
    SAC("MultiInputPolicy", make_env(), learning_starts=16, batch_size=8, policy_kwargs={"net_arch": [32]}).learn(24)


def test_latent_dict_replay_buffer_keeps_chunks_with_their_transitions():
    obs_space = spaces.Dict({"image": spaces.Box(0, 255, (3, 8, 8), np.uint8), "state": spaces.Box(-1, 1, (2,))})
    buf = LatentDictReplayBuffer(10, obs_space, spaces.Box(-1, 1, (4,)), device="cpu", n_envs=2, decoded_action_dim=3)
    for t in range(5):
        obs = {"image": np.full((2, 3, 8, 8), t, np.uint8), "state": np.full((2, 2), t, np.float32)}
        infos = [{"decoded_action": np.full(3, 10 * t + i, np.float32)} for i in range(2)]
        buf.add(obs, obs, np.zeros((2, 4), np.float32), np.zeros(2), np.zeros(2), infos)
    batch = buf.sample(16)
    t = batch.observations["state"][:, 0]
    assert batch.observations["image"].dtype == torch.uint8
    env_index = batch.decoded_actions[:, 0] - 10 * t
    assert set(env_index.tolist()) <= {0.0, 1.0}
    with pytest.raises(KeyError, match="decoded_action"):
        buf.add(obs, obs, np.zeros((2, 4), np.float32), np.zeros(2), np.zeros(2), [{}, {}])


def test_evaluate_policy_on_dict_observations_keeps_no_paths_and_refuses_entropy():
    env = make_env()
    model = LagrangianSAC("MultiInputPolicy", env, delta=0.1, **SMALL)
    venv = make_latent_vec_env(
        lambda: MultiGoalPixelsEnv(image_size=40, horizon=8), n_envs=2, decoder=DictStateDecoder(), latent_bound=2.5
    )
    result = evaluate_policy(model, venv, deterministic=True, seed=3, episodes=3)
    assert len(result.returns) == 3 and np.isfinite(result.returns).all() and (result.lengths == 8).all()
    assert result.paths == []
    with pytest.raises(ValueError, match="Dict observations"):
        entropy_at_visited(model, env.decoder, result.paths, n_states=4)


def test_action_entropy_of_dict_observations_matches_a_direct_computation():
    dec = DictStateDecoder()
    g = torch.Generator().manual_seed(0)
    obs = {"image": torch.zeros(3, 40, 40, 3, dtype=torch.uint8), "state": torch.randn(3, 2, generator=g)}
    h = action_entropy(dec, obs, prior_sampler(8, generator=torch.Generator().manual_seed(1)), n_samples=50)
    w = torch.randn(150, 4, 2, generator=torch.Generator().manual_seed(1))
    rep = {k: v.repeat_interleave(50, dim=0) for k, v in obs.items()}
    chunks = dec(rep, w).reshape(3, 50, -1).numpy()
    assert h == pytest.approx(np.mean([knn_entropy(c) for c in chunks]), rel=1e-6)
    model = LagrangianSAC("MultiInputPolicy", make_env(), delta=0.1, **SMALL)
    steered = action_entropy(
        dec, {k: v.numpy() for k, v in obs.items()}, model_sampler(model), n_samples=20, max_batch=16
    )
    assert np.isfinite(steered)
    with pytest.raises(ValueError, match="one non-empty batch"):
        action_entropy(dec, {"image": obs["image"], "state": obs["state"][:2]}, n_samples=20)


class DepthStateEnv(gym.Env):
    """A Dict env with a 2-D float depth image and a state; the state moves by the action."""

    observation_space = spaces.Dict(
        {"depth": spaces.Box(0.0, 3.0, (16, 16), np.float32), "state": spaces.Box(-1.0, 1.0, (2,), np.float32)}
    )
    action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state, self.t = self.np_random.uniform(-1, 1, 2).astype(np.float32), 0
        return self._obs(), {}

    def _obs(self):
        depth = np.full((16, 16), 1.0, np.float32)
        depth[int((self.state[1] + 1) * 7.5), int((self.state[0] + 1) * 7.5)] = 0.9  # a dent where the state is
        return {"depth": depth, "state": self.state.copy()}

    def step(self, action):
        self.state = np.clip(self.state + 0.2 * np.asarray(action, np.float32), -1, 1).astype(np.float32)
        self.t += 1
        return self._obs(), -float(np.abs(self.state).sum()), False, self.t >= 8, {}


class DepthStateDecoder(Decoder):
    def __init__(self) -> None:
        super().__init__(latent_shape=(1, 2), action_shape=(1, 2))

    def forward(self, obs, w):
        state = torch.as_tensor(np.asarray(obs["state"])).float()
        return torch.tanh(self.check_latent(w, batch_size=state.shape[0]) - state[:, None, :])


def test_image_pool_gives_small_networks_on_depth_images_and_round_trips(tmp_path):
    from algorithms.policies import PooledImageExtractor

    env = LatentSteeringWrapper(DepthStateEnv(), DepthStateDecoder(), latent_bound=2.5)
    kwargs = {**SMALL, "policy_kwargs": {"net_arch": [32], "image_pool": 4}}
    model = LagrangianSAC("MultiInputPolicy", env, delta=0.1, **kwargs)
    extractor = model.actor.features_extractor.extractor
    assert isinstance(extractor, PooledImageExtractor) and extractor.features_dim == 4 * 4 + 2
    obs = {"depth": torch.rand(3, 16, 16), "state": torch.rand(3, 2)}
    expected = torch.cat([torch.nn.functional.avg_pool2d(obs["depth"][:, None], 4).flatten(1), obs["state"]], 1)
    torch.testing.assert_close(extractor(obs), expected)
    model.learn(40)
    model.save(tmp_path / "m.zip")
    loaded = LagrangianSAC.load(tmp_path / "m.zip", env=env)
    assert isinstance(loaded.actor.features_extractor.extractor, PooledImageExtractor)
    probe, _ = env.reset(seed=1)
    np.testing.assert_array_equal(
        loaded.predict(probe, deterministic=True)[0], model.predict(probe, deterministic=True)[0]
    )
    with pytest.raises(ValueError, match="image_pool=5 must divide the sides of 'depth'"):
        LagrangianSAC("MultiInputPolicy", env, policy_kwargs={"image_pool": 5})


def test_dsrl_sac_takes_image_pool_from_policy_kwargs_and_round_trips(tmp_path):
    from stable_baselines3.common.torch_layers import CombinedExtractor

    from algorithms import DSRLSAC
    from algorithms.policies import PooledImageExtractor

    env = LatentSteeringWrapper(DepthStateEnv(), DepthStateDecoder(), latent_bound=2.5)
    model = DSRLSAC("MultiInputPolicy", env, **{**SMALL, "policy_kwargs": {"net_arch": [32], "image_pool": 4}})
    for net in (model.actor, model.critic, model.critic_target):
        assert isinstance(net.features_extractor, PooledImageExtractor) and net.features_extractor.features_dim == 18
    model.learn(40)
    model.save(tmp_path / "m.zip")
    loaded = DSRLSAC.load(tmp_path / "m.zip", env=env)
    assert isinstance(loaded.actor.features_extractor, PooledImageExtractor) and loaded.policy.image_pool == 4
    probe, _ = env.reset(seed=1)
    np.testing.assert_array_equal(
        loaded.predict(probe, deterministic=True)[0], model.predict(probe, deterministic=True)[0]
    )
    # without image_pool it is SB3's MultiInputPolicy unchanged
    plain = DSRLSAC("MultiInputPolicy", env, **SMALL)
    assert type(plain.actor.features_extractor) is CombinedExtractor and plain.policy.image_pool is None
