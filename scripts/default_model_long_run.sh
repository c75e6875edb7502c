#!/usr/bin/env bash
# The default model's long run on the CPU (issue 19); rerun to resume. Phase 1 trains the
# reconstruction-only generator (preset default_l1) to L1_STEPS; phase 2 fine-tunes it
# adversarially (preset default) for GAN_MINUTES of loop time, the learning rate falling linearly
# to 0 over the last DECAY_MINUTES (adopted in session 18, docs/results/default-model.md), in
# RUNS/default_gan2 (RUNS/default_gan holds the first adversarial run, at the earlier loss weights,
# stopped in session 13); rerunning it after the budget exits at once. THREADS torch threads (1)
# at nice -5, so that the other core of a 2-core machine stays usable for other work. Runs go to
# RUNS (default ../runs, outside the work tree). Start it in the background:
#   nohup scripts/default_model_long_run.sh >> ../runs/train.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-$(realpath ..)/runs}
DATA=${DATA:-work/prepared/celeba_aligned:work/prepared/celeba_crops}
L1_STEPS=${L1_STEPS:-4000}
GAN_MINUTES=${GAN_MINUTES:-521.85}  # 10 h of loop time with the L1 phase's 78.15 minutes
DECAY_MINUTES=${DECAY_MINUTES:-62}
export OMP_NUM_THREADS=${THREADS:-1}
nice -n -5 collaface train default_l1 --data "$DATA" --out "$RUNS/default_l1" \
  train.max_steps="$L1_STEPS" train.checkpoint_every=500 train.keep_checkpoints=4 data.num_workers=1
nice -n -5 collaface train default --data "$DATA" --out "$RUNS/default_gan2" \
  train.init_from="$RUNS/default_l1" train.max_minutes="$GAN_MINUTES" train.lr_decay_minutes="$DECAY_MINUTES" \
  train.checkpoint_every=500 train.keep_checkpoints=6 \
  train.sample_every=1000 data.num_workers=1
