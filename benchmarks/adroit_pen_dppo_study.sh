#!/usr/bin/env bash
# Issue 31 (paper Fig. 5): does DPPO, which fine-tunes the diffusion policy itself, keep the action entropy near the
# backbone's on Adroit Pen, while noise-space steering (LP-DS) changes it? LPDS-AdroitPen-v0 ships a flow backbone
# only and DPPO needs a diffusion one, so this script first rebuilds a Pen diffusion backbone with the Adroit zoo
# (the shipped flow backbone's demos: 200 scripted episodes, seed 0, noise 0.03; the same network, 20k BC steps,
# batch 256; the locomotion zoo's DDIM sampler: 20 training / 5 inference steps) and evaluates it with prior latents.
# It is not shipped: the runs pass its folder as env_kwargs.backbone.
#
# Then DPPO and LP-DS on that backbone at STEPS raw env steps per run (default 40k, as the Hopper fine-tuning study),
# SEEDS seeds:
# - DPPO: no Pen preset (algorithms/hyperparams/dppo.yml has none); DPPO's gym settings as in
#   benchmarks/hopper_finetune_study.sh (5 epochs, lr 1e-4, critic lr 1e-3, clip 0.01 at every denoising step,
#   gamma_denoise 0.99, all 5 DDIM steps fine-tuned with eta 1), with the iteration shrunk to fit the budget:
#   10 envs x 25 chunks (one 200-step episode each, 2000 raw steps) per iteration, 20 iterations in 40k, two
#   minibatches (625) of the 10 x 25 x 5 (env step, denoising step) pairs per epoch.
# - LP-DS: the Pen preset (delta 0.35) with the fast settings of the other studies (prior_cache=8,
#   td_target=latent_critic) and the Pen study's UTD 1 with alpha_lr 0.1 (benchmarks/adroit_pen_study.sh).
# Every evaluation also logs the action entropy at 32 visited states (entropy curves; DPPO: its deterministic DDIM
# policy from random x_0, i.e. fine_tuned_decoder() with prior latents). Each run is an `lpds train` folder:
# re-running resumes unfinished runs and skips finished ones.
# Report (entropy JSON and summary): python benchmarks/adroit_pen_dppo_report.py --backbone "$ZOO/pen/diffusion"
# Usage: OMP_NUM_THREADS=1 bash benchmarks/adroit_pen_dppo_study.sh [STEPS] [VARIANTS...]   (variants: dppo lpds)
# Environment: SEEDS (default "0 1 2"), ZOO (the zoo working folder, default zoo/adroit), FINAL_EPISODES (default 50).
set -euo pipefail
STEPS=${1:-40000}
shift || true
VARIANTS=${*:-"dppo lpds"}
SEEDS=${SEEDS:-"0 1 2"}
ZOO=${ZOO:-zoo/adroit}
FINAL_EPISODES=${FINAL_EPISODES:-50}
OUT=benchmarks/results/runs_adroit_dppo
ZOO_CMD=(python -m lpds_envs.backbones.zoo.adroit)
BACKBONE=$(realpath -m "$ZOO/pen/diffusion")

[ -f "$ZOO/pen/data/demos.npz" ] || "${ZOO_CMD[@]}" demos --task pen --episodes 200 --out "$ZOO" --seed 0 --noise 0.03
[ -f "$BACKBONE/config.json" ] ||
  "${ZOO_CMD[@]}" backbone --task pen --kind diffusion --bc-steps 20000 --batch-size 256 --out "$ZOO"
[ -f "$BACKBONE/eval.json" ] || "${ZOO_CMD[@]}" evaluate --task pen --kind diffusion --episodes 50 --out "$ZOO"

for seed in $SEEDS; do
  for variant in $VARIANTS; do
    case "$variant" in
      dppo) extra=(n_envs=10 n_steps=25 batch_size=625 n_epochs=5 learning_rate=1.0e-4 critic_learning_rate=1.0e-3
                   clip_range=0.01 clip_range_first=0.01 gamma_denoise=0.99) ;;
      lpds) extra=(prior_cache=8 td_target=latent_critic gradient_steps=1 alpha_lr=0.1) ;;
      *) echo "unknown variant $variant (dppo, lpds)" >&2; exit 2 ;;
    esac
    python -m lpds_envs.experiment.cli train --algo "$variant" --env LPDS-AdroitPen-v0 --steps "$STEPS" \
      --seeds "$seed" --set "env_kwargs.backbone=$BACKBONE" "${extra[@]}" --eval-freq 4000 --eval-episodes 20 \
      --eval-entropy-states 32 --device cpu --out "$OUT" --name "$variant" --no-progress
  done
done
python benchmarks/adroit_pen_dppo_report.py --backbone "$BACKBONE" --runs "$OUT" --final-episodes "$FINAL_EPISODES"
