"""Frames: header + payload + CRC-32, COBS-encoded between 0x00 delimiters.

:func:`encode_frame` builds the bytes for the wire, :func:`decode_frame` checks one delimited
chunk, and :class:`FrameDecoder` turns an arbitrary byte stream (garbage, truncation, bit flips
included) into frames with a bounded buffer and exact counters.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from firmware_bridge import cobs, spec


class FrameError(ValueError):
    """A frame failed COBS decoding, its length check, its CRC or its version check."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Frame:
    """One decoded frame."""

    type: int
    flags: int
    seq: int
    t_mcu_us: int
    payload: bytes
    version: int = spec.VERSION

    @property
    def type_name(self) -> str:
        """The frame type's name, e.g. ``"DATA"``."""
        return spec.TYPE_NAMES.get(self.type, f"UNKNOWN_{self.type}")


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC (zlib), the frame check sequence."""
    return zlib.crc32(data) & 0xFFFFFFFF


def pack_frame(ftype: int, seq: int, t_mcu_us: int, payload: bytes = b"", flags: int = 0,
               version: int = spec.VERSION) -> bytes:
    """The raw frame (header + payload + CRC) before COBS."""
    body = spec.HEADER.pack(((version & 0xF) << 4) | (ftype & 0xF), flags & 0xFF, seq & 0xFFFF,
                            t_mcu_us & 0xFFFFFFFF) + bytes(payload)
    return body + spec.TRAILER.pack(crc32(body))


def encode_frame(ftype: int, seq: int, t_mcu_us: int, payload: bytes = b"", flags: int = 0,
                 version: int = spec.VERSION) -> bytes:
    """Wire bytes of one frame: COBS(raw frame) followed by the 0x00 delimiter."""
    return cobs.encode(pack_frame(ftype, seq, t_mcu_us, payload, flags, version)) + b"\x00"


def parse_raw(raw: bytes, max_frame: int = spec.MAX_FRAME_DEFAULT) -> Frame:
    """Check length, CRC and version of a raw (COBS-decoded) frame."""
    n = len(raw)
    if n < spec.HEADER.size + spec.TRAILER.size:
        raise FrameError("short", f"frame of {n} bytes is shorter than header + CRC "
                                  f"({spec.HEADER.size + spec.TRAILER.size})")
    if n > max_frame:
        raise FrameError("oversize", f"frame of {n} bytes exceeds max_frame {max_frame}")
    (crc_got,) = spec.TRAILER.unpack_from(raw, n - 4)
    crc_exp = crc32(raw[:n - 4])
    if crc_got != crc_exp:
        raise FrameError("crc", f"CRC mismatch: frame says {crc_got:#010x}, computed {crc_exp:#010x}")
    vt, flags, seq, t_us = spec.HEADER.unpack_from(raw, 0)
    version = vt >> 4
    if version != spec.VERSION:
        raise FrameError("version", f"protocol version {version} (expected {spec.VERSION})")
    return Frame(vt & 0xF, flags, seq, t_us, bytes(raw[spec.HEADER.size:n - 4]), version)


def decode_frame(chunk: bytes, max_frame: int = spec.MAX_FRAME_DEFAULT) -> Frame:
    """Decode one COBS chunk (without its 0x00 delimiter) into a :class:`Frame`."""
    if len(chunk) > cobs.encoded_size_max(max_frame):
        raise FrameError("oversize", f"COBS chunk of {len(chunk)} bytes exceeds max_frame {max_frame}")
    try:
        raw = cobs.decode(chunk)
    except cobs.CobsError as exc:
        raise FrameError("cobs", str(exc)) from None
    return parse_raw(raw, max_frame)


class FrameDecoder:
    """Incremental decoder: feed bytes, get frames; bounded memory, exact error counters.

    The accumulator never holds more than ``2 * encoded_size_max(max_frame)`` bytes: a longer run
    without a delimiter is discarded up to the next 0x00 (counted in ``overflows``). A chunk that
    fails COBS, length, CRC or version checks is dropped and counted; decoding resumes at the next
    delimiter. Empty chunks (back-to-back delimiters, used to flush a link) are ignored.
    """

    def __init__(self, max_frame: int = spec.MAX_FRAME_DEFAULT):
        self.max_frame = max_frame
        self.limit = 2 * cobs.encoded_size_max(max_frame)
        self._buf = bytearray()
        self._discarding = False
        self.frames = 0
        self.bytes_in = 0
        self.errors: dict[str, int] = {"crc": 0, "cobs": 0, "short": 0, "oversize": 0, "version": 0}
        self.overflows = 0
        self.partial_drops = 0
        self._fresh = False
        self.last_error: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for a delimiter."""
        return len(self._buf)

    @property
    def bad_frames(self) -> int:
        """All chunks dropped for any reason (overflows not included)."""
        return sum(self.errors.values())

    def reset(self, discard_partial: bool = True) -> None:
        """Forget a partial frame (after a reconnect). With ``discard_partial`` the bytes up to the
        next delimiter are ignored; otherwise the first chunk is decoded, and if it fails it is
        counted in ``partial_drops`` (the tail of a frame whose start was lost), not as an error."""
        self._buf.clear()
        self._discarding = discard_partial
        self._fresh = not discard_partial

    def feed(self, data: bytes) -> list[Frame]:
        """Consume ``data`` and return the frames it completed (possibly none)."""
        self.bytes_in += len(data)
        out: list[Frame] = []
        if not data:
            return out
        parts = bytes(data).split(b"\x00")
        last = len(parts) - 1
        for i, part in enumerate(parts):
            if i == last:  # no delimiter after it yet
                if self._discarding:
                    break
                if len(self._buf) + len(part) > self.limit:
                    self.overflows += 1
                    self._buf.clear()
                    self._discarding = True
                else:
                    self._buf += part
                break
            if self._discarding:
                self._discarding = False
                continue
            if self._buf:
                self._buf += part
                chunk = bytes(self._buf)
                self._buf.clear()
            else:
                chunk = part
            fresh, self._fresh = self._fresh, False
            if not chunk:
                continue
            try:
                out.append(decode_frame(chunk, self.max_frame))
            except FrameError as exc:
                if fresh:  # the tail of a frame whose start was sent before we (re)connected
                    self.partial_drops += 1
                else:
                    self.errors[exc.reason] += 1
                self.last_error = str(exc)
            else:
                self.frames += 1
        return out


