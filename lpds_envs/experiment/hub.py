"""Publishing to the Hugging Face Hub: trained agents (``lpds train`` run folders) and decoder folders (``lpds push``).

:func:`push_run` uploads a finished run (``model.zip``, ``config.yaml``, ``evaluations.csv``, ``progress.csv``) with a
model card (:func:`agent_card`: the learner, env id, KL budget ``delta``, step budget, seed, command, the final
evaluation and a loading snippet). :func:`push_decoder` uploads a decoder folder (``config.json`` +
``model.safetensors``, e.g. written by ``train_backbone`` or ``save_pretrained``) with its card, after checking that it
loads; an in-memory decoder has ``decoder.push_to_hub(repo_id)``. Both create the repo when needed and upload in one
commit with :meth:`huggingface_hub.HfApi.upload_folder`. Cards report only numbers read from the run's files.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData

from ..decoders.base import CONFIG_NAME, WEIGHTS_NAME, PretrainedDecoder, load_decoder
from ..decoders.card import LIBRARY_NAME, py_literal
from ..registration import TASKS
from .config import CONFIG_FILE, RunConfig, UsageError
from .runs import read_csv_rows

RUN_FILES = ("model.zip", CONFIG_FILE, "evaluations.csv", "progress.csv")
#: files of a decoder folder that are not uploaded (the resumable training state of ``train_backbone``)
DECODER_SKIP = ("training_state.pt", "*.tmp")

AGENT_CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

{{ summary }}

## Task

{{ task }}

## Training

{{ training }}

```bash
{{ command }}
```

Hyperparameters (`config.yaml` has every setting of the run):

```yaml
{{ hyperparams }}
```

## Results

{{ results }}

## Usage

```bash
pip install lpds
```

```python
{{ usage }}
```

Or evaluate it from the command line (return, success, executed steps, action entropy):

```bash
{{ evaluate }}
```
"""


def _final_row(run_dir: Path) -> dict[str, str]:
    rows = read_csv_rows(run_dir / "evaluations.csv")
    if not rows:
        raise UsageError(f"{run_dir} has no evaluations.csv rows; push a run folder written by `lpds train`")
    return rows[-1]


def agent_usage(cfg: RunConfig, source: str, local: bool) -> str:
    """Python that loads the agent of a run (a local folder, or a Hub repo downloaded with ``snapshot_download``)
    and acts in its env."""
    cls = cfg.spec.cls
    fetch = f"folder = {py_literal(source)}" if local else f"folder = snapshot_download({py_literal(source)})"
    lines = [
        "import gymnasium as gym",
        "import lpds_envs  # registers the LPDS-* ids",
        f"from {cls.__module__.split('.')[0]} import {cls.__name__}",
    ]
    lines += [] if local else ["from huggingface_hub import snapshot_download"]
    lines += ["", fetch, f'model = {cls.__name__}.load(f"{{folder}}/model.zip", buffer_size=1)']
    if cfg.spec.env_type == "latent":
        kwargs = "".join(f", {k}={py_literal(v)}" for k, v in cfg.env_kwargs.items())
        lines += [
            f"env = gym.make({py_literal(cfg.env_id)}{kwargs})  # the action is the frozen backbone's input noise",
            "obs, info = env.reset(seed=0)",
            f"action, _ = model.predict(obs, deterministic={bool(cfg.eval_deterministic)})",
            "obs, reward, terminated, truncated, info = env.step(action)",
        ]
    elif cfg.spec.env_type == "chunked":
        lines += [
            "# this learner acts on the chunked task env of lpds_envs.experiment.config.make_run_env;",
            "# model.fine_tuned_decoder() is the fine-tuned backbone as a decoder (save_pretrained / load_decoder)",
        ]
    else:
        lines += ["# this learner acts on the residual-action env of lpds_envs.experiment.config.make_run_env"]
    return "\n".join(lines)


