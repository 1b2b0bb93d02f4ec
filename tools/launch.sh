#!/usr/bin/env bash
# What dist_train.sh, dist_test.sh, slurm_train.sh and slurm_test.sh share:
#   bash tools/launch.sh torchrun NPROC SCRIPT ARGS...   (NNODES, NODE_RANK, MASTER_ADDR, PORT)
#   bash tools/launch.sh srun NTASKS SCRIPT ARGS...      (PARTITION, JOB_NAME, GPUS_PER_NODE,
#                                                         CPUS_PER_TASK, SRUN_ARGS)
# SCRIPT is tools/train.py or tools/test.py, given --launcher pytorch|slurm.
# The Python is $PYTHON if set, else the `python` on PATH if it imports torch
# (your active environment), else the project's .venv/ (`make setup`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=$1 N=$2 SCRIPT=$3
shift 3

if [ -z "${PYTHON:-}" ]; then
    if command -v python > /dev/null && python -c 'import torch' 2> /dev/null; then
        PYTHON=python
    elif [ -x "$ROOT/.venv/bin/python" ]; then
        PYTHON="$ROOT/.venv/bin/python"
    else
        echo "$0: no Python with torch: activate the environment that has" \
             "glnet_mm's dependencies, run \`make setup\`, or set PYTHON" >&2
        exit 2
    fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

case "$MODE" in
torchrun)
    exec "$PYTHON" -m torch.distributed.run \
        --nnodes="${NNODES:-1}" \
        --node_rank="${NODE_RANK:-0}" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" \
        --master_port="${PORT:-29500}" \
        --nproc_per_node="$N" \
        "$SCRIPT" "$@" --launcher pytorch ;;
srun)
    GPUS_PER_NODE=${GPUS_PER_NODE:-$(( N < 8 ? N : 8 ))}
    PARTITION_ARGS=()
    if [ -n "${PARTITION:-}" ]; then PARTITION_ARGS=(-p "$PARTITION"); fi
    # shellcheck disable=SC2086
    exec srun "${PARTITION_ARGS[@]}" \
        --job-name="${JOB_NAME:-glnet_mm}" \
        --gres=gpu:"$GPUS_PER_NODE" \
        --ntasks="$N" \
        --ntasks-per-node="$GPUS_PER_NODE" \
        --cpus-per-task="${CPUS_PER_TASK:-5}" \
        --kill-on-bad-exit=1 \
        ${SRUN_ARGS:-} \
        "$PYTHON" -u "$SCRIPT" "$@" --launcher slurm ;;
*)
    echo "$0: MODE must be torchrun or srun, got '$MODE'" >&2
    exit 2 ;;
esac
