#!/usr/bin/env bash
# Apply this project's patches to an unpacked mmcv 2.1.0 source tree, in place.
# Idempotent (a patched tree stays as it is); used by tools/setup_env.sh before
# every build and by tools/make_bundle.sh for the bundled sdist.
#
#   bash tools/patch_mmcv.sh path/to/mmcv-2.1.0
#
# The patches, each small and checked after it is applied:
#   1. C++20. torch >= 2.14 headers need C++20; mmcv 2.1.0's setup.py
#      hard-codes ['-std=c++17'] twice: for g++ (CPU ops, the 'cxx' flags) and
#      for nvcc (CUDA ops, the 'nvcc' flags). Both become ['-std=c++20']
#      (g++ >= 10 and nvcc >= 12 accept it; older torch builds work with it too).
# Nothing else is needed for CUDA: mmcv#3310/#3319 ("no mmcv._ext" with
# torch 2.9 and CUDA 12.8/13.0) are builds that ran in pip's isolated build
# environment, where torch is missing and mmcv's setup.py silently skips its
# ops; setup_env.sh builds with --no-build-isolation and checks that the wheel
# holds mmcv/_ext.
set -euo pipefail

src="${1:?usage: patch_mmcv.sh MMCV_SOURCE_DIR}"
if [ ! -f "$src/setup.py" ] || ! grep -q "^__version__ = '2.1.0'" "$src/mmcv/version.py" 2>/dev/null; then
    echo "patch_mmcv: $src is not an mmcv 2.1.0 source tree" >&2
    exit 1
fi

# 1. C++20 for g++ and nvcc.
sed -i "s/\['-std=c++17'\]/['-std=c++20']/" "$src/setup.py"
n="$(grep -c "\['-std=c++20'\]" "$src/setup.py" || true)"
if [ "$n" != 2 ]; then
    echo "patch_mmcv: the C++20 patch should touch 2 lines of setup.py, found $n" >&2
    exit 1
fi
