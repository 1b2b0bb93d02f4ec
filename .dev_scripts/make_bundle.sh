#!/usr/bin/env bash
# Write an offline bundle of the stack for a machine without internet, to be
# installed there with `bash .dev_scripts/setup_env.sh --offline OUT_DIR` on top of
# its own torch. Needs the network here, never there.
#
#   bash .dev_scripts/make_bundle.sh [--python 3.12] [--platform TAG ...] [--have FILE] [--force] OUT_DIR
#
#   --python X.Y     the target's Python (default: that of $PYTHON)
#   --platform TAG   a target platform tag, repeatable (default: the manylinux
#                    tags of this machine's architecture, glibc 2.5 to 2.28)
#   --have FILE      packages the target already has, one per line (`pip freeze`
#                    output works; versions are ignored): left out of the bundle
#                    and accepted there at whatever version is installed. An
#                    opencv there (any of its four builds) replaces ours;
#                    setuptools < 81 and pip are bundled whatever the target has.
#   --force          write into a non-empty OUT_DIR
#
# OUT_DIR then holds:
#   *.whl                the binary wheels of everything the stack needs but
#                        torch, torchvision and CUDA libraries (pip download
#                        --only-binary for that Python and platform), with
#                        opencv-python-headless for opencv-python (the same
#                        library without GUI: mmcv's setup.py prefers it);
#   requirements.txt     exactly what setup_env.sh --offline installs (--no-deps):
#                        name==version of every wheel, bare names for --have;
#   mmcv-2.1.0.tar.gz    mmcv's sdist with .dev_scripts/patch_mmcv.sh applied, re-packed;
#   glnet_mm-*.whl       this project's wheel;
#   BUNDLE.md            what was bundled, for which target, and the sizes.
#
# Environment: PYTHON (default: .venv/bin/python if there, else python3) runs
# pip here; it needs setuptools < 81 and wheel, as the project venv has: pip
# reads mmcv's sdist metadata by running its setup.py, which imports
# pkg_resources.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   # ROOT, CALLER, abspath, ...
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
PY="$(python_path "$PY")"
MMCV_VERSION=2.1.0

die() { printf 'make_bundle: %s\n' "$*" >&2; exit 1; }
# PEP 503 normal form of a package name (Foo_bar.baz -> foo-bar-baz).
norm() { tr 'A-Z' 'a-z' | sed -E 's/[-_.]+/-/g'; }

# ---- options --------------------------------------------------------------
PYVER=""; PLATFORMS=(); HAVE=""; FORCE=0; OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --python) [ $# -ge 2 ] || die "--python needs a version, e.g. 3.12"; PYVER="$2"; shift ;;
        --platform) [ $# -ge 2 ] || die "--platform needs a tag, e.g. manylinux_2_28_x86_64"; PLATFORMS+=("$2"); shift ;;
        --have) [ $# -ge 2 ] || die "--have needs a file"; HAVE="$2"; shift ;;
        --force) FORCE=1 ;;
        *) out_dir_arg "$1" ;;
    esac
    shift
