#!/usr/bin/env bash
# One GPU check of the project, for a bare GPU machine without network: the
# machine's own python3 and torch (any CUDA build), and an offline bundle.
#
#   bash .dev_scripts/gpu_check.sh OUT_DIR [--bundle DIR] [--dry-run] [--build-early] [--force]
#
#   --bundle DIR   the offline bundle (.dev_scripts/make_bundle.sh --python X.Y for the
#                  machine's Python); without it step 1 uses the network
#                  (setup_env.sh --system-torch)
#   --dry-run      on a CPU machine: everything that needs no GPU, with tiny
#                  sizes, iteration counts and fewer models (what CI runs)
#   --force        write into a non-empty OUT_DIR
#   --build-early  start step 4's mmcv build in the background right after
#                  step 1 (MAX_JOBS = cores - 2), to fit the 10 minutes; steps
#                  2-3 then share the CPU with the compiler
#
# Writes OUT_DIR/results.json, OUT_DIR/results.md (a table of the steps and of
# their measurements) and OUT_DIR/gpu_check.log (every step's output). The
# steps, in this order, each timed and reported even if an earlier one failed:
#   1. install   the bundle into a venv that reuses the machine's torch, mmcv
#                built without ops (mmcv-lite, seconds)
#   2. parity    GLNet CUDA vs CPU in fp32, all four outputs; fp16/bf16
#                autocast outputs finite and close
#   3. throughput  backbone and classifier, batch 128 at 224, fp32 and AMP
#                (fp16), channels_last off and on: GLNet-STL/4G, Swin-T,
#                ConvNeXt-T, the local-only ablation (tools/analysis_tools/benchmark.py)
#   4. mmcv-build  mmcv with CUDA ops for this GPU's arch only, MAX_JOBS =
#                cores, capped in time (dry run: CPU ops, the cached wheel of
#                `make setup` reused). It comes before the toy runs: mmseg and
#                mmdet import mmcv.ops, which mmcv-lite lacks.
#   5. seg-toy   toy UPerNet, 100 iterations with AmpOptimWrapper, the loss
#                falls; s/iter and peak memory beside GLNet-STL's and Swin-T's
#   6. det-toy   toy Mask R-CNN, 100 iterations, AMP, the loss falls
#   7. det-fps   detector FPS (tools/analysis_tools/benchmark.py detector), beside Swin-T
# Meant to end within 10 minutes on one H100 with 16 cores: the build's cap is
# what is left of GLNET_MM_CHECK_BUDGET (600 s) after steps 1-3, less 180 s for
# steps 5-7 (or GLNET_MM_BUILD_CAP seconds).
#
# Environment: PYTHON (default python3): the machine's interpreter with torch;
# GLNET_MM_CHECK_WORK: where the venv, data and step outputs go (default: a new
# folder under /tmp).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   # ROOT, CALLER, abspath, ...
PY="$(python_path "${PYTHON:-python3}")"
cd "$ROOT"

die() { printf 'gpu_check: %s\n' "$*" >&2; exit 1; }

OUT=""; BUNDLE=""; DRY=0; FORCE=0; EARLY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --bundle) [ $# -ge 2 ] || die "--bundle needs a folder"; BUNDLE="$(abspath "$2")"; shift ;;
        --dry-run) DRY=1 ;;
        --build-early) EARLY=1 ;;
        --force) FORCE=1 ;;
        *) out_dir_arg "$1" ;;
    esac
    shift
done
need_out_dir; OUT="$(abspath "$OUT")"
if [ -n "$BUNDLE" ]; then
    [ -f "$BUNDLE/requirements.txt" ] || die "--bundle $BUNDLE: not a folder written by .dev_scripts/make_bundle.sh"
    BUNDLE="$(cd "$BUNDLE" && pwd)"
fi
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT")" ] && [ "$FORCE" = 0 ]; then
    die "$OUT is not empty (use --force to write into it)"
