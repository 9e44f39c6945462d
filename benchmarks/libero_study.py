"""LP-DS vs DSRL-SAC vs DSRL-pi0's repeated noise, steering the shipped PI0 on `LPDS-LiberoCreamCheese-v0`.

Three stages, each resumable (a finished run or evaluation is skipped; ``lpds train`` resumes a cut-off run), and
``all``, which runs a shard's training and then its evaluations:

- ``train``: ``lpds train`` for every (learner, seed) of ``--shard i/n`` (so that two shells can share the work), the
  learners' presets with the CPU budget's overrides (:data:`COMMON`, :data:`EXTRA`).
- ``evaluate``: the shard's final models and (in the last shard) the frozen backbone (prior latents of the task's
  default exact-prior subspace) on the same ``--episodes`` seeded episodes (reset seeds ``--seed`` + j, one env at
  a time), per-episode results in ``<run>/final_episodes.json`` and ``<out>/backbone_episodes.json``.
- ``entropy``: the action entropy (paper eq. 11) of the backbone and of every final model at the first states of
  ``--entropy-states`` evaluation episodes, in ``final_entropy.json`` / ``backbone_entropy.json``.
- ``worker``: any number of workers share all trainings and evaluations through lock files (``<out>/locks``).
- ``report``: the table of docs/results/libero.md (success and return against the backbone, paired by reset seed),
  written to ``benchmarks/results/libero/report.json``.

Needs the libero and pi0 extras (the libero venv)::

    export MUJOCO_GL=egl OMP_NUM_THREADS=1
    python benchmarks/libero_study.py all --shard 0/2 & python benchmarks/libero_study.py all --shard 1/2; wait
    python benchmarks/libero_study.py entropy && python benchmarks/libero_study.py report
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, add_repo_to_path, machine_info, markdown_table  # noqa: E402

add_repo_to_path()

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import gymnasium as gym  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from algorithms.latent_env import resolve_decoder  # noqa: E402
from lpds_envs.evaluation import PriorPolicy, evaluate_policy, success_gain_se  # noqa: E402
from lpds_envs.evaluation.episodes import isolated_rng  # noqa: E402
from lpds_envs.experiment.config import get_algo, make_run_env  # noqa: E402
from lpds_envs.experiment.evaluate import load_trained, locate_model  # noqa: E402
from lpds_envs.metrics import action_entropy, model_sampler, prior_sampler  # noqa: E402

ENV = "LPDS-LiberoCreamCheese-v0"
LEARNERS = ("lpds", "dsrl", "dsrl-pi0")
SEEDS = (0, 1, 2)
#: raw env steps per run (chunks of 5): what two cores fit in one session next to the evaluations
STEPS = 5000
#: the CPU budget's overrides of every learner's preset (which follows DSRL-pi0's LIBERO script: 20 gradient steps
#: per chunk, batch 256): one gradient step per chunk on batches of 64, updates after 100 chunks of prior latents
COMMON = ["gradient_steps=1", "batch_size=64", "learning_starts=100"]
#: LP-DS's fast mode validated on Hopper (docs/results/speed.md): no decode inside a gradient step
EXTRA = {"lpds": ["prior_cache=8", "td_target=latent_critic"], "dsrl": [], "dsrl-pi0": []}
#: the frozen backbone with prior latents, in the env of the LP-DS runs (latent box 2.5) and in the box of the DSRL
#: runs (1.0, DSRL-pi0's action_magnitude), which by itself changes what the frozen policy does
BACKBONES: dict[str, dict[str, Any]] = {"backbone": {}, "backbone_bound1": {"latent_bound": 1.0}}
Job = tuple[str, int] | str  # (learner, seed), or a key of BACKBONES
RESULTS = REPO_ROOT / "benchmarks" / "results" / "libero"


def run_dir(out: Path, algo: str, seed: int) -> Path:
    return out / ENV / algo / f"seed_{seed}"


def kept_dir(job: Job) -> Path:
    return RESULTS / "records" / (job if isinstance(job, str) else f"{job[0]}-seed_{job[1]}")


def keep(job: Job, path: Path) -> None:
    """Copy ``path`` (an episodes, entropy or evaluations record) to :func:`kept_dir`, in the repository: the run
    folders (models, logs) are not kept, and a later session can rebuild the report and add runs from these."""
    if path.is_file():
        dest = kept_dir(job) / (path.name.removeprefix(f"{job}_") if isinstance(job, str) else path.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(path.read_bytes())


def record(out: Path, job: Job, name: str) -> Path:
    """``name`` of ``job`` in its run folder (or ``out`` for a backbone), else the kept copy."""
    here = out / f"{job}_{name}" if isinstance(job, str) else run_dir(out, *job) / name
    return here if here.is_file() else kept_dir(job) / name


def selected(args: argparse.Namespace, job: Job) -> bool:
    """Whether ``--only`` (comma-separated ``learner-seed`` or backbone names) includes ``job``."""
    name = job if isinstance(job, str) else f"{job[0]}-{job[1]}"
    return not args.only or name in args.only.split(",")


def shard(items: list[Any], spec: str) -> list[Any]:
    i, n = (int(x) for x in spec.split("/"))
    return items[i::n]


def runs(spec: str) -> list[tuple[str, int]]:
    """The (learner, seed) pairs of shard ``spec``."""
    return shard([(a, s) for s in SEEDS for a in LEARNERS], spec)


def train_one(args: argparse.Namespace, algo: str, seed: int) -> None:
    if (run_dir(args.out, algo, seed) / "model.zip").is_file():
        print(f"{algo} seed {seed}: done", flush=True)
        return
    cmd = [
        sys.executable, "-m", "lpds_envs.experiment.cli", "train", "--algo", algo, "--env", ENV,
        "--steps", str(args.steps), "--seeds", str(seed), "--set", *COMMON, *EXTRA[algo],
        "--eval-freq", str(args.steps), "--eval-episodes", "2", "--checkpoint-freq", "500", "--device", "cpu",
        "--out", str(args.out), "--no-progress",
    ]  # fmt: skip
    print(" ".join(cmd[1:]), flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True)
    keep((algo, seed), run_dir(args.out, algo, seed) / "evaluations.csv")
    print(f"{algo} seed {seed}: trained in {time.time() - t0:.0f} s", flush=True)


def train(args: argparse.Namespace) -> None:
    for algo, seed in runs(args.shard):
        train_one(args, algo, seed)


def episodes_record(result: Any, seconds: float) -> dict[str, Any]:
    return {
        **result.to_dict(),
        "successes": [bool(x) for x in result.success],
        "returns": [float(x) for x in result.returns],
        "lengths": [int(x) for x in result.lengths],
        "seconds": round(seconds, 1),
    }


def evaluate_one(args: argparse.Namespace, job: Job) -> None:
    """Evaluate one final model (``job`` = (learner, seed)) or a frozen backbone (a key of :data:`BACKBONES`);
    skipped when done or when the model does not exist yet."""
    if isinstance(job, str):
        path = args.out / f"{job}_episodes.json"
        if path.is_file():
            return
        venv = make_run_env(get_algo("lpds"), ENV, BACKBONES[job], args.n_envs, None, "cpu")
        policy: Any = PriorPolicy(int(np.prod(venv.action_space.shape)), args.seed)
        deterministic = False
    else:
        algo, seed = job
        folder = run_dir(args.out, algo, seed)
        path = folder / "final_episodes.json"
        if path.is_file() or not (folder / "model.zip").is_file():
            return
        model_path, cfg = locate_model(folder)
        assert cfg is not None
        spec = get_algo(algo)
        venv = make_run_env(spec, ENV, cfg.env_kwargs, args.n_envs, None, "cpu")
        policy, deterministic = load_trained(model_path, algo, venv, "cpu"), spec.eval_deterministic
    t0 = time.time()
    result = evaluate_policy(policy, venv, deterministic, args.seed, args.episodes)
    venv.close()
    path.write_text(json.dumps(episodes_record(result, time.time() - t0), indent=1))
    keep(job, path)
    print(f"{job}: success {result.success_rate:.3f} over {args.episodes}", flush=True)


def evaluate(args: argparse.Namespace) -> None:
    i, n = (int(x) for x in args.shard.split("/"))
    jobs: list[Job] = list(runs(args.shard)) + (list(BACKBONES) if i == n - 1 else [])
    for job in jobs:
        evaluate_one(args, job)


def claim(path: Path) -> bool:
    """Create lock file ``path`` atomically; False if another worker holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def worker(args: argparse.Namespace) -> None:
    """Any number of these share all the work through lock files in ``<out>/locks``: every unfinished training,
    then every evaluation whose model exists, passes repeated until nothing is left that this worker can take."""
    locks = args.out / "locks"
    pending = True
    while pending:
        pending = False
        for algo, seed in [(a, s) for s in SEEDS for a in LEARNERS if selected(args, (a, s))]:
            if not (run_dir(args.out, algo, seed) / "model.zip").is_file() and claim(locks / f"train-{algo}-{seed}"):
                train_one(args, algo, seed)
        jobs: list[Job] = [*BACKBONES, *((a, s) for s in SEEDS for a in LEARNERS)]
        for job in filter(lambda j: selected(args, j), jobs):
            name = job if isinstance(job, str) else f"{job[0]}-{job[1]}"
            if not isinstance(job, str) and not (run_dir(args.out, *job) / "model.zip").is_file():
                pending = pending or not (locks / f"eval{args.episodes}-{name}").exists()
                continue
            if claim(locks / f"eval{args.episodes}-{name}"):
                evaluate_one(args, job)
        if pending:
            time.sleep(30)


