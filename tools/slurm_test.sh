#!/usr/bin/env bash
# Evaluate CHECKPOINT of CONFIG on a slurm cluster, as OpenMMLab's slurm_test.sh:
#   [GPUS=8] bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py arguments...]
# GPUS_PER_NODE, CPUS_PER_TASK and SRUN_ARGS as for slurm_train.sh.
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: [GPUS=8] $0 PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py arguments...]" >&2
    exit 2
fi
TOOLS=$(cd "$(dirname "$0")" && pwd)
PARTITION=$1 JOB_NAME=$2 exec bash "$TOOLS/launch.sh" srun "${GPUS:-8}" \
    "$TOOLS/test.py" "$3" "$4" "${@:5}"
