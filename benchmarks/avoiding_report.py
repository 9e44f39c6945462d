"""Report of the LPDS-Avoiding-v0 delta-dial study (``benchmarks/avoiding_study.sh``).

Reads the ``lpds train`` run folders under ``--runs`` and writes into ``--out``:

- ``avoiding_routes.json``: for every saved model (``model_<k>.zip`` of each finished stage and ``model.zip``) of
  every variant and seed, ``--episodes`` rollouts from D3IL's fixed start (episode seeds 20_000 + i, stochastic
  policy as in training): success rate, number of routes among the successes, D3IL behaviour entropy, route
  histogram; and the same for the frozen backbone with prior latents;
- ``avoiding_trajectories.png``: Fig. 4's panels (the prior and each variant's final model of seed ``--fig-seed``:
  successes blue, failures grey);
- ``avoiding_curves.png``: Fig. 13's success and return curves from ``evaluations.csv`` plus the route-entropy points
  (mean over seeds);
- ``avoiding_summary.md``: a table per finished budget (mean ± std over seeds, and each seed's numbers).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/avoiding_report.py [--runs DIR] [--out DIR] [--episodes 100]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_repo_to_path  # noqa: E402

add_repo_to_path()

ENV_ID = "LPDS-Avoiding-v0"
VARIANTS = ("lpds-d0.01", "lpds-d0.05", "lpds-d0.3", "dsrl")


def _summary(roll: dict) -> dict:
    from lpds_envs.backbones.zoo.avoiding import route_histogram
    from lpds_envs.metrics import behaviour_entropy

    ok = np.asarray(roll["success"], dtype=bool)
    routes = np.asarray(roll["routes"])
    hist = route_histogram(routes[ok])
    return {
        "success_rate": float(ok.mean()),
        "routes_hit": int(np.count_nonzero(hist)),
        "behaviour_entropy": behaviour_entropy(routes, ok),
        "route_histogram": hist,
    }


def _top_share(summary: dict) -> float:
    """The most used route's share of the successful rollouts (0 when none succeeded)."""
    hist = np.asarray(summary["route_histogram"])
    return float(hist.max() / hist.sum()) if hist.sum() else 0.0


def _models(run_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for p in run_dir.glob("model*.zip"):
        m = re.fullmatch(r"model_(\d+)\.zip", p.name)
        if m:
            found.append((int(m.group(1)), p))
        elif p.name == "model.zip":
            cfg = (run_dir / "config.yaml").read_text()
            steps = int(re.search(r"^steps:\s*(\d+)", cfg, flags=re.M).group(1))
            found.append((steps, p))
    return sorted(found)


def main(argv: list[str] | None = None) -> None:
    import torch

    from lpds_envs import make_latent_vec_env
    from lpds_envs.backbones.zoo.avoiding import rollout_paths, trajectory_figure
    from lpds_envs.experiment.evaluate import load_trained
    from lpds_envs.metrics import model_sampler
    from lpds_envs.registration import task_decoder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="benchmarks/results/runs_avoiding")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--fig-seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    runs, out = Path(args.runs) / ENV_ID, Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    decoder = task_decoder("Avoiding")
    venv = make_latent_vec_env(ENV_ID, n_envs=1, seed=0)
    results: dict = {"episodes": args.episodes, "episode_seeds": "20000 + i", "variants": {}}
    prior = rollout_paths(decoder, n=args.episodes, seed=20_000, latent_bound=2.5)
    results["prior"] = _summary(prior)
    panels = [("backbone (prior)", prior)]
    for variant in VARIANTS:
        per_seed: dict = {}
        for run_dir in sorted((runs / variant).glob("seed_*")):
            seed = int(run_dir.name.split("_")[1])
            algo = "dsrl" if variant == "dsrl" else "lpds"
            models = _models(run_dir)
            for k, (steps, path) in enumerate(models):
                model = load_trained(path, algo, venv, device="cpu")
                roll = rollout_paths(decoder, n=args.episodes, seed=20_000, latent_fn=model_sampler(model))
                per_seed.setdefault(str(seed), {})[str(int(round(steps, -3)))] = _summary(roll)  # stage budget
                if seed == args.fig_seed and k == len(models) - 1:  # the largest finished budget
                    panels.append((f"{variant} ({steps / 1000:.0f}k steps)", roll))
            with open(run_dir / "evaluations.csv") as f:
                per_seed.setdefault(str(seed), {})["curve"] = [
                    {k: float(r[k]) for k in ("raw_env_steps", "mean_return", "success_rate")}
                    for r in csv.DictReader(f)
                ]
        results["variants"][variant] = per_seed
    (out / "avoiding_routes.json").write_text(json.dumps(results, indent=1))
    trajectory_figure(panels, out / "avoiding_trajectories.png")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    lines = [
        "| variant | seeds | budget | success | routes hit | behaviour entropy | most used route's share | per seed: "
        "routes / entropy / share |",
        "|---|---|---|---|---|---|---|---|",
    ]
    p = results["prior"]
    lines.append(
        f"| backbone (prior) | - | 0 | {p['success_rate']:.2f} | {p['routes_hit']} | {p['behaviour_entropy']:.2f} | "
        f"{_top_share(p):.2f} | - |"
    )
    for variant, per_seed in results["variants"].items():
        if not per_seed:
            continue
        curves = [s["curve"] for s in per_seed.values() if s.get("curve")]
        n = min(len(c) for c in curves)
        x = [c["raw_env_steps"] for c in curves[0][:n]]
        for ax, key in zip(axes[:2], ("success_rate", "mean_return")):
            ax.plot(x, np.mean([[c[i][key] for i in range(n)] for c in curves], axis=0), label=variant)
        # budgets every seed has finished
        budgets = sorted(set.intersection(*({int(k) for k in s if k != "curve"} for s in per_seed.values())))
        if not budgets:
            continue
        ent = [np.mean([s[str(b)]["behaviour_entropy"] for s in per_seed.values() if str(b) in s]) for b in budgets]
        axes[2].plot(budgets, ent, marker="o", label=variant)
        axes[2].set_xticks(budgets, [f"{b // 1000}k" for b in budgets])
        for budget in budgets:  # every budget all seeds have finished, the largest last
            vals = [s[str(budget)] for s in per_seed.values() if str(budget) in s]
            cells = [
                f"{np.mean([v[k] for v in vals]):.2f} ± {np.std([v[k] for v in vals]):.2f}"
                for k in ("success_rate", "routes_hit", "behaviour_entropy")
            ]
            shares = [_top_share(v) for v in vals]
            cells.append(f"{np.mean(shares):.2f} ± {np.std(shares):.2f}")
            cells.append(
                ", ".join(f"{v['routes_hit']} / {v['behaviour_entropy']:.2f} / {t:.2f}" for v, t in zip(vals, shares))
            )
            lines.append(f"| {variant} | {len(vals)} | {budget} | " + " | ".join(cells) + " |")
    for ax, title in zip(axes, ("evaluation success rate", "evaluation return", "behaviour entropy (100 rollouts)")):
        ax.set_title(title)
        ax.set_xlabel("raw env steps")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "avoiding_curves.png", dpi=120)
    (out / "avoiding_summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
