import json
import math

import numpy as np
import pytest
import torch

from lpds_envs.decoders import (
    CallableDecoder,
    DiffusionDecoder,
    FlowDecoder,
    integrate_ode,
    load_decoder,
    make_betas,
)
from tests.conftest import small_decoder


def test_deterministic_and_frozen(decoder):
    obs, w = torch.randn(8, 5), torch.randn(8, 4, 3)
    a1, a2 = decoder(obs, w), decoder(obs.clone(), w.clone())
    assert a1.shape == (8, 4, 3)
    assert torch.equal(a1, a2)
    assert all(not p.requires_grad for p in decoder.parameters())
    # the output is an ordinary tensor: it can feed a network trained with autograd (a critic)
    lin = torch.nn.Linear(12, 1)
    lin(a1.flatten(1)).sum().backward()
    assert lin.weight.grad is not None


def test_batch_of_32_matches_32_single_calls(decoder):
    obs, w = torch.randn(32, 5), torch.randn(32, 4, 3)
    batched = decoder(obs, w)
    single = torch.cat([decoder(obs[i : i + 1], w[i : i + 1]) for i in range(32)])
    # BLAS picks different kernels for B=1 and B=32, so agreement is to float32 rounding, not bitwise
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


def test_flat_latent_and_numpy_inputs(decoder):
    obs, w = np.random.randn(4, 5).astype(np.float32), np.random.randn(4, 12).astype(np.float32)
    out = decoder(obs, w)
    torch.testing.assert_close(out, decoder(torch.from_numpy(obs), torch.from_numpy(w).view(4, 4, 3)))


def test_latent_changes_the_action(decoder):
    obs = torch.zeros(2, 5)
    out = decoder(obs, torch.stack([torch.zeros(4, 3), torch.ones(4, 3)]))
    assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize(
    "spacing,clip,tol",
    [("trailing", True, 1e-5), ("leading", True, 1e-5), ("leading", False, 1e-5), ("trailing", False, None)],
)
def test_ddim_matches_diffusers(spacing, clip, tol):
    diffusers = pytest.importorskip("diffusers")
    dec = small_decoder(
        "diffusion",
        num_train_timesteps=100,
        num_inference_steps=10,
        timestep_spacing=spacing,
        clip_sample=clip,
        beta_schedule="cosine",
    )
    sched = diffusers.DDIMScheduler(
        num_train_timesteps=100,
        trained_betas=make_betas(100, "cosine").numpy(),
        clip_sample=clip,
        clip_sample_range=1.0,
        set_alpha_to_one=True,
        steps_offset=0,
        timestep_spacing=spacing,
        prediction_type="epsilon",
    )
    sched.set_timesteps(10)
    assert sched.timesteps.tolist() == dec.sampler.timesteps.tolist()
    obs, w = torch.randn(16, 5), torch.randn(16, 4, 3)
    ours = dec(obs, w)
    x, obs_n = w.clone(), dec.normalize_obs(obs)
    with torch.no_grad():
        for t in sched.timesteps:
            eps = dec.predict_noise(x, t.expand(16), obs_n)
            x = sched.step(eps, t, x, eta=0.0, use_clipped_model_output=True).prev_sample
    ref = dec.unnormalize_actions(x)
    if tol is None:
        # unclipped from t = T-1 divides by sqrt(alpha_bar) ~ 6e-3: compare relative to the output scale
        tol = 1e-5 * float(ref.abs().max())
    torch.testing.assert_close(ours, ref, atol=tol, rtol=0)


def test_ddim_linear_schedule_matches_diffusers():
    diffusers = pytest.importorskip("diffusers")
    dec = small_decoder(
        "diffusion", num_train_timesteps=20, num_inference_steps=5, beta_schedule="linear", timestep_spacing="leading"
    )
    sched = diffusers.DDIMScheduler(
        num_train_timesteps=20,
        trained_betas=make_betas(20, "linear").numpy(),
        clip_sample=True,
        set_alpha_to_one=True,
        timestep_spacing="leading",
    )
    sched.set_timesteps(5)
    obs, w = torch.randn(8, 5), torch.randn(8, 4, 3)
    x, obs_n = w.clone(), dec.normalize_obs(obs)
    with torch.no_grad():
        for t in sched.timesteps:
            x = sched.step(dec.predict_noise(x, t.expand(8), obs_n), t, x, use_clipped_model_output=True).prev_sample
    torch.testing.assert_close(dec(obs, w), dec.unnormalize_actions(x), atol=1e-5, rtol=0)


