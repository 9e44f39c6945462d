import pytest

from algorithms import DSRLNA, DSRLSAC, LagrangianSAC
from algorithms.presets import available_algos, get_preset, load_presets, make_algorithm

TABLE_2 = {
    "LPDS-Square-v0": 0.35,
    "LPDS-Lift-v0": 0.10,
    "LPDS-Can-v0": 0.35,
    "LPDS-Hopper-v0": 0.50,
    "LPDS-Walker2d-v0": 0.35,
    "LPDS-HalfCheetah-v0": 0.35,
    "LPDS-AdroitPen-v0": 0.35,
    "LPDS-AdroitHammer-v0": 0.10,
    "LPDS-AdroitDoor-v0": 0.35,
    "LPDS-AdroitRelocate-v0": 0.35,
}


def latent_bound(algo: str, env_id: str) -> float | None:
    """The latent box a learner of ``algo`` trains with on ``env_id``: the preset's override, else the task's own."""
    from lpds_envs.registration import TASKS

    task = TASKS[env_id.removeprefix("LPDS-").removesuffix("-v0")]
    return (get_preset(algo, env_id).get("env_kwargs") or {}).get("latent_bound", task.latent_bound)


def test_paper_values():
    assert set(available_algos()) >= {"lpds", "dsrl", "dsrl-na"}
    for env_id, delta in TABLE_2.items():
        assert get_preset("lpds", env_id)["delta"] == delta
    for task in ("Pen", "Hammer", "Door", "Relocate"):
        for algo in ("lpds", "dsrl", "dsrl-na"):
            p = get_preset(algo, f"LPDS-Adroit{task}-v0")  # Table 1 and 3
            assert p["policy_kwargs"] == {"net_arch": [256, 256, 256], "n_critics": 2}
            assert p["gradient_steps"] == 10 and p["gamma"] == 0.99
            assert latent_bound(algo, f"LPDS-Adroit{task}-v0") == 2.5
            assert p["learning_starts"] * 8 == 2000
            if algo != "dsrl":
                assert p["latent_critic_steps"] == 10
            if algo != "lpds":
                assert p["target_entropy"] == 0.0
    assert latent_bound("dsrl", "LPDS-MultiGoal-v0") == 1.5  # App. B


def test_overrides_merge_nested_and_unknowns_fail():
    p = get_preset("lpds", "LPDS-AdroitPen-v0", {"delta": 0.2, "policy_kwargs": {"layer_norm": True}})
    assert p["delta"] == 0.2 and p["policy_kwargs"]["layer_norm"] and p["policy_kwargs"]["n_critics"] == 2
    assert get_preset("lpds", "LPDS-AdroitPen-v0")["delta"] == 0.35  # the stored preset is untouched
    with pytest.raises(ValueError, match="no presets"):
        get_preset("ppo", "LPDS-AdroitPen-v0")


@pytest.mark.parametrize("algo,cls", [("lpds", LagrangianSAC), ("dsrl", DSRLSAC), ("dsrl-na", DSRLNA)])
def test_make_algorithm_builds_from_the_preset(algo, cls):
    model = make_algorithm(algo, "LPDS-MultiGoal-v0", seed=0, overrides={"policy_kwargs": {"net_arch": [8]}})
    assert isinstance(model, cls)
    bound = latent_bound(algo, "LPDS-MultiGoal-v0")
    assert model.action_space.high[0] == bound
    assert model.learning_starts == 500


