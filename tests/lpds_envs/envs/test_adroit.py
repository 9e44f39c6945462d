"""The Adroit zoo: scripted controllers, demo recording (npz + local Minari, resumable), backbone evaluation."""

import json

import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics", reason="the Adroit zoo needs the 'adroit' extra (gymnasium-robotics)")

from lpds_envs.backbones.data import load_minari  # noqa: E402
from lpds_envs.backbones.zoo import adroit  # noqa: E402
from lpds_envs.backbones.zoo.adroit_sim import AdroitSim  # noqa: E402
from lpds_envs.envs.adroit import require_gymnasium_robotics  # noqa: E402
from lpds_envs.registration import TASKS as LPDS_TASKS  # noqa: E402


@pytest.mark.parametrize("task", sorted(adroit.TASKS))
def test_controller_episode_is_valid_and_reproducible(task):
    env = adroit.make_raw_env(task)
    controller = adroit.TASKS[task][1](noise=0.05)
    ep, success, style = adroit.run_controller(env, controller, seed=3)
    assert ep.actions.shape == (adroit.EPISODE_STEPS, env.action_space.shape[0])
    assert ep.observations.shape == (adroit.EPISODE_STEPS + 1, env.observation_space.shape[0])
    assert np.isfinite(ep.actions).all() and np.abs(ep.actions).max() <= 1.0
    assert ep.truncations[-1] and not ep.truncations[:-1].any() and style in controller.STYLES
    again, success2, style2 = adroit.run_controller(env, controller, seed=3)
    np.testing.assert_array_equal(ep.actions, again.actions)
    assert (success, style) == (success2, style2)
    env.close()


def test_sim_joint_targets_round_trip_and_ik_moves_towards_target():
    env = adroit.make_raw_env("relocate")
    env.reset(seed=0)
    sim = AdroitSim(env)
    q = sim.q
    action = sim.action(q, gravity_compensation=False)
    ctrl = sim.act_mean + action * sim.act_rng
    inside = np.abs(action) < 1.0
    np.testing.assert_allclose((ctrl / sim.ctrl_per_q)[inside], q[inside], atol=1e-5)
    arm = sim.index(["ARTx", "ARTy", "ARTz", "ARRx", "ARRy", "ARRz"])
    start, target = sim.site("S_grasp"), sim.body("Object") + np.array([0.0, 0.0, 0.08])
    for _ in range(30):
        qt = sim.q
        qt[arm] += sim.ik_step("S_grasp", target, arm, gain=2.0)
        env.step(sim.action(qt))
    assert np.linalg.norm(sim.site("S_grasp") - target) < 0.5 * np.linalg.norm(start - target)
    env.close()


def test_sim_point_ik_moves_a_held_point_and_respects_task_rows():
    env = adroit.make_raw_env("hammer")
    env.reset(seed=0)
    sim = AdroitSim(env)
    arm = sim.index(["ARRx", "ARRy", "WRJ1"])
    point = sim.site("S_grasp") + np.array([-0.1, 0.05, 0.0])  # a point rigidly attached to the palm
    jac = sim.point_jacobian("palm", point, arm)
    assert jac.shape == (3, 3) and np.abs(jac).max() > 0.05
    target = point + np.array([0.02, 0.0, 0.02])
    dq = sim.ik_point_step("palm", point, target, arm, gain=1.0, damping=1e-3)
    np.testing.assert_allclose(jac @ dq, target - point, atol=2e-3)  # first order: the point lands on the target
    # a task row along x only: the step moves the point along x and leaves z alone
    dq_x = sim.ik_point_step("palm", point, target, arm, damping=1e-3, task=np.array([[1.0, 0.0, 0.0]]))
    assert abs((jac @ dq_x)[0] - 0.02) < 2e-3 and abs((jac @ dq_x)[2]) < 0.01
    # zero weight on a joint keeps it still
    dq_w = sim.ik_point_step("palm", point, target, arm, weights=np.array([1.0, 1.0, 0.0]))
    assert dq_w[2] == 0.0
    env.close()


