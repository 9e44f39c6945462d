"""IDQL: the expectile loss, Q-based candidate selection, a copy of the backbone trained by the denoising loss, raw
step counting, logging, save/load and the fine-tuned decoder, on the toy's chunked env."""

import csv

import numpy as np
import pytest
import torch
from stable_baselines3.common.logger import configure

from algorithms import IDQL
from algorithms.idql import expectile_loss, select_candidates
from lpds_envs.decoders import DiffusionDecoder, FlowDecoder, load_decoder
from lpds_envs.wrappers import ChunkedActionWrapper
from tests.algorithms.finetune_toy import backbone_return, toy_backbone, toy_chunked_env, toy_return

TINY = dict(learning_starts=40, batch_size=32, n_candidates=8, policy_kwargs={"net_arch": [32, 32]})


def tiny_idql(**kwargs):
    return IDQL("MlpPolicy", toy_chunked_env(), decoder=toy_backbone(), seed=0, **{**TINY, **kwargs})


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_expectile_loss_is_the_asymmetric_square():
    diff = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    for tau in (0.5, 0.7, 0.9):
        expected = torch.tensor([(tau if d > 0 else 1 - tau) * float(d) ** 2 for d in diff])
        torch.testing.assert_close(expectile_loss(diff, tau), expected)
    # an upper expectile: the minimiser of the mean loss over constants v lies above the mean of the samples
    v = torch.zeros((), requires_grad=True)
    opt = torch.optim.SGD([v], lr=0.5)
    for _ in range(500):
        opt.zero_grad()
        expectile_loss(diff - v, 0.9).mean().backward()
        opt.step()
    assert float(v.detach()) > float(diff.mean()) + 0.5


def test_select_candidates_takes_the_argmax_or_samples_by_expectile_weights():
    g = torch.Generator().manual_seed(1)
    chunks, q = torch.randn(6, 5, 1, 2, generator=g), torch.randn(6, 5, generator=g)
    best = select_candidates(chunks, q)
    for b in range(5):
        torch.testing.assert_close(best[b], chunks[int(q[:, b].argmax()), b])
    # with V: only candidates with Q > V carry weight 0.999 against 0.001, so those are drawn
    q = torch.zeros(6, 5)
    q[2] = 1.0
    torch.manual_seed(0)
    picks = [select_candidates(chunks, q, torch.full((5,), 0.5), expectile=0.999) for _ in range(20)]
    assert sum(bool(torch.equal(p, chunks[2])) for p in picks) >= 18


def test_predict_picks_the_candidate_with_the_largest_target_q():
    model = tiny_idql()
    obs = torch.tensor([[0.0, 0.0], [0.5, -0.3], [-1.0, 1.2]])
    with torch.no_grad():
        chunks, q = model.policy.candidates(obs, deterministic=True)
        chosen = model.policy._predict(obs, deterministic=True)
        q_manual = model.policy.q_values(obs.repeat(8, 1), chunks.reshape(24, 1, 2), target=True).min(dim=1).values
    torch.testing.assert_close(q, q_manual.reshape(8, 3))
    for b in range(3):
        torch.testing.assert_close(chosen[b], chunks[int(q[:, b].argmax()), b])
    action, _ = model.predict(obs.numpy(), deterministic=True)
    np.testing.assert_allclose(action, np.clip(chosen.numpy(), -1, 1), atol=1e-6)
    np.testing.assert_array_equal(action, model.predict(obs.numpy(), deterministic=True)[0])  # fixed noises


