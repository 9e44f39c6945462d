"""DPPO (algorithms.DPPO): the two-level MDP's log-probabilities and advantages, the frozen backbone, save/load, the
fine-tuned decoder, raw-step counting, ``lpds train --algo dppo`` and (slow) that it learns on the toy."""

import csv
import json
import math

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.save_util import load_from_zip_file

from algorithms import DPPO
from algorithms.dppo_rollouts import DenoisingRolloutBuffer, RunningRewardScale, clip_ranges, denoising_discounts
from algorithms.presets import get_preset, make_algorithm
from algorithms.registry import get_algorithm
from lpds_envs.decoders import DiffusionDecoder, FineTunedDiffusionDecoder, FlowDecoder, load_decoder
from lpds_envs.evaluation import DecoderPriorPolicy, PriorPolicy, RawStepCallback, evaluate_policy
from lpds_envs.evaluation.episodes import multigoal_coverage
from lpds_envs.experiment import cli
from lpds_envs.experiment import runs as runs_module
from lpds_envs.experiment.config import get_algo, make_run_env
from lpds_envs.registration import task_decoder
from lpds_envs.wrappers import ChunkedActionWrapper

TOY = "lpds/MultiGoal-v0"


def chunked_env(n_envs=2, chunk=1, seed=0):
    return make_vec_env(
        TOY, n_envs=n_envs, seed=seed, wrapper_class=ChunkedActionWrapper, wrapper_kwargs={"chunk_size": chunk}
    )


def small_decoder(chunk=4):
    torch.manual_seed(0)
    dec = DiffusionDecoder(obs_dim=2, action_dim=2, chunk_size=chunk, hidden_dim=32, n_blocks=1, num_train_timesteps=20)
    return dec.freeze()


def small_dppo(decoder, env, **kw):
    args = dict(n_steps=8, batch_size=16, n_epochs=2, seed=0, policy_kwargs={"net_arch": [16, 16]})
    return DPPO("MlpPolicy", env, decoder=decoder, **{**args, **kw})


def test_stored_log_probs_are_the_closed_form_gaussians_of_the_chain():
    """Each stored per-step log-probability is the clipped mean over the chunk of N(x_{k+1}; mu_k, std_k) with mu_k the
    eta-DDIM mean computed by hand from the decoder's epsilon and std_k = max(sigma_k, min_logprob_std)."""
    dec = small_decoder()
    # one iteration of 8 chunks x 2 envs; learning rate 0 keeps the network that sampled the chains
    model = small_dppo(dec, chunked_env(chunk=4), ft_denoising_steps=3, eta=1.0, learning_rate=0.0)
    model.learn(16)
    buf = model.rollout_buffer
    obs = torch.as_tensor(buf.observations.reshape(-1, 2))
    chains = torch.as_tensor(buf.chains.reshape(-1, 4, 4, 2))
    stored = torch.as_tensor(buf.chain_log_probs.reshape(-1, 3))
    actor = model.policy.actor
    s = actor.sampler
    obs_n = actor.normalize_obs(obs)
    K = s.num_inference_steps
    for j in range(3):
        k = K - 3 + j
        x, x_next = chains[:, j], chains[:, j + 1]
        ab, ab_prev = float(s.sqrt_ab[k]) ** 2, float(s.sqrt_ab_prev[k]) ** 2
        with torch.no_grad():
            eps = actor.predict_noise(x, torch.full((len(x),), int(s.timesteps[k])), obs_n)
        x0 = ((x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)).clamp(-1, 1)
        eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)  # recomputed from the clipped x0, as the decoder does
        sigma = math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
        mean = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
        std = max(sigma, 0.1)
        expected = torch.distributions.Normal(mean, std).log_prob(x_next).clamp(-5, 2).mean(dim=(-1, -2))
        torch.testing.assert_close(stored[:, j], expected, atol=1e-5, rtol=1e-5)
    # the log-prob column SB3 keeps is the chain's total
    np.testing.assert_allclose(buf.log_probs.reshape(-1), stored.sum(1).numpy(), rtol=1e-5, atol=1e-5)


