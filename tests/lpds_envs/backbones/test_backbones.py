import numpy as np
import pytest
import torch

from lpds_envs.backbones import (
    ChunkDataset,
    Episode,
    chunk_trajectory,
    load_minari,
    load_npz,
    make_chunks,
    save_minari,
    split_episodes,
    train_backbone,
)
from lpds_envs.decoders import DiffusionDecoder, FlowDecoder, load_decoder


def test_chunking_pads_with_the_last_action():
    obs = np.arange(6, dtype=np.float32)[:, None]  # L + 1 observations
    act = np.arange(5, dtype=np.float32)[:, None] * 10
    ds = chunk_trajectory(obs, act, chunk_size=3)
    assert ds.obs.shape == (5, 1) and ds.actions.shape == (5, 3, 1)
    assert ds.actions[0, :, 0].tolist() == [0, 10, 20]
    assert ds.actions[3, :, 0].tolist() == [30, 40, 40]
    assert ds.actions[4, :, 0].tolist() == [40, 40, 40]
    zero = chunk_trajectory(obs, act, chunk_size=3, pad="zero")
    assert zero.actions[4, :, 0].tolist() == [40, 0, 0]
    with pytest.raises(ValueError, match="pad"):
        chunk_trajectory(obs, act, 3, pad="mirror")
    with pytest.raises(ValueError, match="7 observations for 5 actions"):
        chunk_trajectory(np.zeros((7, 1)), act, 3)


def test_chunks_never_cross_episode_boundaries():
    obs = np.arange(7, dtype=np.float32)[:, None]
    act = np.arange(7, dtype=np.float32)[:, None]
    ds = make_chunks(split_episodes(obs, act, [3, 7]), chunk_size=4)
    assert len(ds) == 7
    assert ds.actions[2, :, 0].tolist() == [2, 2, 2, 2]  # end of episode 1 is padded, not continued
    assert ds.actions[3, :, 0].tolist() == [3, 4, 5, 6]
    with pytest.raises(ValueError, match="episode_ends"):
        split_episodes(obs, act, [3, 6])


