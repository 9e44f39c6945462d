"""What the zoo pipelines share: crash-safe JSON records, and the command-line options and set-up of their stages."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import torch


def atomic_json(obj: Any, path: Path) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file and ``os.replace`` (never a half-written record).

    :param obj: JSON data
    :param path: the record's path
    """
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def add_backbone_options(
    parser: argparse.ArgumentParser, kinds: tuple[str, ...], bc_steps: int, kinds_help: str
) -> None:
    """The backbone stage's options: ``--bc-steps`` (behaviour-cloning steps) and ``--kinds`` (which backbones).

    :param parser: the pipeline's parser
    :param kinds: the backbone kinds the pipeline trains (all by default)
    :param bc_steps: the default number of behaviour-cloning steps
    :param kinds_help: the help of ``--kinds``
    """
    parser.add_argument("--bc-steps", type=int, default=bc_steps)
    parser.add_argument("--kinds", nargs="+", choices=kinds, default=list(kinds), help=kinds_help)


def parse_stage_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Add ``--seed`` and ``--threads``, parse ``argv`` and give torch ``--threads`` threads.

    :param parser: the pipeline's parser, with its own options added
    :param argv: the command line (``None``: ``sys.argv``)
    :return: the parsed arguments
    """
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args
