#!/bin/bash
# Export the three recipe runs of scripts/default_model_recipes.sh and evaluate them on the
# held-out test identities (report in work/eval/default-model), together with the default run's
# checkpoint at the end of its reconstruction-only warm-up (what the adversarial phase changed).
# Extra arguments are options for evaluate (e.g. --limit 128 --masks occlusions).
set -e
cd "$(dirname "$0")/.."
for r in default plain_m_isd_star recon_only; do
  collaface export work/runs/$r --out work/exported/$r --half
done
WARMUP_END=$(python -c "
from pathlib import Path
from collaface.config import from_dict, read_yaml
from collaface.model_format import checkpoint_path
run = Path('work/runs/default')
print(checkpoint_path(run / 'checkpoints', from_dict(read_yaml(run / 'config.yaml')).train.warmup_steps))")
collaface evaluate work/exported/default "$WARMUP_END" \
  work/exported/plain_m_isd_star work/exported/recon_only \
  --labels default default_warmup_end plain_m_isd_star recon_only \
  --data work/prepared/celeba_aligned:work/prepared/celeba_crops --split test \
  --out work/eval/default-model --workers 1 --no-progress "$@"
# to ship: cp work/exported/default/{generator.safetensors,config.json} src/collaface/weights/
# (the weights shipped on 2026-12-01 are the mean of the last 16 checkpoints of the 195-minute run:
# collaface export work/runs/default --average-last 16 --out work/exported/default_avg16 --half)
