#!/bin/bash
# Lead from the task-cost trial (docs/results/default-model.md): keep the image discriminator off
# and train only the parsing and landmark discriminators (cheap: ndf 16, D update every 2nd
# adversarial step, after a 3,500-step reconstruction warm-up), so the image task keeps the
# multi-task reconstruction's hole-PSNR edge while the landmarks learn. **tasks_adv** = `default`
# with loss.adv_i=0; beside a fresh **recon_only** (the sanity bar), MINUTES of training-loop time
# each (default 100), every lr falling linearly to 0 over the last DECAY minutes (default 50).
# Rerun with the same arguments to continue from the checkpoints. Needs the shared faces prepared
# into work/prepared/{celeba_aligned,celeba_crops} (README).
set -u
cd "$(dirname "$0")/.."
MINUTES=${1:-100}
DECAY=${2:-50}
source scripts/recipe_settings.sh
mkdir -p work/runs5
collaface train default --data $DATA loss.adv_i=0 model.ndf=16 train.d_every=2 train.warmup_steps=3500 \
  "${COMMON[@]}" train.keep_checkpoints=60 --out work/runs5/tasks_adv >> work/runs5/tasks_adv.log 2>&1 &
collaface train "${RECON_ONLY[@]}" "${COMMON[@]}" --out work/runs5/recon_only >> work/runs5/recon_only.log 2>&1 &
wait
