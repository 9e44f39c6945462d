#!/usr/bin/env bash
# LP-DS vs DSRL-SAC on the toy task from the command line: 3 seeds each, evaluation, curves and a table.
# Nine runs of STEPS env steps each (not timed here). Re-running resumes (or skips) what is already done.
set -euo pipefail
OUT=${1:-toy_runs}
STEPS=${STEPS:-4000}

lpds train --algo lpds --env LPDS-MultiGoal-v0 --steps "$STEPS" --seeds 0 1 2 --out "$OUT"
lpds train --algo dsrl --env LPDS-MultiGoal-v0 --steps "$STEPS" --seeds 0 1 2 --out "$OUT"
lpds train --algo lpds --name lpds-delta0.01 --set delta=0.01 --env LPDS-MultiGoal-v0 --steps "$STEPS" --seeds 0 1 2 --out "$OUT"
lpds evaluate --model "$OUT/LPDS-MultiGoal-v0/lpds/seed_0" --episodes 100
lpds evaluate --model "$OUT/LPDS-MultiGoal-v0/dsrl/seed_0" --episodes 100
lpds plot "$OUT"   # learning_curves_LPDS-MultiGoal-v0.png/.pdf and final_performance.md in $OUT
