#!/usr/bin/env bash
# Issue 32, the Hopper part of Fig. 12 (App. E: delta above 0.1 gives similar results, a very small delta
# over-restricts): LP-DS with delta in {0.01, 0.1, 0.35, 0.66} on LPDS-Hopper-v0, run as one `lpds sweep` (Ray Tune,
# one CPU per trial, locally), with the fast settings of the Hopper studies (prior_cache=8, td_target=latent_critic,
# DSRL's 20 gradient steps per update, alpha_lr 0.01, diffusion backbone; docs/results/speed.md shows they learn as
# the exact algorithm on Hopper). Then every final model against the frozen backbone on the Hopper studies' 50
# paired episodes (reset seeds 20000+).
# Resumable: the sweep's trials are `lpds train` run folders (a re-run resumes or skips them); finished evaluations
# are cached in benchmarks/results/hopper_delta/final_vs_backbone.json.
# Usage: OMP_NUM_THREADS=1 STEPS=20000 SEEDS=2 bash benchmarks/hopper_delta_sweep.sh
set -euo pipefail
STEPS=${STEPS:-20000}
SEEDS=${SEEDS:-2}
OUT=benchmarks/results/runs_delta_sweep
python -m lpds_envs.experiment.cli sweep --algo lpds --env LPDS-Hopper-v0 --steps "$STEPS" --seeds "$SEEDS" \
  --grid delta=0.01,0.1,0.35,0.66 \
  --set gradient_steps=20 alpha_lr=0.01 env_kwargs.backbone=diffusion prior_cache=8 td_target=latent_critic \
  --eval-freq 2500 --eval-episodes 10 --device cpu --out "$OUT" --cpus-per-trial 1 --verbose 0
python benchmarks/hopper_delta_report.py --runs "$OUT" --steps "$STEPS"
