"""The fine-tuning baselines' shared pieces (algorithms.finetune): the trainable copy, the stochastic denoising chain
and its Gaussian log-probabilities, and the packaging of a fine-tuned network as a decoder."""

import math

import pytest
import torch

from algorithms.finetune import (
    DenoisingNoise,
    frozen_copy,
    package_decoder,
    sample_chain,
    step_mean_sigma,
    trainable_copy,
    transition_log_prob,
)
from lpds_envs.decoders import (
    CallableDecoder,
    DiffusionDecoder,
    FineTunedDiffusionDecoder,
    FlowDecoder,
    load_decoder,
)


def make_decoder(**kw):
    torch.manual_seed(0)
    cfg = dict(obs_dim=3, action_dim=2, chunk_size=4, hidden_dim=32, n_blocks=2, num_train_timesteps=20)
    dec = DiffusionDecoder(**{**cfg, **kw})
    dec.set_normalization([0.1, -0.2, 0.3], [2.0, 1.0, 0.5], [0.5, -0.5], [2.0, 3.0])
    return dec.freeze()


def test_trainable_copy_trains_a_copy_and_refuses_other_decoders():
    dec = make_decoder()
    copy_ = trainable_copy(dec)
    assert all(p.requires_grad for p in copy_.net.parameters()) and copy_.training
    assert not any(p.requires_grad for p in dec.parameters())  # the original is untouched
    with torch.no_grad():
        next(copy_.net.parameters()).add_(1.0)
    assert not torch.equal(next(copy_.net.parameters()), next(dec.net.parameters()))
    for other in (FlowDecoder(obs_dim=3, action_dim=2, chunk_size=4), CallableDecoder(torch.tanh, (4, 2), (4, 2))):
        with pytest.raises(TypeError, match="DiffusionDecoder"):
            trainable_copy(other)


def test_deterministic_chain_is_the_decoders_ddim():
    dec = make_decoder()
    obs = torch.randn(6, 3)
    w = torch.randn(6, 4, 2)
    for ft in (1, 4, dec.sampler.num_inference_steps):
        chain = sample_chain(dec, dec, dec.normalize_obs(obs), w, ft, DenoisingNoise(), deterministic=True)
        torch.testing.assert_close(dec.unnormalize_actions(chain.actions_n), dec(obs, w), atol=1e-5, rtol=1e-5)
        assert chain.chain.shape == (6, ft + 1, 4, 2) and chain.log_probs.shape == (6, ft, 4, 2)
        torch.testing.assert_close(chain.chain[:, -1], chain.actions_n)


