"""Model cards of the shipped backbones, from one template (:func:`lpds_envs.decoders.card.decoder_card`).

A shipped checkpoint's card keeps the description its zoo stage wrote (data, model, training, command, evaluation
with prior latents: the text the stage formatted from its records) and adds the Hub metadata, a metrics table read
from the checkpoint's own ``eval.json`` / ``coverage.json`` / ``training.json``, and a usage snippet
(``load_backbone`` and ``gym.make("LPDS-...", backbone=...)``). Before a card is written its description is checked
against those records (the BC loss, the prior-latent return or success rate, the coverage), so a card that disagrees
with the numbers next to it is refused rather than republished.

``python -m lpds_envs.backbones.zoo.cards`` regenerates every shipped card (``--check``: only verify that each card
is what the template gives).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard

from ...decoders.card import card_body, decoder_card, py_literal
from ...registration import TASKS
from ..shipped import ZOO_PACKAGE_BACKBONES, backbone_path, checkpoint_dirs, shipped_backbones


def steering_task(name: str) -> tuple[str, str] | None:
    """``(env id, backbone kind)`` of the ``LPDS-*`` task that ships checkpoint ``name`` (``None`` if none does)."""
    for task_name, task in TASKS.items():
        for kind, ckpt in task.backbones.items():
            if ckpt == name:
                return f"LPDS-{task_name}-v0", kind
    return None


def _read(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / name
    return json.loads(path.read_text()) if path.is_file() else None


def card_metrics(folder: Path) -> tuple[list[tuple[str, str, str]], list[tuple[str, float]]]:
    """The measured numbers of checkpoint ``folder``: table rows ``(name, value, how)`` and ``(metric, value)`` pairs
    for the Hub's model index, all from its json records."""
    rows: list[tuple[str, str, str]] = []
    index: list[tuple[str, float]] = []
    training, ev, cov = _read(folder, "training.json"), _read(folder, "eval.json"), _read(folder, "coverage.json")
    if training is not None and "final_bc_loss" in training:
        rows.append(
            (
                "final BC loss (EMA-smoothed)",
                f"{training['final_bc_loss']:.4f}",
                f"training loss after {training.get('stop_at') or training['steps']:,} steps (`training.json`)",
            )
        )
    if ev is not None and "n_rollouts" in ev:  # a route-counting task's records (the Avoiding zoo)
        how = f"{ev['n_rollouts']} episodes with prior latents w ~ N(0, I), unclipped, seed {ev['seed']} (`eval.json`)"
        rows.append(("success rate", f"{ev['success_rate']:.3f}", how))
        index.append(("success_rate", float(ev["success_rate"])))
        if "routes_hit" in ev:
            n_routes = len(ev["route_histogram"])
            rows.append(("routes among the successes", f"{ev['routes_hit']} of {n_routes}", how))
        if "behaviour_entropy" in ev:
            rows.append(("behaviour entropy (D3IL)", f"{ev['behaviour_entropy']:.3f}", how))
            index.append(("behaviour_entropy", float(ev["behaviour_entropy"])))
    elif ev is not None:
        how = (
            f"{ev['episodes']} episodes with prior latents (the frozen backbone itself), reset seeds {ev['seed']}.., "
            f"latent box {ev['latent_bound']} (`eval.json`)"
        )
        if "success_rate" in ev:
            rows.append(("success rate", f"{ev['success_rate']:.2f}", how))
            index.append(("success_rate", float(ev["success_rate"])))
        if "return_mean" in ev:
            rows.append(("return", f"{ev['return_mean']:.1f} +- {ev['return_std']:.1f}", how))
            index.append(("mean_reward", float(ev["return_mean"])))
        if "length_mean" in ev:
            rows.append(("episode length (raw steps)", f"{ev['length_mean']:.0f}", how))
    if cov is not None:
        how = f"{cov['n_rollouts']} rollouts of 20 steps from the origin, prior latents, seed {cov['seed']} (`coverage.json`)"
        fractions = ", ".join(f"{f:.3f}" for f in cov["goal_fractions"])
        rows.append(("goal fractions (bottom-left, top-right, top-left, bottom-right)", f"[{fractions}]", how))
        rows.append(("no goal", f"{cov['no_goal']:.3f}", how))
        rows.append(("mean return", f"{cov['mean_return']:.2f}", how))
        index.append(("mean_reward", float(cov["mean_return"])))
    return rows, index