def probe_states(n: int, seed: int) -> dict[str, np.ndarray]:
    """The first observations of evaluation episodes ``seed``, ``seed + 1``, ... (the same for every learner)."""
    env = gym.make("lpds/LiberoCreamCheese-v0")
    rows = [env.reset(seed=seed + j)[0] for j in range(n)]
    env.close()
    return {key: np.stack([r[key] for r in rows]) for key in rows[0]}


def entropy(args: argparse.Namespace) -> None:
    """Action entropy (paper eq. 11) of every final model and of the backbone at the first states of the evaluation
    episodes: ``--entropy-samples`` decoded chunks per state, Kozachenko-Leonenko estimate (k = 3)."""
    states = probe_states(args.entropy_states, args.seed)
    jobs: list[Job] = [*BACKBONES, *((a, s) for s in SEEDS for a in LEARNERS)]
    for job in filter(lambda j: selected(args, j), jobs):
        if isinstance(job, str):
            path = args.out / f"{job}_entropy.json"
            venv = make_run_env(get_algo("lpds"), ENV, BACKBONES[job], 1, None, "cpu")
            sampler = prior_sampler(int(np.prod(venv.action_space.shape)), venv.latent_bound)
        else:
            algo, seed = job
            folder = run_dir(args.out, algo, seed)
            path = folder / "final_entropy.json"
            if not (folder / "model.zip").is_file():
                continue
            model_path, cfg = locate_model(folder)
            assert cfg is not None
            venv = make_run_env(get_algo(algo), ENV, cfg.env_kwargs, 1, None, "cpu")
            sampler = model_sampler(load_trained(model_path, algo, venv, "cpu"), deterministic=False)
        if path.is_file():
            venv.close()
            continue
        with isolated_rng(args.seed), torch.no_grad():
            h = action_entropy(resolve_decoder(venv, None), states, sampler, args.entropy_samples, k=3, max_batch=256)
        venv.close()
        path.write_text(
            json.dumps({"action_entropy": h, "states": args.entropy_states, "samples": args.entropy_samples})
        )
        keep(job, path)
        print(f"{job}: action entropy {h:.2f} nats", flush=True)


