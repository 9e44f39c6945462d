#!/usr/bin/env bash
# Issue 32 on LPDS-Walker2d-v0 (paper Sec. 5.1 Walker2d headline, Sec. 5.5 / Fig. 7 LP-DS-A): LP-DS (Table 2's
# delta 0.35) vs DSRL-SAC vs DSRL-NA vs LP-DS-A, 3 seeds each, on the shipped diffusion backbone.
#
# CPU protocol (2 cores, one session): the DSRL Walker2d preset (4 envs, 20 gradient steps every 2 vec steps, 10 Q^W
# steps, 2001 warm-up chunks, LayerNorm MLPs, latent box 2.5) except the width: DSRL's 3 x 2048 nets cost ~0.5 s per
# gradient step on one core, and even 3 x 256 ran LP-DS at ~14 raw env steps/s here, so every learner uses DSRL's
# Hopper width, 3 x 128 (LayerNorm kept where the preset has it; SB3 SAC, i.e. DSRL-SAC, has none). LP-DS and DSRL-NA run the fast
# settings of the Hopper studies (prior_cache=8, td_target=latent_critic; docs/results/speed.md shows they learn as
# the exact algorithm on Hopper). alpha_lr is the default 0.01 at DSRL's 20 gradient steps per update.
# Budget: STEPS raw env steps per run (default 20000; the first 8k are the prior warm-up).
# Each run is an `lpds train` folder: re-running resumes unfinished runs and skips finished ones.
# Report: python benchmarks/walker2d_report.py
# Usage: OMP_NUM_THREADS=1 bash benchmarks/walker2d_study.sh [STEPS] [VARIANTS...]  (variants: lpds dsrl dsrl-na lpds-a)
set -euo pipefail
STEPS=${1:-20000}
shift || true
VARIANTS=${*:-"lpds dsrl dsrl-na lpds-a"}
SEEDS=${SEEDS:-"0 1 2"}
OUT=benchmarks/results/runs_walker2d
COMMON=("policy_kwargs.net_arch=[128,128,128]" env_kwargs.backbone=diffusion)
FAST=(prior_cache=8 td_target=latent_critic)
for seed in $SEEDS; do
  for variant in $VARIANTS; do
    case "$variant" in
      lpds|dsrl-na) extra=("${COMMON[@]}" "${FAST[@]}") ;;
      dsrl) extra=("${COMMON[@]}") ;;
      lpds-a) extra=("${COMMON[@]}") ;;
      *) echo "unknown variant $variant" >&2; exit 2 ;;
    esac
    entropy=(--eval-entropy-states 32)
    [ "$variant" = lpds-a ] && entropy=()  # residual actions: the entropy probe does not cover them
    python -m lpds_envs.experiment.cli train --algo "$variant" --env LPDS-Walker2d-v0 --steps "$STEPS" --seeds "$seed" \
      --set "${extra[@]}" --eval-freq 2500 --eval-episodes 10 "${entropy[@]}" --device cpu \
      --out "$OUT" --name "$variant" --no-progress
  done
done
