import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

from lpds_envs import (
    ChunkedActionWrapper,
    LatentSteeringWrapper,
    VecLatentSteeringWrapper,
    make_latent_vec_env,
    make_latent_vector_env,
)
from lpds_envs.decoders import CallableDecoder
from tests.conftest import small_decoder


def toy_decoder(chunk: int = 3):
    """A decoder for the 2-D toy task (obs 2, action 2) with chunk ``chunk``."""
    return small_decoder("diffusion", obs_dim=2, action_dim=2, chunk_size=chunk)


def test_chunked_wrapper_runs_the_chunk_and_sums_rewards():
    env = ChunkedActionWrapper(gym.make("lpds/MultiGoal-v0"), chunk_size=3)
    ref = gym.make("lpds/MultiGoal-v0")
    assert env.action_space.shape == (3, 2)
    obs, _ = env.reset(seed=0)
    ref.reset(seed=0)
    chunk = np.array([[1.0, 1.0], [0.5, 0.2], [-0.1, 0.4]], np.float32)
    obs, reward, terminated, truncated, info = env.step(chunk)
    expected = 0.0
    for a in chunk:
        ref_obs, r, *_ = ref.step(a)
        expected += r
    assert np.array_equal(obs, ref_obs)
    assert reward == pytest.approx(expected)
    assert info["executed_steps"] == 3 and not terminated and not truncated


def test_chunk_stops_at_time_limit_and_reports_truncation():
    env = ChunkedActionWrapper(gym.make("lpds/MultiGoal-v0"), chunk_size=8)  # horizon 20 = 8 + 8 + 4
    env.reset(seed=0)
    steps = []
    for _ in range(3):
        _, _, terminated, truncated, info = env.step(np.zeros((8, 2), np.float32))
        steps.append(info["executed_steps"])
    assert steps == [8, 8, 4]
    assert truncated and not terminated  # a time limit is truncation, never termination


class _TerminatingEnv(gym.Env):
    """Terminates after 2 steps; reports success on step 1 only."""

    observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), 1.0, self.t >= 2, False, {"is_success": self.t == 1}


def test_chunk_stops_at_termination_and_reports_success_at_any_step():
    env = ChunkedActionWrapper(_TerminatingEnv(), chunk_size=5)
    env.reset()
    _, reward, terminated, truncated, info = env.step(np.zeros((5, 1), np.float32))
    assert (info["executed_steps"], reward, terminated, truncated) == (2, 2.0, True, False)
    assert info["success"] is True  # success on step 1, not on the last step
    with pytest.raises(ValueError, match=r"expected \(5, 1\)"):
        env.step(np.zeros(3, np.float32))


def test_latent_wrapper_matches_manual_decode_and_step():
    dec = toy_decoder(chunk=3)
    env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), dec, latent_bound=2.5)
    raw = gym.make("lpds/MultiGoal-v0")
    assert env.action_space == gym.spaces.Box(-2.5, 2.5, (6,), np.float32)
    obs, _ = env.reset(seed=3)
    raw_obs, _ = raw.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(7):
        w = rng.normal(size=6).astype(np.float32) * 2
        chunk = dec(torch.from_numpy(raw_obs)[None], torch.from_numpy(np.clip(w, -2.5, 2.5))[None])[0].numpy()
        total, done = 0.0, False
        for a in chunk:
            raw_obs, r, term, trunc, _ = raw.step(a)
            total += r
            if term or trunc:
                done = True
                break
        obs, reward, terminated, truncated, info = env.step(w)
        np.testing.assert_array_equal(info["decoded_action"], chunk)
        np.testing.assert_array_equal(info["latent"], np.clip(w, -2.5, 2.5))
        np.testing.assert_array_equal(obs, raw_obs)
        assert reward == pytest.approx(total)
        assert (terminated or truncated) == done
        if done:
            obs, _ = env.reset(seed=4)
            raw_obs, _ = raw.reset(seed=4)


def test_unbounded_latent_space():
    env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), toy_decoder(), latent_bound=None)
    assert np.isinf(env.action_space.high).all()
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.full(6, 10.0, np.float32))
    assert np.all(info["latent"] == 10.0)


def _rollout_single(dec, seeds, latents, bound=2.5):
    out = []
    for i, seed in enumerate(seeds):
        env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), dec, latent_bound=bound)
        obs, _ = env.reset(seed=seed)
        traj = [obs]
        for t in range(latents.shape[0]):
            obs, r, term, trunc, info = env.step(latents[t, i])
            traj.append(np.concatenate([obs, [r], info["decoded_action"].ravel()]))
            if term or trunc:
                obs, _ = env.reset()
                traj.append(obs)
        out.append(traj)
    return out


def test_vec_wrapper_reproduces_single_wrappers():
    dec = toy_decoder(chunk=3)
    n, T = 4, 16  # 16 latent steps of 3 = 48 raw steps: crosses two auto-resets (horizon 20)
    latents = np.random.default_rng(1).normal(size=(T, n, 6)).astype(np.float32)
    single = _rollout_single(dec, [10 + i for i in range(n)], latents)
    venv = make_latent_vec_env("lpds/MultiGoal-v0", n_envs=n, seed=10, decoder=dec)
    obs = venv.reset()
    vec = [[o] for o in obs]
    for t in range(T):
        obs, rewards, dones, infos = venv.step(latents[t])
        for i in range(n):
            last = infos[i]["terminal_observation"] if dones[i] else obs[i]
            vec[i].append(np.concatenate([last, [rewards[i]], infos[i]["decoded_action"].ravel()]))
            if dones[i]:
                vec[i].append(obs[i])
    for i in range(n):
        assert len(vec[i]) == len(single[i])
        for a, b in zip(vec[i], single[i]):
            # batched vs single decoding agree to float32 rounding (BLAS kernels differ by batch size)
            np.testing.assert_allclose(a, b, atol=1e-5)


