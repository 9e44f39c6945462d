"""Export a steered policy (``Delta`` network + frozen decoder with its sampler) as ONE file for deployment.

:func:`export_steered_policy` writes the whole ``obs -> Phi(clip(eps + Delta(obs)); obs)`` of
:meth:`SteeringAlgorithm.steered_policy <algorithms.SteeringAlgorithm.steered_policy>` to one file, and a control
loop loads it with torch alone::

    program = torch.export.load("policy.pt2")   # no lpds, no SB3, no wrapper
    policy = program.module()
    chunk = policy(torch.as_tensor(obs, dtype=torch.float32)[None])[0]   # (Ta, act_dim): run its rows one by one

Which path a decoder takes:

- ``torch.export`` (an ``ExportedProgram`` saved with :func:`torch.export.save`, loaded with
  :func:`torch.export.load`): :class:`~lpds_envs.decoders.DiffusionDecoder` (its DDIM loop is unrolled over the
  fixed inference steps), :class:`~lpds_envs.decoders.FlowDecoder` (the fixed-step ODE loop, Euler or midpoint;
  Dict observations through its ``obs_keys`` layout and image CNN included), the fine-tuned diffusion decoder,
  :class:`~lpds_envs.decoders.Pi0Decoder` (its processor's tokens and pixel lookup are buffers, the transformers
  model's flow-matching loop is unrolled; checked on the tiny PI0 of ``LPDS-MultiGoalPi0-v0``, about a minute to
  export on a CPU), a :class:`~lpds_envs.subspace.SubspaceDecoder` over any of these, and a
  :class:`~lpds_envs.decoders.CallableDecoder` or user decoder written in plain tensor code. Observation
  normalisation and action scaling are buffers inside the decoder, so they are inside the program. The batch
  dimension is dynamic. TorchScript (``torch.jit.trace``/``script``) is not used: it is deprecated in torch 2.x
  and ``torch.export`` covers the same decoders.
- plain state dict (a :func:`torch.save` file, ``weights_only``-loadable): any decoder ``torch.export`` cannot
  capture or whose capture does not reproduce it bit for bit, e.g. a decoder that goes through numpy. The file
  then holds the ``Delta`` network as an exported program (bytes) and a fingerprint of the decoder;
  :func:`~algorithms.deployed.load_steered_policy` joins it with the same decoder, loaded by the caller
  (``load_decoder`` / ``Pi0Decoder.from_pretrained``, which need no SB3).

Inputs of the exported program (named in the file's metadata, :data:`METADATA_FILE`): ``obs`` (a float32 tensor
``(B, *obs_shape)``, or a dict of tensors with the env's dtypes and layouts, e.g. uint8 channel-last images),
``eps`` ``(B, latent_dim)`` in stochastic mode (for DSRL-NA the noise of its pre-tanh Gaussian), and
``complement_noise`` ``(B, *decoder latent shape)`` for a subspace decoder (in both modes: the prior noise outside
the steered subspace). Given the same inputs the program's output is bit for bit that of ``steered_policy()``
(checked at export time on a sample batch).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, maybe_transpose
from stable_baselines3.common.vec_env import VecEnv, VecTransposeImage, unwrap_vec_wrapper
from torch import nn

from lpds_envs.decoders.base import Decoder, PretrainedDecoder
from lpds_envs.subspace import SubspaceDecoder

from .policies import SquashedGaussianActor
from .steered_policy import SteeredPolicy

#: the name of the JSON metadata stored in an exported file (``torch.export.save``'s ``extra_files``)
METADATA_FILE = "lpds_policy.json"
#: ``metadata["format"]`` of every file written here
FORMAT = "lpds-steered-policy"
FORMAT_VERSION = 1
#: the two kinds of file: an ``ExportedProgram`` archive, or a ``torch.save`` state dict
PATH_EXPORT, PATH_STATE_DICT = "torch.export", "state_dict"


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_steered_policy` wrote.

    :param path: the file
    :param format: ``"torch.export"`` (load with ``torch.export.load``) or ``"state_dict"`` (load with
        :func:`load_steered_policy` and the decoder)
    :param metadata: the file's metadata (inputs, shapes, dtypes, mode)
    :param reason: why the state-dict fallback was taken (``None`` for ``torch.export``)
    """

    path: Path
    format: str
    metadata: dict[str, Any]
    reason: str | None = None


