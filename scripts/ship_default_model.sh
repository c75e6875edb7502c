#!/usr/bin/env bash
# Issue 19's last step, after scripts/default_model_long_run.sh: pick the network-interpolation
# point of the long run's generator on validation faces, score it on the held-out test identities
# beside the reconstruction-only generator it was fine-tuned from and the shipped weights, and
# export it as fp16 with its batch-1 latency. It writes nothing into the package: copy
# RUNS/models/ship/* to src/collaface/weights/ only when the test report says it should ship.
#   scripts/ship_default_model.sh [CHECKPOINT]   (default: the long run's newest checkpoint)
# Environment: RUNS (../runs), DATA, ALPHAS ("1.0 0.95 0.9"), VAL_LIMIT (300), TEST_LIMIT (all
# test faces when empty), THREADS (1: one core stays free for the training run).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-$(realpath ..)/runs}
DATA=${DATA:-work/prepared/celeba_aligned:work/prepared/celeba_crops}
ALPHAS=${ALPHAS:-"1.0 0.95 0.9"}
VAL_LIMIT=${VAL_LIMIT:-300}
THREADS=${THREADS:-1}
CHECKPOINT=${1:-$RUNS/default_gan2}
L1_RUN=$RUNS/default_l1
MODELS=$RUNS/models/final
export OMP_NUM_THREADS=$THREADS
evaluate() {  # OUT SPLIT LIMIT MASKS, then the models and evaluate's other options
  local out=$1 split=$2 limit=$3 masks=$4; shift 4
  nice -n -5 collaface evaluate "$@" --data "$DATA" --split "$split" ${limit:+--limit "$limit"} \
    --masks $masks --workers 1 --threads "$THREADS" --out "$out" --no-progress
}

collaface export "$L1_RUN" --out "$MODELS/l1"
models=() labels=()
for alpha in $ALPHAS; do
  collaface export "$CHECKPOINT" --interpolate "$L1_RUN" --alpha "$alpha" --out "$MODELS/a$alpha"
  models+=("$MODELS/a$alpha") labels+=("a$alpha")
done
evaluate "$RUNS/eval/final_val" val "$VAL_LIMIT" occlusions "$MODELS/l1" "${models[@]}" \
  --labels l1 "${labels[@]}" --bootstrap 0
chosen=$(python scripts/choose_alpha.py "$RUNS/eval/final_val/report.json" --reference l1 \
  | tee /dev/stderr | sed -n 's/^chosen: \([^ ]*\) .*/\1/p')
alpha=${chosen#a}
collaface export "$CHECKPOINT" --interpolate "$L1_RUN" --alpha "$alpha" --half --out "$RUNS/models/ship"
evaluate "$RUNS/eval/final_test" test "${TEST_LIMIT:-}" "occlusions freeform" "$RUNS/models/ship" \
  "$MODELS/l1" src/collaface/weights --labels "default_a$alpha" l1 shipped
python scripts/bench_complete.py stages --model "$RUNS/models/ship" --threads 1 \
  --json "$RUNS/eval/final_test/latency.json"
du -b "$RUNS/models/ship/generator.safetensors"
echo "chosen alpha $alpha; test report $RUNS/eval/final_test/report.md; weights $RUNS/models/ship"
