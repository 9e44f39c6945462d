#!/usr/bin/env bash
# Issue 31 evidence on LPDS-Hopper-v0: the fine-tuning baselines DPPO, IDQL and DQL at the raw-step budget of the
# Hopper steering study (40k raw env steps, 3 seeds; docs/results/hopper.md), each fine-tuning a trainable copy of the
# shipped diffusion backbone from its preset in algorithms/hyperparams/{dppo,idql,dql}.yml (DPPO's public gym configs).
#
# One change to a preset, forced by the budget: DPPO's gym iteration is 40 envs x 500 chunks = 80k raw steps, twice
# the whole budget. Here DPPO collects 40 envs x 25 chunks (4000 raw steps) per iteration, i.e. 10 PPO iterations in
# 40k steps, with the preset's two minibatches per epoch (batch 2500 of the 40 x 25 x 5 (env step, denoising step)
# pairs). Everything else (5 epochs, lr 1e-4, clip 0.01, gamma_denoise 0.99) is the preset's.
# Each run is an `lpds train` folder: re-running resumes unfinished runs and skips finished ones.
# Report (final models against the frozen backbone on the Hopper study's 50 paired episodes, next to the study's
# LP-DS and DSRL-SAC numbers): python benchmarks/hopper_finetune_report.py
# Usage: OMP_NUM_THREADS=1 bash benchmarks/hopper_finetune_study.sh [STEPS] [VARIANTS...]   (variants: dppo idql dql)
set -euo pipefail
STEPS=${1:-40000}
shift || true
VARIANTS=${*:-"dppo dql idql"}
SEEDS=${SEEDS:-"0 1 2"}
OUT=benchmarks/results/runs_hopper_ft
for seed in $SEEDS; do
  for variant in $VARIANTS; do
    extra=()
    [ "$variant" = dppo ] && extra=(--set n_steps=25 batch_size=2500)
    python -m lpds_envs.experiment.cli train --algo "$variant" --env LPDS-Hopper-v0 --steps "$STEPS" --seeds "$seed" \
      "${extra[@]}" --eval-freq 4000 --eval-episodes 10 --eval-entropy-states 32 --device cpu \
      --out "$OUT" --name "$variant" --no-progress
  done
done
