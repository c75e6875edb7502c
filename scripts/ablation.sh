#!/bin/bash
# The real ablation (issues 5 and 8): every paper variant and the three re-implemented baselines,
# 1000 steps each at 128 px, ngf/ndf 32, batch 16, on the shared faces (docs/results/ablation/).
# Two training processes (one thread each, disjoint variants, --train-only) share the 2 cores,
# then one process evaluates all of them together. Rerun to continue: finished variants are not
# retrained and an unchanged evaluation is reused; the overrides must stay the same.
# SII is trained without intermediate validation (its z search costs ~1 s per face). Evaluation:
# O1-O6 (Table 1) and the 64x64 block (Tables 2 and 3), on the first 128 held-out faces.
set -eu
cd "$(dirname "$0")/.."
COMMON=(model.ngf=32 model.ndf=32 baseline.sii_iterations=100 train.precision=bf16 train.channels_last=true
        --data work/prepared/celeba_aligned:work/prepared/celeba_crops --budget 1000 --out work/ablation
        --val-faces 32 --limit 128 --masks occlusions block --no-progress)
mkdir -p work/ablation
(OMP_NUM_THREADS=1 collaface ablate "${COMMON[@]}" --eval-every 250 --train-only \
   --variants m_isd m_is m_s ce > work/ablation/train_a.log 2>&1
 OMP_NUM_THREADS=1 collaface ablate "${COMMON[@]}" --eval-every 0 --train-only --variants sii \
   > work/ablation/train_sii.log 2>&1) &
OMP_NUM_THREADS=1 collaface ablate "${COMMON[@]}" --eval-every 250 --train-only \
  --variants m_isd_star m_id m_i m_d gfc > work/ablation/train_b.log 2>&1 &
wait
collaface ablate "${COMMON[@]}" --eval-every 250 \
  --variants m_i m_s m_d m_is m_id m_isd m_isd_star ce gfc sii 2>&1 | tee work/ablation/evaluate.log