fi
"$PY" -c 'import torch' 2>/dev/null || die "$PY cannot import torch: this check runs on the machine's own torch"
if [ "$DRY" = 0 ] && ! "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    die "torch sees no CUDA GPU here; use --dry-run on a CPU machine"
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="$(abspath "${GLNET_MM_CHECK_WORK:-$(mktemp -d /tmp/glnet_mm_gpu_check.XXXXXX)}")"
mkdir -p "$WORK"
VENV="$WORK/venv"
VPY="$VENV/bin/python"
LOG="$OUT/gpu_check.log"
STEPS="$WORK/steps.jsonl"
: > "$LOG"; : > "$STEPS"
BUDGET="${GLNET_MM_CHECK_BUDGET:-600}"
CORES="$(nproc)"

# Sizes: the real ones, or tiny ones on the CPU.
if [ "$DRY" = 1 ]; then
    DEVICE=cpu; ITERS=3
    PARITY_ARGS=(--batch 1 --size 64)
    TRAIN_ARGS=(--batch 2 --num-images 4 --workers 0)
    BENCH_ARGS=(--batch 2 --size 64 --device cpu --smoke)
    BENCH_RUNS=("backbone fp32 off" "classifier fp32 on")
    DET_FPS_ARGS=(--batch 1 --size 256 416 --device cpu --smoke)
    # one GLNet, the baselines: every kind of model each step builds
    MODELS=(glnet-stl swin-t convnext-t)
    DET_MODELS=(glnet-stl swin-t)
    SEG_MODELS=(glnet-toy swin-t)
else
    DEVICE=cuda; ITERS=100
    PARITY_ARGS=(--batch 2 --size 224)
    TRAIN_ARGS=(--num-images 64 --workers 4)
    BENCH_ARGS=(--batch 128 --size 224 --device cuda --rounds 10 --warmup 3)
    BENCH_RUNS=()
    for mode in backbone classifier; do for prec in fp32 fp16; do for cl in off on; do
        BENCH_RUNS+=("$mode $prec $cl")
    done; done; done
    DET_FPS_ARGS=(--batch 1 --device cuda --rounds 20 --warmup 5)
    MODELS=(glnet-stl glnet-4g swin-t convnext-t glnet-stl-local-only)
    DET_MODELS=(glnet-stl glnet-4g swin-t)
    SEG_MODELS=(glnet-toy glnet-stl swin-t)
fi
ARCH=""
[ "$DRY" = 1 ] || ARCH="$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')"

# run_step NAME NOTE RESULT_FILES... -- COMMAND...: run, time and record a step.
run_step() {
    local name="$1" note="$2"; shift 2
    local results=()
    while [ "$1" != -- ]; do results+=("$1"); shift; done
    shift
    local t=$SECONDS rc=0
    echo "== step $name: $*" | tee -a "$LOG"
    "$@" >> "$LOG" 2>&1 || rc=$?
    STEP_RC=$rc
    local status=ok
    [ "$rc" = 0 ] || status=failed
    [ "$rc" != 124 ] || status="timed out"
    record "$name" "$status" "$((SECONDS - t))" "$note (exit $rc)" "${results[@]}"
    echo "== step $name: $status in $((SECONDS - t)) s" | tee -a "$LOG"
    [ "$rc" = 0 ] || tail -n 15 "$LOG" | sed 's/^/   | /'
    return 0
}
# record NAME STATUS SECONDS NOTE RESULT_FILES...: one line of steps.jsonl.
record() {
    "$PY" - "$@" >> "$STEPS" <<'EOF'
import json, sys
name, status, seconds, note, *results = sys.argv[1:]
print(json.dumps(dict(step=name, status=status, seconds=int(seconds),
                      note=note, results=results)))
EOF
}
skip() { record "$1" skipped 0 "$2"; echo "== step $1: skipped: $2" | tee -a "$LOG"; }

# Whether the venv imports the stack: set after the steps that change the
# venv (1 and 4, both setup_env.sh runs), read by the others. setup_env.sh
# ends by importing the stack, so a run that succeeded says yes; after one
# that failed the import is tried (a build can fail or hit its time cap after
# the venv was complete).
check_venv() {
    VENV_OK=0
    if [ "$STEP_RC" = 0 ] || { [ -x "$VPY" ] && "$VPY" -c 'import mmengine, mmseg, glnet_mm' 2>/dev/null; }; then
        VENV_OK=1
    fi
}
venv_ok() { [ "$VENV_OK" = 1 ]; }

