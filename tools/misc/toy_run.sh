#!/usr/bin/env bash
# A toy run on the CPU, end to end with the toolbox's own tools (from the
# repo root):
#   bash tools/misc/toy_run.sh detection|segmentation|classification
#   1. generate the task's toy data once (python -m glnet_mm.datasets.<toy>);
#   2. `mim train` the toy GLNet config (detection: a rerun resumes from the
#      last checkpoint, or returns at once when training is complete);
#   3. `mim test` the last checkpoint: detection, CocoMetric (bbox and segm
#      mAP) and the predictions drawn by mmdet's visualizer; segmentation,
#      IoUMetric and coloured overlays (ground truth | prediction);
#      classification, top-1 on the toy val split and the slot figure of one
#      validation image (tools/visualization/visualize_slots.py).
# The README's CPU toy demo, `make demo`, is the detection run. Environment:
# CONFIG (detection only) and WORK_DIR override the defaults below.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

TASK=${1:-}
case "$TASK" in
detection)
    TOOLBOX=mmdet DATA=data/toy_coco TOY=toy_coco
    READY=data/toy_coco/annotations/instances_val.json
    CONFIG=${CONFIG:-configs/detection/mask-rcnn_glnet-toy_fpn_1xb4-12e_toy-coco.py}
    WORK_DIR=${WORK_DIR:-work_dirs/mask-rcnn_glnet-toy_toy-coco}
    TRAIN_ARGS=(--resume) SHOW=predictions ;;
segmentation)
    TOOLBOX=mmseg DATA=data/toy_ade TOY=toy_ade READY=data/toy_ade/annotations
    CONFIG=configs/segmentation/upernet_glnet-toy_1xb8-600iter_toy-ade-128x128.py
    WORK_DIR=${WORK_DIR:-work_dirs/upernet_glnet-toy_toy-ade}
    TRAIN_ARGS=() SHOW=overlays ;;
classification)
    TOOLBOX=mmpretrain DATA=data/toy_shapes TOY=toy_imagefolder
    READY=data/toy_shapes/train
    CONFIG=configs/classification/glnet-toy_1xb64-20e_toy-shapes.py
    WORK_DIR=${WORK_DIR:-work_dirs/glnet-toy_toy-shapes}
    TRAIN_ARGS=() SHOW= ;;
*)
    echo "usage: bash tools/misc/toy_run.sh detection|segmentation|classification" >&2
    exit 2 ;;
esac
PYTHON=.venv/bin/python
MIM=.venv/bin/mim
# Sleeping OpenMP threads: on a busy, shared CPU busy-waiting threads make
# every step several times slower.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

if [ ! -e "$READY" ]; then
    $PYTHON -m "glnet_mm.datasets.$TOY" "$DATA"
fi

start=$(date +%s)
$MIM train "$TOOLBOX" "$CONFIG" --work-dir "$WORK_DIR" "${TRAIN_ARGS[@]}"
trained=$(date +%s)
checkpoint=$(cat "$WORK_DIR/last_checkpoint")
# an absolute --show-dir: mmdet 3.3 nests a relative one once per batch
shown="$(cd "$WORK_DIR" && pwd)/$SHOW"
TEST_ARGS=()
if [ -n "$SHOW" ]; then TEST_ARGS=(--show-dir "$shown"); fi
$MIM test "$TOOLBOX" "$CONFIG" --checkpoint "$checkpoint" \
    --work-dir "$WORK_DIR" "${TEST_ARGS[@]}" 2>&1 | tee "$WORK_DIR/test.log"

echo
echo "training: $((trained - start)) s (wall clock); checkpoint: $checkpoint"
case "$TASK" in
detection)
    grep -E 'bbox_mAP_copypaste|segm_mAP_copypaste' "$WORK_DIR/test.log" |
        sed 's/.*- mmengine - INFO - /  /'
    echo "  (mAP, mAP@0.5, mAP@0.75, small, medium, large; COCO evaluation)"
    echo "predictions drawn by mmdet's DetLocalVisualizer: $shown/"
    files=("$shown"/*)
    for f in "${files[@]:0:5}"; do echo "  ${f##*/}"; done ;;
segmentation)
    grep -E 'mIoU:' "$WORK_DIR/test.log" | tail -n 1
    echo "overlays (ground truth | prediction): $shown/"
    find "$shown" -name '*.png' | sort ;;
classification)
    grep -E 'accuracy/top1' "$WORK_DIR/test.log" | tail -n 1
    figure="$WORK_DIR/slots_$(date +%Y%m%d_%H%M%S).png"
    $PYTHON tools/visualization/visualize_slots.py "$CONFIG" \
        data/toy_shapes/val/triangle/triangle_00000.png \
        --checkpoint "$checkpoint" --short-side 64 --out "$figure"
    echo "slot figure: $figure" ;;
esac
echo "logs, metrics and checkpoints: $WORK_DIR/"
