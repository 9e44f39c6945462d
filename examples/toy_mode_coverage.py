"""The toy study of paper App. B (Fig. 1, 5, 10): does steering keep the backbone's four goals?

Methods, all from the shipped frozen toy diffusion backbone and the shared presets (``algorithms/hyperparams``):
``backbone`` (latents from the prior, no training), LP-DS (LagrangianSAC) with delta in {0.01, 0.05, 0.1},
DSRL-SAC (SB3 SAC on the latent env, b_W = 1.5) and sb3-contrib's TQC and CrossQ on the same latent env
(``dsrl-tqc``, ``dsrl-crossq``: DSRL-SAC's settings, DSRL's prior warm-up). Every trained run gets the same env-step budget and is evaluated
every ``--eval-every`` env steps with ``--rollouts`` vectorised rollouts from the origin (each method's stochastic
policy: ``eps + Delta(s)`` for LP-DS, SAC's sampled latent for DSRL), plus the k-NN action entropy (App. C) at
probe states from its replay buffer.

    python examples/toy_mode_coverage.py --jobs 2 --out benchmarks/results   # the full study (docs/results/toy.md)
    python examples/toy_mode_coverage.py --seeds 0 1 --steps 300 --eval-every 150 --rollouts 50 --out /tmp/t

The study is one resumable command. Finished (method, seed) runs are kept under ``OUT/runs/`` and skipped when the
command is re-run, so an interrupted study resumes; a (method, seed) that ``OUT/toy_mode_coverage.json`` already
holds for the same budget (``--steps``, ``--eval-every``, ``--rollouts``) is taken from it and not run again, so
adding a method or a seed runs only what is new. ``--seeds 0 1 2`` with ``--methods`` restricts a run to a subset;
the JSON keeps every (method, seed) it holds. Fig. 1 needs each method's first-seed trajectories, which the JSON keeps
from now on; when a method taken from an older JSON has none, Fig. 1 is drawn from the methods that have them (the
backbone's are recomputed) into ``OUT/toy_fig1_trajectories_partial.png`` and the full figure is left alone. Writes ``OUT/toy_mode_coverage.json`` and the figures ``OUT/toy_fig10_goal_fractions.png``,
``OUT/toy_fig1_trajectories.png``, ``OUT/toy_fig5_entropy.png``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ENV_ID = "LPDS-MultiGoal-v0"
METHODS: dict[str, dict] = {
    "backbone": {"algo": None},
    "lpds_delta_0.01": {"algo": "lpds", "overrides": {"delta": 0.01}},
    "lpds_delta_0.05": {"algo": "lpds", "overrides": {"delta": 0.05}},
    "lpds_delta_0.1": {"algo": "lpds", "overrides": {"delta": 0.1}},
    "dsrl": {"algo": "dsrl", "overrides": {}},  # preset: latent_bound 1.5 (App. B's b_W)
    # sb3-contrib's learners on the same latent env (presets dsrl-tqc.yml / dsrl-crossq.yml: DSRL-SAC's settings)
    "dsrl_tqc": {"algo": "dsrl-tqc", "overrides": {}},
    "dsrl_crossq": {"algo": "dsrl-crossq", "overrides": {}},
}
LABELS = {
    "backbone": "frozen backbone",
    "lpds_delta_0.01": "LP-DS δ=0.01",
    "lpds_delta_0.05": "LP-DS δ=0.05",
    "lpds_delta_0.1": "LP-DS δ=0.1",
    "dsrl": "DSRL-SAC",
    "dsrl_tqc": "DSRL-TQC",
    "dsrl_crossq": "DSRL-CrossQ",
}
GOAL_NAMES = ["bottom-left", "top-right", "top-left", "bottom-right"]


def run_one(name: str, seed: int, steps: int, eval_every: int, rollouts: int, threads: int) -> dict:
    """One (method, seed) run; returns its curves, final goal fractions, entropy and a few trajectories."""
    import torch

    from algorithms.presets import get_preset, make_algorithm
    from lpds_envs.evaluation import multigoal_coverage, prior_latents, run_episodes
    from lpds_envs.evaluation.callbacks import EntropyCallback, ModeCoverageCallback
    from lpds_envs.metrics import action_entropy
    from lpds_envs.vector import make_latent_vec_env

    torch.set_num_threads(threads)
    t0 = time.time()
    spec = METHODS[name]
    eval_seed = 10_000 + seed
    if spec["algo"] is None:  # the frozen backbone: prior latents, evaluated once (it does not change)
        venv = make_latent_vec_env(ENV_ID, seed=seed)
        decoder = venv.decoder
        cov = multigoal_coverage(decoder, n_rollouts=rollouts, seed=eval_seed)
        # probe states as the trained runs get them: states visited by the policy (here the prior) on the task
        torch.manual_seed(seed)
        probes = np.concatenate(
            run_episodes(
                make_latent_vec_env(ENV_ID, n_envs=8, seed=seed), prior_latents(decoder.latent_dim, seed)
            ).paths
        )
        probes = probes[np.random.default_rng(seed).integers(0, len(probes), 32)]
        ent = action_entropy(decoder, probes, n_samples=256)
        fr = cov["goal_fractions"]
        return {
            "name": name,
            "seed": seed,
            "wall_s": time.time() - t0,
            "curves": {
                "env_steps": [0, steps],
                "goal_fractions": [fr, fr],
                "no_goal": [cov["no_goal"]] * 2,
                "mean_return": [cov["mean_return"]] * 2,
                "entropy_env_steps": [0, steps],
                "action_entropy": [ent, ent],
            },
            "final_goal_fractions": fr,
            "final_entropy": ent,
            "paths": cov["paths"][:100],
        }
    model = make_algorithm(spec["algo"], ENV_ID, seed=seed, overrides=spec["overrides"])
    coverage = ModeCoverageCallback(eval_freq=eval_every, n_rollouts=rollouts, seed=eval_seed, keep_paths=100)
    entropy = EntropyCallback(eval_freq=eval_every, n_probe=32, n_samples=256, seed=seed)
    model.learn(steps, callback=[coverage, entropy])  # MultiGoal has chunk size 1: latent steps = env steps
    hist, ehist = coverage.history, entropy.history
    return {
        "name": name,
        "seed": seed,
        "wall_s": time.time() - t0,
        "hyperparameters": {k: v for k, v in get_preset(spec["algo"], ENV_ID, spec["overrides"]).items()},
        "curves": {
            "env_steps": [h["raw_env_steps"] for h in hist],
            "goal_fractions": [h["goal_fractions"] for h in hist],
            "no_goal": [h["no_goal"] for h in hist],
            "mean_return": [h["mean_return"] for h in hist],
            "entropy_env_steps": [h["raw_env_steps"] for h in ehist],
            "action_entropy": [h["action_entropy"] for h in ehist],
        },
        "final_goal_fractions": hist[-1]["goal_fractions"],
        "final_entropy": ehist[-1]["action_entropy"],
        "paths": coverage.last_paths,
    }


def _run_and_save(args: tuple) -> str:
    name, seed, steps, eval_every, rollouts, threads, path = args
    result = run_one(name, seed, steps, eval_every, rollouts, threads)
    result["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)  # atomic: a killed run leaves no half-written result
    return (
        f"{name} seed {seed}: {result['wall_s']:.0f} s, final goals "
        + " ".join(f"{f:.2f}" for f in result["final_goal_fractions"])
        + f", entropy {result['final_entropy']:.2f}"
    )


def assemble(results: list[dict], steps: int, rollouts: int, eval_every: int, wall_s: float) -> dict:
    runs, entropy = {}, {}
    for name in METHODS:
        rs = sorted((r for r in results if r["name"] == name), key=lambda r: r["seed"])
        if not rs:
            continue
        runs[name] = {
            "seeds": [r["seed"] for r in rs],
            "goal_fractions": [r["final_goal_fractions"] for r in rs],
            "curves": {key: [r["curves"][key] for r in rs] for key in rs[0]["curves"]},
            "wall_s": [r["wall_s"] for r in rs],
            "finished": [r.get("finished") for r in rs],  # when each run ended (UTC), for runs taken from a summary
        }
        if rs[0].get("paths"):  # the first seed's trajectories (Fig. 1), so a resumed study can redraw it
            runs[name]["paths_first_seed"] = rs[0]["paths"]
        if "hyperparameters" in rs[0]:
            runs[name]["hyperparameters"] = rs[0]["hyperparameters"]
        entropy[name] = [r["final_entropy"] for r in rs]
    return {
        "env": ENV_ID,
        "env_steps": steps,
        "rollouts_per_eval": rollouts,
        "eval_every": eval_every,
        "goal_order": GOAL_NAMES,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join(sys.argv),
        "wall_s_this_invocation": wall_s,
        "wall_s_sum_of_runs": float(sum(r["wall_s"] for r in results)),
        "runs": runs,
        "entropy": entropy,
    }


def from_summary(summary: dict, name: str, seed: int) -> dict:
    """The per-run record of (``name``, ``seed``) as :func:`run_one` returns it, rebuilt from an assembled summary
    (trajectories only for a method's first seed, and only when the summary kept them)."""
    run = summary["runs"][name]
    i = run["seeds"].index(seed)
    record = {
        "name": name,
        "seed": seed,
        "wall_s": run["wall_s"][i],
        "curves": {key: values[i] for key, values in run["curves"].items()},
        "final_goal_fractions": run["goal_fractions"][i],
        "final_entropy": summary["entropy"][name][i],
        "paths": run.get("paths_first_seed") if i == 0 else None,
        "finished": (run.get("finished") or [None] * len(run["seeds"]))[i] or summary["date"],
    }
    if "hyperparameters" in run:
        record["hyperparameters"] = run["hyperparameters"]
    return record


def plot(summary: dict, results: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lpds_envs.experiment.demo import plot_paths

    colors = {
        "backbone": "k",
        "lpds_delta_0.01": "tab:blue",
        "lpds_delta_0.05": "tab:green",
        "lpds_delta_0.1": "tab:orange",
        "dsrl": "tab:red",
        "dsrl_tqc": "tab:purple",
        "dsrl_crossq": "tab:brown",
    }
    # Fig. 10: per-goal fraction over training, mean over seeds with min-max band
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4), sharey=True)
    for name, run in summary["runs"].items():
        fr = np.array(run["curves"]["goal_fractions"])  # (seeds, evals, 4)
        x = np.array(run["curves"]["env_steps"][0])
        for g, ax in enumerate(axes):
            ax.plot(
                x, fr[:, :, g].mean(0), color=colors[name], label=LABELS[name], ls="--" if name == "backbone" else "-"
            )
            ax.fill_between(x, fr[:, :, g].min(0), fr[:, :, g].max(0), color=colors[name], alpha=0.12)
    for g, ax in enumerate(axes):
        ax.set(title=f"goal {GOAL_NAMES[g]}", xlabel="env steps", ylim=(-0.02, 1.02))
    axes[0].set_ylabel(f"fraction of {summary['rollouts_per_eval']} rollouts")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "toy_fig10_goal_fractions.png", dpi=70)
    plt.close(fig)
    # Fig. 1: final trajectories per method (seed = the first seed)
    first = min(r["seed"] for r in results)
    paths = {r["name"]: r.get("paths") for r in results if r["seed"] == first}
    fig1 = out / "toy_fig1_trajectories.png"
    if not all(paths.get(n) for n in summary["runs"]):  # runs taken from an older summary kept no trajectories
        fig1 = out / "toy_fig1_trajectories_partial.png"
        if "backbone" in summary["runs"] and not paths.get("backbone"):  # cheap: the backbone does not train
            from lpds_envs.evaluation import multigoal_coverage
            from lpds_envs.vector import make_latent_vec_env

            decoder = make_latent_vec_env(ENV_ID, seed=first).decoder
            paths["backbone"] = multigoal_coverage(
                decoder, n_rollouts=summary["rollouts_per_eval"], seed=10_000 + first
            )["paths"][:100]
        missing = [LABELS[n] for n in summary["runs"] if not paths.get(n)]
        print(f"no trajectories kept for {', '.join(missing)}: Fig. 1 without them goes to {fig1}")
    panels = [(LABELS[n], paths[n]) for n in summary["runs"] if paths.get(n)]
    plot_paths(panels, fig1)
    # Fig. 5 style: action entropy over training
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, run in summary["runs"].items():
        h = np.array(run["curves"]["action_entropy"])
        x = np.array(run["curves"]["entropy_env_steps"][0])
        ax.plot(x, h.mean(0), color=colors[name], label=LABELS[name], ls="--" if name == "backbone" else "-")
        ax.fill_between(x, h.min(0), h.max(0), color=colors[name], alpha=0.12)
    ax.set(xlabel="env steps", ylabel="k-NN action entropy (nats)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "toy_fig5_entropy.png", dpi=70)
    plt.close(fig)


def claims_report(summary: dict, reached: float = 0.05, collapsed: float = 0.9) -> str:
    """Markdown check of the App. B claims from the JSON alone. A goal counts as kept when it holds at least
    ``reached`` of the rollouts at the final evaluation; a run has collapsed when one goal holds ``collapsed``."""
    runs, ent = summary["runs"], summary["entropy"]
    lines = [
        f"| method | final goal fractions BL/TR/TL/BR (mean of {len(runs['backbone']['seeds'])} seeds) | "
        f"goals >= {reached:.0%} per seed | max-goal share per seed | first eval with one goal >= "
        f"{collapsed:.0%} (env steps, per seed) | action entropy (nats, mean +- sd) | final return (mean +- sd "
        "over seeds) |",
        "|---|---|---|---|---|---|---|",
    ]
    kept, first_collapse = {}, {}
    for name, run in runs.items():
        fr = np.array(run["goal_fractions"])
        kept[name] = (fr >= reached).sum(1)
        curves = np.array(run["curves"]["goal_fractions"])  # (seeds, evals, 4)
        steps = np.array(run["curves"]["env_steps"][0])
        first_collapse[name] = [
            int(steps[np.argmax(c.max(1) >= collapsed)]) if (c.max(1) >= collapsed).any() else None for c in curves
        ]
        h = np.array(ent[name])
        ret = np.array([r[-1] for r in run["curves"]["mean_return"]])
        lines.append(
            f"| {LABELS[name]} | {' / '.join(f'{f:.2f}' for f in fr.mean(0))} | {kept[name].tolist()} | "
            f"{[round(float(m), 2) for m in fr.max(1)]} | {first_collapse[name]} | {h.mean():.2f} +- {h.std():.2f} | "
            f"{ret.mean():.2f} +- {ret.std(ddof=1) if len(ret) > 1 else 0.0:.2f} |"
        )

    def verdict(ok: bool) -> str:
        return "**reproduced**" if ok else "**not reproduced**"

    h = {n: float(np.mean(v)) for n, v in ent.items()}
    lpds_names = [n for n in runs if n.startswith("lpds")]
    out = ["\n".join(lines), ""]
    if "lpds_delta_0.01" in runs:
        out.append(
            f"- delta 0.01 keeps >= 3 goals: {verdict(bool((kept['lpds_delta_0.01'] >= 3).all()))} "
            f"(goals kept per seed {kept['lpds_delta_0.01'].tolist()})."
        )
    if "lpds_delta_0.05" in runs and "lpds_delta_0.01" in runs:
        s05 = np.array(runs["lpds_delta_0.05"]["goal_fractions"]).max(1)
        s01 = np.array(runs["lpds_delta_0.01"]["goal_fractions"]).max(1)
        # "more directed" must exceed the seed noise: twice the standard error of the difference of means
        margin = 2 * np.sqrt(s05.var(ddof=1) / len(s05) + s01.var(ddof=1) / len(s01)) if len(s05) > 1 else 0.0
        ok = bool(s05.mean() - s01.mean() > margin and (kept["lpds_delta_0.05"] >= 2).all())
        out.append(
            f"- delta 0.05 is more directed than 0.01 yet keeps several goals: {verdict(ok)} (mean max-goal "
            f"share {s05.mean():.2f} vs {s01.mean():.2f}, needs a gap > {margin:.2f} (2 standard errors); "
            f"goals kept per seed {kept['lpds_delta_0.05'].tolist()})."
        )
    if "lpds_delta_0.1" in runs:
        ok = bool((np.array(runs["lpds_delta_0.1"]["goal_fractions"]).max(1) >= collapsed).all())
        out.append(
            f"- delta 0.1 collapses to one goal: {verdict(ok)} (max-goal share per seed "
            f"{[round(float(m), 2) for m in np.array(runs['lpds_delta_0.1']['goal_fractions']).max(1)]})."
        )
    for name in (n for n in runs if n.startswith("dsrl")):
        fc = first_collapse[name]
        ok = all(c is not None for c in fc)
        out.append(
            f"- {LABELS[name]} collapses to one goal: {verdict(ok)} (first evaluation with one goal >= "
            f"{collapsed:.0%}, env steps per seed: {fc}; max-goal share at the end per seed "
            f"{[round(float(m), 2) for m in np.array(runs[name]['goal_fractions']).max(1)]})."
        )
    for name in (n for n in runs if n.startswith("dsrl")):
        if "backbone" in h and lpds_names:
            ok = all(h["backbone"] > h[n] > h[name] for n in lpds_names)
            order = ", ".join(f"{LABELS[n]} {h[n]:.2f}" for n in ["backbone", *lpds_names, name])
            out.append(f"- entropy backbone > LP-DS > {LABELS[name]}: {verdict(ok)} ({order}).")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--steps", type=int, default=8000, help="env steps per trained run")
    p.add_argument("--eval-every", type=int, default=500, help="env steps between evaluations")
    p.add_argument("--rollouts", type=int, default=1000, help="rollouts per evaluation")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (each with 2 // jobs threads)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per run (default 2 // jobs, at least 1)")
    p.add_argument("--out", default="benchmarks/results", help="folder of the JSON, figures and per-run results")
    args = p.parse_args(argv)
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    threads = args.threads or max(1, 2 // args.jobs)
    t0 = time.time()
    tag = f"s{args.steps}_e{args.eval_every}_r{args.rollouts}"
    # an earlier summary of the same budget: its (method, seed) runs count as done (their run files may be gone)
    earlier, summary_path = None, out / "toy_mode_coverage.json"
    if summary_path.is_file():
        earlier = json.loads(summary_path.read_text())
        same = (earlier.get("env_steps"), earlier.get("eval_every"), earlier.get("rollouts_per_eval"))
        if same != (args.steps, args.eval_every, args.rollouts):
            earlier = None  # another budget: the new summary replaces it
    todo, paths, kept = [], [], []
    for name in args.methods:
        for seed in args.seeds:
            path = out / "runs" / f"{name}_seed{seed}_{tag}.json"
            if path.is_file():
                paths.append(path)
            elif earlier and name in earlier["runs"] and seed in earlier["runs"][name]["seeds"]:
                kept.append((name, seed))
            else:
                paths.append(path)
                todo.append((name, seed, args.steps, args.eval_every, args.rollouts, threads, path))
    if earlier:  # (method, seed) runs of the earlier summary outside this invocation's selection stay in the JSON
        kept += [
            (name, seed)
            for name, run in earlier["runs"].items()
            for seed in run["seeds"]
            if (name not in args.methods or seed not in args.seeds) and name in METHODS
        ]
    print(
        f"{len(paths) - len(todo)} of {len(paths) + len(kept)} runs done in {out / 'runs'}, {len(kept)} taken from "
        f"{summary_path}; running {len(todo)} with {args.jobs} job(s) of {threads} thread(s)"
    )
    if args.jobs > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            for line in pool.map(_run_and_save, todo):
                print(line, flush=True)
    else:
        for job in todo:
            print(_run_and_save(job), flush=True)
    results = [json.loads(p.read_text()) for p in paths] + [from_summary(earlier, n, s) for n, s in kept]
    for path, result in zip(paths, results):
        if not result.get("finished"):  # run files written before runs recorded it
            mtime = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
            result["finished"] = mtime.isoformat(timespec="seconds")
    summary = assemble(results, args.steps, args.rollouts, args.eval_every, time.time() - t0)

    tmp = out / "toy_mode_coverage.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, out / "toy_mode_coverage.json")
    plot(summary, results, out)
    for name, run in summary["runs"].items():
        fr = np.array(run["goal_fractions"])
        n_goals = (fr >= 0.05).sum(1)
        print(
            f"{LABELS[name]:<16} final goal fractions (mean over seeds) "
            + " ".join(f"{f:.2f}" for f in fr.mean(0))
            + f"   goals >= 5% per seed {n_goals.tolist()}   entropy {np.mean(summary['entropy'][name]):.2f}"
        )
    print(claims_report(summary))
    print(f"wrote {out / 'toy_mode_coverage.json'} and figures ({time.time() - t0:.0f} s)")
    return summary


if __name__ == "__main__":
    main()
