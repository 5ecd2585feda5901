"""Binary layout of one FRAME record payload.

    u8  frame_version (1)
    u8  len(coder) + coder id (ASCII)
    u8  original dtype code
    u8  ndim + u32[ndim]  original array shape
    u8  ndim + u32[ndim]  code array shape (B, C_lat, *latent)
    ... coded bytes (the lossless coder's output)

Everything needed to decode the frame besides the bundle named in the stream header.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import FrameError

__all__ = ["DTYPES", "FRAME_VERSION", "FrameError", "FrameInfo", "pack_frame", "parse_frame"]

FRAME_VERSION = 1
DTYPES = ["uint8", "int16", "float32", "float64", "int32", "uint16", "int8"]
MAX_NDIM = 8
MAX_DIM = 1 << 28


@dataclass(frozen=True)
class FrameInfo:
    """Parsed frame payload header."""

    coder: str
    dtype: str
    shape: tuple[int, ...]
    code_shape: tuple[int, ...]
    data_offset: int


def _pack_shape(shape: tuple[int, ...]) -> bytes:
    return struct.pack(f"<B{len(shape)}I", len(shape), *shape)


def pack_frame(coder: str, dtype: str, shape: tuple[int, ...], code_shape: tuple[int, ...],
               data: bytes) -> bytes:
    """Serialise a frame payload."""
    c = coder.encode("ascii")
    return (struct.pack("<BB", FRAME_VERSION, len(c)) + c
            + struct.pack("<B", DTYPES.index(dtype)) + _pack_shape(shape) + _pack_shape(code_shape)
            + data)


def parse_frame(payload: bytes) -> FrameInfo:
    """Parse a frame payload's header; raises FrameError with a clear message."""
    try:
        version, clen = struct.unpack_from("<BB", payload, 0)
        if version != FRAME_VERSION:
            raise FrameError(f"frame payload version {version} is not supported (expected 1)")
        pos = 2
        if pos + clen > len(payload):
            raise FrameError(f"frame payload: coder id of {clen} bytes runs past the end")
        coder = bytes(payload[pos:pos + clen]).decode("ascii")
        pos += clen
        (dcode,) = struct.unpack_from("<B", payload, pos)
        pos += 1
        if dcode >= len(DTYPES):
            raise FrameError(f"frame payload: unknown dtype code {dcode}")
        shapes = []
        for what in ("array", "code"):
            (nd,) = struct.unpack_from("<B", payload, pos)
            pos += 1
            if not 0 < nd <= MAX_NDIM:
                raise FrameError(f"frame payload: {what} shape has {nd} dims (1..{MAX_NDIM})")
            dims = struct.unpack_from(f"<{nd}I", payload, pos)
            pos += 4 * nd
            if any(d == 0 or d > MAX_DIM for d in dims):
                raise FrameError(f"frame payload: {what} shape {dims} is out of range")
            shapes.append(tuple(dims))
    except (struct.error, UnicodeDecodeError):
        raise FrameError("frame payload is truncated or garbled") from None
    return FrameInfo(coder, DTYPES[dcode], shapes[0], shapes[1], pos)
