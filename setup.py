"""Native extension only; all package metadata lives in pyproject.toml.

``encoder_runtime._sclossless`` wraps the firmware's portable lossless coders
(firmware_bridge/firmware/src/sc_lossless.c and sc_rans.c, the same sources the Cortex-M4 and
aarch64 builds compile). It is optional: without a C compiler the install still works and the
``ctx-ac`` and ``rans`` coders are simply not available.
"""

import os

from setuptools import Extension, setup

# sensor-export builds the device wheel pure-Python (SENSORCODEC_PURE_WHEEL=1) so one wheel serves
# every board; its wheelhouse resolves per platform, and ctx-ac stays optional there.
PURE = os.environ.get("SENSORCODEC_PURE_WHEEL") == "1"

setup(ext_modules=[] if PURE else [Extension(
    "encoder_runtime._sclossless",
    sources=["encoder_runtime/_sclossless.c", "firmware_bridge/firmware/src/sc_lossless.c",
             "firmware_bridge/firmware/src/sc_rans.c"],
    include_dirs=["firmware_bridge/firmware/include"],
    extra_compile_args=["-O2", "-std=c99"],
    optional=True,
)])