def test_eta_one_on_every_training_timestep_is_the_ddpm_posterior():
    """With as many DDIM steps as training timesteps, eta = 1 gives DDPM's q(x_{t-1} | x_t, x0): variance
    beta_t (1 - ab_{t-1}) / (1 - ab_t), mean c1 x0 + c2 x_t (closed form, Ho et al. eq. 7)."""
    T = 10
    dec = make_decoder(num_train_timesteps=T, num_inference_steps=T, timestep_spacing="leading", clip_sample=False)
    betas = 1 - dec.sampler.alphas_cumprod / torch.cat([torch.ones(1), dec.sampler.alphas_cumprod[:-1]])
    ab = dec.sampler.alphas_cumprod
    obs_n, x = torch.randn(5, 3), torch.randn(5, 4, 2)
    for k in range(1, T):  # step k goes from t = T-1-k to t-1
        t = T - 1 - k
        mean, sigma = step_mean_sigma(dec, obs_n, x, torch.full((5,), k), eta=1.0)
        var = betas[t] * (1 - ab[t - 1]) / (1 - ab[t]) if t > 0 else torch.tensor(0.0)
        torch.testing.assert_close(sigma.flatten(), var.sqrt().expand(5), atol=1e-5, rtol=1e-4)
        eps = dec.predict_noise(x, torch.full((5,), t), obs_n)
        x0 = (x - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()
        if t > 0:
            c1 = betas[t] * ab[t - 1].sqrt() / (1 - ab[t])
            c2 = (1 - ab[t - 1]) * (1 - betas[t]).sqrt() / (1 - ab[t])
            torch.testing.assert_close(mean, c1 * x0 + c2 * x, atol=1e-4, rtol=1e-4)


def test_transition_log_prob_is_the_closed_form_gaussian():
    dec = make_decoder()
    noise = DenoisingNoise(eta=1.0, min_logprob_std=0.1)
    obs_n, x = torch.randn(7, 3), torch.randn(7, 4, 2)
    k = torch.tensor([0, 1, 2, 3, 4, 8, 9])
    x_next = torch.randn(7, 4, 2)
    mean, sigma = step_mean_sigma(dec, obs_n, x, k, eta=1.0)
    std = sigma.clamp(min=0.1)
    by_hand = -0.5 * ((x_next - mean) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)
    got = transition_log_prob(dec, obs_n, x, x_next, k, noise)
    torch.testing.assert_close(got, by_hand)
    torch.testing.assert_close(got, torch.distributions.Normal(mean, std.expand_as(mean)).log_prob(x_next))
    assert float(sigma[-1]) == 0.0  # the last DDIM step (alpha_bar' = 1) is noiseless: only the minimum std explores


def test_sampled_chain_follows_its_log_probs():
    """The chain's stored log-probabilities are those of its own transitions, and the transitions are Gaussian with
    the stated mean and std (checked on many draws from one state)."""
    dec = make_decoder()
    trained = trainable_copy(dec)
    noise = DenoisingNoise(eta=1.0, min_sampling_std=0.1, min_logprob_std=0.1, noise_clip=None)
    obs = torch.randn(4, 3)
    obs_n = dec.normalize_obs(obs)
    torch.manual_seed(3)
    chain = sample_chain(trained, dec, obs_n, torch.randn(4, 4, 2), ft_steps=3, noise=noise)
    K = dec.sampler.num_inference_steps
    for j in range(3):
        k = torch.full((4,), K - 3 + j)
        lp = transition_log_prob(trained, obs_n, chain.chain[:, j], chain.chain[:, j + 1], k, noise)
        torch.testing.assert_close(lp, chain.log_probs[:, j])
    # many draws of one transition: empirical mean and std match
    n = 20_000
    x = torch.randn(1, 4, 2).expand(n, 4, 2)
    o = obs_n[:1].expand(n, 3)
    torch.manual_seed(4)
    out = sample_chain(trained, None, o, x, ft_steps=K, noise=noise)  # every step fine-tuned: no base needed
    mean, sigma = step_mean_sigma(trained, o[:1], x[:1], torch.zeros(1, dtype=torch.long), eta=1.0)
    first = out.chain[:, 1]
    torch.testing.assert_close(first.mean(0), mean[0], atol=0.02, rtol=0)
    std = float(sigma.clamp(min=0.1))
    torch.testing.assert_close(first.std(0), torch.full((4, 2), std), atol=0.02 * std + 1e-3, rtol=0)
    with pytest.raises(ValueError, match="base"):
        sample_chain(trained, None, obs_n, torch.randn(4, 4, 2), ft_steps=3, noise=noise)


def test_noise_settings_are_checked():
    with pytest.raises(ValueError, match="min_logprob_std"):
        DenoisingNoise(min_logprob_std=0.0)
    with pytest.raises(ValueError, match="noise_clip"):
        DenoisingNoise(noise_clip=-1.0)


@pytest.mark.parametrize("ft", [3, 10])
def test_package_decoder_round_trips_and_decodes_the_fine_tuned_chain(tmp_path, ft):
    dec = make_decoder()
    trained = trainable_copy(dec)
    with torch.no_grad():
        for p in trained.net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    base = frozen_copy(dec)
    rng = torch.get_rng_state()
    packaged = package_decoder(trained, base, ft)
    assert torch.equal(torch.get_rng_state(), rng)  # packaging mid-training never changes what is learned
    assert isinstance(packaged, DiffusionDecoder)
    assert isinstance(packaged, FineTunedDiffusionDecoder) is (ft < 10)
    assert not any(p.requires_grad for p in packaged.parameters())
    obs, w = torch.randn(5, 3), torch.randn(5, 4, 2)
    chain = sample_chain(trained, base, trained.normalize_obs(obs), w, ft, DenoisingNoise(), deterministic=True)
    torch.testing.assert_close(packaged(obs, w), trained.unnormalize_actions(chain.actions_n), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(packaged(obs, w), dec(obs, w), atol=1e-4)  # it is not the backbone
    packaged.save_pretrained(tmp_path / "ft")
    loaded = load_decoder(tmp_path / "ft")
    assert type(loaded) is type(packaged)
    torch.testing.assert_close(loaded(obs, w), packaged(obs, w))


def test_chain_is_differentiable_in_the_fine_tuned_network_only():
    """Learners that backpropagate through sampling (DQL) get gradients in the trained copy, never in the base."""
    dec = make_decoder()
    trained, base = trainable_copy(dec), frozen_copy(dec)
    chain = sample_chain(trained, base, torch.randn(3, 3), torch.randn(3, 4, 2), 4, DenoisingNoise())
    chain.actions_n.square().sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in trained.net.out.parameters())
    assert all(p.grad is None for p in base.parameters()) and all(p.grad is None for p in dec.parameters())
