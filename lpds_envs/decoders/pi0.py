"""Pi0Decoder: a Hugging Face PI0 vision-language-action model (transformers >= 5) as a frozen decoder.

``Phi(w; s)`` is ``PI0ForConditionalGeneration.sample_actions(noise=w, ...)``: the processor's inputs (camera images,
the fixed instruction, the normalised state) are built for the whole batch, the model integrates its flow with
Euler steps, and the chunk is un-normalised with the processor's action statistics.

Direction of the flow: PI0 integrates from ``t = 1`` (noise ``w``) to ``t = 0`` (actions), with the training path
``x_t = t * noise + (1 - t) * actions`` and velocity target ``noise - actions``. Our
:class:`~lpds_envs.decoders.FlowDecoder` uses the opposite convention (``t = 0`` noise, ``t = 1`` action). Either
way ``w`` is the starting point of a deterministic ODE, which is all steering needs.

No torchvision: images are turned into ``pixel_values`` by a lookup table built from the processor's own rescale and
normalise settings (bit-identical to the processor's PIL/NumPy path for ``uint8`` images of the processor's size),
and checkpoints whose processor names the torchvision-only ``PI0ImageProcessor`` are loaded with
``SiglipImageProcessorPil`` and the same settings.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import Decoder, _shape_str, register_checkpoint_loader
from .pi0_hub import (
    LPDS_PI0_CONFIG,
    check_source,
    load_processor,
    quiet_transformers,
    read_lpds_config,
    require_transformers,
)

_STD_EPS = 1e-8  # PI0Processor.normalize divides by (std + 1e-8)


class Pi0Decoder(Decoder):
    """A frozen PI0 (``PI0ForConditionalGeneration`` + ``PI0Processor``) as ``a = Phi(w; s)``.

    ``forward(obs, w)`` takes a batch of Gymnasium Dict observations as a dict of tensors or arrays -- ``uint8``
    images ``(B, H, W, 3)`` under each camera key (``(B, 3, H, W)``, as SB3's ``VecTransposeImage`` stores them, is
    accepted too) and a state ``(B, state_dim)`` under ``state_key`` -- and latents ``w`` of
    ``latent_shape = (chunk_size, max_action_dim)`` (50 x 32 for pi0). It makes one ``sample_actions(noise=w)`` call
    for the whole batch and returns the first ``chunk_steps`` x ``action_dim`` of the un-normalised chunk.

    Prefer :meth:`from_pretrained`; the constructor takes already-loaded objects.

    :param model: a ``transformers.PI0ForConditionalGeneration``
    :param processor: its ``transformers.PI0Processor`` (tokenizer, image settings, state/action statistics)
    :param instruction: the language instruction, fixed for this decoder
    :param camera_keys: observation keys of the camera images, in the order the model expects them
    :param state_key: observation key of the state vector
    :param action_dim: used action dimensions (the first ``action_dim`` of ``max_action_dim``)
    :param chunk_steps: actions per decoded chunk (the first ``chunk_steps`` of ``chunk_size``; default all)
    :param num_steps: Euler steps of the flow (default: the model config's ``num_inference_steps``)

    Example::

        >>> import tempfile, numpy as np, torch
        >>> from lpds_envs.decoders import Pi0Decoder
        >>> from lpds_envs.decoders.pi0_tiny import save_tiny_pi0
        >>> folder = save_tiny_pi0(tempfile.mkdtemp(), image_size=32, patch_size=16, chunk_size=4, max_action_dim=4)
        >>> dec = Pi0Decoder.from_pretrained(folder, instruction="go to the goal", camera_keys=["image"],
        ...                                  state_key="state", action_dim=2, chunk_steps=3)
        >>> obs = {"image": np.zeros((5, 32, 32, 3), np.uint8), "state": np.zeros((5, 4), np.float32)}
        >>> dec.latent_shape, dec(obs, dec.sample_prior(5)).shape
        ((4, 4), torch.Size([5, 3, 2]))
    """

    # buffers (registered in __init__)
    state_mean: torch.Tensor
    state_std: torch.Tensor
    actions_mean: torch.Tensor
    actions_std: torch.Tensor
    pixel_lut: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def __init__(
        self,
        model: Any,
        processor: Any,
        instruction: str,
        camera_keys: Sequence[str],
        state_key: str,
        action_dim: int,
        chunk_steps: int | None = None,
        num_steps: int | None = None,
    ) -> None:
        require_transformers()
        cfg = model.config
        chunk_size, max_action_dim = int(cfg.chunk_size), int(cfg.max_action_dim)
        chunk_steps = chunk_size if chunk_steps is None else int(chunk_steps)
        if not isinstance(instruction, str):
            raise TypeError(f"instruction must be a string, got {type(instruction).__name__}")
        if isinstance(camera_keys, str) or not camera_keys or not all(isinstance(k, str) for k in camera_keys):
            raise ValueError(f"camera_keys must be a non-empty list of observation keys, got {camera_keys!r}")
        if len(set(camera_keys)) != len(camera_keys) or state_key in camera_keys:
            raise ValueError(f"camera_keys {list(camera_keys)} and state_key {state_key!r} must be distinct keys")
        if not 1 <= int(action_dim) <= max_action_dim:
            raise ValueError(
                f"action_dim must be in [1, {max_action_dim}] (the model's max_action_dim), got {action_dim}"
            )
        if not 1 <= chunk_steps <= chunk_size:
            raise ValueError(f"chunk_steps must be in [1, {chunk_size}] (the model's chunk_size), got {chunk_steps}")
        if num_steps is not None and int(num_steps) < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        super().__init__((chunk_size, max_action_dim), (chunk_steps, int(action_dim)))
        self.model = model.eval()
        self.processor = processor
        self.instruction, self.camera_keys, self.state_key = instruction, tuple(camera_keys), str(state_key)
        self.action_dim, self.chunk_steps = int(action_dim), chunk_steps
        self.num_steps = int(num_steps) if num_steps is not None else int(cfg.num_inference_steps)
        self.max_state_dim = int(cfg.max_state_dim)
        self.image_size = _image_size(processor.image_processor)
        _check_image_tokens(cfg, processor, self.image_size)

        # state and action statistics, exactly as PI0Processor.normalize computes them (float32, std + 1e-8)
        state_mean, state_std = processor.state_mean, processor.state_std
        if state_mean is None or state_std is None:
            raise ValueError(
                "the processor has no state_mean/state_std; PI0 checkpoints carry the statistics of their training "
                "data: create the PI0Processor with state_mean=..., state_std=... and save it next to the model"
            )
        if len(state_mean) != len(state_std) or len(state_mean) > self.max_state_dim:
            raise ValueError(
                f"the processor's state statistics have {len(state_mean)}/{len(state_std)} entries; expected equal "
                f"lengths <= max_state_dim {self.max_state_dim}"
            )
        self.state_dim = len(state_mean)
        self.register_buffer("state_mean", torch.tensor(state_mean, dtype=torch.float32))
        self.register_buffer("state_std", torch.tensor(state_std, dtype=torch.float32) + _STD_EPS)
        a_mean, a_std = processor.actions_mean, processor.actions_std
        if a_mean is None or a_std is None:
            a_mean, a_std = [0.0] * self.action_dim, [1.0 - _STD_EPS] * self.action_dim  # identity
        if len(a_mean) < self.action_dim or len(a_std) < self.action_dim:
            raise ValueError(
                f"the processor's action statistics have {len(a_mean)} entries, fewer than action_dim {self.action_dim}"
            )
        self.register_buffer("actions_mean", torch.tensor(a_mean[: self.action_dim], dtype=torch.float32))
        self.register_buffer("actions_std", torch.tensor(a_std[: self.action_dim], dtype=torch.float32) + _STD_EPS)

        # pixel lookup table: uint8 value v of channel c -> the processor's float32 pixel value
        self.register_buffer("pixel_lut", _pixel_lut(processor.image_processor), persistent=False)
        # the prompt is fixed: tokenise it once with the processor itself (image tokens + <bos> + instruction + "\n")
        h, w = self.image_size
        blank = [np.zeros((h, w, 3), np.uint8)] * len(self.camera_keys)
        with torch.inference_mode():
            text = processor(images=[blank], text=[instruction], return_tensors="pt")
        self.register_buffer("input_ids", text["input_ids"].clone(), persistent=False)
        self.register_buffer("attention_mask", text["attention_mask"].clone(), persistent=False)
        self.freeze()

    # ------------------------------------------------------------------ properties
    @property
    def config(self) -> dict[str, Any]:
        """What ``save_pretrained`` stores in ``lpds_pi0.json`` next to the model and processor."""
        return {
            "decoder_type": "pi0",
            "instruction": self.instruction,
            "camera_keys": list(self.camera_keys),
            "state_key": self.state_key,
            "action_dim": self.action_dim,
            "chunk_steps": self.chunk_steps,
            "num_steps": self.num_steps,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_lut.device

    @property
    def used_action_dims(self) -> tuple[int, ...]:
        """Latent columns that reach the output (``0 .. action_dim - 1``); the subspace lift steers these."""
        return tuple(range(self.action_dim))

    # ------------------------------------------------------------------ inputs
    def check_obs(self, obs: Any) -> dict[str, torch.Tensor]:  # type: ignore[override]
        """Validate a batch of Dict observations; return ``{camera: uint8 (B, H, W, 3), state_key: float32 (B, S)}``."""
        if not isinstance(obs, Mapping):
            raise TypeError(
                f"Pi0Decoder takes a dict observation with keys {[*self.camera_keys, self.state_key]}, "
                f"got {type(obs).__name__}"
            )
        missing = [k for k in (*self.camera_keys, self.state_key) if k not in obs]
        if missing:
            raise KeyError(
                f"observation has no key(s) {missing}; it has {sorted(obs)}. This decoder reads cameras "
                f"{list(self.camera_keys)} and state {self.state_key!r} (set camera_keys=/state_key= to match the env)"
            )
        h, w = self.image_size
        out: dict[str, torch.Tensor] = {}
        batch = None
        for key in self.camera_keys:
            img = _as_tensor(obs[key], f"camera {key!r} image")
            if img.dtype != torch.uint8:
                raise TypeError(
                    f"camera {key!r} image has dtype {img.dtype}, expected uint8 (RGB images with values 0..255)"
                )
            if img.ndim == 4 and tuple(img.shape[1:]) == (h, w, 3):
                pass
            elif img.ndim == 4 and tuple(img.shape[1:]) == (3, h, w):  # channel-first, as SB3 stores images
                img = img.permute(0, 2, 3, 1)
            else:
                raise ValueError(
                    f"camera {key!r} image has shape {_shape_str(img.shape)}, expected (B, {h}, {w}, 3): uint8 RGB "
                    f"at the processor's image size {h}x{w} (render the camera at that size)"
                )
            batch = img.shape[0] if batch is None else batch
            if img.shape[0] != batch:
                raise ValueError(f"camera {key!r} has {img.shape[0]} images, other inputs have {batch}")
            out[key] = img.to(self.device)
        state = _as_tensor(obs[self.state_key], f"state {self.state_key!r}")
        if state.dtype == torch.bool or torch.is_complex(state):
            raise TypeError(f"state {self.state_key!r} has dtype {state.dtype}, expected a real numeric tensor")
        if state.ndim != 2 or state.shape[1] != self.state_dim:
            raise ValueError(
                f"state {self.state_key!r} has shape {_shape_str(state.shape)}, expected (B, {self.state_dim}) "
                f"(the length of the processor's state statistics)"
            )
        if state.shape[0] != batch:
            raise ValueError(f"state {self.state_key!r} has {state.shape[0]} rows, the images have {batch}")
        out[self.state_key] = state.to(device=self.device, dtype=torch.float32)
        return out

    def model_inputs(self, obs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The keyword arguments of ``sample_actions`` (what ``PI0Processor`` returns) for validated observations."""
        state = obs[self.state_key]
        batch = state.shape[0]
        images = torch.stack([obs[k] for k in self.camera_keys], dim=1)  # (B, n_cams, H, W, 3) uint8
        index = images.permute(0, 1, 4, 2, 3).long().add_(self._channel_offsets)  # (B, n_cams, 3, H, W)
        state_n = (state - self.state_mean) / self.state_std
        state_n = torch.nn.functional.pad(state_n, (0, self.max_state_dim - self.state_dim))
        return {
            "state": state_n,
            "input_ids": self.input_ids.expand(batch, -1),
            "attention_mask": self.attention_mask.expand(batch, -1),
            "pixel_values": torch.take(self.pixel_lut, index),
            "pixel_attention_mask": torch.ones(batch, len(self.camera_keys), dtype=torch.bool, device=self.device),
        }

    @property
    def _channel_offsets(self) -> torch.Tensor:
        return torch.arange(3, device=self.device).view(1, 1, 3, 1, 1) * 256

    # ------------------------------------------------------------------ decoding
    def forward(self, obs: Any, w: Any) -> torch.Tensor:
        """Decode a batch: dict observation ``(B, ...)`` and latents ``(B, chunk_size, max_action_dim)``
        (or flat) -> actions ``(B, chunk_steps, action_dim)``."""
        inputs = self.check_obs(obs)
        w_t = self.check_latent(w, batch_size=inputs[self.state_key].shape[0])
        with torch.inference_mode():
            out = self._decode(inputs, w_t)
        return out.clone()

    def _decode(self, obs: Mapping[str, torch.Tensor], w: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        dtype = next(self.model.parameters()).dtype
        inputs = self.model_inputs(obs)
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
        chunk = self.model.sample_actions(**inputs, noise=w.to(dtype), num_steps=self.num_steps).float()
        return chunk[:, : self.chunk_steps, : self.action_dim] * self.actions_std + self.actions_mean

    # ------------------------------------------------------------------ save / load
    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write model, processor and ``lpds_pi0.json`` into ``save_directory`` (read back by :meth:`from_pretrained`).

        :param save_directory: target folder (created)
        :return: the folder
        """
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            self.model.save_pretrained(folder)
            self.processor.save_pretrained(folder)
        tmp = folder / (LPDS_PI0_CONFIG + ".tmp")
        tmp.write_text(json.dumps(self.config, indent=2))
        os.replace(tmp, folder / LPDS_PI0_CONFIG)
        for name in ("model.safetensors", LPDS_PI0_CONFIG):  # safetensors writes private files; checkpoints are shared
            if (folder / name).is_file():
                os.chmod(folder / name, 0o644)
        return folder

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike,
        instruction: str | None = None,
        camera_keys: Sequence[str] | None = None,
        state_key: str | None = None,
        action_dim: int | None = None,
        chunk_steps: int | None = None,
        num_steps: int | None = None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
    ) -> Pi0Decoder:
        """Load a PI0 model and processor from a local folder or a Hugging Face Hub repo id.

        The folder is what ``PI0ForConditionalGeneration.save_pretrained`` and ``PI0Processor.save_pretrained``
        write (a pi0 hub repo). Arguments left ``None`` are read from ``lpds_pi0.json`` when the folder has one
        (written by :meth:`save_pretrained`); explicit arguments override it.

        :param path_or_repo_id: local folder or hub repo id
        :param instruction: the language instruction
        :param camera_keys: observation keys of the camera images
        :param state_key: observation key of the state vector
        :param action_dim: used action dimensions
        :param chunk_steps: actions per decoded chunk (default: the model's ``chunk_size``)
        :param num_steps: Euler steps (default: the model's ``num_inference_steps``)
        :param device: where the model goes
        :param dtype: weight dtype (float32 by default; a bf16 checkpoint is upcast)
        :param revision: hub revision
        :param cache_dir: hub cache folder
        :param local_files_only: never download
        :param token: hub token
        :return: the frozen decoder
        """
        require_transformers()
        from transformers import PI0ForConditionalGeneration

        hub: dict[str, Any] = dict(
            revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token
        )
        source = check_source(path_or_repo_id)
        stored = read_lpds_config(source, hub)
        given = dict(
            instruction=instruction,
            camera_keys=camera_keys,
            state_key=state_key,
            action_dim=action_dim,
            chunk_steps=chunk_steps,
            num_steps=num_steps,
        )
        args: dict[str, Any] = {k: v if v is not None else stored.get(k) for k, v in given.items()}
        missing = [k for k in ("instruction", "camera_keys", "state_key", "action_dim") if args[k] is None]
        if missing:
            raise ValueError(
                f"Pi0Decoder.from_pretrained({str(path_or_repo_id)!r}) needs {', '.join(f'{k}=' for k in missing)} "
                f"(the checkpoint has no {LPDS_PI0_CONFIG} to read them from)"
            )
        with quiet_transformers():
            processor = load_processor(source, hub)
            try:
                # Any, as Pi0Decoder takes it (the stubs type its functools.wraps'd .to as taking self explicitly)
                model: Any = PI0ForConditionalGeneration.from_pretrained(source, dtype=dtype, **hub)
            except OSError as exc:
                raise OSError(f"could not load the PI0 model from {str(path_or_repo_id)!r}: {str(exc)[:300]}") from exc
        return cls(model.to(device), processor, **args).to(device)


# ---------------------------------------------------------------------- helpers
def _as_tensor(x: Any, what: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    if isinstance(x, torch.Tensor):
        return x
    raise TypeError(f"{what} must be a torch.Tensor or np.ndarray, got {type(x).__name__}")


def _image_size(image_processor: Any) -> tuple[int, int]:
    """The (H, W) of images the processor leaves unresized and unpadded; other images are rejected."""
    size = image_processor.size
    get = size.get if isinstance(size, Mapping) else lambda k: getattr(size, k, None)
    height, width, max_height, max_width = get("height"), get("width"), get("max_height"), get("max_width")
    if height and width:
        hw = (int(height), int(width))
    elif max_height and max_width:
        hw = (int(max_height), int(max_width))
    else:
        raise ValueError(f"unsupported image processor size {dict(size)!r}; Pi0Decoder needs height/width sizes")
    if getattr(image_processor, "do_center_crop", False):
        raise ValueError("Pi0Decoder does not support image processors with do_center_crop=True")
    return hw


def _check_image_tokens(cfg: Any, processor: Any, image_size: tuple[int, int]) -> None:
    vision = getattr(getattr(cfg, "vlm_config", None), "vision_config", None)
    if vision is None:
        return
    patches = (int(vision.image_size) // int(vision.patch_size)) ** 2
    if tuple(image_size) != (int(vision.image_size),) * 2 or int(processor.image_seq_length) != patches:
        raise ValueError(
            f"processor and model disagree: the processor makes {image_size[0]}x{image_size[1]} images and "
            f"{processor.image_seq_length} image tokens, the SigLIP tower takes {vision.image_size}x{vision.image_size} "
            f"images ({patches} tokens); is the processor from this checkpoint?"
        )


def _pixel_lut(image_processor: Any) -> torch.Tensor:
    """Flat ``(3 * 256,)`` table: the processor's pixel value of uint8 value ``v`` in channel ``c`` at ``c * 256 + v``.

    Reproduces the PIL/NumPy path bit for bit: ``rescale`` multiplies in float64 and casts to float32, ``normalize``
    subtracts and divides in float32.
    """
    values = np.arange(256, dtype=np.uint8)[None, :].repeat(3, axis=0)  # (3, 256)
    if getattr(image_processor, "do_rescale", True):
        x = (values.astype(np.float64) * float(image_processor.rescale_factor)).astype(np.float32)
    else:
        x = values.astype(np.float32)
    if getattr(image_processor, "do_normalize", True):
        mean, std = image_processor.image_mean, image_processor.image_std
        mean = np.array(mean if isinstance(mean, Sequence) else [mean] * 3, dtype=np.float32)[:, None]
        std = np.array(std if isinstance(std, Sequence) else [std] * 3, dtype=np.float32)[:, None]
        x = (x - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32).reshape(-1))


#: ``config.json``'s ``model_type`` of transformers' PI0 (``PI0Config``)
PI0_MODEL_TYPE = "pi0"


def _load_pi0_checkpoint(
    name_or_path: str | os.PathLike, device: Any, hub: dict[str, Any], overrides: dict[str, Any]
) -> Decoder:
    # load_decoder of a PI0 folder or hub repo: Pi0Decoder.from_pretrained, with ``overrides`` checked against its own
    # signature (one source for the argument list)
    params = list(inspect.signature(Pi0Decoder.from_pretrained).parameters.values())
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    accepted = [
        p.name for p in params[1:] if p.kind is not inspect.Parameter.VAR_KEYWORD and p.name not in ("device", *hub)
    ]
    unknown = sorted(set(overrides) - set(accepted))
    if unknown and not takes_any:
        raise ValueError(
            f"{str(name_or_path)!r} is a PI0 checkpoint: it takes {', '.join(f'{k}=' for k in accepted)} "
            f"(Pi0Decoder.from_pretrained's arguments), not {', '.join(f'{k}=' for k in unknown)}"
        )
    return Pi0Decoder.from_pretrained(name_or_path, device=device, **hub, **overrides)


register_checkpoint_loader(PI0_MODEL_TYPE, _load_pi0_checkpoint, "PI0")
