#!/bin/bash
# Trial of a candidate default recipe (run 2026-12-01 to 100 minutes; result in
# docs/results/default-model.md: not adopted):
# `default` + resize-convolution upsampling (model.upsample=resize, against the checkerboard
# texture of the transposed convs) + a cheaper discriminator phase (ndf 16, D update on every 2nd
# adversarial step) + a 3,500-step warm-up, side by side with the current `default` recipe and a
# reconstruction-only generator of the candidate's architecture (the sanity bar), MINUTES of
# training-loop time each (default 100), every lr falling linearly to 0 over the last DECAY
# minutes (default 50). Rerun with the same arguments to continue from the checkpoints.
# Needs the shared faces prepared into work/prepared/{celeba_aligned,celeba_crops} (README).
set -u
source "$(dirname "$0")/recipe_settings.sh" "${1:-100}" "${2:-50}"
mkdir -p work/runs2
collaface train default_v1 --data $DATA model.upsample=resize model.ndf=16 train.d_every=2 train.warmup_steps=3500 \
  "${COMMON[@]}" train.keep_checkpoints=60 --out work/runs2/candidate > work/runs2/candidate.log 2>&1 &
collaface train default_v1 --data $DATA "${COMMON[@]}" --out work/runs2/default > work/runs2/default.log 2>&1 &
collaface train "${RECON_ONLY[@]}" model.upsample=resize "${COMMON[@]}" \
  --out work/runs2/recon_only_resize > work/runs2/recon_only_resize.log 2>&1 &
wait
