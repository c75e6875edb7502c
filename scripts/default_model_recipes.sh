#!/bin/bash
# Equal-time comparison of three recipes (docs/results/default-model.md), run side by side on the
# same machine, each for MINUTES of training-loop time (default 100). Rerun with a larger MINUTES
# to continue all three from their checkpoints; the comparison stays at equal time.
# DECAY (second argument, default 0 = constant lr) makes every learning rate fall linearly to 0
# over the last DECAY minutes of the budget (train.lr_decay_minutes), the same for all three.
# recon_only (the sanity bar) gets the same generator input as default (the hole mask as a
# fourth channel), so the two differ only in objective and tasks. The default run keeps every
# checkpoint (the one at the end of its warm-up included) for the record.
# Needs the shared faces prepared into work/prepared/{celeba_aligned,celeba_crops} (README).
set -u
source "$(dirname "$0")/recipe_settings.sh" "${1:-100}" "${2:-0}"
mkdir -p work/runs
collaface train default_v1 --data $DATA "${COMMON[@]}" train.keep_checkpoints=60 \
  --out work/runs/default > work/runs/default.log 2>&1 &
collaface train m_isd_star --data $DATA model.ngf=32 model.ndf=32 "${MASKS[@]}" "${COMMON[@]}" \
  --out work/runs/plain_m_isd_star > work/runs/plain_m_isd_star.log 2>&1 &
collaface train "${RECON_ONLY[@]}" "${COMMON[@]}" --out work/runs/recon_only > work/runs/recon_only.log 2>&1 &
wait
