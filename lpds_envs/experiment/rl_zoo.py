"""Run lpds learners with RL Zoo (``rl_zoo3``): ``pip install "lpds[zoo]"``, then::

    python -m lpds_envs.experiment.rl_zoo train --algo lpds --env LPDS-MultiGoal-v0 -n 2000 -f logs
    python -m lpds_envs.experiment.rl_zoo enjoy --algo lpds --env LPDS-MultiGoal-v0 -f logs --no-render -n 200
    python -m lpds_envs.experiment.rl_zoo record_video --algo lpds --env LPDS-MultiGoal-v0 -f logs -n 100

The launcher adds the learners of :data:`ZOO_ALGORITHMS` to RL Zoo's algorithm table (``rl_zoo3.utils.ALGOS``),
imports :mod:`lpds_envs` (so the ``LPDS-*`` ids are registered) and then runs RL Zoo's own ``train``, ``enjoy`` or
``record_video`` script, unmodified, with the remaining arguments. On top of RL Zoo it only fills in defaults:

- ``train`` with one of our algorithms and no ``--conf-file`` reads our preset file
  (``algorithms/hyperparams/<preset>.yml``, valid RL Zoo files with ``policy`` and ``n_timesteps`` in every entry);
- ``enjoy`` and ``record_video`` without ``--env-kwargs`` rebuild the env with the ``env_kwargs`` the run was trained
  with (its saved ``config.yml``; RL Zoo itself reuses only ``--env-kwargs`` given on the command line), so a preset
  that changes the latent box (DSRL's 1.5 on the toy) is evaluated in the box it learned in;
- ``record_video`` accepts ``--gym-packages`` (imported here; RL Zoo's own script does not know the option).

RL Zoo's algorithms (``sac``, ``tqc``, ``crossq``, ...) work on the ``LPDS-*`` ids too; pass them one of our preset
files with ``--conf-file`` (:func:`preset_file`). Counting: RL Zoo's ``-n`` / ``n_timesteps``, ``--eval-freq`` and
``--save-freq`` are latent steps (one decoded chunk of ``k`` raw env steps each), and so are the Monitor episode
lengths it logs; see the compatibility page of the documentation.
"""

from __future__ import annotations

import argparse
import importlib
import os
import runpy
import sys
from pathlib import Path
from typing import Any

import yaml

from algorithms.presets import HYPERPARAMS_DIR
from algorithms.registry import ALGORITHMS, AlgoSpec

from .. import registration  # noqa: F401 (registers the LPDS-* ids)

#: the extra that installs RL Zoo
ZOO_EXTRA = "zoo"
#: RL Zoo's scripts this launcher runs
COMMANDS = ("train", "enjoy", "record_video")

#: the learners RL Zoo gets: those that act on the plain ``LPDS-*`` env with a preset of their own (LP-DS-A needs
#: its residual wrapper, and the ablations are presets plus fixed settings: train them with ``lpds train``)
ZOO_ALGORITHMS: dict[str, AlgoSpec] = {
    name: spec for name, spec in ALGORITHMS.items() if spec.env_type == "latent" and not spec.fixed
}


def preset_file(algo: str) -> Path:
    """The RL Zoo hyperparameter file of one of :data:`ZOO_ALGORITHMS` (the preset file ``lpds train`` reads).

    :param algo: ``lpds``, ``dsrl``, ``dsrl-na``, ``dsrl-tqc`` or ``dsrl-crossq``
    """
    if algo not in ZOO_ALGORITHMS:
        raise ValueError(f"no RL Zoo preset for {algo!r}; one of {', '.join(ZOO_ALGORITHMS)} has one")
    return HYPERPARAMS_DIR / f"{ZOO_ALGORITHMS[algo].preset}.yml"


def _rl_zoo() -> Any:
    try:
        import rl_zoo3.utils  # the optional zoo extra
    except ImportError:
        raise SystemExit(
            f'lpds rl_zoo: error: RL Zoo (rl_zoo3) is not installed; pip install "lpds[{ZOO_EXTRA}]"'
        ) from None
    return rl_zoo3.utils


def register_algorithms() -> dict[str, type]:
    """Add :data:`ZOO_ALGORITHMS` to RL Zoo's algorithm table (``rl_zoo3.utils.ALGOS``, which ``train``, ``enjoy``
    and ``record_video`` read) and return the table. Idempotent; RL Zoo's own names are left as they are."""
    algos: dict[str, type] = _rl_zoo().ALGOS
    for name, spec in ZOO_ALGORITHMS.items():
        algos.setdefault(name, spec.cls)
    return algos


