"""Native extension only; all package metadata lives in pyproject.toml.

``encoder_runtime._sclossless`` wraps the firmware's portable lossless coder
(firmware_bridge/firmware/src/sc_lossless.c, the same source the Cortex-M4 and aarch64 builds
compile). It is optional: without a C compiler the install still works and the ``ctx-ac``
coder is simply not available.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "encoder_runtime._sclossless",
    sources=["encoder_runtime/_sclossless.c", "firmware_bridge/firmware/src/sc_lossless.c"],
    include_dirs=["firmware_bridge/firmware/include"],
    extra_compile_args=["-O2", "-std=c99"],
    optional=True,
)])
