#!/usr/bin/env bash
# Set up the runtime (no torch, no training, no network) and run the main job on the bundled
# default models: encode + decode the bundled real samples and print size, rate and quality.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/sensor-codec models
.venv/bin/sensor-codec roundtrip