done
need_out_dir
[ -n "$PYVER" ] || PYVER="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[[ "$PYVER" =~ ^3\.[0-9]+$ ]] || die "--python '$PYVER': give a version like 3.12"
if [ ${#PLATFORMS[@]} -eq 0 ]; then
    arch="$(uname -m)"
    PLATFORMS=("manylinux_2_28_$arch" "manylinux_2_27_$arch" "manylinux_2_24_$arch"
               "manylinux_2_17_$arch" "manylinux2014_$arch" "manylinux_2_5_$arch" "manylinux1_$arch")
fi
[ -z "$HAVE" ] || [ -f "$HAVE" ] || die "--have $HAVE: no such file"
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT")" ] && [ "$FORCE" = 0 ]; then
    die "$OUT is not empty (use --force to write into it)"
fi
"$PY" -c 'import setuptools, wheel, sys; sys.exit(int(setuptools.__version__.split(".")[0]) >= 81)' 2>/dev/null ||
    die "$PY needs setuptools < 81 and wheel (mmcv's setup.py imports pkg_resources); use the project venv (PYTHON=.venv/bin/python)"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
t0=$SECONDS
# pip, quiet, without the warnings of a pip.conf naming absent local indexes;
# pip's exit status is kept (pipefail).
PIP() { "$PY" -m pip --disable-pip-version-check -q "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }; }

# ---- 1. the mmcv sdist, patched and re-packed -----------------------------
echo "make_bundle: mmcv $MMCV_VERSION sdist"
PIP download --no-deps --no-build-isolation --no-binary :all: "mmcv==$MMCV_VERSION" -d "$work/sdist"
tar xzf "$work/sdist/mmcv-$MMCV_VERSION.tar.gz" -C "$work/sdist"
bash "$ROOT/.dev_scripts/patch_mmcv.sh" "$work/sdist/mmcv-$MMCV_VERSION"
tar czf "$OUT/mmcv-$MMCV_VERSION.tar.gz" --sort=name --owner=0 --group=0 --numeric-owner \
    -C "$work/sdist" "mmcv-$MMCV_VERSION"
# mmcv's own requirements (mmengine, addict, yapf, ...), for the download.
grep -v -E '^\s*(#|$)' "$work/sdist/mmcv-$MMCV_VERSION/requirements/runtime.txt" > "$work/mmcv-runtime.txt"

# ---- 2. the wheels ----------------------------------------------------------
echo "make_bundle: wheels for Python $PYVER on ${PLATFORMS[*]}"
# torch and torchvision are the target's own: out of the requirements and the
# constraints; opencv-python becomes its headless build.
grep -v -E '^(torch|torchvision)==' "$ROOT/requirements/build.txt" > "$work/build.txt"
sed -E 's/^opencv-python==/opencv-python-headless==/' "$ROOT/requirements/runtime.txt" > "$work/runtime.txt"
platform_args=()
for p in "${PLATFORMS[@]}"; do platform_args+=(--platform "$p"); done
PIP download --only-binary=:all: --python-version "$PYVER" --implementation cp "${platform_args[@]}" \
    -d "$work/wheels" -r "$work/build.txt" -r "$work/runtime.txt" -r "$work/mmcv-runtime.txt" \
    -c "$work/build.txt"
PIP download --only-binary=:all: --python-version "$PYVER" --implementation cp "${platform_args[@]}" \
    --no-deps -d "$work/wheels" openmim==0.3.9   # without its opendatalab (see docs/install.md)
# pip itself: setup_env.sh --offline installs it into a venv where the target's
# Python has no ensurepip (Debian/Ubuntu without python3-venv).
PIP download --only-binary=:all: --python-version "$PYVER" --implementation cp "${platform_args[@]}" \
    --no-deps -d "$work/wheels" pip

# mmengine's wheel names opencv-python; the headless build stands in for it.
rm -f "$work"/wheels/opencv_python-[0-9]*.whl
if ls "$work"/wheels/torch-* "$work"/wheels/torchvision-* "$work"/wheels/nvidia_* >/dev/null 2>&1; then
    die "torch, torchvision or CUDA wheels were pulled in: $(ls "$work/wheels" | grep -E '^(torch|nvidia)' | tr '\n' ' ')"
fi

# Names the target has already: their wheels stay out.
: > "$work/have.txt"
opencv_there=0
if [ -n "$HAVE" ]; then
    # setuptools stays in: mmcv's build needs one < 81 (pkg_resources); pip
    # too (a venv without ensurepip gets it from the bundle).
    sed -E 's/\s*#.*//; s/\s*(@|[=<>!~;[]).*//; /^\s*$/d' "$HAVE" | norm | sort -u |
        grep -vxE 'setuptools|pip' > "$work/have.txt" || true
    ! grep -qE '^opencv-(contrib-)?python(-headless)?$' "$work/have.txt" || opencv_there=1
fi
: > "$work/lock.txt"; : > "$work/kept-out.txt"
for whl in "$work"/wheels/*.whl; do
    file="$(basename "$whl")"
    name="$(printf '%s' "${file%%-*}" | norm)"
    version="$(printf '%s' "$file" | cut -d- -f2)"
    if [ "$name" = opencv-python-headless ] && [ "$opencv_there" = 1 ]; then
        echo "opencv (the target's own build)" >> "$work/kept-out.txt"
    elif grep -qxF "$name" "$work/have.txt"; then
        echo "$name" >> "$work/kept-out.txt"
    else
        echo "$name==$version" >> "$work/lock.txt"
        mv "$whl" "$OUT/"
    fi
done
{
    echo "# Installed by .dev_scripts/setup_env.sh --offline with pip --no-index --no-deps."
    echo "# Python $PYVER; platforms: ${PLATFORMS[*]}"
    sort "$work/lock.txt"
    if [ -s "$work/kept-out.txt" ]; then
        echo "# already on the target (--have), at the version installed there:"
        grep -v '^opencv ' "$work/kept-out.txt" | sort || true
    fi
} > "$OUT/requirements.txt"

# ---- 3. the project's wheel -------------------------------------------------
echo "make_bundle: the glnet_mm wheel"
# built from a copy: pip builds in the source tree (build/, *.egg-info);
# configs/ and model-index.yml too, where glnet_mm/.mim's links point
mkdir -p "$work/project"
cp -r "$ROOT/pyproject.toml" "$ROOT/LICENSE" "$ROOT/glnet_mm" "$ROOT/configs" "$ROOT/model-index.yml" "$work/project/"
find "$work/project" -name __pycache__ -prune -exec rm -rf {} +
(cd "$work/project" && PIP wheel --no-deps --no-build-isolation -w "$work/project/dist" .)
mv "$work"/project/dist/glnet_mm-*.whl "$OUT/"

# ---- 4. the manifest --------------------------------------------------------
total="$(du -cb "$OUT"/*.whl "$OUT"/*.tar.gz | tail -n1 | cut -f1)"
{
    echo "# glnet_mm offline bundle"
    echo
    echo "Made $(date -u '+%Y-%m-%d %H:%M UTC') by .dev_scripts/make_bundle.sh for Python $PYVER on"
    echo "${PLATFORMS[*]}. Install: \`bash .dev_scripts/setup_env.sh --offline $(basename "$OUT")\`"
    echo "on top of the machine's own torch and torchvision (not bundled)."
    echo
    echo "- files: $(ls "$OUT" | grep -cE '\.(whl|tar\.gz)$'), $((total / 1000000)) MB in all"
    echo "- mmcv-$MMCV_VERSION.tar.gz: mmcv's sdist with .dev_scripts/patch_mmcv.sh applied"
    [ ! -s "$work/kept-out.txt" ] || echo "- left out (--have): $(sort "$work/kept-out.txt" | tr '\n' ',' | sed 's/,$//; s/,/, /g')"
    echo
    echo "The largest files:"
    echo
    echo "| file | MB |"
    echo "|---|---|"
    mapfile -t largest < <(cd "$OUT" && ls -S ./*.whl ./*.tar.gz)
    for f in "${largest[@]:0:10}"; do
        printf '| %s | %s |\n' "${f#./}" "$(awk -v b="$(stat -c %s "$OUT/$f")" 'BEGIN { printf "%.1f", b / 1e6 }')"
    done
} > "$OUT/BUNDLE.md"
echo "make_bundle: $OUT: $((total / 1000000)) MB in $((SECONDS - t0)) s (see $OUT/BUNDLE.md)"
