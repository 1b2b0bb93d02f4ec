#!/usr/bin/env bash
# The README's CPU toy demo (`make demo`): a GLNet Mask R-CNN trained on the CPU
# on the toy COCO, end to end with mmdet's own tools (from the repo root):
#   1. generate data/toy_coco once (tools/make_toy_coco.py);
#   2. `mim train mmdet` the toy config; a rerun resumes from the last
#      checkpoint (or returns at once when training is complete);
#   3. `mim test mmdet` the last checkpoint: CocoMetric (bbox and segm mAP
#      from pycocotools) and the predictions drawn by mmdet's visualizer.
# Environment: CONFIG (default: the toy config below), WORK_DIR (default
# work_dirs/mask-rcnn_glnet-toy_toy-coco).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CONFIG=${CONFIG:-configs/detection/mask-rcnn_glnet-toy_fpn_1xb4-12e_toy-coco.py}
WORK_DIR=${WORK_DIR:-work_dirs/mask-rcnn_glnet-toy_toy-coco}
MIM=.venv/bin/mim
# Sleeping OpenMP threads: on a busy, shared CPU busy-waiting threads make
# every step several times slower.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

if [ ! -f data/toy_coco/annotations/instances_val.json ]; then
    .venv/bin/python tools/make_toy_coco.py data/toy_coco
fi

start=$(date +%s)
$MIM train mmdet "$CONFIG" --work-dir "$WORK_DIR" --resume
trained=$(date +%s)
checkpoint=$(cat "$WORK_DIR/last_checkpoint")
# an absolute --show-dir: mmdet 3.3 nests a relative one once per batch
predictions="$(cd "$WORK_DIR" && pwd)/predictions"
$MIM test mmdet "$CONFIG" --checkpoint "$checkpoint" --work-dir "$WORK_DIR" \
    --show-dir "$predictions" 2>&1 | tee "$WORK_DIR/test.log"

echo
echo "training: $((trained - start)) s (wall clock); checkpoint: $checkpoint"
grep -E 'bbox_mAP_copypaste|segm_mAP_copypaste' "$WORK_DIR/test.log" |
    sed 's/.*- mmengine - INFO - /  /'
echo "  (mAP, mAP@0.5, mAP@0.75, small, medium, large; COCO evaluation)"
echo "predictions drawn by mmdet's DetLocalVisualizer: $predictions/"
shown=("$predictions"/*)
for f in "${shown[@]:0:5}"; do echo "  ${f##*/}"; done
echo "logs, metrics and checkpoints: $WORK_DIR/"