def test_ode_integrators_on_closed_form_flows():
    # dx/dt = A x  ->  x(1) = expm(A) x0 ; dx/dt = t x  ->  x(1) = exp(1/2) x0
    A = torch.tensor([[0.0, -1.0], [1.0, -0.3]], dtype=torch.float64)
    x0 = torch.tensor([[1.0, 0.5], [-2.0, 0.3]], dtype=torch.float64)
    exact_linear = x0 @ torch.linalg.matrix_exp(A).T
    exact_t = x0 * math.exp(0.5)
    for velocity, exact in ((lambda x, t: x @ A.T, exact_linear), (lambda x, t: t[:, None] * x, exact_t)):
        errs = {}
        for method in ("euler", "midpoint"):
            for n in (10, 20, 40):
                errs[method, n] = float((integrate_ode(velocity, x0, n, method) - exact).abs().max())
        # first order: halving h halves the error; second order: quarters it
        assert 1.7 < errs["euler", 20] / errs["euler", 40] < 2.3
        assert 3.5 < errs["midpoint", 20] / errs["midpoint", 40] < 4.5
        assert errs["midpoint", 10] < errs["euler", 10] / 5  # and far more accurate at equal steps
    with pytest.raises(ValueError, match="integrator"):
        integrate_ode(lambda x, t: x, x0, 10, "rk4")


def test_flow_decoder_integrates_its_velocity():
    dec = small_decoder("flow", integrator="midpoint", num_inference_steps=7, clip_output=False)
    obs, w = torch.randn(4, 5), torch.randn(4, 4, 3)
    obs_n = dec.normalize_obs(obs)
    with torch.no_grad():
        ref = integrate_ode(lambda x, t: dec.velocity(x, t, obs_n), w, 7, "midpoint")
    torch.testing.assert_close(dec(obs, w), dec.unnormalize_actions(ref))


@pytest.mark.parametrize("kind", ["diffusion", "flow"])
def test_save_load_round_trip_bit_exact(kind, tmp_path):
    dec = small_decoder(kind)
    dec.save_pretrained(tmp_path / "ckpt")
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert "config.json" in files and "model.safetensors" in files
    assert not any(f.endswith((".pt", ".bin", ".pkl")) for f in files)
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["decoder_type"] == kind
    for loaded in (load_decoder(tmp_path / "ckpt"), type(dec).from_pretrained(str(tmp_path / "ckpt"))):
        assert type(loaded) is type(dec)
        for k, v in dec.state_dict().items():
            assert torch.equal(v, loaded.state_dict()[k]), k
        obs, w = torch.randn(6, 5), torch.randn(6, 4, 3)
        assert torch.equal(dec(obs, w), loaded(obs, w))
        assert all(not p.requires_grad for p in loaded.parameters())


def test_from_pretrained_overrides(tmp_path):
    small_decoder("diffusion").save_pretrained(tmp_path)
    dec = DiffusionDecoder.from_pretrained(tmp_path, num_inference_steps=5)
    assert dec.sampler.num_inference_steps == 5


def test_wrong_class_is_named(tmp_path):
    small_decoder("flow").save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="FlowDecoder"):
        DiffusionDecoder.from_pretrained(tmp_path)


