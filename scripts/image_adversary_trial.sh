#!/bin/bash
# Follow-up of scripts/task_adversaries_trial.sh (docs/results/default-model.md): the same
# tasks_adv recipe (parsing and landmark discriminators on, ndf 16, D update every 2nd adversarial
# step, 3,500-step reconstruction warm-up) with the image discriminator back on at a small weight
# ADV_I (default 0.05; the default preset uses 0.2), to spend the multi-task hole-PSNR edge on
# sharpness. Beside a fresh **recon_only** (the sanity bar), MINUTES of training-loop time each
# (default 60), every lr falling linearly to 0 over the last DECAY minutes (default 25).
# Rerun with the same arguments to continue from the checkpoints. Needs the shared faces prepared
# into work/prepared/{celeba_aligned,celeba_crops} (README).
set -u
cd "$(dirname "$0")/.."
MINUTES=${1:-60}
DECAY=${2:-25}
ADV_I=${3:-0.05}
source scripts/recipe_settings.sh
OUT=work/runs6
mkdir -p $OUT
collaface train default --data $DATA loss.adv_i=$ADV_I model.ndf=16 train.d_every=2 train.warmup_steps=3500 \
  "${COMMON[@]}" train.keep_checkpoints=60 --out $OUT/tasks_adv_i$ADV_I >> $OUT/tasks_adv_i$ADV_I.log 2>&1 &
collaface train "${RECON_ONLY[@]}" "${COMMON[@]}" --out $OUT/recon_only >> $OUT/recon_only.log 2>&1 &
wait
