"""Model cards of lpds decoders: one template (:data:`DECODER_CARD_TEMPLATE`, rendered by
:meth:`huggingface_hub.ModelCard.from_template`) with Hub metadata (:class:`huggingface_hub.ModelCardData`:
``library_name: lpds``, tags, pipeline tag), what the decoder is, the task, data, training command, metrics, and a
usage snippet that loads it (``load_decoder``) and steers it (``gym.make("LPDS-...", decoder=...)``).

A card states only what it is given: sections without information are left out, and every metric comes from the
caller (a training record, an evaluation file), never from this module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

LIBRARY_NAME = "lpds"
PIPELINE_TAG = "robotics"
BASE_TAGS = ("lpds", "robotics", "diffusion-steering", "reinforcement-learning")
KIND_TAGS = {"diffusion": ["diffusion-policy"], "flow": ["flow-matching"], "pi0": ["vla", "pi0"]}
#: the marker that ends a card's metadata block; docs include the card from here (``:start-after:``)
BODY_MARKER = "<!-- lpds card -->"
#: the marker after a card's title and summary (what :func:`card_body` returns ends there)
SUMMARY_END = "<!-- end of summary -->"

DECODER_CARD_TEMPLATE = """---
{{ card_data }}
---
<!-- lpds card -->

# {{ title }}

{{ summary }}
<!-- end of summary -->
{% if model %}
## Model

{{ model }}
{% endif %}{% if task %}
## Task

{{ task }}
{% endif %}{% if data %}
## Data

{{ data }}
{% endif %}{% if training %}
## Training

{{ training }}
{% endif %}{% if command %}
Command:

```
{{ command }}
```
{% endif %}{% if metrics %}
## Metrics

| metric | value | how it was measured |
|---|---|---|
{% for name, value, how in metrics %}| {{ name }} | {{ value }} | {{ how }} |
{% endfor %}{% endif %}{% if details %}
## Details

{{ details }}
{% endif %}
## Usage

```bash
{{ install }}
```

```python
{{ usage }}
```

{{ usage_note }}
"""


def py_literal(value: Any) -> str:
    """``value`` as Python source for a usage snippet, strings in double quotes (the style ruff formats to)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(py_literal(v) for v in value)
        return (
            f"({inner},)"
            if isinstance(value, tuple) and len(value) == 1
            else (f"({inner})" if isinstance(value, tuple) else f"[{inner}]")
        )
    return repr(value)


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def describe_decoder(config: dict[str, Any], n_params: int | None = None) -> str:
    """Markdown bullets of what a decoder config (``config.json``) describes."""
    kind = config.get("decoder_type", "?")
    obs_dim, act_dim, chunk = config.get("obs_dim"), config.get("action_dim"), config.get("chunk_size")
    lines = [f"- **Type**: `{kind}` decoder (`lpds_envs.decoders`), a frozen map from latent noise to an action chunk"]
    if None not in (obs_dim, act_dim, chunk):
        lines.append(
            f"- **Shapes**: observation ({obs_dim},), latent noise w ~ N(0, I) of shape ({chunk}, {act_dim}), "
            f"action chunk ({chunk}, {act_dim}): Ta = {chunk} env steps of {act_dim} action dims"
        )
    arch = [f"{k} {config[k]}" for k in ("hidden_dim", "n_blocks", "time_embed_dim") if k in config]
    if arch:
        lines.append("- **Network**: residual MLP, " + ", ".join(arch))
    if kind == "diffusion":
        lines.append(
            f"- **Sampler**: deterministic DDIM with {config.get('num_inference_steps')} steps "
            f"({config.get('num_train_timesteps')} training timesteps, {config.get('beta_schedule', '?')} schedule)"
        )
    elif kind == "flow":
        lines.append(
            f"- **Sampler**: deterministic {config.get('integrator', 'euler')} ODE with "
            f"{config.get('num_inference_steps')} steps"
        )
    if n_params is not None:
        lines.append(f"- **Parameters**: {n_params:,}")
    return "\n".join(lines)


def usage_snippet(
    source: str,
    latent_shape: Sequence[int] | None = None,
    obs_dim: int | None = None,
    env_id: str | None = None,
    backbone: str | None = None,
    load: str | None = None,
) -> str:
    """Python that loads the decoder from ``source`` (a folder or hub id) or, for a shipped backbone, with ``load``
    (``load_backbone(...)``), decodes one chunk and, when ``env_id`` is given, steers it as a Gymnasium env (the
    shipped ``backbone`` kind when given, else ``decoder=``)."""
    if load is not None:
        lines = ["import torch", "from lpds_envs.backbones import load_backbone", "", f"decoder = {load}"]
    else:
        lines = [
            "import torch",
            "from lpds_envs.decoders import load_decoder",
            "",
            f"decoder = load_decoder({py_literal(source)})",
        ]
    if latent_shape is not None and obs_dim is not None:
        lines += [
            f"obs = torch.zeros(1, {obs_dim})  # a batch of observations",
            f"w = torch.randn(1, *{tuple(int(s) for s in latent_shape)!r})  # latent noise from the prior N(0, I)",
            "chunk = decoder(obs, w)  # (1, Ta, action_dim): the actions of the next Ta env steps",
        ]
    if env_id is not None:
        make = f"backbone={py_literal(backbone)}" if backbone is not None else "decoder=decoder"
        lines += [
            "",
            "import gymnasium as gym",
            "import lpds_envs  # registers the LPDS-* ids",
            "",
            f"env = gym.make({py_literal(env_id)}, {make})  # the action is this decoder's input noise",
            "observation, info = env.reset(seed=0)",
            "observation, reward, terminated, truncated, info = env.step(env.action_space.sample())",
        ]
    return "\n".join(lines)


