"""The decoder contract: a frozen, deterministic map ``a = Phi(w; s)`` from latent noise to an action chunk.

Every decoder is a :class:`torch.nn.Module` with ``latent_shape`` and ``action_shape`` and a batched
``forward(obs, w)``. Trained decoders (:class:`~lpds_envs.decoders.DiffusionDecoder`,
:class:`~lpds_envs.decoders.FlowDecoder`) additionally save and load in the Hugging Face style
(``config.json`` + ``model.safetensors``) through :mod:`huggingface_hub`, and carry their own
observation normalisation and action scaling as buffers, so a checkpoint is self-contained.
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
import types
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
import torch
from huggingface_hub import ModelCard, ModelHubMixin, hf_hub_download
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .card import decoder_card

if TYPE_CHECKING:
    from typing_extensions import Self

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

ArrayLike = torch.Tensor | np.ndarray

# decoder_type (stored in config.json) -> class; filled by ``Decoder.__init_subclass__``
DECODER_TYPES: dict[str, type[Decoder]] = {}


def _shape_str(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


class Decoder(nn.Module):
    """Base class of all frozen decoders.

    Subclasses set ``latent_shape``, ``action_shape`` and (optionally) ``obs_shape`` and implement
    :meth:`_decode`, which receives validated float32 tensors of shape ``(B, *obs_shape)`` and
    ``(B, *latent_shape)`` and returns ``(B, *action_shape)``. :meth:`forward` does the input checks,
    runs :meth:`_decode` under :func:`torch.inference_mode` (unless ``self.differentiable`` is set)
    and returns an ordinary tensor.

    :param latent_shape: shape of one latent ``w``
    :param action_shape: shape of one decoded chunk ``(Ta, act_dim)``
    :param obs_shape: shape of one observation; ``None`` skips the observation shape check
    """

    latent_shape: tuple[int, ...]
    action_shape: tuple[int, ...]
    obs_shape: tuple[int, ...] | None

    def __init__(
        self,
        latent_shape: Sequence[int],
        action_shape: Sequence[int],
        obs_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.latent_shape = tuple(int(s) for s in latent_shape)
        self.action_shape = tuple(int(s) for s in action_shape)
        self.obs_shape = None if obs_shape is None else tuple(int(s) for s in obs_shape)
        #: set to True to let gradients flow through decoding (LP-DS never needs it)
        self.differentiable = False

    # ------------------------------------------------------------------ properties
    @property
    def latent_dim(self) -> int:
        """Number of entries of one flattened latent."""
        return int(np.prod(self.latent_shape))

    @property
    def chunk_size(self) -> int:
        """Number of env steps in one decoded chunk (``action_shape[0]``)."""
        return self.action_shape[0]

    @property
    def device(self) -> torch.device:
        first = next(itertools.chain(self.parameters(), self.buffers()), None)
        return first.device if first is not None else torch.device("cpu")

    # ------------------------------------------------------------------ checks
    def check_latent(self, w: ArrayLike, batch_size: int | None = None) -> torch.Tensor:
        """Validate a batch of latents and return it as float32 ``(B, *latent_shape)`` on the decoder's device.

        Accepts ``(B, *latent_shape)`` or flat ``(B, prod(latent_shape))``.
        """
        if isinstance(w, np.ndarray):
            if not np.issubdtype(w.dtype, np.floating):
                raise TypeError(f"latent has dtype {w.dtype}, expected a floating-point array (float32)")
            w = torch.from_numpy(np.ascontiguousarray(w))
        elif not isinstance(w, torch.Tensor):
            raise TypeError(f"latent must be a torch.Tensor or np.ndarray, got {type(w).__name__}")
        if not torch.is_floating_point(w):
            raise TypeError(f"latent has dtype {w.dtype}, expected a floating-point tensor (float32)")
        expected = (batch_size if batch_size is not None else "B", *self.latent_shape)
        if w.ndim == 1 + len(self.latent_shape) and tuple(w.shape[1:]) == self.latent_shape:
            pass
        elif w.ndim == 2 and w.shape[1] == self.latent_dim:
            w = w.reshape(w.shape[0], *self.latent_shape)
        else:
            raise ValueError(
                f"latent has shape {_shape_str(w.shape)}, expected {tuple(expected)} or flat (B, {self.latent_dim})"
            )
        if batch_size is not None and w.shape[0] != batch_size:
            raise ValueError(f"latent batch has {w.shape[0]} rows, expected {batch_size} (one per observation)")
        if not bool(torch.isfinite(w).all()):
            bad = torch.nonzero(~torch.isfinite(w.reshape(w.shape[0], -1)).all(dim=1)).flatten().tolist()
            raise ValueError(f"latent contains NaN or inf (batch rows {bad[:8]}); latents must be finite")
        return w.to(device=self.device, dtype=torch.float32)

    def check_obs(self, obs: Any) -> torch.Tensor:
        """Validate a batch of observations and return it as float32 ``(B, *obs_shape)`` on the decoder's device."""
        if isinstance(obs, np.ndarray):
            obs = torch.from_numpy(np.ascontiguousarray(obs))
        elif not isinstance(obs, torch.Tensor):
            raise TypeError(f"observation must be a torch.Tensor or np.ndarray, got {type(obs).__name__}")
        if self.obs_shape is not None and (
            obs.ndim != 1 + len(self.obs_shape) or tuple(obs.shape[1:]) != self.obs_shape
        ):
            raise ValueError(
                f"observation has shape {_shape_str(obs.shape)}, expected (B, {', '.join(map(str, self.obs_shape))}) "
                f"for this decoder"
            )
        if obs.dtype == torch.bool or torch.is_complex(obs):
            raise TypeError(f"observation has dtype {obs.dtype}, expected a real numeric tensor")
        return obs.to(device=self.device, dtype=torch.float32)

    # ------------------------------------------------------------------ decoding
    def forward(self, obs: Any, w: ArrayLike) -> torch.Tensor:
        """Decode a batch: ``(B, *obs_shape), (B, *latent_shape) -> (B, *action_shape)``."""
        obs_t = self.check_obs(obs)
        w_t = self.check_latent(w, batch_size=obs_t.shape[0])
        if self.differentiable:
            return self._decode(obs_t, w_t)
        with torch.inference_mode():
            out = self._decode(obs_t, w_t)
        return out.clone()  # an ordinary tensor, usable as input to networks that need autograd

    def _decode(self, obs: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample_prior(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``batch_size`` latents from the prior ``N(0, I)``."""
        return torch.randn((batch_size, *self.latent_shape), generator=generator, device=self.device)

    def freeze(self) -> Self:
        """Set ``requires_grad=False`` on every parameter and switch to eval mode."""
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()


class CallableDecoder(Decoder):
    """Wrap any function ``fn(obs, w) -> actions`` as a decoder.

    ``fn`` receives float32 tensors ``(B, *obs)`` and ``(B, *latent_shape)`` and must return
    ``(B, *action_shape)``; it should be deterministic.

    Example::

        >>> import torch
        >>> from lpds_envs.decoders import CallableDecoder
        >>> dec = CallableDecoder(lambda obs, w: torch.tanh(w), latent_shape=(1, 2), action_shape=(1, 2))
        >>> dec(torch.zeros(3, 2), torch.zeros(3, 1, 2)).shape
        torch.Size([3, 1, 2])
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        latent_shape: Sequence[int],
        action_shape: Sequence[int],
        obs_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__(latent_shape, action_shape, obs_shape)
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.fn = fn

    def _decode(self, obs: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        out = self.fn(obs, w)
        if not isinstance(out, torch.Tensor):
            out = torch.as_tensor(np.asarray(out), dtype=torch.float32, device=w.device)
        expected = (w.shape[0], *self.action_shape)
        if tuple(out.shape) != expected:
            raise ValueError(f"decoder function returned shape {_shape_str(out.shape)}, expected {expected}")
        return out.float()


def _with_own_code(method: Callable) -> Callable:
    """A copy of the bound method ``method`` with a code object of its own.

    torch.compile keeps its compiled graphs on the code object (a few entries before it silently runs eagerly), so
    every decoder of a class compiling the same sampling method would share, and soon exhaust, one cache. A copy per
    decoder gives each its own, without changing any global compiler setting.
    """
    bound = cast(types.MethodType, method)  # a bound method, as the sampling loops are
    fn = bound.__func__
    own = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    own.__kwdefaults__ = fn.__kwdefaults__
    return types.MethodType(own, bound.__self__)


class PretrainedDecoder(Decoder, ModelHubMixin, library_name="lpds", tags=["lpds", "robotics", "steering"]):
    """A trained decoder that saves to / loads from a folder with ``config.json`` + ``model.safetensors``.

    ``from_pretrained`` accepts a local folder (works offline) or a Hugging Face Hub repo id
    (downloaded with :func:`huggingface_hub.hf_hub_download`). Weights are read with safetensors only,
    never pickle, and loading is strict: a missing or extra tensor is an error.

    Subclasses define ``decoder_type`` and :meth:`get_config` (the keyword arguments of ``__init__``).
    Observation normalisation ``obs_n = (obs - obs_shift) / obs_scale`` and action scaling
    ``a = a_n * act_scale + act_shift`` are buffers, saved with the weights.
    """

    decoder_type: ClassVar[str] = ""
    # normalisation buffers (registered in __init__)
    obs_shift: torch.Tensor
    obs_scale: torch.Tensor
    act_shift: torch.Tensor
    act_scale: torch.Tensor
    bc_loss: float  # final (EMA-smoothed) BC loss, set on decoders trained by lpds_envs.backbones.train

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.decoder_type:
            DECODER_TYPES[cls.decoder_type] = cls

    def __init__(self, obs_dim: int, action_dim: int, chunk_size: int) -> None:
        if obs_dim < 1 or action_dim < 1 or chunk_size < 1:
            raise ValueError(
                f"obs_dim, action_dim and chunk_size must be >= 1, got {obs_dim}, {action_dim}, {chunk_size}"
            )
        super().__init__((chunk_size, action_dim), (chunk_size, action_dim), (obs_dim,))
        self.obs_dim, self.action_dim = int(obs_dim), int(action_dim)
        self.register_buffer("obs_shift", torch.zeros(obs_dim))
        self.register_buffer("obs_scale", torch.ones(obs_dim))
        self.register_buffer("act_shift", torch.zeros(action_dim))
        self.register_buffer("act_scale", torch.ones(action_dim))

    # ------------------------------------------------------------------ normalisation
    def set_normalization(
        self,
        obs_shift: ArrayLike,
        obs_scale: ArrayLike,
        act_shift: ArrayLike,
        act_scale: ArrayLike,
    ) -> None:
        """Set the affine maps ``obs_n = (obs - obs_shift) / obs_scale`` and ``a = a_n * act_scale + act_shift``."""
        for name, value, size in (
            ("obs_shift", obs_shift, self.obs_dim),
            ("obs_scale", obs_scale, self.obs_dim),
            ("act_shift", act_shift, self.action_dim),
            ("act_scale", act_scale, self.action_dim),
        ):
            t = torch.as_tensor(np.asarray(value, dtype=np.float32)).reshape(-1)
            if t.numel() != size:
                raise ValueError(f"{name} has {t.numel()} entries, expected {size}")
            if name.endswith("scale") and bool((t <= 0).any()):
                raise ValueError(f"{name} must be strictly positive, got {t.tolist()}")
            getattr(self, name).copy_(t)

    def obs_normalization_groups(self) -> list[tuple[int, int]]:
        """Column ranges ``[start, stop)`` of the observation that training normalises with one shift and scale
        (e.g. an image's pixels); none by default: each column gets its own."""
        return []

    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_shift) / self.obs_scale

    def normalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        return (actions - self.act_shift) / self.act_scale

    def unnormalize_actions(self, actions_n: torch.Tensor) -> torch.Tensor:
        return actions_n * self.act_scale + self.act_shift

    def _decode(self, obs: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.unnormalize_actions(self._sample(self.normalize_obs(obs), w))

    def _sample(self, obs_n: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Normalised obs ``(B, obs_dim)`` and noise ``(B, Ta, act_dim)`` -> normalised chunk."""
        raise NotImplementedError

    # ------------------------------------------------------------------ compilation
    def _maybe_compile(self, compile: bool) -> None:
        self._compiled: Callable | None = None
        self._compile_pending = bool(compile)
        if compile and not hasattr(torch, "compile"):
            warnings.warn("torch.compile is unavailable in this torch build; decoding runs eagerly", stacklevel=3)
            self._compile_pending = False

    def _run_sampler(self, obs_n: torch.Tensor, w: torch.Tensor, eager: Callable) -> torch.Tensor:
        """Run the sampling loop ``eager``, compiled when ``compile=True`` (falling back to eager with a warning)."""
        if self._compile_pending:
            self._compile_pending = False
            compiled = torch.compile(_with_own_code(eager), dynamic=None)
            try:
                out = compiled(obs_n, w)
            except Exception as exc:  # compilation needs a working C++ toolchain; never fail decoding on it
                warnings.warn(
                    f"torch.compile of the sampling loop failed ({type(exc).__name__}: {str(exc)[:200]}); "
                    "falling back to eager decoding",
                    stacklevel=3,
                )
            else:
                self._compiled = compiled
                return out
        if self._compiled is not None:
            return self._compiled(obs_n, w)
        return eager(obs_n, w)

    def compiled(self) -> PretrainedDecoder:
        """A copy of this decoder (same weights, device and buffers) with a ``torch.compile`` sampling loop.

        Meant for a fixed, large batch shape such as a learner's training decodes, where it is about 1.3x faster on
        CPU (``benchmarks/RESULTS.md``); compilation happens on the first call and falls back to eager decoding
        with a warning when it fails.
        """
        subclass: Callable[..., PretrainedDecoder] = type(self)  # the subclasses' __init__ take compile=
        copy = subclass(**self.get_config(), compile=True)
        copy.load_state_dict(self.state_dict())  # non-persistent buffers (schedules) are rebuilt from the config
        return copy.to(self.device).freeze()

    # ------------------------------------------------------------------ save / load
    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """This decoder's model card (:func:`lpds_envs.decoders.card.decoder_card`): what it is, its shapes and
        sampler, and a snippet that loads it; ``kwargs`` (``save_pretrained(..., model_card_kwargs=...)``) add the
        task, data, training command and metrics (``title``, ``env_id``, ``task``, ``data``, ``training``,
        ``command``, ``metrics``, ...)."""
        kwargs.setdefault("source", "path/to/this/folder")
        kwargs.setdefault("n_params", sum(p.numel() for p in self.parameters()))
        return decoder_card({"decoder_type": self.decoder_type, **self.get_config()}, **kwargs)

    def save_pretrained(  # type: ignore[override]
        self, save_directory: str | Path, *, model_card_kwargs: dict[str, Any] | None = None, **kwargs: Any
    ) -> str | None:
        """Write ``config.json``, ``model.safetensors`` and, when the folder has none, a model card ``README.md``
        whose usage snippet loads this folder (or, when pushing, the repo).

        :param save_directory: the folder
        :param model_card_kwargs: what the card says beyond the decoder itself (see :meth:`generate_model_card`)
        :param kwargs: :meth:`huggingface_hub.ModelHubMixin.save_pretrained`'s (``push_to_hub=``, ``repo_id=``)
        """
        card_kwargs = {"source": str(save_directory), **(model_card_kwargs or {})}
        if kwargs.get("push_to_hub"):
            card_kwargs["source"] = kwargs.get("repo_id") or Path(save_directory).name
        return super().save_pretrained(save_directory, model_card_kwargs=card_kwargs, **kwargs)

    def push_to_hub(  # type: ignore[override]
        self, repo_id: str, *, model_card_kwargs: dict[str, Any] | None = None, **kwargs: Any
    ) -> str:
        """Upload this decoder (weights, config and card) to Hub repo ``repo_id`` in one commit; the card's snippet
        loads ``repo_id``. ``kwargs`` are :meth:`huggingface_hub.ModelHubMixin.push_to_hub`'s (``token``,
        ``private``, ``commit_message``, ``branch``, ...).

        :param repo_id: ``"user/name"``
        :param model_card_kwargs: what the card says beyond the decoder itself (see :meth:`generate_model_card`)
        """
        card_kwargs = {**(model_card_kwargs or {}), "source": repo_id}
        return super().push_to_hub(repo_id, model_card_kwargs=card_kwargs, **kwargs)

    def get_config(self) -> dict[str, Any]:
        """The ``__init__`` keyword arguments that rebuild this decoder (stored in ``config.json``)."""
        raise NotImplementedError

    def _save_pretrained(self, save_directory: Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` (each atomically: temp file + rename)."""
        config = {"decoder_type": self.decoder_type, **self.get_config()}
        tmp = save_directory / (CONFIG_NAME + ".tmp")
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True))
        os.replace(tmp, save_directory / CONFIG_NAME)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        tmpw = save_directory / (WEIGHTS_NAME + ".tmp")
        save_file(tensors, str(tmpw), metadata={"format": "pt", "decoder_type": self.decoder_type})
        os.chmod(tmpw, 0o644)  # safetensors creates the file private; checkpoints are meant to be shared
        os.replace(tmpw, save_directory / WEIGHTS_NAME)

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        device: str | torch.device = "cpu",
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        **overrides: Any,
    ) -> Decoder:
        """Load a decoder from a local folder or a Hugging Face Hub repo id.

        Calling it on :class:`PretrainedDecoder` (or :func:`lpds_envs.decoders.load_decoder`) picks the
        class from ``config.json``'s ``decoder_type``; calling it on a subclass checks that type. A PI0 checkpoint
        (a folder written by :meth:`Pi0Decoder.save_pretrained <lpds_envs.decoders.Pi0Decoder.save_pretrained>`, or a
        raw ``PI0ForConditionalGeneration`` + ``PI0Processor`` folder or hub repo, recognised by ``config.json``'s
        ``model_type == "pi0"``) is loaded with :meth:`Pi0Decoder.from_pretrained
        <lpds_envs.decoders.Pi0Decoder.from_pretrained>`; ``overrides`` are then its arguments (``instruction``,
        ``camera_keys``, ``state_key``, ``action_dim``, ``chunk_steps``, ``num_steps``, ``dtype``), required where
        the folder has no ``lpds_pi0.json``.

        :param pretrained_model_name_or_path: folder with ``config.json`` and ``model.safetensors``, or a hub id
        :param device: where the weights go
        :param overrides: config entries to override (e.g. ``num_inference_steps=5``, ``compile=True``)
        :return: the frozen decoder in eval mode
        """
        hub = dict(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token)
        config_path = _resolve_file(pretrained_model_name_or_path, CONFIG_NAME, hub)
        try:
            config = json.loads(Path(config_path).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{config_path} is not valid JSON ({exc}); the checkpoint folder is corrupt") from exc
        model_type = config.get("model_type") if isinstance(config, dict) else None
        if isinstance(config, dict) and "decoder_type" not in config and model_type in CHECKPOINT_LOADERS:
            if cls.decoder_type:
                raise ValueError(
                    f"{pretrained_model_name_or_path} holds a {CHECKPOINT_LOADERS[model_type][1]} model; load it "
                    "with lpds_envs.decoders.load_decoder"
                )
            return CHECKPOINT_LOADERS[model_type][0](pretrained_model_name_or_path, device, hub, overrides)
        if not isinstance(config, dict) or "decoder_type" not in config:
            raise ValueError(f"{config_path} has no 'decoder_type' entry; is this an lpds decoder checkpoint?")
        dtype = config.pop("decoder_type")
        target = DECODER_TYPES.get(dtype)
        if target is None:
            raise ValueError(f"{config_path}: unknown decoder_type {dtype!r}; known: {sorted(DECODER_TYPES)}")
        if cls.decoder_type and cls is not target:
            raise ValueError(
                f"{pretrained_model_name_or_path} holds a {target.__name__} (decoder_type={dtype!r}); "
                f"load it with {target.__name__}.from_pretrained or lpds_envs.decoders.load_decoder"
            )
        weights_path = _resolve_file(pretrained_model_name_or_path, WEIGHTS_NAME, hub)
        config.update(overrides)
        _check_config_types(config_path, target, config)
        try:
            model = target(**config)
        except TypeError as exc:
            raise ValueError(f"{config_path} does not match {target.__name__}'s arguments: {exc}") from exc
        try:
            state = load_file(str(weights_path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise ValueError(
                f"{weights_path} is not a readable safetensors file ({exc}); the checkpoint is corrupt"
            ) from exc
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ValueError(
                f"{weights_path} does not match config.json: missing tensors {missing[:5]}, unexpected {unexpected[:5]}"
            )
        for k, v in state.items():
            if tuple(v.shape) != tuple(expected[k].shape):
                raise ValueError(
                    f"{weights_path}: tensor {k!r} has shape {tuple(v.shape)}, config.json implies {tuple(expected[k].shape)}"
                )
        for k, v in state.items():
            if v.is_floating_point() and not bool(torch.isfinite(v).all()):
                raise ValueError(
                    f"{weights_path}: tensor {k!r} holds NaN or inf values; the checkpoint is corrupt (save it again "
                    "from a healthy model, or retrain it)"
                )
        model.load_state_dict(state, strict=True)
        return model.to(device).freeze()


_SCALAR_TYPES = {"bool": bool, "int": int, "float": float, "str": str}


def _check_config_types(config_path: Any, target: type, config: dict[str, Any]) -> None:
    """Refuse a ``config.json`` entry whose type does not match the constructor's annotation (``obs_dim: "two"``),
    naming the entry, instead of letting a layer constructor fail deep inside torch."""
    params = inspect.signature(target).parameters
    for key, value in config.items():
        if key not in params:
            continue  # the constructor reports unknown keys itself
        annotation = str(params[key].annotation).replace(" ", "")
        optional = annotation.endswith("|None") or annotation.startswith("None|")
        expected = _SCALAR_TYPES.get(annotation.removesuffix("|None").removeprefix("None|"))
        if expected is None or (value is None and optional):
            continue
        if expected is bool:
            ok = isinstance(value, bool)
        elif expected is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif expected is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise ValueError(
                f"{config_path}: {key!r} is {value!r} ({type(value).__name__}), expected {annotation}; fix the entry "
                "in config.json"
            )


#: loader of a checkpoint that is not an lpds decoder folder: ``(name_or_path, device, hub, overrides) -> Decoder``
CheckpointLoader = Callable[[str | os.PathLike, Any, dict[str, Any], dict[str, Any]], Decoder]

#: loaders of foreign checkpoints by ``config.json``'s ``model_type``, with the name of what they load (for errors). A
#: decoder module registers its own (``pi0.py`` registers ``"pi0"``), so this module never imports the decoders
#: built on it.
CHECKPOINT_LOADERS: dict[str, tuple[CheckpointLoader, str]] = {}


def register_checkpoint_loader(model_type: str, loader: CheckpointLoader, name: str) -> None:
    """Let :func:`load_decoder` load folders whose ``config.json`` has ``model_type == model_type`` with ``loader``.

    :param model_type: the ``model_type`` entry of the checkpoint's ``config.json`` (e.g. ``"pi0"``)
    :param loader: ``(name_or_path, device, hub_kwargs, overrides) -> Decoder``
    :param name: what it loads, for error messages (e.g. ``"PI0"``)
    """
    CHECKPOINT_LOADERS[model_type] = (loader, name)


def _looks_local(name_or_path: str | os.PathLike) -> bool:
    name = str(name_or_path)
    return Path(name).exists() or os.sep in name and name.count("/") != 1 or name.startswith((".", "~", os.sep))


def _resolve_file(name_or_path: str | os.PathLike, filename: str, hub: dict[str, Any]) -> Path:
    """Find checkpoint file ``filename`` in a local folder or download it from the Hub."""
    if _looks_local(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"checkpoint folder {str(path)!r} does not exist")
        if not path.is_dir():
            raise NotADirectoryError(
                f"{str(path)!r} is a file; pass the folder holding {CONFIG_NAME} and {WEIGHTS_NAME}"
            )
        if not (path / filename).is_file():
            raise FileNotFoundError(
                f"checkpoint folder {str(path)!r} has no {filename}; expected {CONFIG_NAME} and {WEIGHTS_NAME} "
                "(written by save_pretrained)"
            )
        return path / filename
    try:
        return Path(hf_hub_download(str(name_or_path), filename, **hub))
    except Exception as exc:
        raise OSError(
            f"could not load {str(name_or_path)!r}: it is not a local folder and fetching it from the Hugging Face "
            f"Hub failed ({type(exc).__name__}: {str(exc)[:200]}). Pass a folder with {CONFIG_NAME} and {WEIGHTS_NAME}."
        ) from exc


def load_decoder(name_or_path: str | os.PathLike, **kwargs: Any) -> Decoder:
    """Load any saved decoder from a local folder or a Hugging Face Hub repo id.

    - an lpds checkpoint (``config.json`` with ``decoder_type`` + ``model.safetensors``): the class is read from
      ``decoder_type``; ``kwargs`` are ``PretrainedDecoder.from_pretrained``'s (``device=``, config overrides);
    - a PI0 checkpoint (``config.json`` with ``model_type == "pi0"``): loaded with
      :meth:`Pi0Decoder.from_pretrained <lpds_envs.decoders.Pi0Decoder.from_pretrained>` (needs the ``pi0`` extra). A
      folder written by ``Pi0Decoder.save_pretrained`` carries its arguments in ``lpds_pi0.json``; a raw
      ``PI0ForConditionalGeneration`` + ``PI0Processor`` folder needs ``instruction=``, ``camera_keys=``,
      ``state_key=`` and ``action_dim=`` (an error names the missing ones).

    Example::

        >>> import tempfile
        >>> from lpds_envs.decoders import FlowDecoder, load_decoder
        >>> folder = tempfile.mkdtemp()
        >>> FlowDecoder(obs_dim=2, action_dim=2, chunk_size=4).save_pretrained(folder)
        >>> type(load_decoder(folder)).__name__
        'FlowDecoder'
    """
    return PretrainedDecoder.from_pretrained(name_or_path, **kwargs)
