"""Loading side of :class:`~lpds_envs.decoders.Pi0Decoder`: the optional-dependency check, checkpoint folders and
hub repos, and a torchvision-free ``PI0Processor``."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LPDS_PI0_CONFIG = "lpds_pi0.json"
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
INSTALL_HINT = 'Pi0Decoder needs transformers>=5, tokenizers and pillow; install them with: pip install "lpds[pi0]"'


def require_transformers() -> Any:
    """Import transformers' PI0 classes, or raise a one-line ImportError naming the ``pi0`` extra."""
    try:
        import PIL  # noqa: F401
        import tokenizers  # noqa: F401
        import transformers
        from transformers import PI0ForConditionalGeneration, PI0Processor  # noqa: F401
    except ImportError:
        found = ""
        with contextlib.suppress(ImportError):
            import transformers

            found = f" (found transformers {transformers.__version__})"
        raise ImportError(INSTALL_HINT + found) from None
    return transformers


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' per-file progress bars while loading or saving (restored afterwards)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def check_source(path_or_repo_id: str | os.PathLike) -> str:
    """A local folder (checked for model and processor files) or a hub id (returned as is)."""
    name = str(path_or_repo_id)
    path = Path(name).expanduser()
    looks_local = path.exists() or name.startswith((".", "~", os.sep)) or name.count("/") > 1
    if not looks_local:
        return name
    if not path.is_dir():
        raise FileNotFoundError(f"PI0 checkpoint folder {name!r} does not exist (or is not a folder)")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{name!r} has no config.json: save the model with model.save_pretrained(folder)")
    has_processor = any((path / f).is_file() for f in PROCESSOR_FILES)
    has_tokenizer = any((path / f).is_file() for f in TOKENIZER_FILES)
    if not (has_processor and has_tokenizer):
        raise FileNotFoundError(
            f"{name!r} has no processor files (expected {PROCESSOR_FILES[0]} and {TOKENIZER_FILES[0]}); save the "
            "PI0Processor next to the model with processor.save_pretrained(folder)"
        )
    return str(path)


def read_lpds_config(source: str, hub: dict[str, Any]) -> dict[str, Any]:
    path = Path(source) / LPDS_PI0_CONFIG
    if not path.is_file():
        if Path(source).is_dir():
            return {}
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(source, LPDS_PI0_CONFIG, **hub))
        except Exception:  # a plain pi0 repo has no lpds config: the arguments must then be given
            return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("decoder_type") != "pi0":
        raise ValueError(f"{path} is not a Pi0Decoder config (decoder_type != 'pi0')")
    return data


def load_processor(source: str, hub: dict[str, Any]) -> Any:
    """``PI0Processor.from_pretrained``; a torchvision-only image processor is replaced by SigLIP's PIL one."""
    from transformers import PI0Processor

    try:
        return PI0Processor.from_pretrained(source, **hub)
    except (ValueError, ImportError) as exc:
        if "torchvision" not in str(exc):
            raise
    from transformers import AutoTokenizer, SiglipImageProcessorPil
    from transformers.utils import cached_file

    config_path = cached_file(source, PROCESSOR_FILES[0], **hub)
    if config_path is None:  # cached_file raises on a missing file unless told otherwise
        raise FileNotFoundError(f"{source!r} has no {PROCESSOR_FILES[0]}")
    config = json.loads(Path(config_path).read_text())
    image_cfg = dict(config.pop("image_processor", {}))
    seq_len = int(image_cfg.pop("image_seq_length", 256))  # PI0ImageProcessor's default
    for key in ("image_processor_type", "processor_class"):
        image_cfg.pop(key, None)
    image_processor = SiglipImageProcessorPil(**image_cfg)
    # PI0Processor reads image_seq_length, which PI0ImageProcessor has and this fallback class lacks
    image_processor.image_seq_length = seq_len  # type: ignore[attr-defined]
    tokenizer = AutoTokenizer.from_pretrained(source, **hub)
    config.pop("processor_class", None)
    return PI0Processor(image_processor=image_processor, tokenizer=tokenizer, **config)