def format_metric(value: float, digits: int = 4) -> str:
    """A metric as text (``"not recorded"`` for NaN, so a card never prints a number that was not computed)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "not recorded"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def decoder_card(
    config: dict[str, Any],
    *,
    source: str,
    load: str | None = None,
    n_params: int | None = None,
    title: str | None = None,
    summary: str | None = None,
    describe: bool = True,
    env_id: str | None = None,
    backbone: str | None = None,
    task: str | None = None,
    data: str | None = None,
    training: str | None = None,
    command: str | None = None,
    metrics: Sequence[tuple[str, str, str]] = (),
    eval_results: Sequence[EvalResult] = (),
    details: str | None = None,
    tags: Sequence[str] = (),
    license: str | None = None,
    install: str = "pip install lpds",
) -> ModelCard:
    """The model card of a decoder.

    :param config: the decoder's ``config.json`` (with ``decoder_type``)
    :param source: the folder or hub repo id the usage snippet loads
    :param load: the snippet's loading expression instead (a shipped backbone: ``load_backbone("name")``)
    :param n_params: parameter count
    :param title: heading (default: from the decoder type)
    :param summary: one paragraph under the heading
    :param describe: add a model section describing ``config``
    :param env_id: an ``LPDS-*`` id this decoder steers (adds a ``gym.make`` line to the snippet)
    :param backbone: the shipped backbone kind of ``env_id`` this is (``gym.make(env_id, backbone=...)``)
    :param task: markdown of the task section
    :param data: markdown of the data section
    :param training: markdown of the training section
    :param command: the command that rebuilds it
    :param metrics: ``(name, value, how measured)`` rows, values as text
    :param eval_results: Hub ``model-index`` entries (:class:`huggingface_hub.EvalResult`) of measured metrics
    :param details: any further markdown
    :param tags: tags added to :data:`BASE_TAGS`
    :param license: SPDX id of the weights' license, if any
    :param install: the install command shown above the snippet
    """
    kind = str(config.get("decoder_type", "decoder"))
    all_tags = list(dict.fromkeys([*BASE_TAGS, *KIND_TAGS.get(kind, []), *tags]))
    card_data = ModelCardData(
        library_name=LIBRARY_NAME,
        pipeline_tag=PIPELINE_TAG,
        tags=all_tags,
        license=license,
        model_name=title if eval_results else None,
        eval_results=list(eval_results) or None,
    )
    latent_shape = (config["chunk_size"], config["action_dim"]) if "chunk_size" in config else None
    return ModelCard.from_template(
        card_data,
        template_str=DECODER_CARD_TEMPLATE,
        title=title or f"lpds {kind} decoder",
        summary=summary
        or (
            "A frozen generative policy saved by lpds: it maps an observation and latent noise w to a chunk of "
            "actions, deterministically. Steer it with online RL on its input noise (LP-DS, DSRL) through the "
            "lpds Gymnasium envs."
        ),
        model=describe_decoder(config, n_params) if describe else None,
        task=task,
        data=data,
        training=training,
        command=command,
        metrics=list(metrics),
        details=details,
        install=install,
        usage=usage_snippet(source, latent_shape, config.get("obs_dim"), env_id, backbone, load),
        usage_note=(
            "`load_backbone` loads the copy shipped inside the package (`verify=True` checks it against "
            "`fingerprint.json`); `load_decoder` also accepts this folder or a Hugging Face Hub repo id."
            if load is not None
            else "`load_decoder` accepts this card's folder or its Hugging Face Hub repo id."
        )
        + " The decoder is frozen and deterministic (the same observation and noise give the same action chunk); "
        "its weights are safetensors, loaded strictly.",
    )


def card_body(text: str) -> str:
    """A card's title and summary: its text after the metadata block (after :data:`BODY_MARKER`, or the closing
    ``---``) up to :data:`SUMMARY_END`, so that a card rendered again from its own summary is the same card."""
    if BODY_MARKER in text:
        text = text.split(BODY_MARKER, 1)[1]
    elif text.startswith("---\n") and (end := text.find("\n---\n", 4)) != -1:
        text = text[end + 5 :]
    return text.split(SUMMARY_END, 1)[0].strip("\n")
