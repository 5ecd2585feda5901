"""sensor-export --target cortex-m4: the firmware bundle builds for the MCU and its kernel + model
header give the runtime's codes on real data (compiled for the host here; the M4 build under qemu
is tests/test_bridge_firmware.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from export.export_cli import main as export_main

MODELS = Path(__file__).resolve().parent.parent / "encoder_runtime" / "models"
SAMPLES = Path(__file__).resolve().parent.parent / "encoder_runtime" / "samples"

HOST_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "sc_bridge.h"
#include "sc_lossless.h"
#include "bundle.h"
/* argv: input file (raw channel-last samples), payload file, A [B]; writes the int8 codes to
 * stdout and their ctx-ac payload (sc_ll_encode) to the payload file */
int main(int argc, char **argv) {
    uint32_t a = (uint32_t)atoi(argv[3]), b = argc > 4 ? (uint32_t)atoi(argv[4]) : 1u;
    size_t n = (size_t)a * b * BUNDLE_C_IN, blocks = (size_t)(a / BUNDLE_B0) * (b / BUNDLE_B1);
    FILE *f = fopen(argv[1], "rb");
    if (!f) return 2;
#if BUNDLE_DIMS == 2
    uint8_t *x = malloc(n);
    if (fread(x, 1, n, f) != n) return 3;
    int8_t *codes = malloc(blocks * BUNDLE_C_LAT);
    static int16_t xb[BUNDLE_K];
    sc_encode_2d_u8(&bundle_model, x, a, b, codes, xb);
#else
    int16_t *x = malloc(n * 2);
    if (fread(x, 2, n, f) != n) return 3;
    int8_t *codes = malloc(blocks * BUNDLE_C_LAT);
    static int16_t xb[BUNDLE_K];
    sc_encode_1d_i16(&bundle_model, x, a, codes, xb);
#endif
    fwrite(codes, 1, blocks * BUNDLE_C_LAT, stdout);
    uint8_t *payload = malloc(blocks * BUNDLE_C_LAT + 1);
    size_t len = 0;
#if BUNDLE_DIMS == 2
    uint32_t rows = a / BUNDLE_B0, cols = b / BUNDLE_B1;
#else
    uint32_t rows = 1, cols = (uint32_t)blocks;
#endif
    if (sc_ll_encode(codes, BUNDLE_C_LAT, rows, cols, payload, blocks * BUNDLE_C_LAT + 1, &len))
        return 4;
    FILE *g = fopen(argv[2], "wb");
    if (!g || fwrite(payload, 1, len, g) != len) return 5;
    fclose(g);
    return 0;
}
"""


def _real_input(kind: str) -> np.ndarray:
    if kind == "image":
        from PIL import Image

        im = np.asarray(Image.open(SAMPLES / "Kite.png").convert("RGB"))
        return np.ascontiguousarray(im[128:256, 64:192])
    import soundfile as sf

    pcm, rate = sf.read(SAMPLES / "speech_16k.wav", dtype="int16")
    assert rate == 16000
    return np.ascontiguousarray(pcm[16000:16000 + 4096, None])


@pytest.mark.parametrize("name,kind", [("rgb-c16", "image"), ("audio16k-c6", "audio")])
def test_cortex_m4_export_builds_and_matches_runtime(name, kind, tmp_path, capsys):
    out = tmp_path / "fw"
    assert export_main(["--model", name, "--target", "cortex-m4", "--out", str(out)]) == 0
    assert "cortex-m4" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["target"] == "cortex-m4" and manifest["model"] == name
    for rel in ("bundle.h", "Makefile", "README.md", "include/sc_bridge.h", "src/sc_encoder.c",
                "include/sc_lossless.h", "src/sc_lossless.c"):
        assert (out / rel).is_file(), rel
    assert set(manifest["files_sha256"]) >= {"bundle.h", "src/sc_encoder.c", "src/sc_lossless.c",
                                             "Makefile"}

    if shutil.which("arm-none-eabi-gcc"):
        subprocess.run(["make", "-s", "-C", str(out)], check=True, capture_output=True, timeout=120)
        lib = out / "build" / "libsensorcodec_m4.a"
        assert lib.stat().st_size > 0
        members = subprocess.run(["arm-none-eabi-ar", "t", str(lib)], capture_output=True, text=True,
                                 check=True).stdout.split()
        assert {"sc_encoder.o", "sc_lossless.o"} <= set(members), members

    # The exported sources, compiled for this host, give the codes of the runtime's ONNX encoder.
    (tmp_path / "main.c").write_text(HOST_MAIN)
    exe = tmp_path / "enc"
    subprocess.run(["gcc", "-O2", "-std=c99", "-I", str(out / "include"), "-I", str(out), "-o", str(exe),
                    str(tmp_path / "main.c"), str(out / "src" / "sc_encoder.c"),
                    str(out / "src" / "sc_lossless.c")], check=True, timeout=120)
    x = _real_input(kind)
    (tmp_path / "x.raw").write_bytes(x.tobytes())
    payload = tmp_path / "codes.ctx-ac"
    c_codes = subprocess.run([str(exe), str(tmp_path / "x.raw"), str(payload), *map(str, x.shape[:-1])],
                             capture_output=True, check=True, timeout=60).stdout
    import onnxruntime as ort

    sess = ort.InferenceSession(str(MODELS / name / "encoder.onnx"), providers=["CPUExecutionProvider"])
    (ref,) = sess.run(None, {sess.get_inputs()[0].name: x[None]})
    ref = np.asarray(ref)[0]                       # (C, *latent) int8, the kernel's layout too
    got = np.frombuffer(c_codes, np.int8)
    assert got.size == ref.size and len(np.unique(got)) >= 8
    assert got.tobytes() == ref.tobytes()

    # The exported ctx-ac coder writes the runtime's payload of those codes, and it decodes back.
    from encoder_runtime.entropy import available_coders, get_coder

    blob = payload.read_bytes()
    assert len(blob) < ref.size and blob[0] != 0  # coded, not stored
    if "ctx-ac" in available_coders():
        coder = get_coder("ctx-ac")
        assert blob == coder.encode(ref)
        assert np.array_equal(coder.decode(blob, ref.shape), ref)


def test_cortex_m4_export_refuses_existing_folder(tmp_path, capsys):
    out = tmp_path / "fw"
    out.mkdir()
    assert export_main(["--model", "rgb-c16", "--target", "cortex-m4", "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
