#!/bin/bash
# Lead from the task-cost trial (docs/results/default-model.md): train the parsing and landmark
# discriminators cheaply (ndf 16, D update every 2nd adversarial step, after a 3,500-step
# reconstruction warm-up) with the image discriminator off (ADV_I 0, the default) or at a small
# weight, so the image task keeps the multi-task reconstruction's hole-PSNR edge while the
# landmarks learn. **tasks_adv** = `default` with loss.adv_i=ADV_I; beside a fresh **recon_only**
# (the sanity bar), MINUTES of training-loop time each (default 100), every lr falling linearly to
# 0 over the last DECAY minutes (default 50); both in OUT (default work/runs5).
# Rerun with the same arguments to continue from the checkpoints. Needs the shared faces prepared
# into work/prepared/{celeba_aligned,celeba_crops} (README).
set -u
ADV_I=${3:-0}
OUT=${4:-work/runs5}
source "$(dirname "$0")/recipe_settings.sh" "${1:-100}" "${2:-50}"
mkdir -p $OUT
collaface train default_v1 --data $DATA loss.adv_i=$ADV_I model.ndf=16 train.d_every=2 train.warmup_steps=3500 \
  "${COMMON[@]}" train.keep_checkpoints=60 --out $OUT/tasks_adv >> $OUT/tasks_adv.log 2>&1 &
collaface train "${RECON_ONLY[@]}" "${COMMON[@]}" --out $OUT/recon_only >> $OUT/recon_only.log 2>&1 &
wait