def test_learn_never_changes_the_backbone_but_trains_the_copy():
    dec = task_decoder("MultiGoal", None, "cpu")
    before = {k: v.clone() for k, v in dec.state_dict().items()}
    model = small_dppo(dec, chunked_env(), n_steps=20, batch_size=50, learning_rate=1e-3)
    model.learn(80)
    for k, v in dec.state_dict().items():
        assert torch.equal(before[k], v), k
    assert not all(p.requires_grad for p in dec.parameters())
    trained = model.policy.actor.net.state_dict()
    assert any(not torch.equal(trained[k], before[f"net.{k}"]) for k in trained)
    assert model.policy.base is None  # all 10 DDIM steps fine-tuned by default


def test_gae_and_denoising_advantages_by_hand():
    """GAE over env steps (episode boundary, truncation bootstrap added to the reward) and the per-denoising-step
    discount gamma_denoise^(K'-1-k), against a direct computation."""
    gamma, lam = 0.9, 0.8
    buf = DenoisingRolloutBuffer(
        4,
        spaces.Box(-1, 1, (2,)),
        spaces.Box(-1, 1, (1, 2)),
        gamma=gamma,
        gae_lambda=lam,
        n_envs=1,
        chain_shape=(3, 1, 2),
    )
    rewards, values = [1.0, 2.0, -1.0, 0.5], [0.5, 1.0, 0.2, -0.3]
    starts = [1.0, 0.0, 1.0, 0.0]  # a new episode starts at step 2 (step 1 ended the first one)
    for t in range(4):
        buf.add(
            np.zeros((1, 2)), np.zeros((1, 2)), np.array([rewards[t]]), np.array([starts[t]]),
            torch.tensor([values[t]]), torch.zeros(1),
        )  # fmt: skip
    last_value, last_done = 0.7, np.array([False])
    buf.compute_returns_and_advantage(torch.tensor([last_value]), last_done)
    next_values = [values[1], values[2], values[3], last_value]
    nonterminal = [1.0, 0.0, 1.0, 1.0]  # after step 1 the episode ended
    adv, running = [0.0] * 4, 0.0
    for t in reversed(range(4)):
        delta = rewards[t] + gamma * next_values[t] * nonterminal[t] - values[t]
        running = delta + gamma * lam * nonterminal[t] * running
        adv[t] = running
    np.testing.assert_allclose(buf.advantages.ravel(), adv, rtol=1e-6)
    np.testing.assert_allclose(buf.returns.ravel(), np.array(adv) + values, rtol=1e-6)
    # inner MDP: the last denoising step gets the env-step advantage, earlier ones gamma_denoise^(distance)
    torch.testing.assert_close(denoising_discounts(4, 0.95), torch.tensor([0.95**3, 0.95**2, 0.95, 1.0]))
    # DPPO's clip schedule: from clip_range_first at the first fine-tuned step to clip_range at the last
    c = clip_ranges(3, 0.01, 0.001, 3.0)
    mid = 0.001 + 0.009 * (math.exp(1.5) - 1) / (math.exp(3.0) - 1)
    torch.testing.assert_close(c, torch.tensor([0.001, mid, 0.01]))
    assert clip_ranges(1, 0.1, 0.001, 3.0).tolist() == pytest.approx([0.1])


def test_running_reward_scale_divides_by_the_discounted_return_std():
    scale = RunningRewardScale(n_envs=1, gamma=0.5)
    rewards = np.array([[1.0], [2.0], [4.0]])
    starts = np.array([[1.0], [0.0], [1.0]])
    out = scale.update_and_scale(rewards, starts)
    rets = np.array([1.0, 2.5, 4.0])  # 1; 2 + 0.5 * 1; a new episode: 4
    count = 1e-4 + 3  # SB3's RunningMeanStd starts at mean 0, var 1, count 1e-4
    mean = 3 * rets.mean() / count
    var = (1e-4 + rets.var() * 3 + rets.mean() ** 2 * 1e-4 * 3 / count) / count
    np.testing.assert_allclose(out.ravel(), rewards.ravel() / np.sqrt(var + 1e-8), rtol=1e-5)
    assert scale.rms.mean == pytest.approx(mean)


