"""``sensor-export --target cortex-m4``: a firmware bundle for a Cortex-M microcontroller.

The MCU runs the same integer encoder as every other target (docs/bundle-format.md), as portable C:

  include/sc_bridge.h sc_protocol.h sc_hal.h   the kernel, the UART protocol and the HAL interface
  include/sc_lossless.h                        the ``ctx-ac`` lossless coder of the codes
  src/*.c                                      kernel, COBS framing, CRC-32, frames, ``ctx-ac``
                                               (C99, no malloc)
  hal/hal_semihost.c                           a HAL for QEMU / semihosting (replace with the board's)
  m4/startup.c mps2.ld                         startup and linker script for QEMU mps2-an386
  bundle.h                                     the model: int8 weights, bias, shifts (gen_header)
  Makefile                                     ``make`` -> build/libsensorcodec_m4.a; ``make size``
  README.md, manifest.json                     how to use it; sha256 of every file

Codes are bit-identical to the Python runtime's (tests/test_bridge_firmware.py runs the kernel
under qemu-system-arm against the numpy reference for every bundled model), and so are their
``ctx-ac`` payloads (``sc_ll_encode``: the bytes of ``get_coder("ctx-ac").encode(codes)``,
tests/test_native_coder.py runs it on the Cortex-M4 under qemu, tests/test_firmware_export.py
builds the exported copy).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from firmware_bridge.gen_header import HeaderError, write_header

FIRMWARE_TARGET = "cortex-m4"
FIRMWARE_SRC = Path(__file__).resolve().parent.parent / "firmware_bridge" / "firmware"
COPIED = ("include/sc_bridge.h", "include/sc_protocol.h", "include/sc_hal.h", "include/sc_lossless.h",
          "src/sc_encoder.c", "src/sc_cobs.c", "src/sc_crc32.c", "src/sc_frame.c", "src/sc_lossless.c",
          "hal/hal_semihost.c", "m4/startup.c", "m4/mps2.ld")

MAKEFILE = """\
# Cortex-M4 build of the sensorcodec encoder for model {model} (written by sensor-export).
#   make        build/libsensorcodec_m4.a (kernel + COBS + CRC + frames + ctx-ac coder); link it
#               with your firmware
#   make size   code and data size of the library objects
CROSS  ?= arm-none-eabi-
CC     := $(CROSS)gcc
AR     := $(CROSS)ar
CFLAGS ?= -O2 -std=c99 -Wall -Wextra -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 \\
          -ffunction-sections -fdata-sections
SRC    := src/sc_encoder.c src/sc_cobs.c src/sc_crc32.c src/sc_frame.c src/sc_lossless.c
OBJ    := $(patsubst src/%.c,build/%.o,$(SRC)) build/model.o

.PHONY: all size clean
all: build/libsensorcodec_m4.a

build/%.o: src/%.c include/sc_bridge.h include/sc_protocol.h include/sc_lossless.h
\t@mkdir -p build
\t$(CC) $(CFLAGS) -Iinclude -c -o $@ $<

# One translation unit that instantiates the model, so its tables are checked by the compiler.
build/model.o: bundle.h include/sc_bridge.h
\t@mkdir -p build
\tprintf '#include "bundle.h"\\nconst sc_model_t *sc_bundle_model(void) {{ return &bundle_model; }}\\n' > build/model.c
\t$(CC) $(CFLAGS) -Iinclude -I. -c -o $@ build/model.c

build/libsensorcodec_m4.a: $(OBJ)
\t$(AR) rcs $@ $^

size: $(OBJ)
\t$(CROSS)size $^

clean:
\trm -rf build
"""

README = """\
# sensorcodec firmware bundle: {model} for {target}

Encodes sensor blocks on the microcontroller with the integer encoder of model `{model}`
({modality}, {c_lat} latent channels per block, {macs} MACs per block); the codes are
bit-identical to the Python runtime's `Encoder.load("{model}")`.

Build (needs `arm-none-eabi-gcc`, Debian package gcc-arm-none-eabi):

    make            # -> build/libsensorcodec_m4.a
    make size

