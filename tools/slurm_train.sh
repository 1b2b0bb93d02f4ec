#!/usr/bin/env bash
# Train CONFIG on a slurm cluster with srun, as OpenMMLab's slurm_train.sh:
#   [GPUS=8] bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py arguments...]
# GPUS tasks in all (default 8), one per GPU; GPUS_PER_NODE (default
# min(GPUS, 8)), CPUS_PER_TASK (5), SRUN_ARGS (anything else for srun).
# The form of glnet_mm 0.1.0, `slurm_train.sh CONFIG N [args]` (PARTITION and
# JOB_NAME from the environment), still works.
set -euo pipefail
TOOLS=$(cd "$(dirname "$0")" && pwd)
if [ $# -ge 2 ] && [[ "$1" == *.py ]]; then
    echo "$0: CONFIG N is the old form; OpenMMLab's is PARTITION JOB_NAME CONFIG WORK_DIR" >&2
    exec bash "$TOOLS/launch.sh" srun "$2" "$TOOLS/train.py" "$1" "${@:3}"
fi
if [ $# -lt 4 ]; then
    echo "usage: [GPUS=8] $0 PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py arguments...]" >&2
    exit 2
fi
PARTITION=$1 JOB_NAME=$2 exec bash "$TOOLS/launch.sh" srun "${GPUS:-8}" \
    "$TOOLS/train.py" "$3" --work-dir "$4" "${@:5}"