def agent_card(run_dir: str | Path, source: str | None = None) -> ModelCard:
    """The model card of a finished ``lpds train`` run: learner, env id, KL budget, step budget, seed, command,
    hyperparameters, the final evaluation (read from ``evaluations.csv``) and a loading snippet.

    :param run_dir: a run folder with ``config.yaml``, ``evaluations.csv`` and ``model.zip``
    :param source: the Hub repo id the snippet downloads (default: load from ``run_dir``)
    """
    run_dir = Path(run_dir)
    cfg = RunConfig.read(run_dir)
    final = _final_row(run_dir)
    learner = cfg.spec.cls.__name__
    delta = cfg.hyperparams.get("delta")
    raw_steps, episodes = int(float(final["raw_env_steps"])), int(float(final["episodes"]))
    ret, std, success = float(final["mean_return"]), float(final["std_return"]), float(final["success_rate"])
    mode = "deterministic" if cfg.eval_deterministic else "stochastic"
    task_name = cfg.env_id[len("LPDS-") :].rsplit("-v", 1)[0]
    task = TASKS.get(task_name)
    results = [
        f"Final evaluation of this model, after {raw_steps:,} raw env steps, from `evaluations.csv`: {episodes} "
        f"{mode} episodes (seeds 10000..): return **{ret:.2f} +- {std:.2f}**, success rate **{success:.2f}**, "
        f"{float(final['mean_episode_steps']):.1f} raw steps per episode.",
    ]
    if final.get("action_entropy"):
        results.append(f"Action entropy (paper eq. 11) at the final evaluation: {float(final['action_entropy']):.3f}.")
    results.append(
        f"All {len(read_csv_rows(run_dir / 'evaluations.csv'))} periodic evaluations are in `evaluations.csv`."
    )
    eval_results = [
        EvalResult(
            task_type="reinforcement-learning",
            dataset_type=cfg.env_id,
            dataset_name=cfg.env_id,
            metric_type="mean_reward",
            metric_value=f"{ret:.2f} +/- {std:.2f}",
        ),
        EvalResult(
            task_type="reinforcement-learning",
            dataset_type=cfg.env_id,
            dataset_name=cfg.env_id,
            metric_type="success_rate",
            metric_value=round(success, 4),
        ),
    ]
    title = f"{learner} ({cfg.algo}) on {cfg.env_id}"
    card_data = ModelCardData(
        library_name=LIBRARY_NAME,
        tags=["lpds", "reinforcement-learning", "stable-baselines3", "diffusion-steering", cfg.env_id, cfg.algo],
        model_name=title,
        eval_results=eval_results,
    )
    local = source is None
    return ModelCard.from_template(
        card_data,
        template_str=AGENT_CARD_TEMPLATE,
        title=title,
        summary=(
            f"A {cfg.spec.summary} agent trained with `lpds train` "
            f"(seed {cfg.seed}). It steers the frozen backbone of `{cfg.env_id}` by choosing the backbone's input "
            "noise; the backbone's weights are not part of this repo (they ship with lpds)."
        ),
        task=(
            f"`{cfg.env_id}`"
            + (f": raw task `{task.raw_id}`, backbone `{task.default_backbone}` (default)" if task else "")
            + (f", env settings {cfg.env_kwargs}" if cfg.env_kwargs else "")
            + "."
        ),
        training=(
            f"Learner `{learner}` (`--algo {cfg.algo}`), "
            + (f"KL budget delta = {delta}, " if delta is not None else "")
            + f"budget {cfg.steps:,} raw env steps (one executed action = one step), seed {cfg.seed}, "
            f"{cfg.n_envs} env(s), evaluation every {cfg.eval_freq:,} raw steps on {cfg.eval_episodes} episodes; "
            f"lpds {cfg.versions.get('lpds', '?')}, torch {cfg.versions.get('torch', '?')}."
        ),
        command=cfg.command
        or f"lpds train --algo {cfg.algo} --env {cfg.env_id} --steps {cfg.steps} --seeds {cfg.seed}",
        hyperparams=json.dumps(cfg.hyperparams, indent=1, default=str),
        results="\n\n".join(results),
        usage=agent_usage(cfg, str(run_dir) if local else str(source), local),
        evaluate=(
            f"lpds evaluate --model {run_dir}"
            if local
            else f"hf download {source} --local-dir {cfg.name}-seed{cfg.seed} && lpds evaluate --model {cfg.name}-seed{cfg.seed}"
        ),
    )


