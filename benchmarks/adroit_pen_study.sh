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
# Environment: GRADIENT_STEPS (default 1; the preset's UTD is 10; alpha_lr scales as 0.01 x 10 / GRADIENT_STEPS),
# PRIOR_CACHE (default 0; steering learners: prior samples decoded once per stored transition), COMPILE (default 0;
# 1: compile_decoder=true for the steering learners, ~1.6x faster decoding on an AMD EPYC core, RESULTS §9, after a
# one-off compile), SEEDS (default "0 1 2"). Runs are named <variant>-utd<k>[-pc<k>][-c], so settings never share a
# folder. Every evaluation also logs the action entropy (eq. 11) at 32 of its states (--eval-entropy-states; Fig. 5/6
# curves). DSRL-SAC is algorithms.DSRLSAC (the DSRL code's prior warm-up; stochastic evaluation for DSRL-SAC/-NA).
set -euo pipefail
STEPS=${1:-30000}
shift || true
VARIANTS=${*:-"lpds dsrl dsrl-na lpds-no-lagrangian lpds-no-lagrangian-no-bound"}
GRADIENT_STEPS=${GRADIENT_STEPS:-1}
PRIOR_CACHE=${PRIOR_CACHE:-0}
COMPILE=${COMPILE:-0}
SEEDS=${SEEDS:-"0 1 2"}
OUT=benchmarks/results/runs_adroit
for seed in $SEEDS; do
  for algo in $VARIANTS; do
    name="$algo-utd$GRADIENT_STEPS"
    extra=()
    case "$algo" in
      lpds|lpds-no-lagrangian|lpds-no-lagrangian-no-bound)
        extra=("alpha_lr=$(python -c "print(0.01 * 10 / $GRADIENT_STEPS)")") ;;
    esac
    if [ "$algo" != dsrl ]; then  # the steering learners (LP-DS, its ablations, DSRL-NA) decode in their update
      if [ "$PRIOR_CACHE" != 0 ]; then extra+=("prior_cache=$PRIOR_CACHE"); name="$name-pc$PRIOR_CACHE"; fi
      if [ "$COMPILE" != 0 ]; then extra+=("compile_decoder=true"); name="$name-c"; fi
    fi
    python -m lpds_envs.experiment.cli train --algo "$algo" --env LPDS-AdroitPen-v0 --steps "$STEPS" --seeds "$seed" \
      --set "gradient_steps=$GRADIENT_STEPS" "${extra[@]}" --eval-freq 2500 --eval-episodes 20 --eval-entropy-states 32 --device cpu \
      --out "$OUT" --name "$name" --no-progress
  done
done
