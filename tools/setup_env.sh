#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment at .venv/ with the pinned
# OpenMMLab stack, then install glnet_mm in editable mode.
#
# Idempotent: a venv whose stamp matches requirements/*.txt is reused as is.
# mmcv 2.1.0 has no wheels for current torch, so its sdist is built once with the
# CPU ops and cached outside the checkout ($GLNET_MM_CACHE, default
# ~/.cache/glnet_mm), where every later clone on the same machine reuses it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"
CACHE="${GLNET_MM_CACHE:-$HOME/.cache/glnet_mm}"
MMCV_VERSION=2.1.0
STAMP_VALUE="$(cat requirements/build.txt requirements/runtime.txt tools/setup_env.sh | sha256sum | cut -c1-16)"
STAMP="$VENV/.glnet_mm_stack"

say() { printf '[setup] %s\n' "$*"; }
PIP() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1 | grep -v '^WARNING: Location' || true; return "${PIPESTATUS[0]}"; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_VALUE" ] && [ -x "$VENV/bin/python" ]; then
    say "reusing $VENV (stack up to date)"
else
    t0=$SECONDS
    say "building the pinned stack in $VENV (a few minutes; ~15 min on a fresh machine, which compiles mmcv once)"
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    say "1/4 torch, torchvision and build tools"
    PIP install -r requirements/build.txt

    TORCH_VERSION="$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')"
    PYTAG="$("$VENV/bin/python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
    WHEEL_DIR="$CACHE/mmcv-$MMCV_VERSION-torch$TORCH_VERSION-$PYTAG-$(uname -m)"
    if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
        say "2/4 compiling mmcv $MMCV_VERSION with CPU ops (~10 min on 2 cores; cached in $WHEEL_DIR)"
        work="$(mktemp -d)"
        PIP download --no-deps --no-build-isolation --no-binary :all: "mmcv==$MMCV_VERSION" -d "$work"
        tar xzf "$work/mmcv-$MMCV_VERSION.tar.gz" -C "$work"
        # torch >= 2.14 headers need C++20; mmcv 2.1.0 hard-codes -std=c++17.
        sed -i "s/\['-std=c++17'\]/['-std=c++20']/" "$work/mmcv-$MMCV_VERSION/setup.py"
        mkdir -p "$WHEEL_DIR.tmp"
        (cd "$work/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="$(nproc)" \
            "$VENV/bin/python" -m pip wheel -q --no-deps --no-build-isolation -w "$WHEEL_DIR.tmp" .)
        rm -rf "$WHEEL_DIR" && mv "$WHEEL_DIR.tmp" "$WHEEL_DIR"
        rm -rf "$work"
    else
        say "2/4 reusing the mmcv wheel cached in $WHEEL_DIR"
    fi
    PIP install --no-deps "$WHEEL_DIR"/mmcv-*.whl

    say "3/4 mmengine, mmdet, mmsegmentation, mmpretrain, openmim"
    # build.txt doubles as constraints: torch and numpy stay at their pins.
    PIP install "$WHEEL_DIR"/mmcv-*.whl -r requirements/runtime.txt -c requirements/build.txt
    PIP install --no-deps openmim==0.3.9
    echo "$STAMP_VALUE" > "$STAMP"
    say "stack ready in $((SECONDS - t0)) s"
fi

say "4/4 pip install -e ."
PIP install --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c "import mmcv.ops, mmdet, mmseg, mmpretrain, glnet_mm" \
    || { say "the environment does not import; remove $VENV and run again"; exit 1; }