def data_payload(array: np.ndarray, kind: int) -> bytes:
    """Payload of a DATA frame carrying ``array`` (1 to 3 dimensions, int8/uint8/int16/int32)."""
    a = np.ascontiguousarray(array)
    if a.ndim < 1 or a.ndim > 3:
        raise ValueError(f"DATA arrays have 1 to 3 dimensions, got shape {a.shape}")
    if a.dtype.name not in spec.DTYPE_FROM_NUMPY:
        raise ValueError(f"DATA dtype must be one of {sorted(spec.DTYPE_FROM_NUMPY)}, got {a.dtype}")
    if any(d > 0xFFFF or d == 0 for d in a.shape):
        raise ValueError(f"each DATA dimension must be 1..65535, got shape {a.shape}")
    dims = list(a.shape) + [0] * (3 - a.ndim)
    return spec.PAYLOADS["DATA"].pack(kind, spec.DTYPE_FROM_NUMPY[a.dtype.name], *dims) + \
        a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()


def parse_data(payload: bytes) -> tuple[int, np.ndarray]:
    """``(kind, array)`` from a DATA payload; raises :class:`FrameError` on inconsistent sizes."""
    st = spec.PAYLOADS["DATA"]
    if len(payload) < st.size:
        raise FrameError("short", f"DATA payload of {len(payload)} bytes is shorter than its header ({st.size})")
    kind, dtc, d0, d1, d2 = st.unpack_from(payload, 0)
    if dtc not in spec.DTYPE_CODES:
        raise FrameError("version", f"DATA dtype code {dtc} unknown (known: {sorted(spec.DTYPE_CODES)})")
    shape = tuple(d for d in (d0, d1, d2) if d)
    dt = np.dtype(spec.DTYPE_CODES[dtc])
    need = int(np.prod(shape, dtype=np.int64)) * dt.itemsize if shape else 0
    if need != len(payload) - st.size or not shape:
        raise FrameError("short", f"DATA shape {shape} x {dt} needs {need} bytes, payload has {len(payload) - st.size}")
    return kind, np.frombuffer(payload, dtype=dt, offset=st.size).reshape(shape)
