#!/usr/bin/env bash
# The toy ADE20K run on the CPU, in one command (from the repo root):
#   1. generate data/toy_ade once (tools/make_toy_ade.py);
#   2. `mim train mmseg` the toy GLNet UPerNet config;
#   3. `mim test mmseg` the last checkpoint: IoUMetric (mIoU, per-class IoU)
#      and coloured overlays (ground truth | prediction) as PNG files.
# Environment: WORK_DIR (default work_dirs/upernet_glnet-toy_toy-ade).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CONFIG=configs/segmentation/upernet_glnet-toy_1xb8-600iter_toy-ade-128x128.py
WORK_DIR=${WORK_DIR:-work_dirs/upernet_glnet-toy_toy-ade}
MIM=.venv/bin/mim
# Sleeping OpenMP threads: on a busy, shared CPU busy-waiting threads make
# every step several times slower.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

if [ ! -d data/toy_ade/annotations ]; then
    .venv/bin/python tools/make_toy_ade.py data/toy_ade
fi

start=$(date +%s)
$MIM train mmseg "$CONFIG" --work-dir "$WORK_DIR"
trained=$(date +%s)
checkpoint=$(cat "$WORK_DIR/last_checkpoint")
$MIM test mmseg "$CONFIG" --checkpoint "$checkpoint" --work-dir "$WORK_DIR" \
    --show-dir "$WORK_DIR/overlays" 2>&1 | tee "$WORK_DIR/test.log"

echo "training: $((trained - start)) s (wall); checkpoint: $checkpoint"
grep -E 'mIoU:' "$WORK_DIR/test.log" | tail -n 1
echo "overlays (ground truth | prediction):"
find "$WORK_DIR/overlays" -name '*.png' | sort