def test_gymnasium_vector_wrapper_reproduces_single_wrappers():
    dec = toy_decoder(chunk=4)
    n, T = 3, 12
    latents = np.random.default_rng(2).normal(size=(T, n, 8)).astype(np.float32)
    single = _rollout_single(dec, [5, 6, 7], latents)
    venv = make_latent_vector_env("lpds/MultiGoal-v0", num_envs=n, decoder=dec)
    assert venv.single_action_space.shape == (8,) and venv.action_space.shape == (n, 8)
    obs, _ = venv.reset(seed=[5, 6, 7])
    first = np.array([s[0] for s in single])
    np.testing.assert_array_equal(obs, first)
    # compare the first episode of each sub-env (gymnasium autoresets on the next step)
    for t in range(5):  # 5 chunks of 4 = one 20-step episode
        obs, rewards, term, trunc, infos = venv.step(latents[t])
        for i in range(n):
            row = np.concatenate([obs[i], [rewards[i]], infos["decoded_action"][i].ravel()])
            np.testing.assert_allclose(row, single[i][t + 1], atol=1e-5)
    assert trunc.all() and not term.any()


def test_both_env_checkers_pass():
    env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), toy_decoder())
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env)
    gym_check_env(gym.make("lpds/MultiGoal-v0").unwrapped)
    sb3_check_env(gym.make("LPDS-MultiGoal-v0"))
    gym_check_env(gym.make("LPDS-MultiGoal-v0"), skip_render_check=True)


def test_registered_id_remakes_from_its_spec():
    # the entry point builds the wrappers itself, so the spec carries no additional wrappers (no decoder object)
    env = gym.make("LPDS-MultiGoal-v0", latent_bound=1.5)
    assert env.spec.id == "LPDS-MultiGoal-v0" and env.spec.additional_wrappers == ()
    again = gym.make(env.spec)
    assert again.get_wrapper_attr("latent_bound") == 1.5
    a = env.reset(seed=3)[0]
    b = again.reset(seed=3)[0]
    np.testing.assert_array_equal(a, b)
    w = np.full(env.action_space.shape, 0.3, dtype=np.float32)
    np.testing.assert_array_equal(env.step(w)[0], again.step(w)[0])
    # a wrapper built by hand still records itself, as any Gymnasium wrapper does
    manual = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), env.get_wrapper_attr("decoder"))
    assert [w.name for w in manual.spec.additional_wrappers][-1] == "LatentSteeringWrapper"


def test_bad_latents_raise_clear_errors():
    env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), toy_decoder())
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"latent has shape \(7,\), expected \(6,\)"):
        env.step(np.zeros(7, np.float32))
    with pytest.raises(TypeError, match="dtype int64"):
        env.step(np.zeros(6, np.int64))
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.full(6, np.nan, np.float32))
    venv = make_latent_vec_env("lpds/MultiGoal-v0", n_envs=2, decoder=toy_decoder())
    venv.reset()
    with pytest.raises(ValueError, match=r"latents have shape \(6,\), expected \(2, 6\)"):
        venv.step(np.zeros(6, np.float32))


def test_mismatched_env_and_decoder_are_rejected():
    dec = small_decoder("flow", obs_dim=2, action_dim=3, chunk_size=2)
    with pytest.raises(ValueError, match=r"env action space has shape \(2,\).*\(2, 3\)"):
        LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), dec)
    with pytest.raises(ValueError, match="ChunkedActionWrapper"):
        VecLatentSteeringWrapper(DummyVecEnv([lambda: gym.make("lpds/MultiGoal-v0")]), toy_decoder())
    with pytest.raises(TypeError, match="CallableDecoder"):
        LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), lambda o, w: w)
    with pytest.raises(ValueError, match="latent_bound"):
        LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), toy_decoder(), latent_bound=-1.0)
    with pytest.raises(ValueError, match="pass decoder="):
        make_latent_vec_env("lpds/MultiGoal-v0", n_envs=1)


def test_callable_decoder_steers_any_env():
    dec = CallableDecoder(lambda obs, w: torch.tanh(w), latent_shape=(2, 2), action_shape=(2, 2))
    env = LatentSteeringWrapper(gym.make("lpds/MultiGoal-v0"), dec, latent_bound=3.0)
    env.reset(seed=0)
    obs, *_ = env.step(np.array([3.0, 3.0, 3.0, 3.0], np.float32))
    np.testing.assert_allclose(obs, [2 * 0.5 * np.tanh(3.0)] * 2, rtol=1e-6)


def test_sb3_sac_runs_on_the_latent_vec_env():
    from stable_baselines3 import SAC

    venv = make_latent_vec_env("lpds/MultiGoal-v0", n_envs=2, seed=0, decoder=toy_decoder())
    model = SAC("MlpPolicy", venv, learning_starts=20, batch_size=16, seed=0, policy_kwargs={"net_arch": [16]})
    model.learn(total_timesteps=60)
    assert model.num_timesteps == 60
    assert model.replay_buffer.actions.shape[-1] == 6
