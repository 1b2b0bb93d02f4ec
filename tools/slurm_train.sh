#!/usr/bin/env bash
# Train CONFIG on N slurm tasks (one per GPU) with srun:
#   bash tools/slurm_train.sh CONFIG N [--work-dir DIR] [--resume] [--cfg-options k=v ...]
# Environment: PARTITION (srun -p), JOB_NAME, GPUS_PER_NODE (default
# min(N, 8)), CPUS_PER_TASK (5), SRUN_ARGS (anything else for srun).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG N [train.py arguments...]" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
GPUS_PER_NODE=${GPUS_PER_NODE:-$(( NPROC < 8 ? NPROC : 8 ))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
JOB_NAME=${JOB_NAME:-glnet_mm}
SRUN_ARGS=${SRUN_ARGS:-}
PYTHON=${PYTHON:-python}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

PARTITION_ARGS=()
if [ -n "${PARTITION:-}" ]; then PARTITION_ARGS=(-p "$PARTITION"); fi

# shellcheck disable=SC2086
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
srun "${PARTITION_ARGS[@]}" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$NPROC" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    "$PYTHON" -u "$ROOT/tools/train.py" "$CONFIG" --launcher slurm "${@:3}"
