#!/usr/bin/env bash
# Issue 7 evidence on LPDS-AdroitPen-v0: LP-DS vs DSRL-SAC / DSRL-NA and the Sec. 5.3 trust-region ablations.
#
# Reduced-compute protocol (2 CPU cores): every variant uses the Table 1 preset except gradient_steps=1 (UTD 1
# instead of 10; Q^W steps stay 10), and a budget of STEPS raw env steps per run. One LP-DS gradient step decodes
# 512 prior/next latents through the 10-step flow ODE (~0.17 s on one core), so UTD 10 runs at ~3 env steps/s.
# alpha_lr=0.1 for the LP-DS variants: the dual takes one step per gradient step, so at UTD 1 its progress per env
# step equals the default 0.01 at the paper's UTD 10 (with 0.01 at UTD 1, E||Delta||^2 stayed ~4x delta for the
# whole budget in a first run: the dual never caught up with Pen's reward scale).
# Each run is an `lpds train` folder: re-running this script resumes unfinished runs and skips finished ones.
# Usage: OMP_NUM_THREADS=1 bash benchmarks/adroit_pen_study.sh [STEPS] [VARIANTS...]
set -euo pipefail
STEPS=${1:-30000}
shift || true
VARIANTS=${*:-"lpds dsrl dsrl-na lpds-no-lagrangian lpds-no-lagrangian-no-bound"}
OUT=benchmarks/results/runs_adroit
for seed in 0 1 2; do
  for algo in $VARIANTS; do
    extra=()
    case "$algo" in lpds|lpds-no-lagrangian|lpds-no-lagrangian-no-bound) extra=(alpha_lr=0.1) ;; esac
    python -m lpds_envs.cli train --algo "$algo" --env LPDS-AdroitPen-v0 --steps "$STEPS" --seeds "$seed" \
      --set gradient_steps=1 "${extra[@]}" --eval-freq 2500 --eval-episodes 20 --device cpu --out "$OUT" --name "$algo-utd1" \
      --no-progress
  done
done
