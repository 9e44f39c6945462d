#!/usr/bin/env bash
# Issue 6 evidence on LPDS-Hopper-v0: LP-DS vs DSRL-SAC on the diffusion backbone, and LP-DS on the flow backbone
# (paper App. D), 3 seeds each.
#
# Reduced-compute protocol (2 CPU cores): the presets follow DSRL's gym config (4 envs, an update every 2 vec steps,
# 10 Q^W steps, LayerNorm 3 x 128, latent box 1.5) except gradient_steps=4 per update instead of 20 (0.5 gradient
# steps per chunk instead of 2.5). alpha_lr=0.05 keeps the dual's progress per chunk equal to the default 0.01 at
# DSRL's update rate. Each run is an `lpds train` folder: re-running resumes unfinished runs, skips finished ones.
# Budget: 30k raw env steps per run by default. LP-DS decodes 512 chunks (5 denoising steps of the 1.6M-parameter
# backbone) per gradient step, ~20-30 raw env steps/s on one AMD EPYC core, so 6 LP-DS runs of 30k fill two cores
# for about an hour; DSRL-SAC (no decoding in its update) is ~10x faster.
# Usage: OMP_NUM_THREADS=1 bash benchmarks/hopper_study.sh [STEPS] [VARIANTS...]   (variants: lpds dsrl lpds-flow)
# Environment: GRADIENT_STEPS (default 4; DSRL's UTD is 20), PRIOR_CACHE (default 0; LP-DS only: prior samples
# decoded once per stored transition, 1.4x more LP-DS gradient steps/s), SEEDS (default "0 1 2").
# Runs are named <variant>-utd<gradient steps per chunk>[-pc<k>], so settings never share a folder. DSRL-SAC runs are
# dsrl-pw-utd<k>: algorithms.DSRLSAC, warmed up on prior latents and evaluated stochastically as the DSRL code does
# (since 2026-12-02); the older dsrl-utd<k> folders used SB3's uniform warm-up and a deterministic evaluation.
# Report: python benchmarks/hopper_report.py
set -euo pipefail
STEPS=${1:-30000}
shift || true
VARIANTS=${*:-"lpds dsrl lpds-flow"}
GRADIENT_STEPS=${GRADIENT_STEPS:-4}
PRIOR_CACHE=${PRIOR_CACHE:-0}
SEEDS=${SEEDS:-"0 1 2"}
OUT=benchmarks/results/runs_hopper
UTD=$(python -c "print(f'{$GRADIENT_STEPS / 8:g}')")  # 4 envs x train_freq 2 = 8 chunks per update
for seed in $SEEDS; do
  for variant in $VARIANTS; do
    name="$variant-utd$UTD"
    case "$variant" in
      lpds|lpds-flow)
        algo=lpds
        backbone=diffusion; [ "$variant" = lpds-flow ] && backbone=flow
        # alpha_lr 0.05 at 4 gradient steps per update: the dual's progress per chunk of the default 0.01 at 20
        extra=("alpha_lr=$(python -c "print(0.01 * 20 / $GRADIENT_STEPS)")" "env_kwargs.backbone=$backbone")
        if [ "$PRIOR_CACHE" != 0 ]; then extra+=("prior_cache=$PRIOR_CACHE"); name="$name-pc$PRIOR_CACHE"; fi ;;
      dsrl) algo=dsrl; extra=(env_kwargs.backbone=diffusion); name="dsrl-pw-utd$UTD" ;;
      *) echo "unknown variant $variant" >&2; exit 2 ;;
    esac
    python -m lpds_envs.experiment.cli train --algo "$algo" --env LPDS-Hopper-v0 --steps "$STEPS" --seeds "$seed" \
      --set "gradient_steps=$GRADIENT_STEPS" "${extra[@]}" --eval-freq 2500 --eval-episodes 10 --eval-entropy-states 32 --device cpu \
      --out "$OUT" --name "$name" --no-progress
  done
done
