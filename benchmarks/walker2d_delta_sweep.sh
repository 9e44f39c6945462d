#!/usr/bin/env bash
# Issue 32, the Walker2d part of Fig. 12 (App. E): LP-DS with delta in {0.01, 0.66} on LPDS-Walker2d-v0 as one
# `lpds sweep` (Ray Tune, locally), at the settings and budget of benchmarks/walker2d_study.sh (3 x 128 LayerNorm
# nets, prior_cache=8, td_target=latent_critic, the DSRL Walker2d preset otherwise). delta 0.35 is the study's own
# `lpds` runs (same settings), so the report reads both folders. delta 0.1 was left out to fit the session (the Hopper
# sweep has it; GRID=0.01,0.1,0.66 adds it).
# CPUS (default 2) is Ray's CPUs per trial: with 2 on a 2-core machine the trials run one at a time, leaving the other
# core to whatever else runs; each trial is one thread (OMP_NUM_THREADS=1).
# Resumable: the trials are `lpds train` run folders (a re-run resumes or skips them).
# Usage: OMP_NUM_THREADS=1 STEPS=20000 SEEDS=2 bash benchmarks/walker2d_delta_sweep.sh; then
#        python benchmarks/walker2d_report.py
set -euo pipefail
STEPS=${STEPS:-20000}
SEEDS=${SEEDS:-2}
CPUS=${CPUS:-2}
GRID=${GRID:-0.01,0.66}
python -m lpds_envs.experiment.cli sweep --algo lpds --env LPDS-Walker2d-v0 --steps "$STEPS" --seeds "$SEEDS" \
  --grid "delta=$GRID" \
  --set "policy_kwargs.net_arch=[128,128,128]" env_kwargs.backbone=diffusion prior_cache=8 td_target=latent_critic \
  --eval-freq 2500 --eval-episodes 10 --eval-entropy-states 32 --device cpu --out benchmarks/results/runs_walker2d_delta \
  --cpus-per-trial "$CPUS" --verbose 0
