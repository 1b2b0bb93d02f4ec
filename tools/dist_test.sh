#!/usr/bin/env bash
# Evaluate CHECKPOINT of CONFIG on GPUS processes, as OpenMMLab's dist_test.sh:
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [--work-dir DIR] [--out R.pkl] [--show-dir DIR] [--cfg-options k=v ...]
# Each process evaluates its shard; rank 0 reports the metric of the whole
# set. NNODES, NODE_RANK, MASTER_ADDR and PORT as for dist_train.sh.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT GPUS [tools/test.py arguments...]" >&2
    exit 2
fi
TOOLS=$(cd "$(dirname "$0")" && pwd)
exec bash "$TOOLS/launch.sh" torchrun "$3" "$TOOLS/test.py" "$1" "$2" "${@:4}"