Use in your firmware:

    #include "sc_bridge.h"
    #include "bundle.h"              /* bundle_model, BUNDLE_C_LAT, BUNDLE_K, ... */
    static int16_t scratch[BUNDLE_K];
    {call}

To send fewer bytes, code the int8 codes losslessly on the MCU with the `ctx-ac` coder
(`include/sc_lossless.h`; no malloc, ~6.5 KB of stack to encode, ~3.2 KB to decode); the
payload is byte for byte what the Python runtime's `get_coder("ctx-ac").encode(codes)` writes,
and the host decodes it with
`get_coder("ctx-ac").decode(payload, codes_shape)`:

    #include "sc_lossless.h"
    static uint8_t payload[N_CODES + 1];     /* sc_ll_bound(N_CODES) */
    size_t len;
    sc_ll_encode(codes, BUNDLE_C_LAT, ROWS, COLS, payload, sizeof payload, &len);
    /* 2-D: ROWS x COLS = the latent grid (height / BUNDLE_B0, width / BUNDLE_B1); 1-D: 1 x blocks */

Provide the HAL of `include/sc_hal.h` for your board (`hal/hal_semihost.c` is the QEMU one) to use
the UART bridge (COBS frames, CRC-32, HELLO/TIMESYNC) with `sensor-bridge` on the host.
`manifest.json` pins every file by sha256 and names the source bundle.
"""


def build_firmware_bundle(src_bundle: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write the Cortex-M4 firmware bundle of runtime bundle ``src_bundle`` into ``out``.

    Raises FileExistsError if ``out`` exists (unless ``overwrite`` and it is a firmware bundle) and
    HeaderError if the model cannot run on the C kernel (e.g. 3-D blocks, over 256 channels).
    """
    src, out = Path(src_bundle), Path(out)
    manifest = json.loads((src / "manifest.json").read_text(encoding="utf-8"))
    if out.exists():
        previous = out / "manifest.json"
        is_ours = previous.is_file() and json.loads(previous.read_text()).get("target") == FIRMWARE_TARGET
        if not (overwrite and is_ours):
            raise FileExistsError(f"{out} exists (pass --force to replace a firmware bundle)")
        shutil.rmtree(out)
    stage = out.with_name(out.name + ".partial")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        header = write_header(src, stage / "bundle.h", prefix="bundle")
        for rel in COPIED:
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(FIRMWARE_SRC / rel, stage / rel)
        name = str(manifest.get("name") or src.name)
        (stage / "Makefile").write_text(MAKEFILE.format(model=name), encoding="utf-8")
        text = header.read_text()
        c_lat = _define(text, "BUNDLE_C_LAT")
        k = _define(text, "BUNDLE_K")
        two_d = _define(text, "BUNDLE_DIMS") == 2
        call = ("sc_encode_2d_u8(&bundle_model, pixels, height, width, codes, scratch);  /* HxWxC uint8 */"
                if two_d else
                "sc_encode_1d_i16(&bundle_model, samples, n_samples, codes, scratch);  /* TxC int16 */")
        (stage / "README.md").write_text(README.format(
            model=name, target=FIRMWARE_TARGET, modality=manifest.get("modality", "?"), c_lat=c_lat,
            macs=c_lat * k, call=call), encoding="utf-8")
        files = {str(p.relative_to(stage)): hashlib.sha256(p.read_bytes()).hexdigest()
                 for p in sorted(stage.rglob("*")) if p.is_file()}
        npz = src / "encoder_int.npz"
        (stage / "manifest.json").write_text(json.dumps({
            "format": "sensorcodec-firmware-bundle", "format_version": 1, "target": FIRMWARE_TARGET,
            "model": name, "modality": manifest.get("modality"),
            "source_bundle": {"path": str(src), "encoder_int_sha256": hashlib.sha256(npz.read_bytes()).hexdigest()},
            "latent_channels": c_lat, "macs_per_block": c_lat * k, "files_sha256": files,
        }, indent=1) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    stage.rename(out)
    return out


def _define(header: str, name: str) -> int:
    for line in header.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "#define" and parts[1] == name:
            return int(parts[2].rstrip("u"))
    raise HeaderError(f"generated header lacks #define {name}")