def test_locomotion_presets_follow_dsrls_gym_configs():
    # ajwagen/dsrl cfg/gym/dsrl_{hopper,walker,halfcheetah}.yaml: layer_size, action_magnitude
    dsrl_cfg = {"LPDS-Hopper-v0": (128, 1.5), "LPDS-Walker2d-v0": (2048, 2.5), "LPDS-HalfCheetah-v0": (1024, 1.5)}
    for env_id, (hidden, bound) in dsrl_cfg.items():
        for algo in ("lpds", "dsrl", "dsrl-na"):
            p = get_preset(algo, env_id)
            assert p["policy_kwargs"]["net_arch"] == [hidden] * 3 and p["policy_kwargs"]["n_critics"] == 2
            assert p["policy_kwargs"].get("layer_norm", False) is (algo != "dsrl")  # SB3 SAC has no LayerNorm
            assert latent_bound(algo, env_id) == bound
            assert (p["n_envs"], p["train_freq"], p["gradient_steps"]) == (4, 2, 20)
            assert p["learning_starts"] == 2001 and p["gamma"] == 0.99 and p["batch_size"] == 256
            assert p.get("latent_critic_steps", 10) == 10
            if algo != "lpds":
                assert p["target_entropy"] == 0.0


def test_make_algorithm_takes_n_envs_and_policy_from_the_preset():
    hp = {"LPDS-MultiGoal-v0": {"n_envs": 3, "policy": "MlpPolicy", "learning_starts": 10}}
    model = make_algorithm("lpds", "LPDS-MultiGoal-v0", seed=0, overrides=hp["LPDS-MultiGoal-v0"])
    assert model.n_envs == 3
    assert make_algorithm("lpds", "LPDS-MultiGoal-v0", n_envs=2, seed=0, overrides={"n_envs": 3}).n_envs == 2


def test_robomimic_presets_follow_dsrls_robomimic_configs():
    # ajwagen/dsrl cfg/robomimic/dsrl_{lift,can,square}.yaml: utd, init_rollout_steps; layer_size 2048, magnitude 1.5
    dsrl_cfg = {"LPDS-Lift-v0": (30, 1501), "LPDS-Can-v0": (20, 1501), "LPDS-Square-v0": (20, 2001)}
    for env_id, (utd, starts) in dsrl_cfg.items():
        for algo in ("lpds", "dsrl", "dsrl-na"):
            p = get_preset(algo, env_id)
            assert p["policy_kwargs"]["net_arch"] == [2048] * 3 and p["policy_kwargs"]["n_critics"] == 2
            assert p["policy_kwargs"].get("layer_norm", False) is (algo != "dsrl")
            assert latent_bound(algo, env_id) == 1.5
            assert (p["n_envs"], p["train_freq"], p["gradient_steps"]) == (4, 1, utd)
            assert p["learning_starts"] == starts and p["gamma"] == 0.99 and p["batch_size"] == 256
            assert p.get("latent_critic_steps", 10) == 10
            if algo != "lpds":
                assert p["target_entropy"] == 0.0


def test_preset_files_reject_duplicate_keys(tmp_path, monkeypatch):
    """A key written twice in a preset file is an error (PyYAML alone keeps the last silently); merges still work."""
    import yaml

    import algorithms.presets as presets

    for algo in available_algos():  # the shipped files load under the strict loader
        assert presets.load_presets(algo)
    (tmp_path / "dup.yml").write_text("Env-v0:\n  delta: 0.1\nEnv-v0:\n  delta: 0.3\n")
    (tmp_path / "merge.yml").write_text("A-v0: &a\n  delta: 0.1\n  gamma: 0.9\nB-v0:\n  <<: *a\n  delta: 0.3\n")
    monkeypatch.setattr(presets, "HYPERPARAMS_DIR", tmp_path)
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'Env-v0'.*line 1"):
        presets.load_presets("dup")
    assert presets.get_preset("merge", "B-v0") == {"delta": 0.3, "gamma": 0.9}


def test_presets_never_restate_a_tasks_latent_bound():
    """One source for each task's latent box (registration.TASKS): a preset may only override it with another value."""
    from lpds_envs.registration import TASKS

    for algo in available_algos():
        for env_id, preset in load_presets(algo).items():
            bound = (preset.get("env_kwargs") or {}).get("latent_bound", "unset")
            task = TASKS[env_id.removeprefix("LPDS-").removesuffix("-v0")]
            assert bound != task.latent_bound, f"{algo}.yml restates {env_id}'s latent bound {bound}"