# The mmcv build with compiled ops (step 4): CUDA ops for this GPU's arch; in
# a dry run CPU ops, with the cache of `make setup` (its wheel is reused when
# the torch is the same).
set_build() {  # set_build VENV MAX_JOBS CAP: BUILD=(setup_env.sh with ops)
    BUILD=(timeout "$3" env GLNET_MM_VENV="$1" MAX_JOBS="$2" PYTHON="$PY")
    if [ "$DRY" = 1 ]; then
        BUILD+=(GLNET_MM_MMCV_OPS=cpu)
    else
        BUILD+=(GLNET_MM_CACHE="$WORK/cache" GLNET_MM_MMCV_OPS=cuda TORCH_CUDA_ARCH_LIST="$ARCH")
    fi
    BUILD+=(bash .dev_scripts/setup_env.sh "${setup_args[@]}")
}

# ---- 1. install -------------------------------------------------------------
if [ -n "$BUNDLE" ]; then setup_args=(--offline "$BUNDLE"); else setup_args=(--system-torch); fi
run_step install "setup_env.sh ${setup_args[*]} with GLNET_MM_MMCV_OPS=none" -- \
    env GLNET_MM_VENV="$VENV" GLNET_MM_CACHE="$WORK/cache" GLNET_MM_MMCV_OPS=none PYTHON="$PY" \
    bash .dev_scripts/setup_env.sh "${setup_args[@]}"
check_venv

# --build-early: the mmcv build of step 4 starts now, in the background, in a
# second venv, with 2 cores left to the steps in between; step 4 then installs
# the cached wheel. (Its time then overlaps steps 2-3.)
EARLY_PID=""
if [ "$EARLY" = 1 ] && venv_ok; then
    EARLY_JOBS=$((CORES > 4 ? CORES - 2 : 1))
    EARLY_T0=$SECONDS
    early_cap="${GLNET_MM_BUILD_CAP:-$((BUDGET - SECONDS - 180))}"
    [ "$early_cap" -ge 60 ] || early_cap=60
    echo "== mmcv build started in the background (MAX_JOBS=$EARLY_JOBS, cap $early_cap s)" | tee -a "$LOG"
    set_build "$WORK/venv-build" "$EARLY_JOBS" "$early_cap"
    "${BUILD[@]}" > "$WORK/early-build.log" 2>&1 &
    EARLY_PID=$!
fi

# ---- 2. parity --------------------------------------------------------------
if venv_ok; then
    run_step parity "GLNet-STL/4G $DEVICE vs CPU fp32; fp16/bf16 autocast" "$WORK/parity.json" -- \
        "$VPY" .dev_scripts/gpu_check_steps.py parity --device "$DEVICE" "${PARITY_ARGS[@]}" --out "$WORK/parity.json"
else
    skip parity "the install step failed"
fi

# ---- 3. throughput (the project's benchmark tool) ---------------------------
if ! venv_ok; then
    skip throughput "the install step failed"
else
    t=$SECONDS; failed=0; files=()
    for run in "${BENCH_RUNS[@]}"; do
        read -r mode prec cl <<< "$run"
        file="$WORK/bench-$mode-$prec-cl$cl.json"
        cl_arg=(); [ "$cl" = off ] || cl_arg=(--channels-last)
        echo "== throughput: $mode $prec channels_last=$cl" | tee -a "$LOG"
        "$VPY" tools/analysis_tools/benchmark.py "$mode" --models "${MODELS[@]}" --baseline swin-t \
            "${BENCH_ARGS[@]}" --precision "$prec" "${cl_arg[@]}" --out "$file" >> "$LOG" 2>&1 ||
            { failed=$((failed + 1)); echo "   failed: $mode $prec $cl" | tee -a "$LOG"; }
        files+=("$file")
    done
    status=ok; [ "$failed" = 0 ] || status=failed
    record throughput "$status" "$((SECONDS - t))" "${#BENCH_RUNS[@]} runs of tools/analysis_tools/benchmark.py, $failed failed" "${files[@]}"
    echo "== step throughput: $status in $((SECONDS - t)) s" | tee -a "$LOG"
