#!/usr/bin/env bash
# The toy classification run on the CPU, in one command (from the repo root):
#   1. generate data/toy_shapes once (tools/make_toy_imagefolder.py);
#   2. `mim train mmpretrain` the toy GLNet config (GLNet-STL's recipe);
#   3. `mim test mmpretrain` the last checkpoint: top-1 on the toy val split;
#   4. the slot figure of one validation image (tools/visualize_slots.py).
# Environment: WORK_DIR (default work_dirs/glnet-toy_toy-shapes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CONFIG=configs/classification/glnet-toy_1xb64-20e_toy-shapes.py
WORK_DIR=${WORK_DIR:-work_dirs/glnet-toy_toy-shapes}
MIM=.venv/bin/mim
# Sleeping OpenMP threads: on a busy, shared CPU busy-waiting threads make
# every step several times slower.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

if [ ! -d data/toy_shapes/train ]; then
    .venv/bin/python tools/make_toy_imagefolder.py data/toy_shapes
fi

start=$(date +%s)
$MIM train mmpretrain "$CONFIG" --work-dir "$WORK_DIR"
trained=$(date +%s)
checkpoint=$(cat "$WORK_DIR/last_checkpoint")
$MIM test mmpretrain "$CONFIG" --checkpoint "$checkpoint" \
    --work-dir "$WORK_DIR" 2>&1 | tee "$WORK_DIR/test.log"
figure="$WORK_DIR/slots_$(date +%Y%m%d_%H%M%S).png"
.venv/bin/python tools/visualize_slots.py "$CONFIG" \
    data/toy_shapes/val/triangle/triangle_00000.png \
    --checkpoint "$checkpoint" --short-side 64 --out "$figure"

echo "training: $((trained - start)) s (wall); checkpoint: $checkpoint"
grep -E 'accuracy/top1' "$WORK_DIR/test.log" | tail -n 1
echo "slot figure: $figure"
