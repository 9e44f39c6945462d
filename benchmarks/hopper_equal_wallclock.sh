#!/usr/bin/env bash
# Issue 29, deliverable 3: LP-DS's fast mode against DSRL-SAC at equal *wall-clock* on LPDS-Hopper-v0.
#
# The fast LP-DS runs (prior_cache=8, td_target=latent_critic, 40k raw env steps; docs/results/speed.md) train at
# 0.28x DSRL-SAC's raw env steps/s, measured side by side by benchmarks/lpds_cost.py (the `learn` segments: 37-42
# against 143-146 raw env steps/s on one core). In the wall-clock of a 40k fast LP-DS run DSRL-SAC therefore takes
# 40k / 0.28 ~ 144k raw env steps. This trains DSRL-SAC (the 40k study's dsrl-pw-utd2.5 settings) for STEPS raw env
# steps and evaluates each final model against the backbone on the study's 50 paired episodes (reset seeds 20000+).
# Resumable: `lpds train` resumes a cut-off run and skips a finished one; a finished evaluation is skipped.
# Usage: OMP_NUM_THREADS=1 SEEDS="0 1" bash benchmarks/hopper_equal_wallclock.sh [STEPS]
set -euo pipefail
STEPS=${1:-144000}
SEEDS=${SEEDS:-"0 1 2"}
OUT=benchmarks/results/runs_hopper_wallclock
NAME="dsrl-pw-utd2.5-$((STEPS / 1000))k"
KEEP=benchmarks/results/hopper_wallclock
mkdir -p "$KEEP"
for seed in $SEEDS; do
  python -m lpds_envs.experiment.cli train --algo dsrl --env LPDS-Hopper-v0 --steps "$STEPS" --seeds "$seed" \
    --set gradient_steps=20 env_kwargs.backbone=diffusion --eval-freq 24000 --eval-episodes 10 \
    --eval-entropy-states 32 --device cpu --out "$OUT" --name "$NAME" --no-progress
  R=$OUT/LPDS-Hopper-v0/$NAME/seed_$seed
  [ -f "$R/final_vs_backbone.json" ] || python -m lpds_envs.experiment.cli evaluate --model "$R" --episodes 50 \
    --seed 20000 --entropy-states 0 --device cpu --vs-backbone --json "$R/final_vs_backbone.json"
  # the small records stay in the repository (run folders do not survive a session)
  cp "$R/final_vs_backbone.json" "$KEEP/$NAME-seed_$seed-final_vs_backbone.json"
  cp "$R/evaluations.csv" "$KEEP/$NAME-seed_$seed-evaluations.csv"
done