def _api(token: str | None, endpoint: str | None) -> HfApi:
    return HfApi(endpoint=endpoint, token=token)


def push_run(
    run_dir: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    endpoint: str | None = None,
) -> Any:
    """Upload a finished ``lpds train`` run to Hub repo ``repo_id`` (created if needed) in one commit: ``model.zip``,
    ``config.yaml``, ``evaluations.csv``, ``progress.csv`` and the card of :func:`agent_card`.

    :param run_dir: the run folder (``<out>/<env>/<name>/seed_<k>``)
    :param repo_id: ``"user/name"``
    :param token: Hub token (default: the logged-in one)
    :param private: create the repo private
    :param revision: the branch to commit to (default ``main``)
    :param commit_message: the commit message
    :param endpoint: the Hub endpoint (default ``HF_ENDPOINT``)
    :return: the :class:`huggingface_hub.CommitInfo` of the commit
    """
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise UsageError(
            f"{run_dir} has no {CONFIG_FILE}; pass a run folder of `lpds train` (OUT/<env>/<name>/seed_<k>)"
        )
    if not (run_dir / "model.zip").is_file():
        raise UsageError(f"{run_dir} has no model.zip: the run is not finished; re-run its `lpds train` command first")
    card = agent_card(run_dir, source=repo_id)
    api = _api(token, endpoint)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        for name in RUN_FILES:
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, stage / name)
        card.save(stage / "README.md")
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=stage,
            repo_type="model",
            revision=revision,
            commit_message=commit_message or f"lpds: {card.data.model_name}",
        )


def push_decoder(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    endpoint: str | None = None,
) -> Any:
    """Upload decoder folder ``folder`` (``config.json`` + ``model.safetensors``, its card and records, not the
    resumable training state) to Hub repo ``repo_id`` in one commit, after checking that it loads. A folder without
    a card gets the decoder's own (:meth:`PretrainedDecoder.generate_model_card`); the card's snippet is pointed at
    ``repo_id``.

    :param folder: the decoder folder
    :param repo_id: ``"user/name"``
    :param token: Hub token (default: the logged-in one)
    :param private: create the repo private
    :param revision: the branch to commit to (default ``main``)
    :param commit_message: the commit message
    :param endpoint: the Hub endpoint (default ``HF_ENDPOINT``)
    :return: the :class:`huggingface_hub.CommitInfo` of the commit
    """
    folder = Path(folder)
    if not (folder / CONFIG_NAME).is_file() or not (folder / WEIGHTS_NAME).is_file():
        raise UsageError(f"{folder} is not a decoder folder (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    try:
        decoder = load_decoder(folder)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{folder} does not load as a decoder ({exc}); fix it before pushing") from None
    api = _api(token, endpoint)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "repo"
        shutil.copytree(folder, stage, ignore=shutil.ignore_patterns(*DECODER_SKIP))
        readme = stage / "README.md"
        if readme.is_file():
            # the card's snippet loads the repo instead of the local folder
            readme.write_text(
                re.sub(r"load_decoder\((['\"]).*?\1\)", f"load_decoder({py_literal(repo_id)})", readme.read_text())
            )
        elif isinstance(decoder, PretrainedDecoder):
            decoder.generate_model_card(source=repo_id).save(readme)
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=stage,
            repo_type="model",
            revision=revision,
            commit_message=commit_message or f"lpds: decoder {folder.name}",
        )


def push_folder(folder: str | Path, repo_id: str, **kwargs: Any) -> Any:
    """:func:`push_run` for a run folder (``config.yaml``), :func:`push_decoder` for a decoder folder
    (``config.json``); a usage error otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder; pass a run folder of `lpds train` or a decoder folder")
    if (folder / CONFIG_FILE).is_file():
        return push_run(folder, repo_id, **kwargs)
    if (folder / CONFIG_NAME).is_file():
        return push_decoder(folder, repo_id, **kwargs)
    raise UsageError(
        f"{folder} has neither {CONFIG_FILE} (a run of `lpds train`: OUT/<env>/<name>/seed_<k>) nor {CONFIG_NAME} "
        "(a decoder folder)"
    )
