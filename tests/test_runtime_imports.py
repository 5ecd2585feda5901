"""The device runtime never imports torch (nor onnx): a Pi installs numpy + onnxruntime + zstandard."""

import subprocess
import sys

CODE = """
import sys
import numpy as np
from encoder_runtime import Encoder, Decoder, list_models
from encoder_runtime import cli_codec, media, container, entropy
from encoder_runtime.daemon import encode_cli, receive_cli, demo
from encoder_runtime.profile import cli as profile_cli
import firmware_bridge.cli, firmware_bridge.source
enc = Encoder.load("rgb-c16")
Decoder.for_stream(enc.encode(np.zeros((16, 16, 3), np.uint8))).decode(enc.encode(np.zeros((16, 16, 3), np.uint8)))
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx", "export", "scipy"))
print(",".join(bad))
"""


def test_runtime_does_not_import_torch_or_onnx():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"runtime pulled in: {out.stdout.strip()}"


def test_quality_metrics():
    from encoder_runtime.metrics import psnr_db, snr_db
    assert abs(psnr_db(1.0) - 48.1308) < 1e-3               # 20·log10(255)
    assert abs(psnr_db(4.0, peak=2.0) - 0.0) < 1e-12
    assert abs(snr_db(100.0, 1.0) - 20.0) < 1e-12
    assert psnr_db(0.0) > 100 and snr_db(1.0, 0.0) > 100    # perfect reconstruction stays finite
