"""The locomotion zoo pipeline (experts -> medium dataset -> backbones) end to end on a tiny budget, and resume."""

import json

import pytest

pytest.importorskip("mujoco", reason="the locomotion zoo needs gymnasium[mujoco]")

from lpds_envs.backbones.zoo import locomotion  # noqa: E402
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
    # a finished expert is not retrained, even without its resumable state
    import shutil

    shutil.rmtree(zoo / env / "expert" / "state")
    locomotion.train_expert(env, zoo, steps=180, ckpt_every=60, eval_episodes=1, learning_starts=50)
    assert not (zoo / env / "expert" / "state").exists()
    # resuming someone else's expert (another seed) is refused with the flags that would resume it
    with pytest.raises(ValueError, match="--seed 0 --ckpt-every 60"):
        locomotion.train_expert(env, zoo, steps=240, ckpt_every=60, eval_episodes=1, learning_starts=50, seed=3)
    data = locomotion.record_dataset(env, zoo, episodes=2, fraction=0.4)
    meta = json.loads((data / "dataset.json").read_text())
    assert meta["episodes"] == 2 and meta["transitions"] > 0 and meta["medium_checkpoint"] in (60, 120, 180)
    assert meta["minari_id"] == "lpds/hopper/medium-v0"
    outs = locomotion.train_backbones(env, zoo, steps=3, batch_size=8)
    dec = {k: load_decoder(v) for k, v in outs.items()}
    n = {k: sum(p.numel() for p in d.parameters()) for k, d in dec.items()}
    assert dec["diffusion"].action_shape == (4, 3) and dec["flow"].latent_shape == (4, 3)
    assert abs(n["diffusion"] - n["flow"]) / n["flow"] < 0.01  # matched parameter counts
    # evaluate (prior latents, the task's DSRL latent box) and ship into a scratch package folder with a card
    ev = locomotion.evaluate_backbones(env, zoo, episodes=2, n_envs=2)
    assert set(ev) == {"diffusion", "flow"} and ev["flow"]["episodes"] == 2 and ev["flow"]["latent_bound"] == 1.5
    assert ev["diffusion"]["length_mean"] >= 1
    assert locomotion.evaluate_backbones(env, zoo, episodes=2, n_envs=2) == ev  # done stages are skipped
    shipped = locomotion.ship_backbones(env, zoo, dest_root=tmp_path / "pkg")
    assert [p.name for p in shipped] == ["hopper-diffusion", "hopper-flow"]
    card = (shipped[0] / "README.md").read_text()
    assert "LPDS-Hopper-v0" in card and "DDIM with 5 steps" in card and "medium" in card
    assert "seed 0" in card and "checkpoints every 60 steps" in card  # the expert's own settings, not defaults
    import torch

    reloaded = load_decoder(shipped[1])
    obs, w = torch.randn(2, reloaded.obs_dim), torch.randn(2, *reloaded.latent_shape)
    assert torch.equal(reloaded(obs, w), dec["flow"](obs, w))  # shipped weights are the trained ones, bit for bit


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
@pytest.mark.parametrize(
    "task,obs_dim,act_dim,bound", [("Hopper", 11, 3, 1.5), ("Walker2d", 17, 6, 2.5), ("HalfCheetah", 17, 6, 1.5)]
)
def test_registered_ids_build_check_and_roll_out(task, obs_dim, act_dim, bound):
    import gymnasium as gym
    import numpy as np
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    from lpds_envs.backbones.shipped import shipped_backbones
    from tests.conftest import small_decoder

    env_id = f"LPDS-{task}-v0"
    if f"{task.lower()}-diffusion" in shipped_backbones():
        env = gym.make(env_id)
    else:  # not shipped yet: the id says how to build it, and works with any decoder of the right shape
        with pytest.raises(FileNotFoundError, match=rf"locomotion all --env {task}-v5"):
            gym.make(env_id)
        env = gym.make(env_id, decoder=small_decoder(obs_dim=obs_dim, action_dim=act_dim, chunk_size=4))
        # the vec env path, too, takes the caller's decoder without loading the (missing) shipped one
        from lpds_envs import make_latent_vec_env

        venv = make_latent_vec_env(env_id, n_envs=2, seed=0, decoder=env.get_wrapper_attr("decoder"))
        assert venv.latent_bound == bound and venv.reset().shape == (2, obs_dim)
        venv.close()
    assert env.unwrapped.__class__.__name__ == f"{task}Env" and env.get_wrapper_attr("latent_bound") == bound
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    steps, done, rng = 0, False, np.random.default_rng(0)
    while not done:
        obs, reward, terminated, truncated, info = env.step(rng.standard_normal(env.action_space.shape))
        steps += info["executed_steps"]
        done = terminated or truncated
    assert 1 <= steps <= 1000 and (terminated or steps == 1000)


def test_missing_mujoco_names_the_extra(monkeypatch):
    import importlib.util

    from lpds_envs.registration import make_steering_env

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mujoco" else real(name, *a))
    with pytest.raises(ImportError, match=r"lpds\[locomotion\]"):
        make_steering_env("Hopper")
