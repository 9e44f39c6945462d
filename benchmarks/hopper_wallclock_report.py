"""Table of the equal-wall-clock comparison on LPDS-Hopper-v0 (docs/results/speed.md): DSRL-SAC trained for the
raw env steps it takes in a fast LP-DS run's wall clock, against the fast LP-DS runs and DSRL-SAC at equal raw steps.

Reads the records ``benchmarks/hopper_equal_wallclock.sh`` keeps in ``benchmarks/results/hopper_wallclock/``, the fast
LP-DS runs of ``benchmarks/results/td_target/report.json`` and DSRL-SAC's 40k runs of
``benchmarks/results/hopper_40k/final_vs_backbone.json``; writes ``benchmarks/results/hopper_wallclock/report.json``.

Usage::

    python benchmarks/hopper_wallclock_report.py
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, markdown_table  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results"
KEPT = RESULTS / "hopper_wallclock"


def main() -> None:
    rows, out = [], {}
    td = json.loads((RESULTS / "td_target" / "report.json").read_text())["hopper"]
    for seed in (0, 1, 2):
        r = td[f"lpds-utd2.5-pc8-latent_critic/seed_{seed}"]
        out[f"lpds-fast-40k/seed_{seed}"] = {"raw_env_steps": 40000, **r}
    exact = json.loads((RESULTS / "hopper_40k" / "final_vs_backbone.json").read_text())
    for seed in (0, 1, 2):
        r = exact[f"dsrl-pw-utd2.5/seed_{seed}@40000x50"]
        out[f"dsrl-sac-40k/seed_{seed}"] = {"raw_env_steps": 40000, "wall_s": None, **r}
    for path in sorted(KEPT.glob("*-final_vs_backbone.json")):
        name, seed = path.name.removesuffix("-final_vs_backbone.json").rsplit("-seed_", 1)
        r = json.loads(path.read_text())
        with open(KEPT / f"{name}-seed_{seed}-evaluations.csv", newline="") as f:
            last = list(csv.DictReader(f))[-1]
        out[f"{name}/seed_{seed}"] = {
            "raw_env_steps": int(last["raw_env_steps"]),
            "wall_s": float(last["time_s"]),
            "mean_return": r["mean_return"],
            "gain": r["gain"],
            "gain_se": r["gain_se"],
            "backbone_return": r["backbone"]["mean_return"],
        }
    for key, r in out.items():
        wall = "-" if r.get("wall_s") is None else f"{r['wall_s']:.0f}"
        rows.append([key, r["raw_env_steps"], f"{r['mean_return']:.1f}", f"{r['backbone_return']:.1f}"])
        rows[-1] += [f"{r['gain']:+.1f} ± {r['gain_se']:.1f}", wall]
    groups: dict[str, list[float]] = {}
    for key, r in out.items():
        groups.setdefault(key.split("/")[0], []).append(r["gain"])
    summary = {g: {"mean_gain": float(np.mean(v)), "seeds": len(v)} for g, v in groups.items()}
    header = ["run", "raw env steps", "return", "backbone (same episodes)", "gain ± SE", "training wall s"]
    print(markdown_table(header, rows))
    print(
        markdown_table(
            ["runs", "seeds", "mean gain"], [[g, s["seeds"], f"{s['mean_gain']:+.1f}"] for g, s in summary.items()]
        )
    )
    KEPT.mkdir(parents=True, exist_ok=True)
    (KEPT / "report.json").write_text(json.dumps({"runs": out, "summary": summary}, indent=1))
    print(f"wrote {KEPT / 'report.json'}")


if __name__ == "__main__":
    main()