fi

# ---- 4. mmcv with compiled ops ------------------------------------------------
# Before the toy runs: mmseg 1.2.2 and mmdet 3.3 import mmcv.ops when their
# models and datasets are imported (mmseg.utils imports point_sample), so
# mmcv-lite runs GLNet and mmpretrain (steps 2-3) but not them.
if ! venv_ok; then
    skip mmcv-build "the install step failed"
else
    early_rc=0
    if [ -n "$EARLY_PID" ]; then
        # the build started after step 1: wait for it, then install its wheel
        echo "== step mmcv-build: waiting for the early build (pid $EARLY_PID)" | tee -a "$LOG"
        wait "$EARLY_PID" || early_rc=$?
        cat "$WORK/early-build.log" >> "$LOG"
        note="early build (background since step 1, MAX_JOBS=$EARLY_JOBS): exit $early_rc after $((SECONDS - EARLY_T0)) s; then"
        jobs=$CORES; cap=300  # only installs the cached wheel
    else
        note=""; jobs=$CORES
        cap="${GLNET_MM_BUILD_CAP:-$((BUDGET - SECONDS - 180))}"
        [ "$cap" -ge 60 ] || cap=60
    fi
    if [ "$DRY" = 1 ]; then note="$note dry run: CPU ops (the CUDA build needs a GPU)"
    else note="$note CUDA ops for arch $ARCH, MAX_JOBS=$jobs, cap $cap s"; fi
    if [ "$early_rc" != 0 ]; then
        record mmcv-build failed "$((SECONDS - EARLY_T0))" "${note% then} (see gpu_check.log)"
    else
        set_build "$VENV" "$jobs" "$cap"
        run_step mmcv-build "${note# }" -- "${BUILD[@]}"
        check_venv
    fi
fi
has_ops() { "$VPY" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("mmcv._ext") is None)' 2>/dev/null; }

# ---- 5. toy UPerNet -------------------------------------------------------------
if ! venv_ok; then
    skip seg-toy "the install step failed"
elif ! has_ops; then
    skip seg-toy "mmcv has no compiled ops (the build step failed); mmseg imports mmcv.ops"
else
    run_step seg-toy "toy UPerNet, $ITERS iterations: ${SEG_MODELS[*]}" "$WORK/seg.json" -- \
        "$VPY" .dev_scripts/gpu_check_steps.py seg --device "$DEVICE" --iters "$ITERS" "${TRAIN_ARGS[@]}" --models "${SEG_MODELS[@]}" \
        --work "$WORK/seg" --out "$WORK/seg.json"
fi

# ---- 6-7. toy Mask R-CNN, detector FPS ----------------------------------------
if ! venv_ok || ! has_ops; then
    skip det-toy "mmcv has no compiled ops (see the steps above)"
    skip det-fps "mmcv has no compiled ops (see the steps above)"
else
    run_step det-toy "toy Mask R-CNN, $ITERS iterations" "$WORK/det.json" -- \
        "$VPY" .dev_scripts/gpu_check_steps.py det --device "$DEVICE" --iters "$ITERS" "${TRAIN_ARGS[@]}" \
        --work "$WORK/det" --out "$WORK/det.json"
    run_step det-fps "Mask R-CNN FPS: ${DET_MODELS[*]} (baseline swin-t)" "$WORK/det-fps.json" -- \
        "$VPY" tools/analysis_tools/benchmark.py detector --models "${DET_MODELS[@]}" --baseline swin-t \
        "${DET_FPS_ARGS[@]}" --precision fp32 --out "$WORK/det-fps.json"
fi

# ---- the report ---------------------------------------------------------------
dry_flag=(); [ "$DRY" = 0 ] || dry_flag=(--dry-run)
"$PY" .dev_scripts/gpu_check_steps.py report --steps "$STEPS" --out-json "$OUT/results.json" \
    --out-md "$OUT/results.md" --wall-s "$SECONDS" "${dry_flag[@]}" | tee -a "$LOG"
echo "gpu_check: $OUT/results.md, $OUT/results.json, $OUT/gpu_check.log (work: $WORK)"
