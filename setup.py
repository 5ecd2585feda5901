"""Native extension only; all package metadata lives in pyproject.toml.

``encoder_runtime._scencoder`` runs the integer encoder on the host (encoder_runtime/csrc: the
same codes as the int8 ONNX graph without ONNX Runtime; optional as well: without it the
Encoder runs the ONNX graph).

``encoder_runtime._sclossless`` wraps the firmware's portable lossless coders
(firmware_bridge/firmware/src/sc_lossless.c and sc_rans.c, the same sources the Cortex-M4 and
aarch64 builds compile). It is optional: without a C compiler the install still works and the
``ctx-ac`` and ``rans`` coders are simply not available.

``NATIVE_EXTENSIONS`` is also read by ``export/native_wheel.py`` (the x86_64 / aarch64 device
wheels, cross-compiled against the stable ABI): add a source or an extension here only.
"""

import os

# module name -> sources, include folders (relative to this file) and compiler flags
NATIVE_EXTENSIONS = {
    "encoder_runtime._sclossless": {
        "sources": ["encoder_runtime/_sclossless.c", "firmware_bridge/firmware/src/sc_lossless.c",
                    "firmware_bridge/firmware/src/sc_rans.c"],
        "include_dirs": ["firmware_bridge/firmware/include"],
        "extra_compile_args": ["-O3", "-std=c99"],  # integer-only coders: same bytes at any -O
    },
    "encoder_runtime._scencoder": {
        "sources": ["encoder_runtime/_scencoder.c", "encoder_runtime/csrc/sc_host_encoder.c"],
        "include_dirs": ["encoder_runtime/csrc"],
        "depends": ["encoder_runtime/csrc/sc_host_encoder.h",
                    "encoder_runtime/csrc/sc_host_encoder_kernel.h",
                    "encoder_runtime/csrc/sc_host_encoder_pair.h",
                    "encoder_runtime/csrc/sc_host_encoder_madd.h"],
        # -O3 vectorises the kernel; contraction to FMA is exact here (integer-valued sums)
        "extra_compile_args": ["-O3", "-std=c99", "-ffp-contract=fast"],
    },
}

if __name__ == "__main__":  # setuptools runs this file as __main__; native_wheel only reads it
    from setuptools import Extension, setup

    # sensor-export builds the device wheel pure-Python first (SENSORCODEC_PURE_WHEEL=1) and adds
    # the cross-compiled stable-ABI extension itself (export/native_wheel.py).
    PURE = os.environ.get("SENSORCODEC_PURE_WHEEL") == "1"

    setup(ext_modules=[] if PURE else [Extension(name, optional=True, **spec)
                                       for name, spec in NATIVE_EXTENSIONS.items()])
