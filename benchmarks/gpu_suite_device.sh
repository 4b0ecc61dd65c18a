#!/usr/bin/env bash
# Runs benchmarks/gpu_suite.py on a GPU machine prepared by benchmarks/gpu_suite_prepare.sh (the
# folder .gpu_suite carried along), writing gpu_suite.json / .md and the log to $OUT (default
# output/gpu_suite). BUDGET_S (default 420) bounds the suite; the first step checks the imports.
set -uo pipefail

BUDGET_S="${1:-420}"
OUT="${OUT:-output/gpu_suite}"
mkdir -p "$OUT" /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu_suite/wheels/*.whl || exit 1
export PYTHONPATH="$PWD/.gpu_suite/site:/tmp/site:$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
python3 -c "import torch, detectron2, ps_plugin; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
    2>&1 | tee -a "$OUT/device.txt" || exit 1
python3 benchmarks/gpu_suite.py --budget-s "$BUDGET_S" --out "$OUT" --data .gpu_suite/data --work-dir /tmp/gpu_suite \
    2>&1 | tee "$OUT/gpu_suite.log"
