#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment with the pinned
# OpenMMLab stack, then install glnet_mm in editable mode.
#
#   bash .dev_scripts/setup_env.sh                  # pinned torch in .venv/ (the default; CI)
#   bash .dev_scripts/setup_env.sh --system-torch   # bring your own torch (see below)
#   bash .dev_scripts/setup_env.sh --offline DIR    # no network: an offline bundle
#                                            # (.dev_scripts/make_bundle.sh) on top of
#                                            # an installed torch
#
# --system-torch: reuse the torch and torchvision that $PYTHON imports (a
#   cluster's CUDA build, say) instead of installing the pinned ones. The venv
#   sees that interpreter's packages, like `venv --system-site-packages` (also
#   when $PYTHON is itself a venv or conda env: a .pth file in the new venv
#   lists its package folders), and the stack is installed on top of them.
# --offline DIR: no network at all (pip --no-index, DIR as the only source);
#   implies --system-torch.
#
# mmcv 2.1.0 has no wheels for current torch: its sdist is patched
# (.dev_scripts/patch_mmcv.sh) and built once, then cached outside the checkout
# ($GLNET_MM_CACHE, default ~/.cache/glnet_mm) in a folder named after mmcv,
# torch, Python, machine and ops (cpu | lite | cudaX.Y-archA_B), where every
# later clone on the same machine reuses it (.dev_scripts/mmcv_wheel.py: a good
# wheel is always kept, a failed compile resumes where it stopped, a bad
# wheel is removed with what to do). Its ops are checked once
# (.dev_scripts/check_mmcv_ops.py) before the wheel is first used.
#
# Environment:
#   PYTHON                interpreter the venv is made from (default python3)
#   GLNET_MM_VENV         the venv (default .venv/ in the checkout)
#   GLNET_MM_CACHE        cache of built mmcv wheels (default ~/.cache/glnet_mm)
#   GLNET_MM_MMCV_OPS     auto (default) | cpu | cuda | none: mmcv's compiled ops.
#                         auto: CUDA ops when torch sees a GPU and nvcc is found
#                         (on PATH or $CUDA_HOME/bin/nvcc), else CPU ops.
#                         none: mmcv without compiled ops (mmcv-lite; seconds to
#                         build): enough for GLNet and mmpretrain, not for
#                         mmseg or mmdet (they import mmcv.ops; docs/gpu.md).
#   TORCH_CUDA_ARCH_LIST  CUDA build: architectures (default: the visible GPUs')
#   MAX_JOBS              parallel compile jobs (default: nproc)
#
# Idempotent: a venv whose stamp matches requirements/*.txt, these scripts and
# the chosen mode is reused as is.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   # ROOT, CALLER, abspath, ...
PY="$(python_path "${PYTHON:-python3}")"
cd "$ROOT"
VENV="$(abspath "${GLNET_MM_VENV:-$ROOT/.venv}")"
CACHE="$(abspath "${GLNET_MM_CACHE:-$HOME/.cache/glnet_mm}")"
OPS_WANTED="${GLNET_MM_MMCV_OPS:-auto}"
MMCV_VERSION=2.1.0
BASE_PTH=_glnet_mm_base_env.pth   # marks a venv that reuses $PYTHON's torch

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }
# pip, quiet, without the warnings of a pip.conf naming absent local indexes;
# pip's exit status is kept (pipefail).
PIP() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }; }

# ---- options --------------------------------------------------------------
MODE=pinned
BUNDLE=
while [ $# -gt 0 ]; do
    case "$1" in
        --system-torch) MODE=system ;;
        --offline)
            [ $# -ge 2 ] || die "--offline needs the bundle folder (.dev_scripts/make_bundle.sh OUT_DIR)"
            BUNDLE="$(abspath "$2")"; MODE=offline; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
case "$OPS_WANTED" in auto|cpu|cuda|none) ;; *) die "GLNET_MM_MMCV_OPS='$OPS_WANTED': use auto, cpu, cuda or none" ;; esac
if [ "$MODE" = offline ]; then
    [ -d "$BUNDLE" ] || die "--offline $BUNDLE: no such folder"
    BUNDLE="$(cd "$BUNDLE" && pwd)"
    for f in requirements.txt "mmcv-$MMCV_VERSION.tar.gz"; do
        [ -f "$BUNDLE/$f" ] || die "--offline $BUNDLE: no $f there; is it a folder written by .dev_scripts/make_bundle.sh?"
    done
    # Every pip call below: no index, the bundle as the only source.
    export PIP_NO_INDEX=1 PIP_FIND_LINKS="$BUNDLE"
