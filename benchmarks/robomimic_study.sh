#!/usr/bin/env bash
# Issue 11 evidence on LPDS-Lift-v0 / LPDS-Can-v0: LP-DS vs DSRL-SAC success-rate curves on the shipped diffusion
# backbone, 3 seeds each (run in the robomimic environment: robosuite 1.5.2 on mujoco < 3.10, e.g. .venv-robomimic).
#
# Reduced-compute protocol (2 CPU cores, no GPU): the presets follow DSRL's robomimic configs (4 envs, an update every
# vec step, 10 Q^W steps, latent box 1.5, target entropy 0 for DSRL-SAC, Table 2's delta) except
#   - networks NET (default 256,256,256 with LayerNorm) instead of 3 x 2048: one 2048-wide LayerNorm critic update
#     costs ~50x a 256-wide one on a CPU core;
#   - GRADIENT_STEPS per update (default 4: 1 per chunk) instead of DSRL's 30 (Lift) / 20 (Can);
#   - alpha_lr scaled by DSRL's UTD / GRADIENT_STEPS for LP-DS, so the dual moves as far per chunk as the default
#     0.01 does at DSRL's update rate.
# Evaluation: 20 episodes every 5000 raw env steps (episodes run to the 300-step limit as in DSRL, so one evaluation
# is 6000 raw env steps, about as long as the training between two evaluations).
# Each run is an `lpds train` folder: re-running resumes unfinished runs and skips finished ones.
# Usage: OMP_NUM_THREADS=1 TASK=Lift bash benchmarks/robomimic_study.sh [STEPS] [VARIANTS...]  (variants: lpds dsrl)
# Environment: TASK (Lift, Can), GRADIENT_STEPS, NET, SEEDS (default "0 1 2"), PYTHON (default python), PRIOR_CACHE
# (default 0; LP-DS only: prior samples decoded once per stored transition, as in benchmarks/hopper_study.sh).
# Runs are named <variant>-utd<gradient steps per chunk>-w<width>[-pc<k>], so settings never share a folder; DSRL-SAC
# runs are dsrl-pw-...: algorithms.DSRLSAC (prior warm-up, stochastic evaluation, as the DSRL code; since 2026-12-02).
# Report: python benchmarks/robomimic_report.py --task Lift
set -euo pipefail
STEPS=${1:-30000}
shift || true
VARIANTS=${*:-"lpds dsrl"}
TASK=${TASK:-Lift}
GRADIENT_STEPS=${GRADIENT_STEPS:-4}
NET=${NET:-256,256,256}
SEEDS=${SEEDS:-"0 1 2"}
PYTHON=${PYTHON:-python}
PRIOR_CACHE=${PRIOR_CACHE:-0}
OUT=benchmarks/results/runs_robomimic
case "$TASK" in Lift) DSRL_UTD=30 ;; Can|Square) DSRL_UTD=20 ;; *) echo "unknown TASK $TASK" >&2; exit 2 ;; esac
UTD=$($PYTHON -c "print(f'{$GRADIENT_STEPS / 4:g}')")  # 4 envs x train_freq 1 = 4 chunks per update
WIDTH=${NET%%,*}
for seed in $SEEDS; do
  for variant in $VARIANTS; do
    common=("gradient_steps=$GRADIENT_STEPS" "policy_kwargs.net_arch=[$NET]")
    name="$variant-utd$UTD-w$WIDTH"
    case "$variant" in
      lpds)
        extra=("alpha_lr=$($PYTHON -c "print(0.01 * $DSRL_UTD / $GRADIENT_STEPS)")")
        if [ "$PRIOR_CACHE" != 0 ]; then extra+=("prior_cache=$PRIOR_CACHE"); name="$name-pc$PRIOR_CACHE"; fi ;;
      dsrl) extra=(); name="dsrl-pw-utd$UTD-w$WIDTH" ;;
      *) echo "unknown variant $variant" >&2; exit 2 ;;
    esac
    $PYTHON -m lpds_envs.experiment.cli train --algo "$variant" --env "LPDS-$TASK-v0" --steps "$STEPS" --seeds "$seed" \
      --set "${common[@]}" "${extra[@]}" --eval-freq 5000 --eval-episodes 20 --eval-entropy-states 32 --device cpu \
      --out "$OUT" --name "$name" --no-progress
  done
done