def _decoder_kind(decoder: Decoder) -> str:
    """``"standard"``: ``Decoder.forward`` (its own ``check_obs`` and ``_decode``: diffusion, flow, callable
    decoders), exported as ``_decode(check_obs(obs), w)`` without the latent's data-dependent finiteness check;
    ``"subspace"``: the lift, then its base decoder; ``"custom"``: a decoder with its own ``forward`` (pi0)."""
    if isinstance(decoder, SubspaceDecoder):
        return "subspace"
    cls = type(decoder)
    # a decoder with a forward of its own but the same check_obs -> _decode structure (pi0) is tried the same way;
    # the bit-for-bit check against steered_policy() sends any decoder where that is not equivalent to the fallback
    return "standard" if cls.forward is Decoder.forward or cls._decode is not Decoder._decode else "custom"


def _eager(decoder: Decoder) -> Decoder:
    """``decoder``, or an eager copy of it when it runs a ``torch.compile`` sampling loop (never exported)."""
    if isinstance(decoder, PretrainedDecoder) and (
        getattr(decoder, "_compiled", None) is not None or getattr(decoder, "_compile_pending", False)
    ):
        copy = type(decoder)(**decoder.get_config())
        copy.load_state_dict(decoder.state_dict())
        return copy.to(decoder.device).freeze()
    return decoder


