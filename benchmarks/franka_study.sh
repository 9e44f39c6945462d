#!/usr/bin/env bash
# Issue 34 part 6 (paper Sec. 5.7, App. G, Table 6) in simulation: adapt the shipped, frozen mug-hanging flow backbone
# with LP-DS (and DSRL-SAC) in the nominal simulator (LPDS-FrankaMugHang-v0), then deploy each final policy, with no
# further learning, in the shifted simulator (shift="deployment"); benchmarks/franka_report.py evaluates both.
#
# Settings: the `lpds` / `dsrl` presets for LPDS-FrankaMugHang-v0 (algorithms/hyperparams: Adroit's scheme for chunks
# of 8, delta 0.35, 150 warm-up chunks, 3 x 256 nets, Dict observations); LP-DS runs the fast settings of the Hopper
# studies (prior_cache=8, td_target=latent_critic). The reward is the task's sparse success (1 at the step the mug
# hangs, which ends the episode).
# Budget: STEPS raw env steps per run (default 12000, ~90 episodes; the first 1200 are the prior warm-up).
# TASK=FrankaPickPlace runs the pick-and-place task instead (random grid cell each reset; same presets).
# Each run is an `lpds train` folder: re-running resumes unfinished runs and skips finished ones.
# Usage: OMP_NUM_THREADS=1 [TASK=FrankaPickPlace] bash benchmarks/franka_study.sh [STEPS] [VARIANTS...]
#        (variants: lpds dsrl lpds-delta0.05)
#        (SEEDS="0 1 2" by default; run one variant per core in parallel), then python benchmarks/franka_report.py
set -euo pipefail
STEPS=${1:-12000}
shift || true
VARIANTS=${*:-"lpds dsrl"}
SEEDS=${SEEDS:-"0 1 2"}
TASK=${TASK:-FrankaMugHang}
OUT=benchmarks/results/runs_franka
for seed in $SEEDS; do
  for variant in $VARIANTS; do
    case "$variant" in
      lpds) extra=(--set prior_cache=8 td_target=latent_critic) ;;
      lpds-delta0.05) extra=(--set prior_cache=8 td_target=latent_critic delta=0.05) ;;  # a tighter trust region
      dsrl) extra=() ;;
      *) echo "unknown variant $variant" >&2; exit 2 ;;
    esac
    python -m lpds_envs.experiment.cli train --algo "${variant%%-*}" --env "LPDS-$TASK-v0" --steps "$STEPS" \
      --seeds "$seed" "${extra[@]}" --eval-freq 2000 --eval-episodes 10 --device cpu --out "$OUT" --name "$variant" \
      --no-progress
  done
done