def test_hammer_controller_drives_the_nail():
    env = adroit.make_raw_env("hammer")
    controller = adroit.TASKS["hammer"][1](noise=0.05, styles=("press",))
    results = [adroit.run_controller(env, controller, seed=s)[1] for s in range(4)]
    assert any(results), "the scripted hammer controller should drive the nail home in some of 4 press episodes"
    env.close()


def test_record_demos_round_trip_and_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    out = tmp_path / "zoo"
    data_dir = adroit.record_demos("relocate", out, episodes=2, save_every=1, progress=False)
    meta = json.loads((data_dir / "dataset.json").read_text())
    assert meta["episodes"] == 2 and meta["transitions"] == 2 * adroit.EPISODE_STEPS
    assert 0.0 <= meta["success_rate"] <= 1.0 and meta["minari_id"] == "lpds/adroit-relocate/scripted-v0"
    first = np.load(data_dir / "demos.npz")["actions"].copy()
    chunks = adroit.load_demo_chunks("relocate", out)
    assert chunks.actions.shape == (2 * adroit.EPISODE_STEPS, 8, 30) and chunks.obs.shape[1] == 39
    minari_chunks = load_minari(meta["minari_id"], chunk_size=8)
    np.testing.assert_allclose(minari_chunks.actions, chunks.actions, atol=1e-6)
    np.testing.assert_allclose(minari_chunks.obs, chunks.obs, atol=1e-5)
    # a larger budget keeps the recorded episodes and adds one
    adroit.record_demos("relocate", out, episodes=3, save_every=1, progress=False)
    with np.load(data_dir / "demos.npz") as d:
        assert d["episode_ends"].tolist() == [200, 400, 600]
        np.testing.assert_array_equal(d["actions"][:400], first)
    with pytest.raises(ValueError, match="delete it"):
        adroit.record_demos("relocate", out, episodes=4, noise=0.2, progress=False)


def test_evaluate_backbone_with_prior_latents():
    from tests.conftest import small_decoder

    env = adroit.make_raw_env("relocate")
    dec = small_decoder(
        "flow", obs_dim=env.observation_space.shape[0], action_dim=env.action_space.shape[0], chunk_size=8
    )
    result = adroit.evaluate_backbone("relocate", dec, episodes=2, n_envs=2)
    assert result["episodes"] == 2 and 0.0 <= result["success_rate"] <= 1.0 and np.isfinite(result["return_mean"])


def test_missing_extra_message_names_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "gymnasium_robotics":
            raise ImportError("no module")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"lpds\[adroit\]"):
        require_gymnasium_robotics()


SHIPPED = [name for name in ("Door", "Hammer", "Pen", "Relocate") if f"Adroit{name}" in LPDS_TASKS]


