"""Learning checks (``-m slow``): on a fixed seed and step budget, steering raises the frozen backbone's return.

Budget: 5000 latent steps (= raw env steps, chunk 1) on LPDS-MultiGoal-v0, evaluated with 4000 rollouts from the
origin. The shipped backbone's mean return is ~174 out of a ~189 maximum (reach a goal in two steps, stay).

The criterion is a significant gain: the steered mean must exceed the backbone's by ``Z = 5`` standard errors of the
difference of the two means (~0.1 with 4000 rollouts each, so a gain of at least ~0.5). It replaced a fixed +1.0
margin measured on 1000 rollouts, which sat on LP-DS's plateau at the preset's delta = 0.05: at one seed the gain
was +0.98 with 2 torch threads and +1.06 with 1, +1.07 when the test was written, +0.94 on seed 1, +0.81 on seed 1
after 10000 steps (benchmarks/RESULTS.md §14). That margin tested the thread count, not learning.
"""

import numpy as np
import pytest
import torch

from algorithms.presets import make_algorithm
from lpds_envs.evaluation import BackboneComparison, multigoal_coverage

STEPS, N_EVAL, Z = 5000, 4000, 5.0


def _gain_and_se(steered: dict, baseline: dict) -> tuple[float, float]:
    """Difference of the mean returns and its standard error (independent rollouts of each policy)."""
    se = np.sqrt((steered["return_std"] ** 2 + baseline["return_std"] ** 2) / N_EVAL)
    return steered["mean_return"] - baseline["mean_return"], float(se)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["lpds", "dsrl-na", "dsrl"])
def test_steering_improves_the_toy_backbone(algo):
    torch.set_num_threads(2)
    model = make_algorithm(algo, "LPDS-MultiGoal-v0", seed=0)
    decoder = model.get_env().decoder
    baseline = multigoal_coverage(decoder, n_rollouts=N_EVAL, seed=1)
    model.learn(STEPS)
    deterministic = algo != "lpds"  # LP-DS's policy is eps + Delta(s): evaluate the stochastic steered policy
    steered = multigoal_coverage(
        decoder, N_EVAL, seed=1, latent_fn=lambda o, m=model, d=deterministic: m.predict(o, deterministic=d)[0]
    )
    gain, se = _gain_and_se(steered, baseline)
    assert gain > Z * se, (steered["mean_return"], baseline["mean_return"], gain, se)
    if algo == "lpds":
        # LP-DS with delta = 0.05 keeps all four goals (the trust region preserves the backbone's modes)
        assert (np.array(steered["goal_fractions"]) > 0.1).all(), steered["goal_fractions"]


# --------------------------------------------------------------------------- LPDS-Hopper-v0 (issue 6)
# The benchmarks/hopper_study.sh LP-DS run at DSRL's update ratio (20 gradient steps per update of 8 chunks, prior
# cache 8), seed 0, to 40k raw env steps: ~1.5 h on one CPU core. Evaluation happens under its own RNG streams on
# separate envs, so evaluating once at the end instead of every 2500 steps leaves the training run unchanged.
HOPPER_STEPS, HOPPER_EVAL, HOPPER_Z = 40_000, 50, 3.0
HOPPER_OVERRIDES = {"gradient_steps": 20, "alpha_lr": 0.01, "prior_cache": 8, "env_kwargs": {"backbone": "diffusion"}}


def hopper_gain(model, cfg, episodes: int = HOPPER_EVAL) -> BackboneComparison:
    """The steered policy and the frozen backbone on the same ``episodes`` reset seeds (gain and its SE)."""
    from lpds_envs.evaluation import compare_with_backbone
    from lpds_envs.experiment.config import make_run_env

    venv = make_run_env(cfg.spec, cfg.env_id, cfg.env_kwargs, 10, None, "cpu")
    try:
        return compare_with_backbone(model, venv, cfg.eval_deterministic, 20_000, episodes)
    finally:
        venv.close()