fi

STAMP_VALUE="$( { cat requirements/*.txt .dev_scripts/setup_env.sh .dev_scripts/lib.sh .dev_scripts/patch_mmcv.sh .dev_scripts/mmcv_wheel.py
                  echo "$MODE $OPS_WANTED ${TORCH_CUDA_ARCH_LIST:-}"
                  [ -z "$BUNDLE" ] || cat "$BUNDLE/requirements.txt"; } | sha256sum | cut -c1-16)"
STAMP="$VENV/.glnet_mm_stack"

# ---- helpers --------------------------------------------------------------
# The CUDA compiler: nvcc on PATH, else $CUDA_HOME/bin/nvcc; empty if none.
find_nvcc() {
    if command -v nvcc >/dev/null 2>&1; then command -v nvcc
    elif [ -n "${CUDA_HOME:-}" ] && [ -x "$CUDA_HOME/bin/nvcc" ]; then echo "$CUDA_HOME/bin/nvcc"
    fi
}

# What to install when a GPU is there but no CUDA compiler.
explain_missing_nvcc() {
    local cu="$1" dash="${1/./-}" seen="sees $NGPU CUDA GPU(s) (arch $GPU_ARCHS)"
    [ "$NGPU" -gt 0 ] || seen="is a CUDA $cu build and GLNET_MM_MMCV_OPS=cuda"
    cat >&2 <<EOF
[setup] error: torch $TORCH_VERSION $seen, but no CUDA
[setup] compiler was found (no nvcc on PATH, none in \$CUDA_HOME/bin). mmcv's CUDA ops
[setup] (RoIAlign, NMS: what mmdet's detectors need on a GPU) are compiled here, with
[setup] the CUDA toolkit of the version torch was built with: CUDA $cu. Install one of:
[setup]   - a cluster module:  module load cuda/$cu   (then nvcc is on PATH)
[setup]   - NVIDIA's apt repository:  apt-get install cuda-toolkit-$dash
[setup]     (then export CUDA_HOME=/usr/local/cuda-$cu)
[setup]   - conda:  conda install -c nvidia cuda-toolkit=$cu
[setup] and run this again. Or choose explicitly: GLNET_MM_MMCV_OPS=cpu (CPU ops only:
[setup] GLNet, mmseg and mmpretrain run on the GPU, mmdet's RoI ops do not).
EOF
    exit 1
}

# What torch is, read from the interpreter $1: TORCH_VERSION, TORCH_CUDA,
# NGPU, GPU_ARCHS, PYTAG (empty when torch or torchvision does not import:
# mmpretrain imports torchvision; Python's error stays on stderr) and
# TORCH_FILE (torch/__init__.py: the last field, a path may have spaces).
read_torch() {
    read -r TORCH_VERSION TORCH_CUDA NGPU GPU_ARCHS PYTAG TORCH_FILE < <(env -u PYTHONPATH "$1" -c '
import sys, torch, torchvision
n = torch.cuda.device_count() if torch.cuda.is_available() else 0
archs = sorted({"%d.%d" % torch.cuda.get_device_capability(i) for i in range(n)})
print(torch.__version__, torch.version.cuda or "none", n, ";".join(archs) or "none",
      "cp%d%d" % sys.version_info[:2], torch.__file__)') || PYTAG=""
}

# Which mmcv ops (OPS, OPS_TAG; for CUDA also NVCC_VERSION, ARCHS, CUDA_HOME),
# from GLNET_MM_MMCV_OPS and the torch of read_torch. Decided before anything
# is built; a choice that cannot be built is refused here, with what to do.
choose_ops() {
    OPS="$OPS_WANTED"
    NVCC="$(find_nvcc)"
    if [ "$OPS" = auto ]; then
        OPS=cpu
        if [ "$NGPU" -gt 0 ] && [ "$TORCH_CUDA" != none ]; then
            [ -n "$NVCC" ] || explain_missing_nvcc "$TORCH_CUDA"
            OPS=cuda
        fi
    fi
    if [ "$OPS" = cuda ]; then
        [ "$TORCH_CUDA" != none ] || die "GLNET_MM_MMCV_OPS=cuda but torch $TORCH_VERSION is a CPU build; install a CUDA build of torch (or use --system-torch with one)"
        [ -n "$NVCC" ] || explain_missing_nvcc "$TORCH_CUDA"
        NVCC_VERSION="$("$NVCC" --version | sed -n 's/.*release \([0-9][0-9.]*\),.*/\1/p')"
        [ "${NVCC_VERSION%%.*}" = "${TORCH_CUDA%%.*}" ] ||
            die "nvcc $NVCC ($NVCC_VERSION) and torch $TORCH_VERSION (CUDA $TORCH_CUDA) differ in their CUDA major version, which torch's extension builder refuses; put the CUDA $TORCH_CUDA toolkit first on PATH / in CUDA_HOME"
        # The toolkit folder (headers) for torch's extension builder: nvcc's
        # grandparent unless nvcc is a wrapper elsewhere, else /usr/local/cuda.
        if [ -z "${CUDA_HOME:-}" ]; then
            for home in "$(dirname "$(dirname "$(readlink -f "$NVCC")")")" /usr/local/cuda; do
                if [ -f "$home/include/cuda_runtime.h" ]; then export CUDA_HOME="$home"; break; fi
            done
            [ -n "${CUDA_HOME:-}" ] || die "no CUDA headers (include/cuda_runtime.h) beside $NVCC or in /usr/local/cuda: set CUDA_HOME to the CUDA $NVCC_VERSION toolkit"
        fi
        ARCHS="${TORCH_CUDA_ARCH_LIST:-}"
        [ -n "$ARCHS" ] || [ "$GPU_ARCHS" = none ] || ARCHS="$GPU_ARCHS"
        [ -n "$ARCHS" ] || die "GLNET_MM_MMCV_OPS=cuda but no GPU is visible: set TORCH_CUDA_ARCH_LIST (e.g. '9.0' for H100)"
        OPS_TAG="cuda$NVCC_VERSION-arch$(printf '%s' "$ARCHS" | tr ' ;' '__' | tr -d '+')"
        say "mmcv ops: CUDA (nvcc $NVCC_VERSION at $NVCC, TORCH_CUDA_ARCH_LIST=$ARCHS)"
    elif [ "$OPS" = none ]; then
        OPS_TAG=lite
        say "mmcv ops: none (mmcv-lite)"
    else
        OPS_TAG=cpu
        say "mmcv ops: CPU"
    fi
}

# A venv with pip. Where ensurepip is missing (Debian/Ubuntu without
# python3-venv), offline: a venv without pip, then pip from the bundle's wheel.
make_venv() {
    local err pipwhl
    err="$("$PY" -m venv "$VENV" 2>&1)" && return 0
    rm -rf "$VENV"
    pipwhl="$(first_path "${BUNDLE:-/nonexistent}"/pip-*.whl)"
    if [ -n "$pipwhl" ] && "$PY" -m venv --without-pip "$VENV"; then
        say "no ensurepip in $PY: pip installed from the bundle's $(basename "$pipwhl")"
        "$VENV/bin/python" "$pipwhl/pip" install -q --no-index --disable-pip-version-check "$pipwhl"
        return
    fi
    die "$PY -m venv failed (on Debian/Ubuntu: apt-get install python3-venv): $err"
}

# Uninstall any mmcv / mmcv-lite (they share files), then install the wheel.
install_mmcv_wheel() {
    "$VENV/bin/python" -m pip --disable-pip-version-check -q uninstall -y mmcv mmcv-lite >/dev/null 2>&1 || true
    PIP install --no-deps "$1"
}

# ---- the venv -------------------------------------------------------------
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_VALUE" ] && [ -x "$VENV/bin/python" ]; then
    say "reusing $VENV (stack up to date)"
else
    t0=$SECONDS
    say "building the stack in $VENV ($MODE torch; 2 min, 5 min with the mmcv compile on a 2-core machine: docs/install.md)"
    if [ "$MODE" = pinned ]; then
        [ -z "$(first_path "$VENV"/lib/python3*/site-packages/$BASE_PTH)" ] ||
            die "$VENV reuses another interpreter's torch (made with --system-torch/--offline); remove it first"
        [ -x "$VENV/bin/python" ] || make_venv
        say "1/4 torch, torchvision and build tools"
        PIP install -r requirements/build.txt
    else
        # Bring your own torch: it must import in $PYTHON, torchvision too
        # (mmpretrain imports it). The venv will import this torch, so the
        # ops are chosen from it now, before anything is made.
        read_torch "$PY"
        [ -n "$PYTAG" ] ||
            die "$PY cannot import torch and torchvision; --system-torch/--offline reuse the torch of PYTHON=$PY: install torch and the torchvision that matches it there first, or set PYTHON"
        choose_ops
        if [ -x "$VENV/bin/python" ] && [ -z "$(first_path "$VENV"/lib/python3*/site-packages/$BASE_PTH)" ]; then
            die "$VENV already exists with its own packages; remove it or choose another GLNET_MM_VENV"
        fi
        [ -x "$VENV/bin/python" ] || make_venv
        # The package folders of $PYTHON that the new venv lacks go into a .pth
        # file: they come after the venv's own, so what is installed here wins.
        # (Written anew: the venv's own folders are read without the old one.)
        rm -f "$VENV"/lib/python3*/site-packages/$BASE_PTH
        parent_paths="$(env -u PYTHONPATH "$PY" -c 'import os, sys; print("\n".join(p for p in sys.path if p and os.path.isdir(p)))')"
        env -u PYTHONPATH "$VENV/bin/python" - "$parent_paths" "$BASE_PTH" <<'EOF'
import os, site, sys
own = set(sys.path)
extra = [p for p in sys.argv[1].splitlines() if p not in own]
with open(os.path.join(site.getsitepackages()[0], sys.argv[2]), 'w') as f:
    f.write(''.join(p + '\n' for p in extra))
EOF
        # the same torch files (found, not imported: the last step imports them)
        got="$(env -u PYTHONPATH "$VENV/bin/python" -c 'import importlib.util as u; s = u.find_spec("torch"); print(s.origin if s else "")')"
        [ -n "$got" ] || die "the new venv cannot find the torch of $PY"
        [ "$got" = "$TORCH_FILE" ] || die "the new venv finds torch at $got, $PY's is $TORCH_FILE"
        if [ "$MODE" = offline ]; then
            say "1/4 the bundle's wheels, no network (torch $TORCH_VERSION of $PY reused)"
            PIP install --no-deps -r "$BUNDLE/requirements.txt"
        else
            say "1/4 build tools (torch $TORCH_VERSION of $PY reused)"
            grep -v -E '^(torch|torchvision)==' requirements/build.txt > "$VENV/.build-without-torch.txt"
            PIP install -r "$VENV/.build-without-torch.txt"
        fi
    fi
    say "1/4 done in $((SECONDS - t0)) s"
    if [ "$MODE" = pinned ]; then
        read_torch "$VENV/bin/python"
        [ -n "$PYTAG" ] || die "torch does not import in $VENV"
        choose_ops
    fi
    # The constraints of stage 3: build.txt, less torch when it is not ours.
    CONSTRAINTS=requirements/build.txt
    [ "$MODE" != system ] || CONSTRAINTS="$VENV/.build-without-torch.txt"

    # ---- 2/4 mmcv: the cached wheel, or patch and build the sdist once ----
    # .dev_scripts/mmcv_wheel.py keeps every good wheel and resumes a failed compile.
    WHEEL_DIR="$CACHE/mmcv-$MMCV_VERSION-torch$TORCH_VERSION-$PYTAG-$(uname -m)-$OPS_TAG"
    case "$OPS" in
        # -g0 after Python's own -g: no debug info. The code is the same with
        # or without it; without, g++ takes ~60% of the time and _ext.so is
        # ~5 MB, not 80. (setuptools appends CPPFLAGS to the compile flags;
        # CFLAGS would replace them, -O3 included.)
        cpu) build_env=(MMCV_WITH_OPS=1 FORCE_CUDA=0 "CPPFLAGS=${CPPFLAGS:-} -g0") ;;
        cuda) build_env=(MMCV_WITH_OPS=1 FORCE_CUDA=1 "TORCH_CUDA_ARCH_LIST=$ARCHS" "CPPFLAGS=${CPPFLAGS:-} -g0") ;;
        none) build_env=(MMCV_WITH_OPS=0) ;;
    esac
    sdist=(--download "mmcv==$MMCV_VERSION")
    [ "$MODE" != offline ] || sdist=(--sdist "$BUNDLE/mmcv-$MMCV_VERSION.tar.gz")
    tb=$SECONDS
    if [ -n "$(first_path "$WHEEL_DIR"/mmcv*.whl)" ]; then
        say "2/4 reusing the mmcv wheel cached in $WHEEL_DIR"
    else
        say "2/4 building mmcv $MMCV_VERSION ($OPS_TAG ops), MAX_JOBS=${MAX_JOBS:-$(nproc)}; cached in $WHEEL_DIR"
    fi
    wheel="$(env "${build_env[@]}" MAX_JOBS="${MAX_JOBS:-$(nproc)}" "$VENV/bin/python" .dev_scripts/mmcv_wheel.py ensure \
        --cache-dir "$WHEEL_DIR" --ops "$OPS" --patch .dev_scripts/patch_mmcv.sh "${sdist[@]}")"
    install_mmcv_wheel "$wheel"
    say "mmcv ready in $((SECONDS - tb)) s"

    # ---- 3/4 the rest of the stack ----
    if [ "$MODE" != offline ]; then
        t3=$SECONDS
        say "3/4 mmengine, mmdet, mmsegmentation, mmpretrain, openmim"
        # build.txt doubles as constraints: numpy (and our torch) stay at their pins.
        PIP install "$wheel" -r requirements/runtime.txt \
            -r requirements/tests.txt -r requirements/export.txt -c "$CONSTRAINTS"
        PIP install --no-deps openmim==0.3.9
        say "3/4 done in $((SECONDS - t3)) s"
    else
        say "3/4 (the bundle's wheels are installed)"
    fi
    # The ops are checked once per cached wheel, before its first use (mmcv
    # imports its own dependencies, so after step 3).
    if [ "$OPS" != none ] && [ ! -f "$WHEEL_DIR/ops-checked" ]; then
        rc=0; "$VENV/bin/python" .dev_scripts/check_mmcv_ops.py --device "$OPS" || rc=$?
        if [ "$rc" = 1 ]; then
            rm -rf "$WHEEL_DIR"
            die "mmcv's $OPS ops disagree with the reference (above), so the wheel was removed from the cache: building it again would give the same wheel. Use GLNET_MM_MMCV_OPS=none (mmcv-lite: GLNet and mmpretrain only) and report the output above"
        elif [ "$rc" != 0 ]; then
            die "the check of mmcv's ops could not run (above); the wheel stays cached in $WHEEL_DIR. Fix the cause and run the setup again"
        fi
        touch "$WHEEL_DIR/ops-checked"
    fi
    echo "$STAMP_VALUE" > "$STAMP"
    say "stack ready in $((SECONDS - t0)) s"
fi

say "4/4 pip install -e ."
PIP install --no-deps --no-build-isolation -e .
if "$VENV/bin/python" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("mmcv._ext") is None)'; then
    check="import mmcv.ops, mmdet, mmseg, mmpretrain, glnet_mm"
else
    check="import mmcv, mmdet, mmseg, mmpretrain, glnet_mm"   # mmcv-lite
fi
"$VENV/bin/python" -c "$check" \
    || { say "the environment does not import; remove $VENV and run again"; exit 1; }