def _option(argv: list[str], *names: str) -> str | None:
    """The value of the last ``--name VALUE`` / ``--name=VALUE`` in ``argv`` (``None`` if absent)."""
    value = None
    for i, token in enumerate(argv):
        for name in names:
            if token == name and i + 1 < len(argv):
                value = argv[i + 1]
            elif token.startswith(name + "="):
                value = token.split("=", 1)[1]
    return value


def _has(argv: list[str], *names: str) -> bool:
    return any(token == name or token.startswith(name + "=") for token in argv for name in names)


def _pop_gym_packages(argv: list[str]) -> tuple[list[str], list[str]]:
    """``argv`` without ``--gym-packages A B ...``, and the packages."""
    out, packages, taking = [], [], False
    for token in argv:
        if token == "--gym-packages":
            taking = True
            continue
        if taking and not token.startswith("-"):
            packages.append(token)
            continue
        taking = False
        out.append(token)
    return out, packages


def _saved_env_kwargs(argv: list[str]) -> dict[str, Any] | None:
    """The ``env_kwargs`` of the run ``enjoy`` / ``record_video`` will load (its ``config.yml``), or ``None``."""
    algo, env = _option(argv, "--algo"), _option(argv, "--env")
    if algo is None or env is None:
        return None
    folder = _option(argv, "-f", "--folder") or "rl-trained-agents"
    exp_id = int(_option(argv, "--exp-id") or 0)
    utils = _rl_zoo()
    env_name = utils.EnvironmentName(env) if hasattr(utils, "EnvironmentName") else env
    if exp_id == 0:
        exp_id = utils.get_latest_run_id(os.path.join(folder, algo), env_name)
    log_path = os.path.join(folder, algo, f"{env_name}_{exp_id}") if exp_id > 0 else os.path.join(folder, algo)
    config = Path(log_path) / str(env_name) / "config.yml"
    if not config.is_file():
        return None
    saved = yaml.load(config.read_text(), Loader=yaml.UnsafeLoader) or {}  # RL Zoo writes it with yaml.dump
    env_kwargs = dict(saved).get("env_kwargs")
    return dict(env_kwargs) if env_kwargs else None


def zoo_argv(command: str, argv: list[str]) -> list[str]:
    """The arguments RL Zoo's ``command`` script gets for the launcher's ``argv`` (the defaults of the module
    docstring filled in).

    :param command: one of :data:`COMMANDS`
    :param argv: the arguments after the command
    """
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; use one of {', '.join(COMMANDS)}")
    argv, packages = _pop_gym_packages(list(argv))
    for module in packages:
        importlib.import_module(module)
    if command == "train":
        if packages:
            argv += ["--gym-packages", *packages]
        algo = _option(argv, "--algo")
        if algo in ZOO_ALGORITHMS and not _has(argv, "-conf", "--conf-file"):
            argv += ["--conf-file", str(preset_file(algo))]
        return argv
    if command == "enjoy" and packages:
        argv += ["--gym-packages", *packages]
    if not _has(argv, "--env-kwargs"):
        saved = _saved_env_kwargs(argv)
        if saved:
            argv += ["--env-kwargs", *(f"{key}:{value!r}" for key, value in saved.items())]
    return argv


def main(argv: list[str] | None = None) -> None:
    """``python -m lpds_envs.experiment.rl_zoo {train,enjoy,record_video} [RL Zoo's arguments]``.

    :param argv: the command and RL Zoo's arguments (default: ``sys.argv[1:]``)
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m lpds_envs.experiment.rl_zoo",
        description="RL Zoo's train / enjoy / record_video with the lpds learners registered "
        f"({', '.join(ZOO_ALGORITHMS)}) and the LPDS-* ids imported; other arguments go to RL Zoo unchanged.",
    )
    parser.add_argument("command", choices=COMMANDS)
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        raise SystemExit(0 if argv else 2)
    if argv[0] not in COMMANDS:
        parser.error(f"unknown command {argv[0]!r}; use one of {', '.join(COMMANDS)}")
    register_algorithms()
    command, rest = argv[0], zoo_argv(argv[0], argv[1:])
    old_argv = sys.argv
    sys.argv = [f"rl_zoo3.{command}", *rest]
    try:
        runpy.run_module(f"rl_zoo3.{command}", run_name="__main__", alter_sys=False)
    finally:
        sys.argv = old_argv


if __name__ == "__main__":
    main()