def check_consistency(folder: Path, description: str) -> None:
    """Refuse a card ``description`` that does not state the numbers of ``folder``'s records (the BC loss, the
    prior-latent return or success rate, the coverage), naming the first missing one."""
    training, ev, cov = _read(folder, "training.json"), _read(folder, "eval.json"), _read(folder, "coverage.json")
    expected: list[tuple[str, list[str]]] = []
    if training is not None and "final_bc_loss" in training:
        expected.append(("final BC loss", [f"{training['final_bc_loss']:.4f}"]))
    if ev is not None and "return_mean" in ev:
        expected.append(("prior-latent return", [f"{ev['return_mean']:.1f}", f"{ev['return_mean']:.2f}"]))
    if ev is not None and "success_rate" in ev:
        rate = ev["success_rate"]
        expected.append(("prior-latent success rate", [f"{rate:.2f}", f"{rate:.3f}", f"{rate:.0%}"]))
    if cov is not None:
        expected.append(("coverage", [", ".join(f"{f:.3f}" for f in cov["goal_fractions"])]))
    for what, forms in expected:
        if not any(form in description for form in forms):
            raise ValueError(
                f"{folder / 'README.md'} does not state the {what} of its records ({' or '.join(forms)}); rebuild the "
                "card with the zoo stage that ships this checkpoint"
            )


def backbone_card(folder: str | Path, description: str | None = None) -> ModelCard:
    """The card of checkpoint ``folder`` from the template: ``description`` (default: the body of its current
    ``README.md``, whose first line is the title) plus metadata, metrics from its records and a usage snippet.

    :param folder: a checkpoint folder (shipped, or a zoo stage's scratch copy named like one)
    :param description: markdown starting with ``# title``, as the zoo stages format it
    """
    folder = Path(folder)
    if description is None:
        description = card_body((folder / "README.md").read_text())
    description = description.strip("\n")
    check_consistency(folder, description)
    title, _, prose = description.partition("\n")
    config = json.loads((folder / "config.json").read_text())
    pi0 = (folder / "lpds_pi0.json").is_file()
    if pi0:
        config = {"decoder_type": "pi0"}
    rows, index = card_metrics(folder)
    task = steering_task(folder.name)
    env_id, kind = task if task is not None else (None, None)
    extra = TASKS[env_id[len("LPDS-") : -len("-v0")]].extra if env_id is not None else None
    extra = extra or ("pi0" if pi0 else None)
    shipped = folder.resolve().parent in {d.resolve() for d in checkpoint_dirs()} or task is not None
    load = f"load_backbone({py_literal(folder.name)}, verify=True)" if shipped else None
    eval_results = [
        EvalResult(
            task_type="reinforcement-learning",
            dataset_type=env_id,
            dataset_name=env_id,
            metric_type=metric,
            metric_value=round(value, 4),
        )
        for metric, value in index
        if env_id is not None
    ]
    return decoder_card(
        config,
        source=str(folder),
        load=load,
        title=title.lstrip("# ").strip(),
        summary=prose.strip("\n"),
        describe=False,
        env_id=env_id,
        backbone=kind,
        metrics=rows,
        eval_results=eval_results,
        details=(
            "`fingerprint.json` holds the SHA-256 of the files loading reads and the chunks decoded from fixed "
            "inputs; `load_backbone(name, verify=True)` checks the installed files against it."
            if shipped
            else None
        ),
        tags=["lpds-zoo"],
        install=(f"pip install 'lpds[{extra}]'" if extra else "pip install lpds")
        + (" lpds-zoo" if folder.name in ZOO_PACKAGE_BACKBONES else ""),
    )


def write_card(folder: str | Path, description: str | None = None) -> Path:
    """Write :func:`backbone_card` as ``folder/README.md``."""
    path = Path(folder) / "README.md"
    text = str(backbone_card(folder, description))
    tmp = path.with_name("README.md.tmp")
    tmp.write_text(text if text.endswith("\n") else text + "\n")
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate (or --check) the cards of the shipped backbones.")
    parser.add_argument("names", nargs="*", help="checkpoints (default: all shipped)")
    parser.add_argument("--check", action="store_true", help="only check that each card is what the template gives")
    args = parser.parse_args(argv)
    stale = []
    for name in args.names or shipped_backbones():
        folder = backbone_path(name)
        if args.check:
            text = str(backbone_card(folder))
            if (folder / "README.md").read_text() != (text if text.endswith("\n") else text + "\n"):
                stale.append(name)
        else:
            print("wrote", write_card(folder))
    if stale:
        print("stale cards (run python -m lpds_envs.backbones.zoo.cards):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
