"""The ``lpds`` command line: ``demo``, ``train``, ``evaluate``, ``sweep``, ``plot``, ``push``.

Mistakes in the input (unknown algorithm or env id, malformed ``--set``, a missing run folder, ...) end with
exit code 2 and one line saying what to do; an interrupted ``train`` exits with 130 and resumes when re-run; a
``train`` whose losses or weights become NaN or inf exits with 1 and one line naming the quantity and likely cause,
keeping its last good checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from algorithms.registry import ALGORITHMS

from .config import RunConfig, UsageError, check_env_id, get_algo, parse_set, resolve_hyperparams
from .demo import run_demo
from .evaluate import evaluate_saved
from .hub import push_folder
from .plotting import plot_runs
from .runs import TrainingDiverged, command_line, train_seeds
from .sweep import build_sweep, run_sweep
from .tracking import TRACKERS, check_tracker

ALGO_HELP = ", ".join(ALGORITHMS)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``lpds train: error: ...; see lpds train --help``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def _count(text: str) -> int:
    """An integer that may be written ``20000``, ``20_000`` or ``2e4``."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(value)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--algo", required=True, help=f"one of {ALGO_HELP}")
    p.add_argument("--env", required=True, help="an LPDS-<Task>-v0 id, e.g. LPDS-MultiGoal-v0")
    p.add_argument("--steps", type=_count, required=True, help="budget in raw env steps (one executed action = one)")
    p.add_argument("--out", default="runs", help="output root; runs land in OUT/<env>/<name>/seed_<k> (default runs)")
    p.add_argument("--hyperparams", metavar="FILE", help="yml merged over the preset ({env_id: {...}} or flat)")
    p.add_argument(
        "--set",
        dest="sets",
        metavar="KEY=VALUE",
        nargs="+",
        action="extend",
        default=[],
        help="override a hyperparameter (YAML value; dotted keys for nested: policy_kwargs.net_arch=[64,64])",
    )
    p.add_argument("--eval-freq", type=_count, default=0, help="evaluate every N env steps (default steps/20)")
    p.add_argument("--eval-episodes", type=_count, default=10, help="episodes per evaluation (default 10)")
    p.add_argument(
        "--eval-entropy-states",
        type=_count,
        default=0,
        help="also log the action entropy (eq. 11) at N states of each evaluation's episodes (default 0: off)",
    )
    p.add_argument(
        "--eval-entropy-samples", type=_count, default=64, help="policy samples per entropy probe state (default 64)"
    )
    p.add_argument("--checkpoint-freq", type=_count, default=0, help="checkpoint every N env steps (default eval freq)")
    p.add_argument("--no-replay-buffer", action="store_true", help="leave the replay buffer out of checkpoints")
    p.add_argument("--device", default="auto", help="torch device of learner and decoder (default auto)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lpds", description="Steer frozen generative policies with online RL.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser("demo", help="steer the shipped toy backbone with LP-DS and DSRL-SAC and show before/after")
    demo.add_argument("--steps", type=int, default=4000, help="env steps of steering per method (default 4000)")
    demo.add_argument("--rollouts", type=int, default=1000, help="evaluation rollouts (default 1000)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="lpds_demo", help="folder for the trajectory PNG and JSON summary")

    train = sub.add_parser("train", help="train ALGO on ENV for each seed (resumes interrupted runs)")
    _add_run_options(train)
    train.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default 0)")
    train.add_argument("--name", default="", help="variant folder and plot label (default: ALGO)")
    train.add_argument("--jobs", type=int, default=1, help="run up to N seeds in parallel subprocesses (default 1)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--verbose", action="store_true", help="also print SB3's log tables")
    train.add_argument(
        "--track",
        choices=TRACKERS,
        default=None,
        help='also log to TensorBoard or Weights & Biases (pip install "lpds[tracking]"; WANDB_MODE=offline: no network)',
    )
    train.add_argument("--wandb-project", default=None, help="W&B project of --track wandb (default: lpds)")

    ev = sub.add_parser("evaluate", help="evaluate a trained model: return, success, executed steps, action entropy")
    ev.add_argument("--model", required=True, help="a run folder of `lpds train` or a model .zip")
    ev.add_argument("--env", default=None, help="env id (default: the run's)")
    ev.add_argument("--episodes", type=_count, default=10, help="episodes (default 10)")
    ev.add_argument("--algo", default=None, help="algorithm of a bare .zip (default: the run's)")
    ev.add_argument("--seed", type=int, default=0)
    mode = ev.add_mutually_exclusive_group()
    mode.add_argument("--deterministic", action="store_const", const=True, dest="deterministic", default=None)
    mode.add_argument("--stochastic", action="store_const", const=False, dest="deterministic")
    ev.add_argument("--video", metavar="DIR", default=None, help="record the first episodes to DIR (rgb_array envs)")
    ev.add_argument("--video-episodes", type=int, default=1, help="episodes to record (default 1)")
    ev.add_argument("--entropy-states", type=int, default=32, help="probe states for action entropy (0: skip)")
    ev.add_argument("--entropy-samples", type=int, default=64, help="policy samples per probe state (default 64)")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--json", default=None, help="also write the metrics to this JSON file")
    ev.add_argument(
        "--vs-backbone",
        action="store_true",
        help="also run the frozen backbone (prior latents) on the same episodes and print the gain (steering "
        "learners and dppo / idql / dql)",
    )
    ev.add_argument(
        "--independent-noise",
        action="store_true",
        help="with --vs-backbone: the backbone draws its own latents instead of the learner's eps (the unpaired "
        "comparison of lpds before 2026-12; default: common random numbers)",
    )

    sw = sub.add_parser("sweep", help="grid over hyperparameters x seeds as Ray Tune trials (pip install lpds[sweep])")
    _add_run_options(sw)
    sw.add_argument("--grid", nargs="+", action="extend", default=[], required=True, help="KEY=V1,V2,... (repeatable)")
    sw.add_argument("--seeds", type=int, default=3, help="number of seeds per grid point, 0..N-1 (default 3)")
    sw.add_argument("--address", default=None, help="an existing Ray cluster (e.g. auto or ray://host:10001)")
    sw.add_argument("--cpus-per-trial", type=float, default=1.0, help="Ray CPUs per trial (default 1)")
    sw.add_argument("--verbose", type=int, default=1, help="Ray Tune verbosity 0-3 (default 1)")

    plot = sub.add_parser("plot", help="learning curves (95%% bootstrap bands) and a final-performance table")
    plot.add_argument("dirs", nargs="+", metavar="DIR", help="output folders of `lpds train` / `lpds sweep`")
    plot.add_argument("--out", default=None, help="where to write the figures and table (default: the first DIR)")
    plot.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    plot.add_argument(
        "--max-steps", type=int, default=None, help="use evaluations up to this many raw env steps (a common budget)"
    )
    plot.add_argument(
        "--aggregate",
        choices=["mean", "iqm"],
        default="mean",
        help="iqm: also rliable's IQM, median, mean, optimality gap, probability of improvement and performance "
        "profiles of the final evaluations, with stratified-bootstrap CIs (pip install lpds[plot])",
    )
    plot.add_argument("--metric", choices=["return", "success"], default="return", help="score of --aggregate iqm")
    plot.add_argument(
        "--normalize",
        choices=["auto", "none", "minmax"],
        default="auto",
        help="per-env min-max scaling of the scores (auto: for returns of several envs)",
    )

    push = sub.add_parser("push", help="upload a run folder (model, config, evaluations, card) or a decoder folder")
    push.add_argument(
        "folder", metavar="DIR", help="a run folder of `lpds train` (OUT/<env>/<name>/seed_<k>) or a decoder folder"
    )
    push.add_argument("--repo-id", required=True, help="Hugging Face Hub repo, user/name (created if needed)")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--revision", default=None, help="branch to commit to (default main)")
    push.add_argument("--message", default=None, help="commit message")
    push.add_argument("--token", default=None, help="Hub token (default: the logged-in one, or HF_TOKEN)")
    return parser


def _run_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    for option in ("eval_freq", "checkpoint_freq", "eval_entropy_states"):
        if getattr(args, option) < 0:
            flag = "--" + option.replace("_", "-")
            raise _usage(f"{flag} must be >= 0 (0: the default), got {getattr(args, option)}")
    if args.eval_entropy_samples < 1:
        raise _usage(f"--eval-entropy-samples must be >= 1, got {args.eval_entropy_samples}")
    return {
        "eval_freq": args.eval_freq,
        "eval_episodes": args.eval_episodes,
        "eval_entropy_states": args.eval_entropy_states,
        "eval_entropy_samples": args.eval_entropy_samples,
        "checkpoint_freq": args.checkpoint_freq,
        "save_replay_buffer": not args.no_replay_buffer,
        "device": args.device,
    }


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    spec = get_algo(args.algo)
    check_env_id(args.env)
    overrides = parse_set(args.sets)
    hp = resolve_hyperparams(spec, args.env, args.hyperparams, overrides)
    if args.eval_episodes < 1:
        raise _usage("--eval-episodes must be >= 1")
    if len(set(args.seeds)) != len(args.seeds):
        raise _usage(f"--seeds has duplicates {args.seeds}; list each seed once")
    check_tracker(args.track)
    cfgs = [
        RunConfig(
            algo=args.algo,
            env_id=args.env,
            seed=seed,
            steps=args.steps,
            out=args.out,
            name=args.name,
            hyperparams=hp,
            overrides=overrides,
            hyperparams_file=args.hyperparams,
            command=command_line(argv),
            track=args.track,
            wandb_project=args.wandb_project,
            **_run_kwargs(args),
        )
        for seed in args.seeds
    ]

    def child_args(cfg: RunConfig) -> list[str]:
        return _one_seed_argv(argv, cfg.seed)

    failed = train_seeds(cfgs, jobs=args.jobs, child_args=child_args, progress=not args.no_progress)
    if failed:
        print(f"lpds train: {failed} of {len(cfgs)} runs failed; see their train.log", file=sys.stderr)
        return 1
    return 0


def _one_seed_argv(argv: list[str], seed: int) -> list[str]:
    """The ``lpds train`` arguments ``argv`` for seed ``seed`` alone (a ``--jobs`` subprocess): ``--seeds`` and
    ``--jobs`` are replaced, everything else is passed on as the user wrote it."""
    out: list[str] = []
    skipping = False
    for token in argv:
        if token in ("--seeds", "--jobs") or token.startswith(("--seeds=", "--jobs=")):
            skipping = "=" not in token
            continue
        if skipping and not token.startswith("--"):
            continue  # a value of --seeds / --jobs
        skipping = False
        out.append(token)
    return [*out, "--seeds", str(seed), "--no-progress"]


def _sweep(args: argparse.Namespace) -> int:
    cfgs = build_sweep(
        args.algo,
        args.env,
        args.grid,
        args.seeds,
        args.steps,
        args.out,
        args.hyperparams,
        parse_set(args.sets),
        **_run_kwargs(args),
    )
    failed = run_sweep(cfgs, address=args.address, cpus_per_trial=args.cpus_per_trial, verbose=args.verbose)
    return 1 if failed else 0


def _usage(message: str) -> Exception:
    return UsageError(message)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        run_demo(steps=args.steps, rollouts=args.rollouts, seed=args.seed, out=args.out)
        return

    try:
        if args.command == "train":
            code = _train(args, argv)
        elif args.command == "sweep":
            code = _sweep(args)
        elif args.command == "evaluate":
            evaluate_saved(
                args.model,
                args.env,
                args.episodes,
                args.algo,
                args.seed,
                args.deterministic,
                args.video,
                args.video_episodes,
                args.entropy_states,
                args.entropy_samples,
                args.device,
                args.json,
                args.vs_backbone,
                not args.independent_noise,
            )
            code = 0
        elif args.command == "push":
            commit = push_folder(
                args.folder,
                args.repo_id,
                token=args.token,
                private=args.private or None,
                revision=args.revision,
                commit_message=args.message,
            )
            print(f"pushed {args.folder} to {args.repo_id}: {getattr(commit, 'commit_url', commit)}")
            code = 0
        else:
            plot_runs(args.dirs, args.out, args.bootstrap, args.max_steps, args.aggregate, args.metric, args.normalize)
            code = 0
    except UsageError as exc:
        print(f"lpds {args.command}: error: {exc}", file=sys.stderr)
        code = 2
    except TrainingDiverged as exc:
        print(f"lpds {args.command}: error: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