@pytest.mark.slow
def test_lagrangian_sac_improves_the_hopper_backbone(tmp_path):
    pytest.importorskip("mujoco", reason="LPDS-Hopper-v0 needs gymnasium[mujoco]")
    from lpds_envs.experiment.config import RunConfig, get_algo, resolve_hyperparams
    from lpds_envs.experiment.runs import TrainingRun

    torch.set_num_threads(1)
    hp = resolve_hyperparams(get_algo("lpds"), "LPDS-Hopper-v0", None, HOPPER_OVERRIDES)
    cfg = RunConfig(
        algo="lpds", env_id="LPDS-Hopper-v0", seed=0, steps=HOPPER_STEPS, out=str(tmp_path), hyperparams=hp,
        eval_freq=HOPPER_STEPS, eval_episodes=1, checkpoint_freq=HOPPER_STEPS, device="cpu",
    )  # fmt: skip
    run = TrainingRun(cfg, progress=False)
    run.run()
    r = hopper_gain(run.model, cfg)
    assert r.gain > HOPPER_Z * r.gain_se, (r.steered.mean_return, r.backbone.mean_return, r.gain_se)


# --------------------------------------------------------------------------- LPDS-Walker2d-v0 (issue 32)
# benchmarks/walker2d_study.sh's seed-0 runs of LP-DS (fast mode) and DSRL-SAC: the DSRL Walker2d preset with
# 3 x 128 nets, 20k raw env steps (~10 and ~4 min on one core), then both final policies on the same 50
# reset seeds. The study (3 seeds each, docs/results/walker2d.md): LP-DS 829-865 against DSRL-SAC 142-413 (backbone
# 760), each seed's difference 5-9 standard errors; seed 0: 865.4 against 345.6. DSRL-SAC's actor starts off the
# prior (its initial tanh-Gaussian is not N(0, I)) and has not come back to the backbone's return at this budget;
# LP-DS's trust region keeps it on the backbone and above.
WALKER_STEPS, WALKER_EPISODES, WALKER_Z = 20_000, 50, 3.0
# `--set policy_kwargs.net_arch=[128,128,128]` of the study: merged into each preset's policy_kwargs (LP-DS keeps its
# LayerNorm; SB3's SAC policy, DSRL-SAC's, has none)
WALKER_OVERRIDES = {"policy_kwargs": {"net_arch": [128, 128, 128]}, "env_kwargs": {"backbone": "diffusion"}}


@pytest.mark.slow
def test_lpds_stays_above_dsrl_sac_on_walker2d_at_a_small_budget(tmp_path):
    pytest.importorskip("mujoco", reason="LPDS-Walker2d-v0 needs gymnasium[mujoco]")
    from lpds_envs.evaluation import compare_with_backbone
    from lpds_envs.experiment.config import RunConfig, get_algo, make_run_env, resolve_hyperparams
    from lpds_envs.experiment.runs import TrainingRun

    torch.set_num_threads(1)
    steered = {}
    for algo, extra in (("lpds", {"prior_cache": 8, "td_target": "latent_critic"}), ("dsrl", {})):
        hp = resolve_hyperparams(get_algo(algo), "LPDS-Walker2d-v0", None, {**WALKER_OVERRIDES, **extra})
        cfg = RunConfig(
            algo=algo, env_id="LPDS-Walker2d-v0", seed=0, steps=WALKER_STEPS, out=str(tmp_path / algo),
            hyperparams=hp, eval_freq=WALKER_STEPS, eval_episodes=1, checkpoint_freq=WALKER_STEPS, device="cpu",
        )  # fmt: skip
        run = TrainingRun(cfg, progress=False)
        run.run()
        venv = make_run_env(cfg.spec, cfg.env_id, cfg.env_kwargs, 10, None, "cpu")
        try:
            steered[algo] = compare_with_backbone(run.model, venv, cfg.eval_deterministic, 20_000, WALKER_EPISODES)
        finally:
            venv.close()
    lpds, dsrl = steered["lpds"].steered, steered["dsrl"].steered
    se = float(np.sqrt((lpds.std_return**2 + dsrl.std_return**2) / WALKER_EPISODES))
    assert lpds.mean_return - dsrl.mean_return > WALKER_Z * se, (lpds.mean_return, dsrl.mean_return, se)
    assert steered["lpds"].gain > -steered["lpds"].gain_se, (lpds.mean_return, steered["lpds"].backbone.mean_return)


