#!/usr/bin/env bash
# Prepares .gpu_suite/ (git-ignored, < 40 MB) for a GPU machine that has Python 3.12, PyTorch,
# torchvision, timm, scipy, scikit-learn, OpenCV and matplotlib but not Detectron2 or its
# dependencies, and cannot download anything (the lent H200: /work/.library/device/KINDS.md).
# Run it here once; then on the GPU machine, from the repository root, with .gpu_suite carried:
#   bash benchmarks/gpu_suite_device.sh [BUDGET_S]
# Contents:
#   site/       pure-Python packages copied from this .venv: detectron2 (its compiled _C replaced by
#               _C.py, the two version queries of tools/detectron2_placeholder_vision.cpp), fvcore,
#               iopath, yacs, omegaconf, hydra, antlr4, termcolor, portalocker, tabulate, timm;
#               sitecustomize.py restores PIL.Image.LINEAR, which Detectron2 0.6 reads and Pillow 10 removed
#   wheels/     pycocotools for CPython 3.12 (a compiled package)
#   data/       cuhk_sysu/TestG100.mat and prw/test_pid.json from ../shared/data, for the evaluator rows
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
[ -x "$VENV/bin/python" ] || VENV="$(cd "$ROOT/../main/.venv" 2>/dev/null && pwd)"
SITE_PACKAGES="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
DATA="${DATA:-$ROOT/../shared/data}"
DEST="$ROOT/.gpu_suite"

rm -rf "$DEST" && mkdir -p "$DEST/site" "$DEST/wheels" "$DEST/data/cuhk_sysu" "$DEST/data/prw"
for package in detectron2 fvcore iopath yacs omegaconf hydra antlr4 termcolor portalocker tabulate timm; do
    cp -r "$SITE_PACKAGES/$package" "$DEST/site/"
done
find "$DEST/site" \( -name __pycache__ -o -name '*.so' \) -prune -exec rm -rf {} +
cat > "$DEST/site/detectron2/_C.py" <<'EOF'
"""Pure-Python stand-in for the placeholder extension (tools/detectron2_placeholder_vision.cpp)."""


def get_compiler_version():
    return "none (pure-Python placeholder)"


def get_cuda_version():
    return "not compiled (pure-Python placeholder)"
EOF
cat > "$DEST/site/sitecustomize.py" <<'EOF'
"""Detectron2 0.6 reads PIL.Image.LINEAR at import; Pillow 10 removed it (same value as BILINEAR)."""
import PIL.Image

if not hasattr(PIL.Image, "LINEAR"):
    PIL.Image.LINEAR = PIL.Image.BILINEAR
EOF
"$VENV/bin/python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$DEST/wheels" "pycocotools==2.0.11"
cp "$DATA/cuhk_sysu/TestG100.mat" "$DEST/data/cuhk_sysu/" 2>/dev/null || echo "no TestG100.mat under $DATA: that evaluator row is left out"
cp "$DATA/prw/test_pid.json" "$DEST/data/prw/" 2>/dev/null || echo "no prw/test_pid.json under $DATA: that evaluator row is left out"
du -sh "$DEST"
