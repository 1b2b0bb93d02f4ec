#!/usr/bin/env bash
# Train CONFIG on N processes with torch DDP (OpenMMLab's dist_train.sh):
#   bash tools/dist_train.sh CONFIG N [--work-dir DIR] [--resume] [--cfg-options k=v ...]
# One process per GPU with NCCL; on a machine without a GPU, N CPU processes
# with gloo (tools/train.py). Several nodes: run it on every node with
# NNODES, NODE_RANK, MASTER_ADDR and PORT set (torchrun's static rendezvous).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG N [train.py arguments...]" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PYTHON=${PYTHON:-python}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" \
    --nproc_per_node="$NPROC" \
    "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "${@:3}"
