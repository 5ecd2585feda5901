#!/usr/bin/env bash
# Create .venv and install sensorcodec into it.
#   scripts/setup.sh            runtime only (numpy, onnxruntime, zstandard + Pillow/soundfile for files)
#   scripts/setup.sh --dev      everything: training/export (torch CPU build), bridge, tests
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if [ "${1:-}" = "--dev" ]; then
  bash scripts/install-system-deps.sh
  # torch==2.13.0 is pinned in the [export] extra: pip takes the CPU build, never a CUDA one.
  .venv/bin/python -m pip install -q -e ".[dev]"
else
  .venv/bin/python -m pip install -q -e ".[media]"
fi
