"""What each gradient step of a steering learner is fed: its replay batch, the next latents of the TD target and
Q^W's prior samples, decoded by the frozen decoder as the ``td_target`` option says (one batched call per step in
Algorithm 1; see :meth:`SteeringBatches.update_batches`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.utils import obs_as_tensor

from lpds_envs.decoders.base import Decoder, PretrainedDecoder

from .buffers import LatentReplayBuffer
from .policies import QEnsemble


@dataclass
class TDInputs:
    """What one gradient step needs besides its replay batch: the next latents and Q^W's prior samples.

    :param next_w: next latents ``(B, d)`` of the policy (clipped as the learner needs)
    :param next_log_prob: their log-probabilities ``(B,)`` for a stochastic latent policy (DSRL-NA), else ``None``
    :param next_chunks: their decoded chunks ``Phi(next_w; s')``, flat; ``None`` with ``td_target="latent_critic"``
    :param eps: Q^W's prior latents ``(B, d)``
    :param eps_chunks: their decoded chunks ``Phi(eps; s)``, flat
    """

    next_w: torch.Tensor
    next_log_prob: torch.Tensor | None
    next_chunks: torch.Tensor | None
    eps: torch.Tensor
    eps_chunks: torch.Tensor

    def decoded(self) -> dict[str, torch.Tensor]:
        """The decoded chunks by name, for :func:`~algorithms.faults.check_losses`."""
        out = {"prior chunks": self.eps_chunks}
        if self.next_chunks is not None:
            out["next chunks"] = self.next_chunks
        return out


def cat_obs(batches: list[Any]) -> Any:
    """``torch.cat`` of observation batches; Dict observations are concatenated key by key.

    :param batches: observation batches (tensors, or dicts of tensors)
    :return: the concatenated batch
    """
    if isinstance(batches[0], dict):
        return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
    return torch.cat(batches)


class SteeringBatches:
    """Mixin of :class:`~algorithms.steering.SteeringAlgorithm`: the frozen decoder's calls on replay batches.

    The attributes below are set by the learner (its ``__init__`` and ``_setup_model``).
    """

    device: torch.device
    decoder: Decoder | None
    compile_decoder: bool
    latent_bound: float | None
    td_target: str
    target_decode_dtype: str
    clip_prior_samples: bool
    action_space: spaces.Box
    replay_buffer: LatentReplayBuffer
    _vec_normalize_env: Any
    action_critic_target: QEnsemble
    latent_critic_target: QEnsemble | None

    def clip_latent(self, w: torch.Tensor) -> torch.Tensor:
        """What the env does to a latent before decoding.

        :param w: latents ``(B, d)``
        :return: ``w`` clamped to ``[-latent_bound, latent_bound]`` (unchanged for an unbounded latent box)
        """
        return w if self.latent_bound is None else w.clamp(-self.latent_bound, self.latent_bound)

    def _make_train_decoder(self) -> Decoder | None:
        """The decoder of the training batches: the env's, or its compiled copy when ``compile_decoder``."""
        if not self.compile_decoder or self.decoder is None:
            return self.decoder
        if not isinstance(self.decoder, PretrainedDecoder):
            warnings.warn(
                f"compile_decoder=True needs a PretrainedDecoder, got {type(self.decoder).__name__}; decoding eagerly",
                stacklevel=3,
            )
            return self.decoder
        return self.decoder.compiled()

    def decode(self, obs: torch.Tensor | dict[str, torch.Tensor], w: torch.Tensor) -> torch.Tensor:
        """Frozen ``Phi(w; s)`` for flat latents (no clipping here).

        :param obs: a batch of observations (tensor, or dict of tensors)
        :param w: latents ``(B, d)``
        :return: flat chunks ``(B, Ta * act_dim)`` on the learner's device
        """
        decoder = getattr(self, "_train_decoder", None) or self.decoder
        if decoder is None:
            raise RuntimeError("training needs the decoder: load with env=<latent env> or decoder=")
        return decoder(obs, w).flatten(1).to(self.device)

    def decode_target(self, obs: torch.Tensor | dict[str, torch.Tensor], w: torch.Tensor) -> torch.Tensor:
        """:meth:`decode` for the TD target's next chunks, under bf16 autocast when ``target_decode_dtype`` asks.

        :param obs: a batch of next observations
        :param w: their next latents ``(B, d)``
        :return: flat float32 chunks ``(B, Ta * act_dim)``
        """
        if self.target_decode_dtype == "float32":
            return self.decode(obs, w)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
            return self.decode(obs, w).float()

    def _require_decoder(self) -> Decoder:
        """The frozen decoder, for the steps that cannot run without it.

        :return: ``self.decoder``
        :raises RuntimeError: when there is none (loaded without a latent env or ``decoder=``)
        """
        if self.decoder is None:
            raise RuntimeError("training needs the decoder: load with env=<latent env> or decoder=")
        return self.decoder

    def decode_batches(self, *pairs: tuple[torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
        """Decode several ``(obs, w)`` batches in one decoder call (decoding dominates the cost).

        :param pairs: ``(obs, w)`` batches
        :return: the flat chunks of each pair, in order
        """
        sizes = [len(w) for _, w in pairs]
        chunks = self.decode(cat_obs([o for o, _ in pairs]), torch.cat([w for _, w in pairs]))
        return list(torch.split(chunks, sizes))

    def decode_prior_samples(self, obs: np.ndarray | dict[str, np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
        """``k`` prior latents per observation (clipped as the env would, unless the learner aliases noise) and
        their decoded chunks: the ``prior_cache`` entries.

        :param obs: a batch of ``n`` raw observations (array, or dict of arrays)
        :param k: prior samples per observation
        :return: the latents ``(n, k, d)`` and their decoded chunks ``(n, k, Ta * act_dim)``, as arrays
        """
        obs_t = obs_as_tensor(obs, self.device)
        n = len(next(iter(obs_t.values())) if isinstance(obs_t, dict) else obs_t)
        eps = torch.randn(n * k, self.action_space.shape[0], device=self.device)
        if self.clip_prior_samples:
            eps = self.clip_latent(eps)
        rep = (
            {key: v.repeat_interleave(k, dim=0) for key, v in obs_t.items()}
            if isinstance(obs_t, dict)
            else obs_t.repeat_interleave(k, dim=0)
        )
        with torch.no_grad():
            chunks = self.decode(rep, eps)
        return eps.reshape(n, k, -1).cpu().numpy(), chunks.reshape(n, k, -1).cpu().numpy()

    def decode_next_and_prior(
        self, replay: Any, next_w: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(a', eps, a_eps)``: the next chunks ``Phi(next_w; s')`` and Q^W's prior latents with their decodes.

        Without ``prior_cache`` the prior latents are fresh ``eps ~ N(0, I)`` (clipped unless the learner aliases
        noise), decoded together with ``next_w`` in one call; with it they come from the replay, decoded when their
        transition was stored (the frozen decoder's ``Phi(eps; s)`` never changes), and only ``next_w`` is decoded.
        With ``target_decode_dtype="bfloat16"`` the next chunks are decoded in a call of their own under autocast.

        :param replay: a sampled :class:`~algorithms.buffers.LatentReplayBufferSamples`
        :param next_w: the next latents ``(B, d)`` of the current policy (already clipped as the learner needs)
        :return: ``(next_chunks, eps, eps_chunks)``, chunks flat ``(B, Ta * act_dim)``
        """
        next_obs = replay.next_observations
        if replay.prior_latents is not None:
            return self.decode_target(next_obs, next_w), replay.prior_latents, replay.prior_chunks
        eps = torch.randn_like(replay.actions)
        if self.clip_prior_samples:
            eps = self.clip_latent(eps)
        if self.target_decode_dtype != "float32":
            return self.decode_target(next_obs, next_w), eps, self.decode(replay.observations, eps)
        next_chunks, eps_chunks = self.decode_batches((next_obs, next_w), (replay.observations, eps))
        return next_chunks, eps, eps_chunks

    def prior_samples(self, replay: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Q^W's prior latents of a batch and their decodes: cached (``prior_cache``) or fresh and decoded now.

        :param replay: a sampled :class:`~algorithms.buffers.LatentReplayBufferSamples`
        :return: ``(eps, eps_chunks)``
        """
        if replay.prior_latents is not None:
            return replay.prior_latents, replay.prior_chunks
        eps = torch.randn_like(replay.actions)
        if self.clip_prior_samples:
            eps = self.clip_latent(eps)
        return eps, self.decode(replay.observations, eps)

    def next_latents(self, replay: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The current policy's next latents ``w'`` for the TD target (each learner defines its policy).

        :param replay: a sampled :class:`~algorithms.buffers.LatentReplayBufferSamples`
        :return: ``(next_w, next_log_prob)``; ``next_log_prob`` is ``None`` for a policy without an entropy term
        """
        raise NotImplementedError(f"{type(self).__name__} does not define next_latents")

    def sample_call_batches(self, gradient_steps: int, batch_size: int) -> list[Any]:
        """Every replay batch of one ``train()`` call, sampled (and moved to the device) before the first gradient
        step, so no host-to-device copy waits for the device mid-update. The replay RNG draws are the same, in the
        same order, as sampling step by step.

        :param gradient_steps: gradient steps of this call
        :param batch_size: minibatch size
        :return: ``gradient_steps`` replay samples (``LatentReplayBufferSamples`` or their dict variant)
        """
        return [self.replay_buffer.sample(batch_size, env=self._vec_normalize_env) for _ in range(gradient_steps)]

    def update_batches(self, gradient_steps: int, batch_size: int) -> Iterator[tuple[Any, TDInputs]]:
        """The replay batches of one ``train()`` call with their :class:`TDInputs`, one gradient step at a time.

        The call's replay batches are sampled first (one host-to-device pass, none between gradient steps).
        ``td_target="decode"`` (Algorithm 1): each step draws the next latents with the actor as it is at that step
        and decodes them with Q^W's prior samples in one call. ``"decode_per_update"``: the next latents of all the
        call's batches are drawn with the actor as it is at the start of the call, then decoded (with the fresh prior
        samples) in a single batched call. ``"latent_critic"``: as
        ``"decode"``, but the next latents are not decoded (:meth:`next_value` bootstraps from Q^W's target).

        Consume the iterator one step at a time: in ``"decode"`` and ``"latent_critic"`` mode the next latents of a
        step are drawn only when it is reached, after the previous step's updates.

        :param gradient_steps: gradient steps of this call
        :param batch_size: minibatch size
        :return: an iterator of ``(replay, td_inputs)``
        """
        if self.td_target == "decode_per_update":
            yield from self._decode_per_update(gradient_steps, batch_size)
            return
        for replay in self.sample_call_batches(gradient_steps, batch_size):
            with torch.no_grad():
                next_w, next_log_prob = self.next_latents(replay)
                if self.td_target == "latent_critic":
                    next_chunks = None
                    eps, eps_chunks = self.prior_samples(replay)
                else:
                    next_chunks, eps, eps_chunks = self.decode_next_and_prior(replay, next_w)
            yield replay, TDInputs(next_w, next_log_prob, next_chunks, eps, eps_chunks)

    def _decode_per_update(self, gradient_steps: int, batch_size: int) -> list[tuple[Any, TDInputs]]:
        """``update_batches`` for ``td_target="decode_per_update"``: every next chunk of the call in one decode."""
        replays = self.sample_call_batches(gradient_steps, batch_size)
        with torch.no_grad():
            latents = [self.next_latents(replay) for replay in replays]
            cached = replays[0].prior_latents is not None if replays else True
            priors: list[tuple[torch.Tensor, torch.Tensor | None]] = []
            for replay in replays:
                if cached:
                    priors.append((replay.prior_latents, replay.prior_chunks))
                else:
                    eps = torch.randn_like(replay.actions)
                    priors.append((self.clip_latent(eps) if self.clip_prior_samples else eps, None))
            next_pairs = [(replay.next_observations, w) for replay, (w, _) in zip(replays, latents)]
            prior_pairs = [] if cached else [(replay.observations, eps) for replay, (eps, _) in zip(replays, priors)]
            if self.target_decode_dtype != "float32":
                next_all = self.decode_target(
                    cat_obs([o for o, _ in next_pairs]), torch.cat([w for _, w in next_pairs])
                )
                next_chunks = list(torch.split(next_all, [len(w) for _, w in next_pairs]))
                prior_chunks = self.decode_batches(*prior_pairs) if prior_pairs else []
            else:
                decoded = self.decode_batches(*next_pairs, *prior_pairs)
                next_chunks, prior_chunks = decoded[: len(next_pairs)], decoded[len(next_pairs) :]
        out = []
        for i, replay in enumerate(replays):
            eps, eps_chunks = priors[i]
            eps_chunks = prior_chunks[i] if eps_chunks is None else eps_chunks
            out.append((replay, TDInputs(latents[i][0], latents[i][1], next_chunks[i], eps, eps_chunks)))
        return out

    def next_value(self, next_obs: Any, td: TDInputs) -> torch.Tensor:
        """``min_j Q^A_targ,j(s', a')`` on the decoded next chunks, or ``min_j Q^W_targ,j(s', w')`` without them.

        :param next_obs: the batch's next observations
        :param td: the step's :class:`TDInputs`
        :return: ``(B, 1)``
        """
        if td.next_chunks is None:
            if self.latent_critic_target is None:
                raise RuntimeError("td_target='latent_critic' needs Q^W's target network (built by _setup_model)")
            return self.latent_critic_target(next_obs, td.next_w).min(dim=1, keepdim=True).values
        return self.action_critic_target(next_obs, td.next_chunks).min(dim=1, keepdim=True).values
