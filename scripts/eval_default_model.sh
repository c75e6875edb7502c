#!/bin/bash
# Export the three recipe runs of scripts/default_model_recipes.sh and evaluate them on the
# held-out test identities (report in work/eval/default-model). Extra arguments go to evaluate.
set -e
cd "$(dirname "$0")/.."
for r in default plain_m_isd_star recon_only; do
  collaface export work/runs/$r --out work/exported/$r --half
done
collaface evaluate work/exported/default work/exported/plain_m_isd_star work/exported/recon_only \
  --labels default plain_m_isd_star recon_only \
  --data work/prepared/celeba_aligned:work/prepared/celeba_crops --split test \
  --out work/eval/default-model --workers 1 --no-progress "$@"
# to ship: cp work/exported/default/{generator.safetensors,config.json} src/collaface/weights/