def test_learn_trains_a_copy_counts_raw_steps_and_logs_every_loss(tmp_path):
    backbone = toy_backbone()
    before = snapshot(backbone)
    model = tiny_idql(critic_warmup_steps=10)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(total_timesteps=120, log_interval=1)
    assert model.num_timesteps == 120 and model.raw_env_steps == 120  # Ta = 1: one chunk is one raw step
    assert model._n_updates == 80
    for key, value in backbone.state_dict().items():  # the shipped backbone is untouched ...
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    assert not any(p.requires_grad for p in backbone.parameters())
    actor = model.policy.actor
    assert actor is not backbone and all(p.requires_grad for p in actor.parameters())
    moved = [k for k, v in actor.state_dict().items() if not torch.equal(v, before[k])]  # ... its copy is trained
    assert any(k.startswith("net.") for k in moved)
    with open(tmp_path / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    logged = set(rows[-1])
    for key in ("value_loss", "critic_loss", "actor_loss", "q", "v", "advantage", "target", "actor_updates"):
        assert f"train/{key}" in logged
        assert np.isfinite(float(rows[-1][f"train/{key}"]))
    assert "time/raw_env_steps" in logged and float(rows[-1]["time/raw_env_steps"]) > 0
    warm = [float(r["train/actor_updates"]) for r in rows if r.get("train/actor_updates")]
    assert warm[-1] == 1.0  # past the 10 warm-up steps the actor moves


def test_a_seed_repeats_training_exactly_with_a_progress_bar():
    runs = []
    for _ in range(2):
        model = tiny_idql()
        model.learn(total_timesteps=60, progress_bar=True)
        runs.append(model.policy.state_dict())
    for key, value in runs[0].items():
        torch.testing.assert_close(runs[1][key], value, rtol=0, atol=0)


def test_critic_warmup_keeps_the_actor_at_the_backbone():
    model = tiny_idql(critic_warmup_steps=10_000)
    model.learn(total_timesteps=80)
    for key, value in model.policy.actor.state_dict().items():
        torch.testing.assert_close(value, toy_backbone().state_dict()[key], rtol=0, atol=0)
    critic_moved = not torch.equal(model.policy.critic.q_nets[0].weight, model.policy.critic_target.q_nets[0].weight)
    assert model._n_updates == 40 and critic_moved


def test_save_load_round_trip_predicts_the_same(tmp_path):
    model = tiny_idql()
    model.learn(total_timesteps=80)
    model.save(tmp_path / "idql.zip")
    loaded = IDQL.load(tmp_path / "idql.zip", env=toy_chunked_env())  # no decoder: the fine-tuned actor is saved
    obs = np.array([[0.0, 0.0], [0.3, 0.7], [-1.5, -0.2]], dtype=np.float32)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    torch.manual_seed(5)
    stochastic = model.predict(obs, deterministic=False)[0]
    torch.manual_seed(5)
    np.testing.assert_array_equal(stochastic, loaded.predict(obs, deterministic=False)[0])
    for key, value in model.policy.state_dict().items():
        torch.testing.assert_close(loaded.policy.state_dict()[key], value, rtol=0, atol=0)
    assert loaded.raw_env_steps == 80 and loaded.n_candidates == 8
    assert loaded.value_optimizer.state_dict()["state"]  # optimiser moments came back too
    loaded.learn(total_timesteps=20, reset_num_timesteps=False)  # and training goes on
    assert loaded.raw_env_steps == 100


def test_fine_tuned_decoder_saves_and_loads_as_a_diffusion_decoder(tmp_path):
    model = tiny_idql()
    model.learn(total_timesteps=80)
    decoder = model.fine_tuned_decoder()
    assert isinstance(decoder, DiffusionDecoder) and decoder is not model.policy.actor
    assert not any(p.requires_grad for p in decoder.parameters())
    obs, w = torch.randn(16, 2), torch.randn(16, 1, 2)
    with torch.no_grad():
        torch.testing.assert_close(decoder(obs, w), model.policy.actor(obs, w))
    assert not torch.allclose(decoder(obs, w), toy_backbone()(obs, w))  # fine-tuned, not the backbone
    decoder.save_pretrained(tmp_path / "ft")
    reloaded = load_decoder(tmp_path / "ft")
    assert isinstance(reloaded, DiffusionDecoder)
    torch.testing.assert_close(reloaded(obs, w), decoder(obs, w), rtol=0, atol=0)
    model.learn(total_timesteps=20, reset_num_timesteps=False)  # the returned decoder is a copy
    torch.testing.assert_close(reloaded(obs, w), decoder(obs, w), rtol=0, atol=0)


def test_refuses_a_non_diffusion_backbone_and_a_mismatched_chunk():
    flow = FlowDecoder(obs_dim=2, action_dim=2, chunk_size=1)
    with pytest.raises(TypeError, match="DiffusionDecoder"):
        IDQL("MlpPolicy", toy_chunked_env(), decoder=flow)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ChunkedActionWrapper"):
        IDQL("MlpPolicy", ChunkedActionWrapper(toy_chunked_env().env, 4), decoder=toy_backbone())
    with pytest.raises(ValueError, match="decoder="):
        IDQL("MlpPolicy", toy_chunked_env())


@pytest.mark.slow
def test_idql_raises_the_toy_return_above_the_backbone():
    """Fixed seed and budget: 500 chunks (= raw steps) with the toy preset's settings. Measured on torch 2.13 CPU:
    the Q-selected policy returns 178.4 on 500 episodes, the backbone 173.9 on the same seeds."""
    torch.set_num_threads(1)
    model = IDQL("MlpPolicy", toy_chunked_env(), decoder=toy_backbone(), seed=0, learning_starts=200, batch_size=256)
    model.learn(total_timesteps=500)
    tuned = toy_return(lambda obs: model.predict(obs, deterministic=True)[0], episodes=500, seed=123)
    backbone = backbone_return(episodes=500, seed=123)
    assert tuned > backbone + 1.0, (tuned, backbone)
