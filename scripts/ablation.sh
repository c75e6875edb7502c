#!/bin/bash
# The real ablation (issues 5 and 8): every paper variant and the three re-implemented baselines,
# 1000 steps each at 128 px, ngf/ndf 32, batch 16, on the shared faces. Rerun the same command to
# continue (finished variants are not retrained; the overrides must stay the same).
cd "$(dirname "$0")/.."
exec collaface ablate model.ngf=32 model.ndf=32 baseline.sii_iterations=300 train.precision=bf16 train.channels_last=true \
  --data work/prepared/celeba_aligned:work/prepared/celeba_crops --budget 1000 --out work/ablation \
  --variants m_i m_s m_d m_is m_id m_isd m_isd_star ce gfc sii --eval-every 250 --val-faces 32 \
  --limit 256 --masks occlusions paper-masks --no-progress "$@"
