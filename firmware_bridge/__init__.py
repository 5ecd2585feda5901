"""Serial link between microcontroller firmware and the sensorcodec pipeline.

numpy + pyserial only (never torch). Modules: :mod:`spec` (the protocol, shared with C),
:mod:`cobs` and :mod:`frame` (framing), :mod:`link` (the pyserial link), :mod:`source` (frames for
``sensor-encode``), :mod:`simulator` (a fake MCU), :mod:`cli` (``sensor-bridge``),
:mod:`reference` and :mod:`gen_header` (the integer encoder and its C header).
"""

from firmware_bridge.spec import SCHEMA_HASH, VERSION

__all__ = ["SCHEMA_HASH", "VERSION"]
