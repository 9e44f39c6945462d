#!/usr/bin/env bash
# Issue 7 evidence on LPDS-AdroitPen-v0: LP-DS vs DSRL-SAC / DSRL-NA and the Sec. 5.3 trust-region ablations.
#
# Reduced-compute protocol (2 CPU cores): every variant uses the Table 1 preset except gradient_steps=1 (UTD 1
# instead of 10; Q^W steps stay 10), and a budget of STEPS raw env steps per run. One LP-DS gradient step decodes
# 512 prior/next latents through the 10-step flow ODE (~0.17 s on one core), so UTD 10 runs at ~3 env steps/s.
# Each run is an `lpds train` folder: re-running this script resumes unfinished runs and skips finished ones.
# Usage: OMP_NUM_THREADS=1 bash benchmarks/adroit_pen_study.sh [STEPS] [VARIANTS...]
set -euo pipefail
STEPS=${1:-30000}
shift || true
VARIANTS=${*:-"lpds dsrl dsrl-na lpds-no-lagrangian lpds-no-lagrangian-no-bound"}
OUT=benchmarks/results/runs_adroit
for seed in 0 1 2; do
  for algo in $VARIANTS; do
    python -m lpds_envs.cli train --algo "$algo" --env LPDS-AdroitPen-v0 --steps "$STEPS" --seeds "$seed" \
      --set gradient_steps=1 --eval-freq 2500 --eval-episodes 20 --device cpu --out "$OUT" --name "$algo-utd1" \
      --no-progress
  done
done
