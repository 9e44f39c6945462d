"""Report of the LPDS-Walker2d-v0 studies (``benchmarks/walker2d_study.sh`` and ``walker2d_delta_sweep.sh``; issue 32:
paper Sec. 5.1's Walker2d headline, Fig. 7's LP-DS-A vs LP-DS, Fig. 12's delta sweep).

Reads the run folders under ``--runs`` (the study) and ``--delta-runs`` (the sweep) and writes into ``--out``:

- ``learning_curves_LPDS-Walker2d-v0.{png,pdf}`` and ``final_performance.md`` (``lpds plot``) of the study, and the
  same under ``delta/`` for the delta grid (the study's ``lpds`` runs are its delta 0.35);
- ``final_vs_backbone.json`` (cache): each final model of LP-DS, DSRL-SAC, DSRL-NA and the sweep against the frozen
  backbone on the same ``--episodes`` reset seeds (20000 + i, ``lpds evaluate --vs-backbone``); LP-DS-A's final models
  (a residual-action learner, which ``--vs-backbone`` does not take) are evaluated on the same reset seeds alone;
- ``entropy.json`` (cache): the action entropy (paper eq. 11) of the frozen backbone and of each final latent policy
  at ``--probe-states`` states visited by the backbone, ``--samples`` decoded chunks each;
- ``summary.md``: the claims table's numbers: per variant the mean steered return over seeds, its gain over the
  backbone, the entropy, the relative improvement of LP-DS over the best baseline the way the paper states its 25%
  ((LP-DS - best baseline) / best baseline, final returns), LP-DS-A against LP-DS, and the delta table.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/walker2d_report.py [--runs DIR] [--delta-runs DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_repo_to_path, final_vs_backbone, keep_records, markdown_table  # noqa: E402

add_repo_to_path()

ENV_ID = "LPDS-Walker2d-v0"
LATENT_BOUND = 2.5
BASELINES = ("dsrl", "dsrl-na")


def probe_states(n_states: int, seed: int) -> np.ndarray:
    """``n_states`` observations at chunk boundaries of the frozen backbone's own episodes (prior latents) from seeded
    resets, four per episode."""
    from lpds_envs import make_latent_vec_env

    env = make_latent_vec_env(ENV_ID, n_envs=1, seed=seed)
    rng = np.random.default_rng(seed)
    dim = env.action_space.shape[0]
    states: list[np.ndarray] = []
    obs = env.reset()
    keep_at = set(rng.choice(100, size=4, replace=False).tolist())
    t = 0
    while len(states) < n_states:
        if t in keep_at:
            states.append(np.asarray(obs[0], dtype=np.float32))
        obs, _, done, _ = env.step(rng.standard_normal((1, dim)).clip(-LATENT_BOUND, LATENT_BOUND))
        t += 1
        if done[0] or t >= 100:
            if not done[0]:
                obs = env.reset()
            keep_at, t = set(rng.choice(100, size=4, replace=False).tolist()), 0
    env.close()
    return np.stack(states)


def final_models(runs: Path, names: list[str] | None = None) -> list[tuple[str, Path, int]]:
    """``(variant, run folder, budget)`` of every finished run (``model.zip`` written)."""
    from lpds_envs.experiment.config import RunConfig

    found = []
    for config in sorted(runs.glob(f"{ENV_ID}/*/seed_*/config.yaml")):
        run_dir = config.parent
        if (run_dir / "model.zip").is_file() and (names is None or run_dir.parent.name in names):
            found.append((run_dir.parent.name, run_dir, RunConfig.read(config).steps))
    return found


def entropies(runs: list[tuple[str, Path, int]], out: Path, n_states: int, n_samples: int) -> dict[str, float]:
    """The backbone's and each latent learner's final action entropy (cached in ``out/entropy.json``)."""
    from lpds_envs import make_latent_vec_env
    from lpds_envs.experiment.config import RunConfig
    from lpds_envs.experiment.evaluate import load_trained
    from lpds_envs.metrics import action_entropy, model_sampler, prior_sampler
    from lpds_envs.registration import task_decoder

    path = out / "entropy.json"
    cache = json.loads(path.read_text()) if path.is_file() else {}
    decoder = task_decoder("Walker2d", "diffusion")
    probes = probe_states(n_states, seed=30_000)
    if "backbone" not in cache:
        dim = int(np.prod(decoder.latent_shape))
        cache["backbone"] = action_entropy(
            decoder, probes, prior_sampler(dim, LATENT_BOUND, torch.Generator().manual_seed(0)), n_samples=n_samples
        )
    for variant, run_dir, steps in runs:
        key = f"{variant}/{run_dir.name}@{steps}"
        if key in cache:
            continue
        cfg = RunConfig.read(run_dir / "config.yaml")
        env = make_latent_vec_env(ENV_ID, n_envs=1, seed=0, **cfg.env_kwargs)
        torch.manual_seed(0)
        model = load_trained(run_dir / "model.zip", cfg.algo, env, device="cpu")
        cache[key] = action_entropy(decoder, probes, model_sampler(model), n_samples=n_samples)
        env.close()
        print(f"{key}: action entropy {cache[key]:.2f}", flush=True)
        path.write_text(json.dumps(cache, indent=1))
    path.write_text(json.dumps(cache, indent=1))
    return cache


def residual_finals(runs: list[tuple[str, Path, int]], out: Path, episodes: int) -> dict[str, dict]:
    """LP-DS-A's final models on the same reset seeds as the others (no paired backbone: ``--vs-backbone`` refuses a
    residual-action learner), cached in ``out/final_vs_backbone.json`` under ``<variant>/<seed>@<steps>x<episodes>``."""
    from lpds_envs.experiment.evaluate import evaluate_saved

    path = out / "final_vs_backbone.json"
    cache = json.loads(path.read_text()) if path.is_file() else {}
    found = {}
    for variant, run_dir, steps in runs:
        key = f"{variant}/{run_dir.name}@{steps}x{episodes}"
        if key not in cache:
            r = evaluate_saved(run_dir, episodes=episodes, seed=20_000, entropy_states=0, device="cpu")
            cache[key] = {"mean_return": r["mean_return"], "std_return": r["std_return"]}
            path.write_text(json.dumps(cache, indent=1))
        found[key] = cache[key]
    return found


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", default="benchmarks/results/runs_walker2d")
    p.add_argument("--delta-runs", default="benchmarks/results/runs_walker2d_delta")
    p.add_argument("--out", default="benchmarks/results/walker2d")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--probe-states", type=int, default=32)
    p.add_argument("--samples", type=int, default=128, help="decoded samples per probe state")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    from scipy import stats

    from lpds_envs.experiment.plotting import plot_runs

    out, runs, delta_runs = Path(args.out), Path(args.runs), Path(args.delta_runs)
    out.mkdir(parents=True, exist_ok=True)
    keep_records(runs, ENV_ID, out)
    if delta_runs.is_dir():
        keep_records(delta_runs, ENV_ID, out)
    plot_runs([runs], out=out)
    latent_variants = ["lpds", *BASELINES]
    table = final_vs_backbone(runs, out, ENV_ID, args.episodes, variants=latent_variants)
    cache = json.loads((out / "final_vs_backbone.json").read_text())
    residual_finals(final_models(runs, ["lpds-a"]), out, args.episodes)
    sweep_runs = final_models(delta_runs) if delta_runs.is_dir() else []
    if sweep_runs:
        (out / "delta").mkdir(exist_ok=True)
        plot_runs([runs / ENV_ID / "lpds", delta_runs], out=out / "delta")
        table += "\nThe delta sweep (delta 0.35 is the study's `lpds` runs):\n\n" + final_vs_backbone(
            delta_runs, out, ENV_ID, args.episodes
        )
        cache = json.loads((out / "final_vs_backbone.json").read_text())
    ent = entropies(final_models(runs, latent_variants) + sweep_runs, out, args.probe_states, args.samples)

    def finals(variant: str) -> list[dict]:
        return [v for k, v in sorted(cache.items()) if k.split("/")[0] == variant and k.endswith(f"x{args.episodes}")]

    def entropy_of(variant: str) -> list[float]:
        return [v for k, v in sorted(ent.items()) if k.split("/")[0] == variant]

    backbone = [c["backbone_return"] for c in finals("lpds")]
    rows = [
        [
            "frozen backbone (prior latents)",
            "-",
            f"{np.mean(backbone):.1f}" if backbone else "-",
            "-",
            f"{ent['backbone']:.2f}",
        ]
    ]
    means: dict[str, np.ndarray] = {}
    for variant in [*latent_variants, "lpds-a"]:
        cs = finals(variant)
        if not cs:
            continue
        r = np.array([c["mean_return"] for c in cs])
        means[variant] = r
        gains = [c["gain"] for c in cs if "gain" in c]
        e = entropy_of(variant)
        rows.append(
            [
                variant,
                len(cs),
                f"{r.mean():.1f} ± {r.std(ddof=1) / len(r) ** 0.5 if len(r) > 1 else 0:.1f}",
                f"{np.mean(gains):+.1f}" if gains else "(no paired backbone)",
                f"{np.mean(e):.2f} ± {np.std(e):.2f}" if e else "-",
            ]
        )
    text = (
        f"Per variant over seeds, each seed's final model on the same {args.episodes} reset seeds (20000+): mean "
        "steered return ± SE over seeds, mean paired gain over the backbone, action entropy (eq. 11) at "
        f"{args.probe_states} backbone-visited states, {args.samples} samples each (mean ± std over seeds).\n\n"
        + markdown_table(["policy", "seeds", "final return", "gain over backbone", "action entropy"], rows)
        + "\n"
    )
    if "lpds" in means and any(b in means for b in BASELINES):
        best = max((b for b in BASELINES if b in means), key=lambda b: means[b].mean())
        rel = (means["lpds"].mean() - means[best].mean()) / means[best].mean()
        test = stats.ttest_ind(means["lpds"], means[best], equal_var=False)
        text += (
            f"\nLP-DS against the best baseline ({best}), final returns as the paper states its 25%: "
            f"({means['lpds'].mean():.1f} - {means[best].mean():.1f}) / {means[best].mean():.1f} = {rel:+.1%} "
            f"(Welch t {test.statistic:+.2f}, p {test.pvalue:.3f}, {len(means['lpds'])} vs {len(means[best])} seeds).\n"
        )
    if "lpds" in means and "lpds-a" in means:
        test = stats.ttest_ind(means["lpds"], means["lpds-a"], equal_var=False)
        text += (
            f"\nLP-DS - LP-DS-A, final returns: {means['lpds'].mean() - means['lpds-a'].mean():+.1f} "
            f"(Welch t {test.statistic:+.2f}, p {test.pvalue:.3f}).\n"
        )
    if sweep_runs:
        rows = []
        deltas = {"lpds": 0.35} | {v: float(v.split("=")[1]) for v, _, _ in sweep_runs}
        for variant, delta in sorted(deltas.items(), key=lambda kv: kv[1]):
            g = np.array([c["gain"] for c in finals(variant)])
            e = entropy_of(variant)
            if len(g):
                rows.append(
                    [
                        f"{delta:g}",
                        len(g),
                        f"{g.mean():+.1f} ± {g.std(ddof=1) / len(g) ** 0.5 if len(g) > 1 else 0:.1f}",
                        f"{np.mean(e):.2f}" if e else "-",
                    ]
                )
        text += (
            "\nThe delta sweep, each seed's paired gain over the backbone:\n\n"
            + markdown_table(["delta", "seeds", "mean return gain ± SE over seeds", "action entropy"], rows)
            + "\n"
        )
    text += "\n" + table
    (out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
