#!/bin/bash
# Do the parsing and landmark tasks cost the image task PSNR at ngf 32? Two reconstruction-only
# generators side by side for MINUTES of training-loop time each (default 60), every lr falling
# linearly to 0 over the last DECAY minutes (default 30): **recon_isd** = the `default` preset
# with every adversarial weight 0 and no warm-up (all three tasks' reconstruction terms, hole mask
# input, concentrated L1), and **recon_only** = the sanity bar's generator (image task only, L1).
# Result in docs/results/default-model.md. Rerun with the same arguments to continue from the
# checkpoints. Needs the shared faces prepared into work/prepared/{celeba_aligned,celeba_crops}.
set -u
source "$(dirname "$0")/recipe_settings.sh" "${1:-60}" "${2:-30}"
mkdir -p work/runs4
collaface train default_v1 --data $DATA loss.adv_i=0 loss.adv_s=0 loss.adv_d=0 train.warmup_steps=0 \
  "${COMMON[@]}" --out work/runs4/recon_isd > work/runs4/recon_isd.log 2>&1 &
collaface train "${RECON_ONLY[@]}" "${COMMON[@]}" --out work/runs4/recon_only > work/runs4/recon_only.log 2>&1 &
wait