def test_raw_env_steps_count_executed_actions_once():
    dec = small_decoder(chunk=4)  # 20-step episodes in chunks of 4
    model = small_dppo(dec, chunked_env(chunk=4), n_steps=5)
    counter = RawStepCallback(eval_freq=1000)
    counter._measure = lambda: {}
    model.learn(20, callback=counter)
    assert model.num_timesteps == 20 and model.raw_env_steps == 80  # one executed action = one step
    assert counter.raw_env_steps == 80  # the callback reads the same count and does not add its own
    assert get_algorithm("dppo").counts_raw_steps and get_algorithm("dppo").env_type == "chunked"


def test_save_load_round_trip_predicts_the_same(tmp_path):
    dec = small_decoder()
    model = small_dppo(dec, chunked_env(chunk=4), ft_denoising_steps=2, learning_rate=1e-3)
    model.learn(32)
    model.save(tmp_path / "dppo.zip")
    obs = np.random.default_rng(0).uniform(-2, 2, (6, 2)).astype(np.float32)
    for kwargs in ({"env": chunked_env(chunk=4)}, {}):  # the backbone is not needed to load: the policy holds copies
        loaded = DPPO.load(tmp_path / "dppo.zip", **kwargs)
        assert loaded.ft_denoising_steps == 2 and loaded.raw_env_steps == model.raw_env_steps
        for det in (True, False):
            torch.manual_seed(5)
            a, _ = model.predict(obs, deterministic=det)
            torch.manual_seed(5)
            b, _ = loaded.predict(obs, deterministic=det)
            np.testing.assert_array_equal(a, b)
            assert a.shape == (6, 4, 2)
    state = model.policy.state_dict()
    for k, v in loaded.policy.state_dict().items():
        assert torch.equal(v, state[k]), k
    loaded.set_env(chunked_env(chunk=4))
    loaded.learn(16)  # and it trains on


def test_fine_tuned_decoder_round_trip_equals_the_deterministic_policy(tmp_path):
    dec = small_decoder()
    model = small_dppo(dec, chunked_env(chunk=4), ft_denoising_steps=3, learning_rate=1e-3)
    model.learn(32)
    ft = model.fine_tuned_decoder()
    assert isinstance(ft, FineTunedDiffusionDecoder) and ft.fine_tuned_steps == 3
    ft.save_pretrained(tmp_path / "ft")
    loaded = load_decoder(tmp_path / "ft")
    obs = torch.as_tensor(np.random.default_rng(1).uniform(-2, 2, (5, 2)).astype(np.float32))
    torch.manual_seed(7)
    acted, _ = model.predict(obs.numpy(), deterministic=True)  # DDIM (eta = 0) from fresh prior noise
    torch.manual_seed(7)
    w = torch.randn(5, *dec.latent_shape)
    np.testing.assert_allclose(loaded(obs, w).numpy().clip(-1, 1), acted, atol=1e-5)
    torch.testing.assert_close(loaded(obs, w), ft(obs, w))
    assert not torch.allclose(ft(obs, w), dec(obs, w), atol=1e-4)  # the fine-tuned policy differs from the backbone
    full = small_dppo(dec, chunked_env(chunk=4)).fine_tuned_decoder()  # every step fine-tuned: a plain decoder
    assert type(full) is DiffusionDecoder
    torch.testing.assert_close(full(obs, w), dec(obs, w))  # untrained: it is the backbone


def test_wrong_backbones_and_settings_are_refused():
    env = chunked_env(chunk=4)
    with pytest.raises(ValueError, match="decoder="):
        DPPO("MlpPolicy", env)
    with pytest.raises(ValueError, match="ft_denoising_steps"):
        small_dppo(small_decoder(), env, ft_denoising_steps=11)
    with pytest.raises(ValueError, match="chunks"):
        small_dppo(small_decoder(chunk=2), env)
    with pytest.raises(ValueError, match="gamma_denoise"):
        small_dppo(small_decoder(), env, gamma_denoise=0.0)
    with pytest.raises(TypeError, match="DiffusionDecoder"):
        DPPO("MlpPolicy", env, decoder=FlowDecoder(obs_dim=2, action_dim=2, chunk_size=4))
    with pytest.raises(ValueError, match="lpds train --algo dppo"):
        make_algorithm("dppo", "LPDS-MultiGoal-v0")


