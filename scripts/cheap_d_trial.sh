#!/bin/bash
# Trial of a cheaper discriminator phase with the paper's transposed-conv generator (run
# 2026-12-01 with MINUTES 80, DECAY 40; result in docs/results/default-model.md: not adopted):
# `default` + ndf 16 + a D update on every 2nd adversarial step, with a 3,500-step (cheap_d) or
# 5,500-step (cheap_d_w5500) warm-up, side by side with a fresh reconstruction-only generator (the
# sanity bar, same machine and time), MINUTES of training-loop time each (default 100), every lr
# falling linearly to 0 over the last DECAY minutes (default 50). The two cheap_d runs are
# identical for their first 3,500 steps, so cheap_d_w5500 starts from cheap_d's step-3,500
# checkpoint (loop time included) once it exists. Rerun with the same arguments to continue from
# the checkpoints. Needs the shared faces prepared into work/prepared/{celeba_aligned,celeba_crops}
# (README).
set -u
source "$(dirname "$0")/recipe_settings.sh" "${1:-100}" "${2:-50}"
mkdir -p work/runs3
collaface train default_v1 --data $DATA model.ndf=16 train.d_every=2 train.warmup_steps=3500 \
  "${COMMON[@]}" train.keep_checkpoints=60 --out work/runs3/cheap_d > work/runs3/cheap_d.log 2>&1 &
(
  FORK=work/runs3/cheap_d/checkpoints/ckpt-00003500.pt
  if [ ! -d work/runs3/cheap_d_w5500/checkpoints ]; then
    while [ ! -f $FORK ]; do sleep 20; done
    mkdir -p work/runs3/cheap_d_w5500/checkpoints && cp $FORK work/runs3/cheap_d_w5500/checkpoints/
  fi
  collaface train default_v1 --data $DATA model.ndf=16 train.d_every=2 train.warmup_steps=5500 \
    "${COMMON[@]}" train.keep_checkpoints=60 --out work/runs3/cheap_d_w5500 >> work/runs3/cheap_d_w5500.log 2>&1
) &
collaface train "${RECON_ONLY[@]}" "${COMMON[@]}" --out work/runs3/recon_only > work/runs3/recon_only.log 2>&1 &
wait
