#!/usr/bin/env bash
# The README's main job. Until the toy detection training lands, a backbone
# demo: build GLNet-STL, count params/FLOPs, run an image through it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
.venv/bin/python tools/get_flops.py --arch stl --shape 224 224
