#!/usr/bin/env bash
# Set up the runtime (numpy, onnxruntime, zstandard + Pillow/soundfile for files; no torch, no
# training, no network) and run the main job on the bundled default models:
#  1. sensor-receive + sensor-encode on loopback, streaming the bundled real photos with the
#     default model, printing live frames/s, bitrate and latency;
#  2. a one-shot encode/decode of every bundled sample with size, bpp and PSNR/SNR.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m encoder_runtime.daemon.demo --frames "${FRAMES:-60}"
.venv/bin/sensor-codec models
.venv/bin/sensor-codec roundtrip