def test_bad_latents_and_obs_raise_clear_errors(decoder):
    obs = torch.zeros(2, 5)
    with pytest.raises(ValueError, match=r"latent has shape \(2, 7\), expected \(2, 4, 3\)"):
        decoder(obs, torch.zeros(2, 7))
    with pytest.raises(TypeError, match="dtype torch.int64"):
        decoder(obs, torch.zeros(2, 4, 3, dtype=torch.int64))
    w = torch.zeros(2, 4, 3)
    w[1, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or inf \(batch rows \[1\]\)"):
        decoder(obs, w)
    with pytest.raises(ValueError, match=r"observation has shape \(2, 3\), expected \(B, 5\)"):
        decoder(torch.zeros(2, 3), torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match="latent batch has 3 rows, expected 2"):
        decoder(obs, torch.zeros(3, 4, 3))


def test_missing_and_corrupt_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_decoder(tmp_path / "nope")
    good = tmp_path / "good"
    small_decoder("diffusion").save_pretrained(good)

    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((good / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        load_decoder(no_weights)

    bad_json = tmp_path / "bad_json"
    bad_json.mkdir()
    (bad_json / "config.json").write_text("{not json")
    (bad_json / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="not valid JSON"):
        load_decoder(bad_json)

    bad_weights = tmp_path / "bad_weights"
    bad_weights.mkdir()
    (bad_weights / "config.json").write_text((good / "config.json").read_text())
    (bad_weights / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_decoder(bad_weights)

    mismatch = tmp_path / "mismatch"
    mismatch.mkdir()
    cfg = json.loads((good / "config.json").read_text())
    cfg["hidden_dim"] = 64
    (mismatch / "config.json").write_text(json.dumps(cfg))
    (mismatch / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="has shape"):
        load_decoder(mismatch)

    untyped = tmp_path / "untyped"
    untyped.mkdir()
    (untyped / "config.json").write_text("{}")
    (untyped / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="decoder_type"):
        load_decoder(untyped)


def test_hub_id_goes_through_huggingface_hub(monkeypatch, tmp_path):
    """A repo id is fetched with hf_hub_download; here the 'hub' is a local folder (no network)."""
    src = tmp_path / "hub"
    dec = small_decoder("flow")
    dec.save_pretrained(src)
    calls = []

    def fake_download(repo_id, filename, **kwargs):
        calls.append((repo_id, filename))
        return str(src / filename)

    monkeypatch.setattr("lpds_envs.decoders.base.hf_hub_download", fake_download)
    loaded = load_decoder("someone/some-backbone")
    assert calls == [("someone/some-backbone", "config.json"), ("someone/some-backbone", "model.safetensors")]
    obs, w = torch.randn(3, 5), torch.randn(3, 4, 3)
    assert torch.equal(loaded(obs, w), dec(obs, w))


def test_unreachable_hub_id_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def offline(*a, **k):
        raise ConnectionError("offline")

    monkeypatch.setattr("lpds_envs.decoders.base.hf_hub_download", offline)
    with pytest.raises(OSError, match="not a local folder"):
        load_decoder("someone/missing-model")


def test_callable_decoder():
    dec = CallableDecoder(lambda obs, w: torch.tanh(w) + obs[:, None, :1], latent_shape=(2, 3), action_shape=(2, 3))
    out = dec(torch.ones(4, 1), torch.zeros(4, 2, 3))
    assert torch.equal(out, torch.ones(4, 2, 3))
    bad = CallableDecoder(lambda obs, w: w[:, 0], latent_shape=(2, 3), action_shape=(2, 3))
    with pytest.raises(ValueError, match=r"returned shape \(4, 3\), expected \(4, 2, 3\)"):
        bad(torch.ones(4, 1), torch.zeros(4, 2, 3))
    with pytest.raises(TypeError, match="callable"):
        CallableDecoder(3, (1,), (1,))


def test_compile_falls_back_to_eager_with_warning(monkeypatch):
    def broken_compile(fn, **kwargs):
        def run(*a):
            raise RuntimeError("no C++ compiler")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    dec = DiffusionDecoder(obs_dim=2, action_dim=2, hidden_dim=16, n_blocks=1, compile=True).freeze()
    eager = DiffusionDecoder(obs_dim=2, action_dim=2, hidden_dim=16, n_blocks=1).freeze()
    eager.load_state_dict(dec.state_dict())
    obs, w = torch.randn(3, 2), torch.randn(3, 1, 2)
    with pytest.warns(UserWarning, match="falling back to eager"):
        out = dec(obs, w)
    assert torch.equal(out, eager(obs, w))


def test_compiled_decode_matches_eager():
    pytest.importorskip("torch._inductor")
    for cls in (DiffusionDecoder, FlowDecoder):
        eager = cls(obs_dim=3, action_dim=2, chunk_size=2, hidden_dim=32, n_blocks=1, num_inference_steps=4).freeze()
        comp = cls(
            obs_dim=3, action_dim=2, chunk_size=2, hidden_dim=32, n_blocks=1, num_inference_steps=4, compile=True
        ).freeze()
        comp.load_state_dict(eager.state_dict())
        obs, w = torch.randn(5, 3), torch.randn(5, 2, 2)
        torch.testing.assert_close(comp(obs, w), eager(obs, w), atol=1e-5, rtol=1e-5)
        assert comp._compiled is not None  # it really compiled (no silent fallback on this machine)


def test_invalid_configs():
    with pytest.raises(ValueError, match="beta_schedule"):
        DiffusionDecoder(obs_dim=2, action_dim=2, beta_schedule="quadratic")
    with pytest.raises(ValueError, match="num_inference_steps"):
        DiffusionDecoder(obs_dim=2, action_dim=2, num_train_timesteps=5, num_inference_steps=10)
    with pytest.raises(ValueError, match="integrator"):
        FlowDecoder(obs_dim=2, action_dim=2, integrator="rk4")
    with pytest.raises(ValueError, match=">= 1"):
        FlowDecoder(obs_dim=0, action_dim=2)


def test_a_checkpoint_with_non_finite_weights_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    small_decoder("flow").save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[name][0] = float("nan")
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=f"{name}.*NaN or inf.*corrupt"):
        load_decoder(tmp_path)


def test_a_config_entry_of_the_wrong_type_is_named(tmp_path):
    import json

    small_decoder("diffusion").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["obs_dim"] = "two"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="'obs_dim' is 'two' \\(str\\), expected int"):
        load_decoder(tmp_path)
