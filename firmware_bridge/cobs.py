"""Consistent Overhead Byte Stuffing (Cheshire & Baker 1999), without the 0x00 delimiter.

The encoding is the classic one (also in ``firmware/src/sc_cobs.c``): a run of 254 non-zero bytes
is closed by a 0xFF code byte and, at the end of the data, followed by a final 0x01 block.
Overhead: 1 byte plus 1 per 254 bytes.
"""

from __future__ import annotations


class CobsError(ValueError):
    """The bytes are not a valid COBS encoding."""


def encode(data: bytes) -> bytes:
    """COBS-encode ``data``; the result contains no 0x00 byte."""
    out = bytearray()
    for chunk in bytes(data).split(b"\x00"):
        while len(chunk) >= 254:
            out.append(0xFF)
            out += chunk[:254]
            chunk = chunk[254:]
        out.append(len(chunk) + 1)
        out += chunk
    return bytes(out)


def encoded_size_max(n: int) -> int:
    """Largest COBS encoding of ``n`` bytes."""
    return n + n // 254 + 1


def decode(enc: bytes) -> bytes:
    """Decode one COBS block sequence (no delimiter). Raises :class:`CobsError` when malformed."""
    if not enc:
        raise CobsError("empty COBS frame")
    out = bytearray()
    i, n = 0, len(enc)
    while i < n:
        code = enc[i]
        if code == 0:
            raise CobsError(f"zero byte inside COBS frame at offset {i}")
        j = i + code
        if j > n:
            raise CobsError(f"COBS block at offset {i} runs past the end ({j} > {n})")
        out += enc[i + 1:j]
        i = j
        if code != 0xFF and i < n:
            out.append(0)
    if 0 in enc:
        raise CobsError("zero byte inside COBS frame")
    return bytes(out)