def test_lpds_train_and_evaluate_dppo_on_the_toy(tmp_path, capsys):
    out = tmp_path / "runs"
    argv = [
        "train", "--algo", "dppo", "--env", "LPDS-MultiGoal-v0", "--steps", "120", "--seeds", "0", "--out", str(out),
        "--eval-freq", "40", "--eval-episodes", "2", "--eval-entropy-states", "4", "--eval-entropy-samples", "16",
        "--no-progress",
        "--set", "n_envs=2", "n_steps=20", "batch_size=100", "n_epochs=1", "policy_kwargs.net_arch=[16,16]",
    ]  # fmt: skip
    cli.main(argv)
    folder = out / "LPDS-MultiGoal-v0" / "dppo" / "seed_0"
    for name in ("config.yaml", "progress.csv", "evaluations.csv", "model.zip", "checkpoint/model.zip"):
        assert (folder / name).is_file(), name
    with open(folder / "evaluations.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # evaluated at rollout boundaries (40 raw steps per iteration) on raw env steps
    assert [int(r["raw_env_steps"]) for r in rows] == [0, 40, 80, 120]
    assert all(float(r["mean_episode_steps"]) == 20 for r in rows)
    # the entropy of the evaluated policy (DDIM from fresh prior noise), comparable to the steering learners'
    assert all(np.isfinite(float(r["action_entropy"])) for r in rows)
    with open(folder / "progress.csv", newline="") as f:
        logged = list(csv.DictReader(f))
    keys = set(logged[-1])
    for key in ("train/policy_gradient_loss", "train/value_loss", "train/approx_kl", "train/clip_fraction"):
        assert key in keys, key
    assert int(logged[-1]["time/raw_env_steps"]) == 120
    cli.main(["evaluate", "--model", str(folder), "--episodes", "3", "--json", str(tmp_path / "e.json")])
    text = capsys.readouterr().out
    assert "deterministic policy" in text and "return" in text
    assert "action entropy      n/a" not in text
    alone = json.loads((tmp_path / "e.json").read_text())
    # against the frozen backbone on the same episodes (the fine-tuning studies' paired comparison)
    cli.main(
        ["evaluate", "--model", str(folder), "--episodes", "3", "--vs-backbone", "--json", str(tmp_path / "e.json")]
    )
    r = json.loads((tmp_path / "e.json").read_text())
    assert r["mean_return"] == alone["mean_return"] and r["backbone"]["episodes"] == 3
    assert r["gain"] == r["mean_return"] - r["backbone"]["mean_return"]
    assert "gain over backbone" in capsys.readouterr().out
    loaded = DPPO.load(folder / "model.zip")
    assert loaded.fine_tuned_decoder().latent_shape == (1, 2)


def test_the_backbone_on_the_chunked_env_is_the_backbone_on_the_latent_env():
    """``lpds evaluate --vs-backbone`` of a fine-tuning baseline runs :class:`DecoderPriorPolicy` on its chunk env;
    with the same latent draws and box it plays the same episodes as :class:`PriorPolicy` on the task's latent env,
    so steering and fine-tuning gains are measured against one backbone."""
    env_id = "LPDS-Avoiding-v0"  # chunks of 8 steps, latent box 2.5
    latent = make_run_env(get_algo("lpds"), env_id, n_envs=4)
    chunked = make_run_env(get_algo("dppo"), env_id, n_envs=4)
    dec = task_decoder("Avoiding")
    a = evaluate_policy(PriorPolicy(dec.latent_dim, seed=3), latent, False, seed=11, episodes=6)
    b = evaluate_policy(DecoderPriorPolicy(dec, 2.5, seed=3), chunked, False, seed=11, episodes=6)
    np.testing.assert_allclose(a.returns, b.returns)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    for pa, pb in zip(a.paths, b.paths):
        np.testing.assert_allclose(pa, pb, atol=1e-6)


def test_lpds_train_dppo_resumes_exactly_after_an_interruption(tmp_path, monkeypatch):
    """Checkpoints at iteration boundaries hold the policy, both optimisers, the running reward scale, the RNG
    streams and the envs: an interrupted run resumed by the same command ends with the same weights and evaluations
    as an uninterrupted one."""

    def argv(out):
        return [
            "train", "--algo", "dppo", "--env", "LPDS-MultiGoal-v0", "--steps", "160", "--seeds", "0", "--out",
            str(out), "--eval-freq", "40", "--checkpoint-freq", "40", "--eval-episodes", "2", "--no-progress",
            "--set", "n_envs=2", "n_steps=20", "batch_size=100", "n_epochs=1", "policy_kwargs.net_arch=[16,16]",
        ]  # fmt: skip

    full, cut = tmp_path / "full", tmp_path / "cut"
    cli.main(argv(full))
    original = runs_module.TrainingRun.after_step

    def interrupt(self, *args):
        original(self, *args)
        if self.raw >= 100:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(runs_module.TrainingRun, "after_step", interrupt)
        with pytest.raises(SystemExit):
            cli.main(argv(cut))
    cli.main(argv(cut))  # resumes from the checkpoint at 80 raw env steps
    folders = [p / "LPDS-MultiGoal-v0" / "dppo" / "seed_0" for p in (full, cut)]
    (data_a, params_a, _), (data_b, params_b, _) = (load_from_zip_file(f / "model.zip") for f in folders)
    for key in ("num_timesteps", "raw_env_steps", "_n_updates", "_iterations"):
        assert data_a[key] == data_b[key], key
    assert data_a["raw_env_steps"] == 160
    np.testing.assert_array_equal(data_a["reward_scale"].ret, data_b["reward_scale"].ret)
    for name in params_a:
        for key, tensor in params_a[name].items():
            if isinstance(tensor, torch.Tensor):
                assert torch.equal(tensor, params_b[name][key]), (name, key)
    rows = []
    for f in folders:
        with open(f / "evaluations.csv", newline="") as fh:
            rows.append([{k: v for k, v in r.items() if k != "time_s"} for r in csv.DictReader(fh)])
    assert rows[0] == rows[1] and [int(r["raw_env_steps"]) for r in rows[0]] == [0, 40, 80, 120, 160]


@pytest.mark.slow
def test_dppo_raises_the_toy_return_above_the_frozen_backbone():
    """The toy preset (DPPO's D3IL-Avoiding config, actor lr 1e-4), seed 0, 8000 raw env steps (the toy studies'
    budget; about 2 minutes on an unloaded core): DPPO's evaluation policy, the fine-tuned decoder with prior latents,
    beats the frozen backbone over 4000 rollouts from the origin by more than 2 standard errors of the difference.
    ``benchmarks/toy_dppo_modes.py`` measured gains of +1.46, +0.56 and +2.44 (seeds 0-2, 1000 rollouts, SE about 0.4)
    at this budget."""
    torch.set_num_threads(1)
    dec = task_decoder("MultiGoal", None, "cpu")
    hp = get_preset("dppo", "LPDS-MultiGoal-v0")
    n_envs = hp.pop("n_envs")
    model = DPPO("MlpPolicy", chunked_env(n_envs=n_envs), decoder=dec, seed=0, **hp)
    model.learn(8000)
    assert model.raw_env_steps == 8000
    n = 4000
    backbone = multigoal_coverage(dec, n_rollouts=n, seed=10_000)
    tuned = multigoal_coverage(model.fine_tuned_decoder(), n_rollouts=n, seed=10_000)
    gain = tuned["mean_return"] - backbone["mean_return"]
    se = math.sqrt((tuned["std_return"] ** 2 + backbone["std_return"] ** 2) / n)
    print(f"backbone {backbone['mean_return']:.2f}, DPPO {tuned['mean_return']:.2f}, gain {gain:.2f} (SE {se:.2f})")
    assert gain > 2 * se
