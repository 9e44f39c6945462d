"""Build tiny, randomly initialised PI0 checkpoints (model + processor) offline, for tests, examples and BC.

A real pi0 checkpoint is a folder (or hub repo) written by ``PI0ForConditionalGeneration.save_pretrained`` and
``PI0Processor.save_pretrained``. :func:`make_tiny_pi0` builds the same two objects at toy size, without any
download: a word-level tokenizer trained locally with ``tokenizers``, a torchvision-free
``SiglipImageProcessorPil`` (with ``image_seq_length``) as the image processor, and a PI0 whose PaliGemma (Gemma
text model + SigLIP vision tower) and action expert have ``num_layers`` layers of width ``hidden_size``.

Example::

    >>> import tempfile
    >>> from lpds_envs.decoders.pi0_tiny import save_tiny_pi0
    >>> folder = save_tiny_pi0(tempfile.mkdtemp(), chunk_size=4, max_action_dim=4, action_dim=2, state_dim=3)
    >>> sorted(p.name for p in folder.iterdir())[:3]
    ['config.json', 'model.safetensors', 'processor_config.json']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .pi0_hub import quiet_transformers, require_transformers

#: words the tiny tokenizers know; anything else becomes ``<unk>``
DEFAULT_VOCABULARY = (
    "go to the goal reach one of four goals move left right up down top bottom pick place put cube tray in on and a"
)


def make_tiny_pi0(
    *,
    image_size: int = 64,
    patch_size: int = 16,
    chunk_size: int = 8,
    max_action_dim: int = 8,
    max_state_dim: int = 8,
    state_dim: int = 4,
    action_dim: int = 2,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_inference_steps: int = 5,
    state_mean: Sequence[float] | None = None,
    state_std: Sequence[float] | None = None,
    actions_mean: Sequence[float] | None = None,
    actions_std: Sequence[float] | None = None,
    vocabulary: str = DEFAULT_VOCABULARY,
    seed: int = 0,
) -> tuple[Any, Any]:
    """Build a tiny random ``PI0ForConditionalGeneration`` and a matching ``PI0Processor``.

    :param image_size: side of the square camera images (pixels); the SigLIP tower sees
        ``(image_size // patch_size) ** 2`` tokens per camera
    :param patch_size: SigLIP patch size
    :param chunk_size: actions per chunk (the model's noise is ``(chunk_size, max_action_dim)``)
    :param max_action_dim: padded action width of the model
    :param max_state_dim: padded state width of the model
    :param state_dim: length of the (unpadded) state vector the processor normalises
    :param action_dim: length of the (unpadded) action vector the processor's statistics describe
    :param hidden_size: width of the Gemma text model, the SigLIP tower and the action expert
    :param num_layers: layers of each of the three transformers
    :param num_inference_steps: default Euler steps of ``sample_actions``
    :param state_mean: state statistics (default zeros / ones)
    :param state_std: see ``state_mean``
    :param actions_mean: action statistics (default zeros / ones)
    :param actions_std: see ``actions_mean``
    :param vocabulary: text the word-level tokenizer is trained on
    :param seed: seed of the random weights
    :return: ``(model, processor)``, the model in eval mode
    """
    require_transformers()
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import (
        PI0Config,
        PI0ForConditionalGeneration,
        PI0Processor,
        PreTrainedTokenizerFast,
        SiglipImageProcessorPil,
    )

    if image_size % patch_size:
        raise ValueError(f"image_size ({image_size}) must be a multiple of patch_size ({patch_size})")
    if action_dim > max_action_dim or state_dim > max_state_dim:
        raise ValueError(
            f"action_dim {action_dim} / state_dim {state_dim} exceed max_action_dim {max_action_dim} / "
            f"max_state_dim {max_state_dim}"
        )
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        [vocabulary], trainers.WordLevelTrainer(special_tokens=["<pad>", "<unk>", "<bos>", "<eos>"])
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>"
    )
    image_processor = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    # PI0Processor reads image_seq_length, which PI0ImageProcessor has and SiglipImageProcessorPil lacks
    image_processor.image_seq_length = (image_size // patch_size) ** 2  # type: ignore[attr-defined]
    processor = PI0Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        state_mean=[0.0] * state_dim if state_mean is None else [float(x) for x in state_mean],
        state_std=[1.0] * state_dim if state_std is None else [float(x) for x in state_std],
        actions_mean=[0.0] * action_dim if actions_mean is None else [float(x) for x in actions_mean],
        actions_std=[1.0] * action_dim if actions_std is None else [float(x) for x in actions_std],
        max_state_dim=max_state_dim,
        chunk_size=chunk_size,
    )
    vocab_size = len(processor.tokenizer)
    heads, head_dim = 2, hidden_size // 2
    gemma = dict(
        model_type="gemma",
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        intermediate_size=2 * hidden_size,
        num_attention_heads=heads,
        num_key_value_heads=1,
        head_dim=head_dim,
    )
    config = PI0Config(
        vlm_config=dict(
            model_type="paligemma",
            text_config=dict(gemma, vocab_size=vocab_size),
            vision_config=dict(
                model_type="siglip_vision_model",
                hidden_size=hidden_size,
                intermediate_size=2 * hidden_size,
                num_hidden_layers=num_layers,
                num_attention_heads=heads,
                patch_size=patch_size,
                image_size=image_size,
                vision_use_head=False,
            ),
            projection_dim=hidden_size,
            image_token_id=processor.image_token_id,
            vocab_size=vocab_size,
        ),
        dit_config=gemma,
        chunk_size=chunk_size,
        max_state_dim=max_state_dim,
        max_action_dim=max_action_dim,
        num_inference_steps=num_inference_steps,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = PI0ForConditionalGeneration(config)
    return model.eval(), processor


def save_tiny_pi0(folder: str | os.PathLike, **kwargs: Any) -> Path:
    """Build a tiny PI0 with :func:`make_tiny_pi0` and save model and processor into ``folder`` (a hub-style repo).

    :param folder: target folder (created)
    :param kwargs: passed to :func:`make_tiny_pi0`
    :return: the folder
    """
    model, processor = make_tiny_pi0(**kwargs)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
    return folder