class SteeredPolicyCore(nn.Module):
    """The tensor-only body of a :class:`~algorithms.SteeredPolicy`: what :func:`torch.export.export` captures.

    ``forward(obs, eps=None, complement_noise=None)`` computes exactly what ``SteeredPolicy.forward`` computes from
    tensors already in the env's layout and dtype (Box observations: float32), without the numpy conversions and
    the decoder's input validation (done by :func:`load_steered_policy`'s wrapper, or by the caller).

    :param policy: the steered policy (its frozen actor and decoder are shared, not copied)
    :param transpose_keys: Dict observation keys whose channel-last images the actor takes channel-first
    """

    actor: nn.Module
    decoder: Decoder

    def __init__(self, policy: SteeredPolicy, transpose_keys: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.actor = policy.actor
        decoder = _eager(cast(Decoder, policy.decoder))
        if isinstance(decoder, SubspaceDecoder):
            base = _eager(decoder.base)
            if base is not decoder.base:  # a copy around the eager base: the env's decoder is never changed
                decoder = SubspaceDecoder(base, decoder.subspace)
        self.decoder = decoder
        self.latent_bound: float | None = policy.latent_bound
        self.squashed = isinstance(policy.actor, SquashedGaussianActor)
        self.transpose_keys = tuple(transpose_keys)
        self.kind = _decoder_kind(decoder)
        if isinstance(decoder, SubspaceDecoder) and _decoder_kind(decoder.base) == "custom":
            self.kind = "custom"  # the subspace decoder's own forward, complement noise from torch's RNG

    @property
    def subspace_decoder(self) -> SubspaceDecoder:
        """The decoder as a :class:`~lpds_envs.subspace.SubspaceDecoder` (``kind == "subspace"`` only)."""
        return cast(SubspaceDecoder, self.decoder)

    @property
    def noise_dim(self) -> int:
        """Size of the noise input ``eps``: the flat latent (DSRL-NA: its Gaussian's dimension, the same)."""
        if self.squashed:
            return int(cast(SquashedGaussianActor, self.actor).mu.out_features)
        return int(self.decoder.latent_dim)

    def latent(self, actor_obs: Any, eps: torch.Tensor | None) -> torch.Tensor:
        """``clip(eps + Delta(obs))`` (DSRL-NA: ``clip(bound tanh(mu + sigma eps))``), flat ``(B, d)``."""
        if self.squashed:
            w = cast(SquashedGaussianActor, self.actor).latent(actor_obs, eps)
        else:
            perturbation = self.actor(actor_obs)
            noise = torch.zeros_like(perturbation) if eps is None else eps.reshape(perturbation.shape).to(perturbation)
            w = noise + perturbation
        if self.latent_bound is not None:
            w = w.clamp(-self.latent_bound, self.latent_bound)
        return w

    def forward(
        self, obs: Any, eps: torch.Tensor | None = None, complement_noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """:param obs: ``(B, *obs_shape)`` float32, or a dict of tensors in the env's layout
        :param eps: ``(B, latent_dim)`` noise (stochastic mode); ``None``: zeros (deterministic)
        :param complement_noise: ``(B, *base latent shape)`` prior noise of a subspace decoder
        :return: the action chunks ``(B, Ta, act_dim)``
        """
        if isinstance(obs, dict):
            actor_obs = {k: v.permute(0, 3, 1, 2) if k in self.transpose_keys else v for k, v in obs.items()}
        else:
            actor_obs = obs
        w = self.latent(actor_obs, eps)
        n = w.shape[0]
        if self.kind == "standard":
            return self.decoder._decode(self.decoder.check_obs(obs), w.reshape(n, *self.decoder.latent_shape))
        if self.kind == "subspace":
            base = self.subspace_decoder.base
            if complement_noise is None:
                raise ValueError("a subspace decoder needs complement_noise")
            z = self.subspace_decoder.subspace.lift(w, complement_noise.reshape(n, -1).float())
            return base._decode(base.check_obs(obs), z.reshape(n, *base.latent_shape))
        return self.decoder(obs, w)


def _raw_observation_space(model: Any) -> spaces.Space:
    """The env's own observation space (SB3 may have transposed channel-last images for the policy)."""
    env = model.get_env() if hasattr(model, "get_env") else None
    if isinstance(env, VecEnv):
        transposer = unwrap_vec_wrapper(env, VecTransposeImage)
        if transposer is not None:
            return transposer.venv.observation_space
        return env.observation_space
    return model.observation_space


def _transpose_keys(actor: nn.Module, space: spaces.Space) -> tuple[str, ...]:
    """Keys whose raw images the actor's features extractor takes transposed (as ``SteeredPolicy`` does)."""
    policy_space = getattr(getattr(actor, "features_extractor", None), "observation_space", None)
    if not isinstance(space, spaces.Dict) or not isinstance(policy_space, spaces.Dict):
        return ()
    keys = []
    for key, sub in space.spaces.items():
        sample = np.zeros((1, *(sub.shape or ())), dtype=sub.dtype)
        if is_image_space(policy_space[key]) and maybe_transpose(sample, policy_space[key]).shape != sample.shape:
            keys.append(key)
    return tuple(keys)


def _space_spec(space: spaces.Space) -> dict[str, Any]:
    if isinstance(space, spaces.Dict):
        keys = {}
        for key, sub in space.spaces.items():
            if not isinstance(sub, spaces.Box):
                raise TypeError(f"observation key {key!r} is a {type(sub).__name__}; only Box entries can be exported")
            keys[key] = {"shape": list(sub.shape), "dtype": str(np.dtype(sub.dtype))}
        return {"type": "dict", "keys": keys}
    if not isinstance(space, spaces.Box):
        raise TypeError(f"observation space {space} cannot be exported: only Box and Dict of Box")
    return {"type": "box", "shape": list(space.shape), "dtype": "float32"}


def _example_obs(space: spaces.Space, batch: int, seed: int, device: torch.device) -> Any:
    """A sample batch of raw observations as the program takes them (Box: float32)."""
    space.seed(seed)
    if isinstance(space, spaces.Dict):
        return {
            k: torch.as_tensor(np.stack([sub.sample() for _ in range(batch)]), device=device)
            for k, sub in space.spaces.items()
        }
    sample = np.stack([space.sample() for _ in range(batch)]).astype(np.float32)
    return torch.as_tensor(np.clip(sample, -10.0, 10.0), device=device)  # unbounded boxes sample huge values


def _reference(
    policy: SteeredPolicy, core: SteeredPolicyCore, obs: Any, deterministic: bool, n: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Sample noise inputs for ``n`` observations and ``policy``'s output for them: ``eps`` in stochastic mode, and
    for a subspace decoder the complement noise it draws from torch's RNG (drawn here from the same seed)."""
    device = next(core.actor.parameters()).device
    noise: dict[str, torch.Tensor] = {}
    if not deterministic:
        gen = torch.Generator().manual_seed(1)
        noise["eps"] = torch.randn(n, core.noise_dim, generator=gen).to(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if core.kind == "subspace":
            torch.manual_seed(2)
            sub = core.subspace_decoder
            drawn = torch.randn((n, sub.subspace.latent_dim), device=device)  # as SubspaceDecoder draws it
            noise["complement_noise"] = drawn.reshape(n, *sub.base.latent_shape)
        torch.manual_seed(2)
        out = policy(obs, noise.get("eps"))
    return noise, out


def _fingerprint(decoder: Decoder) -> dict[str, Any]:
    state = decoder.state_dict()
    return {
        "class": f"{type(decoder).__module__}.{type(decoder).__qualname__}",
        "latent_shape": list(decoder.latent_shape),
        "action_shape": list(decoder.action_shape),
        "tensors": {k: [list(v.shape), float(v.double().sum())] for k, v in state.items() if v.is_floating_point()},
    }


def export_steered_policy(
    model: Any,
    path: str | os.PathLike,
    deterministic: bool = True,
    *,
    observation_space: spaces.Space | None = None,
    env_id: str | None = None,
    force_state_dict: bool = False,
) -> ExportResult:
    """Write ``model.steered_policy(deterministic)`` (``Delta`` network + frozen decoder + sampler) to one file.

    ``torch.export`` when the decoder can be captured, the state-dict fallback otherwise (see the module doc for
    which decoders take which path). The exported program is checked bit for bit against ``steered_policy()`` on a
    sample batch before it is written; a mismatch falls back to the state dict with a warning. A decoder built with
    ``compile=True`` is exported as its eager twin (same weights): the program then reproduces eager decoding bit for
    bit, and the compiled loop to float rounding (``metadata["decoder_compiled"]``).

    :param model: a latent-steering learner (:class:`~algorithms.LagrangianSAC`, :class:`~algorithms.DSRLNA`,
        anything with ``steered_policy()``, ``observation_space`` and ``get_env()``)
    :param path: the file to write (``.pt2`` by convention); its folder is created
    :param deterministic: ``eps = 0`` (the program takes only ``obs``); ``False``: the program takes the noise
        ``eps`` as an input, so a deployed loop draws it (and runs are reproducible from a seeded generator)
    :param observation_space: the raw env's observation space (default: the model's env's, before SB3's image
        transposition)
    :param env_id: recorded in the metadata (the raw task a control loop should make)
    :param force_state_dict: skip ``torch.export`` (the fallback format, for decoders one does not want captured)
    :return: an :class:`ExportResult` (path, format, metadata, why the fallback was taken)
    :raises NotImplementedError: for a learner without a latent steered policy (LP-DS-A)
    :raises TypeError: for observation spaces other than Box or Dict of Box
    """
    if not hasattr(model, "steered_policy"):
        raise TypeError(f"{type(model).__name__} has no steered_policy(); export a latent-steering learner")
    policy = model.steered_policy(deterministic=bool(deterministic))
    if not isinstance(policy, SteeredPolicy):
        raise TypeError(f"steered_policy() returned a {type(policy).__name__}, expected a SteeredPolicy")
    space = observation_space if observation_space is not None else _raw_observation_space(model)
    spec = _space_spec(space)
    core = SteeredPolicyCore(policy, _transpose_keys(policy.actor, space)).eval()
    device = next(core.actor.parameters()).device
    obs = _example_obs(space, 3, 0, device)
    # a decoder running a torch.compile sampling loop is exported eagerly: the reference is then eager decoding too
    # (the compiled loop agrees with it to float rounding only)
    eager = (
        policy
        if core.decoder is policy.decoder
        else SteeredPolicy(core.decoder, policy.actor, policy.latent_bound, bool(deterministic))
    )
    noise, expected = _reference(eager, core, obs, bool(deterministic), 3)
    inputs = ["obs", *noise]
    metadata: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "deterministic": bool(deterministic),
        "inputs": inputs,
        "observation": spec,
        "noise_dim": core.noise_dim,
        "complement_noise_shape": list(core.subspace_decoder.base.latent_shape) if core.kind == "subspace" else None,
        "action_shape": list(policy.decoder.action_shape),
        "latent_bound": policy.latent_bound,
        "algo": type(model).__name__,
        "decoder": type(policy.decoder).__name__,
        "decoder_compiled": core.decoder is not policy.decoder,
        "env_id": env_id,
        "torch": torch.__version__,
        "device": str(device),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    reason = "force_state_dict=True" if force_state_dict else None
    if reason is None:
        try:
            program = _export(core, obs, noise)
            got = program.module()(obs, **noise)
            if not torch.equal(got, expected):
                diff = float((got - expected).abs().max())
                raise RuntimeError(f"the exported program differs from steered_policy() by up to {diff:.3g}")
        except Exception as exc:  # torch.export raises many types; any of them means: take the fallback
            reason = f"torch.export failed ({type(exc).__name__}: {str(exc).splitlines()[0][:300]})"
            warnings.warn(f"{reason}; writing the state-dict fallback to {path}", stacklevel=2)
        else:
            metadata["path"] = PATH_EXPORT
            torch.export.save(program, path, extra_files={METADATA_FILE: json.dumps(metadata)})
            return ExportResult(path, PATH_EXPORT, metadata)
    metadata["path"] = PATH_STATE_DICT
    metadata["decoder_fingerprint"] = _fingerprint(policy.decoder)
    actor = _export(_ActorOnly(core), obs, {k: v for k, v in noise.items() if k == "eps"})
    buffer = io.BytesIO()
    torch.export.save(actor, buffer)
    torch.save({"metadata": json.dumps(metadata), "actor_program": buffer.getvalue()}, path)
    return ExportResult(path, PATH_STATE_DICT, metadata, reason)


class _ActorOnly(nn.Module):
    """``obs -> clip(eps + Delta(obs))``: the ``Delta`` part of a core, for the state-dict fallback."""

    def __init__(self, core: SteeredPolicyCore) -> None:
        super().__init__()
        self.core = core

    def forward(self, obs: Any, eps: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(obs, dict):
            obs = {k: v.permute(0, 3, 1, 2) if k in self.core.transpose_keys else v for k, v in obs.items()}
        return self.core.latent(obs, eps)


#: torch loggers that print a whole graph when a capture fails (the fallback then says why in one line)
_NOISY_LOGGERS = ("torch.fx.experimental.symbolic_shapes", "torch._export", "torch.export", "torch._dynamo")


def _export(module: nn.Module, obs: Any, noise: dict[str, torch.Tensor]) -> torch.export.ExportedProgram:
    """``torch.export.export`` with a dynamic batch dimension shared by every input."""
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    obs_dims = {k: {0: batch} for k in obs} if isinstance(obs, dict) else {0: batch}
    dynamic = {"obs": obs_dims, **{k: {0: batch} for k in noise}}
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return torch.export.export(module, (obs,), kwargs=dict(noise), dynamic_shapes=dynamic, strict=False)
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
