#!/usr/bin/env bash
# Issue 33 evidence on LPDS-Avoiding-v0 (paper Sec. 5.2.2 Fig. 4, App. F Fig. 13): LP-DS with delta 0.01 / 0.05 / 0.3
# and DSRL-SAC on the shipped diffusion backbone (chunks of 8 steps), 3 seeds each, presets of
# algorithms/hyperparams/{lpds,dsrl}.yml.
#
# Each run is an `lpds train` folder: re-running resumes unfinished runs and skips finished ones. The budget grows in
# stages (STAGES, raw env steps): extending a finished run keeps the smaller budget's final model as model_<k>.zip, so
# the report can draw route-entropy curves from those models. Single-threaded; one run at a time.
# Usage (mkdir -p benchmarks/results/runs_avoiding first): OMP_NUM_THREADS=1 nohup bash benchmarks/avoiding_study.sh > benchmarks/results/runs_avoiding/study.log 2>&1 &
# Environment: STAGES (default "10000 20000 50000"), SEEDS (default "0 1 2"), VARIANTS (default
# "lpds-d0.01 lpds-d0.05 lpds-d0.3 dsrl").
# Report: python benchmarks/avoiding_report.py
set -euo pipefail
STAGES=${STAGES:-"10000 20000 50000"}
SEEDS=${SEEDS:-"0 1 2"}
VARIANTS=${VARIANTS:-"lpds-d0.01 lpds-d0.05 lpds-d0.3 dsrl"}
OUT=benchmarks/results/runs_avoiding
for steps in $STAGES; do
  for seed in $SEEDS; do
    for variant in $VARIANTS; do
      case "$variant" in
        lpds-d*) algo=lpds; extra=(--set "delta=${variant#lpds-d}") ;;
        dsrl) algo=dsrl; extra=() ;;
        *) echo "unknown variant $variant" >&2; exit 2 ;;
      esac
      python -m lpds_envs.experiment.cli train --algo "$algo" --env LPDS-Avoiding-v0 --steps "$steps" --seeds "$seed" \
        "${extra[@]}" --eval-freq 2500 --eval-episodes 20 --device cpu --out "$OUT" --name "$variant" --no-progress
    done
  done
done