def _entropy(path: Path) -> float | None:
    return json.loads(path.read_text())["action_entropy"] if path.is_file() else None


def report(args: argparse.Namespace) -> None:
    backbone = json.loads(record(args.out, "backbone", "episodes.json").read_text())
    finished = {
        (a, seed): json.loads(p.read_text())
        for seed in SEEDS
        for a in LEARNERS
        if (p := record(args.out, (a, seed), "final_episodes.json")).is_file()
    }
    # every comparison on the episodes all evaluations share (episode j has reset seed --seed + j in each)
    clipped_path = record(args.out, "backbone_bound1", "episodes.json")
    clipped = json.loads(clipped_path.read_text()) if clipped_path.is_file() else None
    others = list(finished.values()) + ([clipped] if clipped else [])
    n = min([len(backbone["successes"])] + [len(r["successes"]) for r in others])
    base = np.asarray(backbone["successes"][:n], dtype=float)
    base1 = np.asarray(clipped["successes"][:n], dtype=float) if clipped else None
    base_return = float(np.mean(backbone["returns"][:n]))
    h_base = _entropy(record(args.out, "backbone", "entropy.json"))
    out: dict[str, Any] = {
        "machine": machine_info(),
        "steps": args.steps,
        "common": COMMON,
        "extra": EXTRA,
        "episodes": n,
        "backbone": {
            **{k: v for k, v in backbone.items() if k not in ("successes", "returns", "lengths")},
            "success_rate_compared": float(np.mean(backbone["successes"][:n])),
            "action_entropy": h_base,
        },
        "runs": {},
    }
    fmt = lambda h: "-" if h is None else f"{h:.2f}"  # noqa: E731
    # runs whose records were not kept (evaluated before they were) are carried over from the previous report with
    # the backbone evaluation their gains were paired with; when the backbone's episodes came out differently here
    # (another CPU: float rounding changes LIBERO rollouts), the row says so
    previous: dict[str, Any] = {}
    if (RESULTS / "report.json").is_file():
        prev = json.loads((RESULTS / "report.json").read_text())
        against = {
            "backbone": prev["backbone"]["success_rate_compared"],
            "backbone_bound1": prev.get("backbone_bound1", {}).get("success_rate_compared"),
            "cpu": prev["machine"].get("cpu_model"),
        }
        previous = {k: {"evaluated_against": against, **v} for k, v in prev["runs"].items()}
    se_base = float(np.sqrt(base.mean() * (1 - base.mean()) / n))
    rows = [["frozen backbone", "-", f"{base.mean():.2f} ± {se_base:.2f}", "-", f"{base_return:.1f}"]]
    rows[0] += [fmt(h_base), "-", "-"]
    if base1 is not None:
        se1 = float(np.sqrt(base1.mean() * (1 - base1.mean()) / n))
        h1 = _entropy(record(args.out, "backbone_bound1", "entropy.json"))
        rows.append(["frozen backbone, latents clipped to 1.0", "-", f"{base1.mean():.2f} ± {se1:.2f}", "-"])
        rows[-1] += [f"{np.mean(clipped['returns'][:n]):.1f}", fmt(h1), "-", "-"]
        out["backbone_bound1"] = {"success_rate_compared": float(base1.mean()), "action_entropy": h1}
    for algo in LEARNERS:
        gains = []
        for seed in SEEDS:
            if (algo, seed) not in finished:
                if f"{algo}/seed_{seed}" in previous:  # evaluated before its records were kept: its numbers as reported
                    r = out["runs"][f"{algo}/seed_{seed}"] = {**previous[f"{algo}/seed_{seed}"], "carried_over": True}
                    gains.append(r["gain"])
                    earlier = r["evaluated_against"]["backbone"] != float(base.mean())
                    label = f"{algo} (earlier machine)" if earlier else f"{algo} (carried over)"
                    rows.append(
                        [label, seed, f"{r['success_rate']:.2f}"]
                        + [
                            f"{r['gain']:+.2f} ± {r['gain_se']:.2f}",
                            f"{r['mean_return']:.1f}",
                            fmt(r["action_entropy"]),
                        ]
                        + [f"{r['gain_vs_bound1_backbone']:+.2f} ± {r['gain_vs_bound1_backbone_se']:.2f}"]
                        + [f"{r['train_s_per_1k_raw_steps']:.0f}"]
                    )
                continue
            r = finished[(algo, seed)]
            s = np.asarray(r["successes"][:n], dtype=float)
            mean_return = float(np.mean(r["returns"][:n]))
            gain, se = float(s.mean() - base.mean()), success_gain_se(float(s.mean()), float(base.mean()), n)
            evals = record(args.out, (algo, seed), "evaluations.csv").read_text().strip().splitlines()
            header, last = evals[0].split(","), evals[-1].split(",")
            time_s, raw = float(last[header.index("time_s")]), int(last[header.index("raw_env_steps")])
            h = _entropy(record(args.out, (algo, seed), "final_entropy.json"))
            gain1 = float(s.mean() - base1.mean()) if base1 is not None else None
            se1 = success_gain_se(float(s.mean()), float(base1.mean()), n) if base1 is not None else None
            gains.append(gain)
            out["runs"][f"{algo}/seed_{seed}"] = {
                "success_rate": float(s.mean()),
                "gain": gain,
                "gain_se": se,
                "gain_vs_bound1_backbone": gain1,
                "gain_vs_bound1_backbone_se": se1,
                "paired_gain_se": float(np.std(s - base, ddof=1) / np.sqrt(n)),
                "paired_gain_vs_bound1_backbone_se": (
                    float(np.std(s - base1, ddof=1) / np.sqrt(n)) if base1 is not None else None
                ),
                "mean_return": mean_return,
                "episodes_evaluated": len(r["successes"]),
                "success_rate_all_evaluated": float(np.mean(r["successes"])),
                "action_entropy": h,
                "raw_env_steps": raw,
                "train_time_s": time_s,
                "train_s_per_1k_raw_steps": 1000 * time_s / raw,
                "eval_seconds": r["seconds"],
            }
            rows.append(
                [algo, seed, f"{s.mean():.2f}", f"{gain:+.2f} ± {se:.2f}", f"{mean_return:.1f}", fmt(h)]
                + ["-" if gain1 is None else f"{gain1:+.2f} ± {se1:.2f}", f"{1000 * time_s / raw:.0f}"]
            )
        if gains:
            out[f"{algo}_mean_gain"] = float(np.mean(gains))
            out[f"{algo}_sd_gain"] = float(np.std(gains, ddof=1)) if len(gains) > 1 else None
    header = ["learner", "seed", "success", "gain ± SE", "return", "action entropy (nats)"]
    header += ["gain vs the box-1.0 backbone", "train s / 1k raw steps"]
    print(markdown_table(header, rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "report.json").write_text(json.dumps(out, indent=1))
    figure(out, float(base.mean()), n)
    print(f"wrote {RESULTS / 'report.json'}")


def figure(out: dict[str, Any], base: float, n: int) -> None:
    """Success of every final model (dots, with binomial standard errors) against the backbone's (line and band)."""
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    se = np.sqrt(base * (1 - base) / n)
    ax.axhspan(base - se, base + se, color="0.85", label=f"frozen backbone ({base:.2f} ± {se:.2f})")
    ax.axhline(base, color="0.4", lw=1)
    if "backbone_bound1" in out:
        b1 = out["backbone_bound1"]["success_rate_compared"]
        ax.axhline(b1, color="0.4", lw=1, ls="--", label=f"backbone, latents clipped to 1.0 ({b1:.2f})")
    for x, algo in enumerate(LEARNERS):
        for k, seed in enumerate(SEEDS):
            r = out["runs"].get(f"{algo}/seed_{seed}")
            if r is None:
                continue
            p = r["success_rate"]
            ax.errorbar(x + 0.12 * (k - 1), p, yerr=np.sqrt(p * (1 - p) / n), fmt="o", color=f"C{x}", capsize=3)
    ax.set_xticks(range(len(LEARNERS)), [f"{a}" for a in LEARNERS])
    ax.set_ylabel(f"success ({n} episodes)")
    ax.set_title(f"{ENV}, {out['steps']:,} raw env steps, seeds {', '.join(map(str, SEEDS))}", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "success.png", dpi=120)
    print(f"wrote {RESULTS / 'success.png'}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("stage", choices=["train", "evaluate", "all", "worker", "entropy", "report"])
    p.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "runs_libero")
    p.add_argument("--shard", default="0/1", help="i/n: this shell's share of the runs (round robin)")
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=20000, help="reset seed of the first evaluation episode")
    p.add_argument("--entropy-states", type=int, default=16, help="probe states of the action entropy")
    p.add_argument("--entropy-samples", type=int, default=64, help="decoded chunks per probe state")
    p.add_argument("--only", default="", help="worker/entropy: only these jobs, e.g. dsrl-pi0-1,backbone")
    p.add_argument("--n-envs", type=int, default=1, help="evaluation sub-envs (1: no steps after an episode ends)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.stage in ("train", "all"):
        train(args)
    if args.stage in ("evaluate", "all"):
        evaluate(args)
    if args.stage == "worker":
        worker(args)
    if args.stage == "entropy":
        entropy(args)
    if args.stage == "report":
        report(args)


if __name__ == "__main__":
    main()