@pytest.mark.parametrize("name", SHIPPED)
def test_registered_steering_id_builds_checks_and_rolls_out(name):
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    from lpds_envs.registration import make_steering_env

    env = gym.make(f"LPDS-Adroit{name}-v0")
    assert env.unwrapped.__class__.__name__ == f"AdroitHand{name}Env"
    decoder = env.get_wrapper_attr("decoder")
    assert env.action_space.shape == (int(np.prod(decoder.latent_shape)),) and decoder.chunk_size == 8
    assert env.get_wrapper_attr("latent_bound") == 2.5
    check_env(make_steering_env(f"Adroit{name}"), skip_render_check=True)  # the wrapper itself
    check_env(env, skip_render_check=True)  # the registered id (Gymnasium's checker re-makes it from env.spec)
    sb3_check_env(env, warn=False, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    rng, steps, done = np.random.default_rng(0), 0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(rng.standard_normal(env.action_space.shape))
        steps += info["executed_steps"]
        assert "success" in info and np.isfinite(reward)
        done = terminated or truncated
    assert steps == adroit.EPISODE_STEPS
    env.close()


def test_backbone_evaluate_ship_pipeline_tiny(tmp_path, monkeypatch):
    import torch

    from lpds_envs.backbones.zoo.adroit_ship import ship_backbone
    from lpds_envs.decoders import load_decoder

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    out = tmp_path / "zoo"
    adroit.record_demos("door", out, episodes=1, progress=False)
    monkeypatch.setitem(adroit.BACKBONE_DEFAULTS, "hidden_dim", 32)
    dec = adroit.train_task_backbone("door", out, steps=3, batch_size=8, progress=False)
    result = adroit.evaluate_backbone("door", dec, episodes=1, n_envs=1)
    (out / "door" / "flow" / "eval.json").write_text(json.dumps(result))
    dest = ship_backbone("door", out, dest=tmp_path / "shipped")
    card = (dest / "README.md").read_text()
    assert "AdroitHandDoor-v1" in card and f"{result['success_rate']:.2f}" in card
    shipped = load_decoder(dest)
    obs, w = torch.randn(2, dec.obs_dim), torch.randn(2, *dec.latent_shape)
    assert torch.equal(shipped(obs, w), dec(obs, w))  # bit-exact round trip


def test_diffusion_backbone_kind_tiny(tmp_path, monkeypatch):
    """``backbone --kind diffusion`` trains a DDIM DiffusionDecoder (the zoo's sampler) into ZOO/<task>/diffusion,
    which load_decoder reads back, ``evaluate --kind diffusion`` scores, and ``LPDS-AdroitPen-v0`` accepts by path."""
    import gymnasium as gym
    import torch

    from lpds_envs.decoders import DiffusionDecoder, load_decoder

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    out = tmp_path / "zoo"
    adroit.record_demos("pen", out, episodes=1, progress=False)
    monkeypatch.setitem(adroit.BACKBONE_DEFAULTS, "hidden_dim", 32)
    adroit.main(
        ["backbone", "--task", "pen", "--kind", "diffusion", "--bc-steps", "3", "--batch-size", "8", "--out", str(out)]
    )
    folder = out / "pen" / "diffusion"
    dec = load_decoder(folder)
    assert isinstance(dec, DiffusionDecoder) and dec.chunk_size == adroit.BACKBONE_DEFAULTS["chunk_size"]
    assert dec.get_config()["num_inference_steps"] == adroit.DIFFUSION_SAMPLER["num_inference_steps"]
    assert json.loads((folder / "training.json").read_text())["successful_only"] is False
    adroit.main(["evaluate", "--task", "pen", "--kind", "diffusion", "--episodes", "1", "--out", str(out)])
    assert json.loads((folder / "eval.json").read_text())["episodes"] == 1
    env = gym.make("LPDS-AdroitPen-v0", backbone=str(folder))  # a decoder folder instead of a shipped kind
    obs, _ = env.reset(seed=0)
    o, w = torch.as_tensor(obs[None], dtype=torch.float32), torch.zeros(1, *dec.latent_shape)
    assert torch.equal(env.get_wrapper_attr("decoder")(o, w), dec(o, w))
    env.close()
    with pytest.raises(SystemExit):  # the package ships flow backbones only
        adroit.main(["ship", "--task", "pen", "--kind", "diffusion", "--out", str(out)])


def test_readme_adroit_snippet_runs():
    """The docs' headline usage (gym.make("LPDS-AdroitPen-v0") + LagrangianSAC) runs as written, smaller."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "docs/zoo.md").read_text()
    section = text[text.index("## `LPDS-AdroitPen-v0`") :]
    code = re.search(r"```python\n(.+?)\n```", section, re.S).group(1)
    for old, new in (
        ("learning_starts=250, verbose=1", "learning_starts=4, batch_size=8, verbose=0"),
        ("total_timesteps=2_000", "total_timesteps=8"),
    ):
        assert old in code, f"README snippet changed: {old!r} not found"
        code = code.replace(old, new)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    model = namespace["model"]
    assert model.num_timesteps == 8 and model._n_updates > 0 and model.delta == 0.35
    assert model.replay_buffer.decoded_actions.shape[-1] == 8 * namespace["env"].unwrapped.action_space.shape[0]