def test_load_npz_both_layouts(tmp_path):
    np.savez(tmp_path / "pairs.npz", obs=np.zeros((10, 3)), actions=np.ones((10, 2)))
    ds = load_npz(tmp_path / "pairs.npz")
    assert ds.actions.shape == (10, 1, 2)
    np.savez(tmp_path / "traj.npz", observations=np.zeros((10, 3)), actions=np.ones((10, 2)), episode_ends=[4, 10])
    ds = load_npz(tmp_path / "traj.npz", chunk_size=4)
    assert ds.actions.shape == (10, 4, 2)
    with pytest.raises(ValueError, match="chunk_size"):
        load_npz(tmp_path / "traj.npz")
    np.savez(tmp_path / "bad.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="expected 'obs'"):
        load_npz(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="NaN"):
        ChunkDataset(np.full((2, 1), np.nan), np.zeros((2, 1, 1)))


def test_minari_round_trip(tmp_path, monkeypatch):
    pytest.importorskip("minari")
    import gymnasium as gym

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = gym.make("lpds/MultiGoal-v0")
    rng = np.random.default_rng(0)
    episodes = []
    for ep in range(3):
        obs, _ = env.reset(seed=ep)
        o, a, r, te, tr = [obs], [], [], [], []
        for _ in range(20):
            act = rng.uniform(-1, 1, 2).astype(np.float32)
            obs, rew, term, trunc, _ = env.step(act)
            o.append(obs), a.append(act), r.append(rew), te.append(term), tr.append(trunc)
        episodes.append(Episode(np.array(o), np.array(a), np.array(r), np.array(te), np.array(tr), seed=ep))
    save_minari(
        "lpds/multigoal-test-v0",
        episodes,
        env,
        algorithm_name="uniform-random",
        author="lpds tests",
        author_email="none@example.com",
        code_permalink="https://example.com",
        description="test",
    )
    ds = load_minari("lpds/multigoal-test-v0", chunk_size=4)
    assert ds.obs.shape == (60, 2) and ds.actions.shape == (60, 4, 2)
    np.testing.assert_array_equal(ds.obs[:20], episodes[0].observations[:20])
    np.testing.assert_array_equal(
        ds.actions[18],
        np.stack([episodes[0].actions[18], episodes[0].actions[19], episodes[0].actions[19], episodes[0].actions[19]]),
    )
    with pytest.raises(FileNotFoundError, match="not available locally"):
        load_minari("lpds/absent-v0", chunk_size=4)
    with pytest.raises(ValueError, match="one more observation"):
        save_minari(
            "lpds/bad-v0", [Episode(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros(3), np.zeros(3), np.zeros(3))], env
        )


def _line_data(n=4096, seed=0):
    """Actions are a smooth function of the observation plus a bimodal sign: a = +-(0.5 + 0.3 s)."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
    sign = rng.choice([-1.0, 1.0], size=(n, 1))
    a = (sign * (0.5 + 0.3 * s)).astype(np.float32)
    return ChunkDataset(s, np.repeat(a[:, None, :], 2, axis=1))


SMALL = dict(hidden_dim=64, n_blocks=2, time_embed_dim=16)


@pytest.mark.parametrize("kind", ["diffusion", "flow"])
def test_bc_learns_a_bimodal_policy(kind, tmp_path):
    data = _line_data()
    extra = dict(num_train_timesteps=50, num_inference_steps=10) if kind == "diffusion" else {}
    dec = train_backbone(
        kind,
        data,
        tmp_path / kind,
        steps=1500,
        batch_size=256,
        learning_rate=3e-3,
        seed=0,
        progress=False,
        **SMALL,
        **extra,
    )
    s = torch.linspace(-0.9, 0.9, 64)[:, None].repeat(8, 1)
    out = dec(s, dec.sample_prior(len(s)))[:, 0, 0]
    magnitude = 0.5 + 0.3 * s[:, 0]
    err = torch.minimum((out - magnitude).abs(), (out + magnitude).abs())
    # samples lie on one of the two modes (|modes| >= 0.23 apart from 0: collapsing to the mean errs by that much)
    assert float(err.median()) < 0.1
    frac_pos = float((out > 0).float().mean())
    assert 0.25 < frac_pos < 0.75  # and both modes are produced
    loaded = load_decoder(tmp_path / kind)
    w = dec.sample_prior(4)
    assert torch.equal(loaded(s[:4], w), dec(s[:4], w))


def test_training_is_reproducible_and_resumes(tmp_path, monkeypatch):
    data = _line_data(512)
    kw = dict(steps=40, batch_size=64, seed=3, checkpoint_every=10, progress=False, **SMALL)
    a = train_backbone("flow", data, tmp_path / "a", **kw)
    b = train_backbone("flow", data, tmp_path / "b", **kw)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k

    # interrupt a run after 25 steps, then re-run the same call: it resumes from step 20 and ends identical
    calls = {"n": 0}
    original = FlowDecoder.training_loss

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 25:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FlowDecoder, "training_loss", flaky)
    with pytest.raises(KeyboardInterrupt):
        train_backbone("flow", data, tmp_path / "c", **kw)
    monkeypatch.setattr(FlowDecoder, "training_loss", original)
    assert not (tmp_path / "c" / "model.safetensors").exists()
    c = train_backbone("flow", data, tmp_path / "c", **kw)
    for k, v in a.state_dict().items():
        assert torch.equal(v, c.state_dict()[k]), k

    with pytest.raises(ValueError, match="different settings"):
        train_backbone("flow", data, tmp_path / "c", **{**kw, "steps": 80})


def test_train_rejects_bad_arguments():
    data = _line_data(64)
    with pytest.raises(ValueError, match="kind"):
        train_backbone("gan", data)
    with pytest.raises(ValueError, match="obs_normalization"):
        train_backbone("flow", data, obs_normalization="rank")


def test_normalisation_is_stored_in_the_decoder(tmp_path):
    data = ChunkDataset(np.random.uniform(10, 20, (256, 3)), np.random.uniform(-5, 5, (256, 2, 2)))
    dec = train_backbone("diffusion", data, tmp_path, steps=5, batch_size=32, progress=False, **SMALL)
    np.testing.assert_allclose(dec.obs_shift.numpy(), (data.obs.min(0) + data.obs.max(0)) / 2, rtol=1e-5)
    flat = data.actions.reshape(-1, 2)
    np.testing.assert_allclose(dec.act_scale.numpy(), (flat.max(0) - flat.min(0)) / 2, rtol=1e-5)
    loaded = DiffusionDecoder.from_pretrained(tmp_path)
    assert torch.equal(loaded.act_scale, dec.act_scale) and torch.equal(loaded.obs_scale, dec.obs_scale)
    out = loaded(torch.from_numpy(data.obs[:64]), loaded.sample_prior(64))
    assert out.min() >= flat.min() - 1e-4 and out.max() <= flat.max() + 1e-4  # clipped x0 -> data range
