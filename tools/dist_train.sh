#!/usr/bin/env bash
# Train CONFIG on GPUS processes with torch DDP, as OpenMMLab's dist_train.sh:
#   bash tools/dist_train.sh CONFIG GPUS [--work-dir DIR] [--resume] [--amp] [--cfg-options k=v ...]
# One process per GPU with NCCL; on a machine without a GPU, GPUS CPU
# processes with gloo. Several nodes: run it on every node with NNODES,
# NODE_RANK, MASTER_ADDR and PORT set (torchrun's static rendezvous).
# Which Python runs it: tools/launch.sh.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [tools/train.py arguments...]" >&2
    exit 2
fi
TOOLS=$(cd "$(dirname "$0")" && pwd)
exec bash "$TOOLS/launch.sh" torchrun "$2" "$TOOLS/train.py" "$1" "${@:3}"
