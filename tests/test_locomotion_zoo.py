"""The locomotion zoo pipeline (experts -> medium dataset -> backbones) end to end on a tiny budget, and resume."""

import json

import pytest

pytest.importorskip("mujoco", reason="the locomotion zoo needs gymnasium[mujoco]")

from lpds_envs.backbones import locomotion  # noqa: E402
from lpds_envs.decoders import load_decoder  # noqa: E402


def test_pick_medium_picks_the_checkpoint_nearest_the_fraction():
    returns = {"10": {"mean": 100.0}, "20": {"mean": 900.0}, "30": {"mean": 3000.0}, "40": {"mean": 1300.0}}
    assert locomotion.pick_medium(returns, 0.4) == (40, 1300.0, 30, 3000.0)


def test_pipeline_tiny_budget_and_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    zoo, env = tmp_path / "zoo", "Hopper-v5"
    locomotion.train_expert(env, zoo, steps=120, ckpt_every=60, eval_episodes=1, learning_starts=50)
    returns = json.loads((zoo / env / "expert" / "returns.json").read_text())
    assert sorted(returns, key=int) == ["60", "120"]
    # re-running with a larger budget resumes from the saved state instead of starting over
    locomotion.train_expert(env, zoo, steps=180, ckpt_every=60, eval_episodes=1, learning_starts=50)
    assert sorted(json.loads((zoo / env / "expert" / "returns.json").read_text()), key=int) == ["60", "120", "180"]
    data = locomotion.record_dataset(env, zoo, episodes=2, fraction=0.4)
    meta = json.loads((data / "dataset.json").read_text())
    assert meta["episodes"] == 2 and meta["transitions"] > 0 and meta["medium_checkpoint"] in (60, 120, 180)
    assert meta["minari_id"] == "lpds/hopper/medium-v0"
    outs = locomotion.train_backbones(env, zoo, steps=3, batch_size=8)
    dec = {k: load_decoder(v) for k, v in outs.items()}
    n = {k: sum(p.numel() for p in d.parameters()) for k, d in dec.items()}
    assert dec["diffusion"].action_shape == (4, 3) and dec["flow"].latent_shape == (4, 3)
    assert abs(n["diffusion"] - n["flow"]) / n["flow"] < 0.01  # matched parameter counts