# --------------------------------------------------------------------------- LPDS-Avoiding-v0 (issue 33)
# benchmarks/avoiding_study.sh's seed-0 runs of LP-DS at delta = 0.01 and of DSRL-SAC (presets of
# algorithms/hyperparams/{lpds,dsrl}.yml), stopped at AVOIDING_STEPS raw env steps (a few minutes each on one core),
# then 100 stochastic rollouts from D3IL's fixed start as benchmarks/avoiding_report.py draws them (about 6 minutes
# on a loaded 2-core machine). Measured: LP-DS 15 routes, entropy 0.74, most used route 0.19 of the successes;
# DSRL-SAC 2 routes, 0.15, 0.81 (the study's seed-0 models at this budget: 14 / 0.70 / 0.29 and 3 / 0.17 / 0.81,
# other rollout draws; docs/results/avoiding.md).
AVOIDING_STEPS, AVOIDING_EPISODES = 20_000, 100


def _avoiding_routes(algo: str, overrides: dict, tmp_path) -> dict:
    from lpds_envs.backbones.zoo.avoiding import rollout_paths, route_histogram
    from lpds_envs.experiment.config import RunConfig, get_algo, resolve_hyperparams
    from lpds_envs.experiment.runs import TrainingRun
    from lpds_envs.metrics import behaviour_entropy, model_sampler
    from lpds_envs.registration import task_decoder

    hp = resolve_hyperparams(get_algo(algo), "LPDS-Avoiding-v0", None, overrides)
    cfg = RunConfig(
        algo=algo, env_id="LPDS-Avoiding-v0", seed=0, steps=AVOIDING_STEPS, out=str(tmp_path / algo), hyperparams=hp,
        eval_freq=AVOIDING_STEPS, eval_episodes=1, checkpoint_freq=AVOIDING_STEPS, device="cpu",
    )  # fmt: skip
    run = TrainingRun(cfg, progress=False)
    run.run()
    torch.manual_seed(0)
    roll = rollout_paths(task_decoder("Avoiding"), n=AVOIDING_EPISODES, seed=20_000, latent_fn=model_sampler(run.model))
    ok = np.asarray(roll["success"], dtype=bool)
    hist = np.asarray(route_histogram(np.asarray(roll["routes"])[ok]))
    return {
        "routes_hit": int(np.count_nonzero(hist)),
        "entropy": behaviour_entropy(roll["routes"], ok),
        "top_route_share": float(hist.max() / max(hist.sum(), 1)),
        "success": float(ok.mean()),
    }


@pytest.mark.slow
def test_small_delta_keeps_more_avoiding_routes_than_dsrl(tmp_path):
    """Fig. 4's ordering on a fixed seed and budget: LP-DS with delta = 0.01 keeps more of D3IL's routes, with a
    higher behaviour entropy and no dominant route, where DSRL-SAC concentrates its successes on a few."""
    torch.set_num_threads(1)
    lpds = _avoiding_routes("lpds", {"delta": 0.01}, tmp_path)
    dsrl = _avoiding_routes("dsrl", {}, tmp_path)
    print(f"LP-DS delta 0.01: {lpds}; DSRL-SAC: {dsrl}")
    assert lpds["routes_hit"] >= dsrl["routes_hit"] + 5, (lpds, dsrl)
    assert lpds["entropy"] > dsrl["entropy"] + 0.2, (lpds, dsrl)
    assert lpds["top_route_share"] < 0.5 < dsrl["top_route_share"], (lpds, dsrl)
