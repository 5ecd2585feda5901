"""Pluggable lossless coders for the integer latent codes.

A coder turns an int8 array of codes shaped ``(C, *spatial)`` (C latent channels; 1-D, 2-D or 3-D
spatial grid) into bytes and back. Decoding needs only the coder's ``name`` (written into the
stream header) and the array shape (stored in the frame); nothing else travels out of band.

Coders (``available_coders()`` lists those that can run here):

``sigplane-zstd`` (default)
    Per-channel spatial prediction (none / left / top, chosen by the smaller L1 residual),
    sign-magnitude binarisation (a significance plane, two more unary levels, bit planes of the
    remainder, and one sign bit per non-zero), significance bits packed in 4x2 spatial tiles,
    all in one zstd frame (level-1 speed). Numpy + zstandard only. On photo-like codes it is
    ~13 % smaller than zstd-19 (about the rate of JPEG-LS) at ~0.4 ms per 768x512 frame (C=12);
    see ``benchmarks/results/lossless.json``.
``bitplane-zstd``
    Zigzag + per-channel bit-plane shuffle + zstd-1 (like blosc2 bitshuffle): the simple
    fast baseline.
``zstd19`` / ``zstd3``
    Plain zstd on the channel-planar int8 bytes (the prototype's format; zstd-19 is the rate
    reference).
``ctx-ac`` (optional, native)
    Context-modelled adaptive binary arithmetic coding (contexts from the already-coded
    neighbours, the previous channel and the local activity) in portable C shared with the
    firmware (``firmware_bridge/firmware/src/sc_lossless.c``), via the extension module
    ``encoder_runtime._sclossless``; unavailable when the extension was not built. Writes
    format 3 (format 1 plus, on rows of >= 16 codes, a per-channel left-difference predictor
    and flags that skip all-zero blocks of 16 values); format-1 streams still decode. See
    README for its size and speed; bitstream in docs/container-format.md.
``rans`` (optional, native)
    Static rANS: per-frame 12-bit frequency tables in the payload, one per context class of the
    left / upper neighbours (shared or per channel, the encoder picks the smaller), of the codes
    or, per channel of a 2-D grid, of their left differences; 4 interleaved states; same C
    source and extension as ``ctx-ac``. Smaller than the default on the image, video and volume
    models, not on audio / IMU / hyperspectral; see README and docs/container-format.md.
``jpegls`` (optional)
    JPEG-LS (CharLS, lossless) on a channel mosaic of ``codes + 128``. Needs the optional
    package ``pyjpegls`` or ``imagecodecs`` (imported lazily); unavailable without them.

Every decoder treats its input as hostile: it checks sizes against the shape before allocating,
never decompresses past the size the shape implies, and raises :class:`CorruptPayloadError`
(a ``ValueError``) with a clear message on truncated, padded or garbage input.

Example::

    coder = get_coder(DEFAULT_CODER)
    blob = coder.encode(codes)                  # codes: int8 (C, h, w)
    back = coder.decode(blob, codes.shape)      # == codes
"""

from __future__ import annotations

import math
import threading
import warnings
from typing import Callable, Protocol, runtime_checkable

import numpy as np
import zstandard

from .errors import CorruptPayloadError, MalformedInputError

__all__ = [
    "BUNDLE_CODER",
    "DEFAULT_CODER",
    "MAX_CODES",
    "CoderUnavailableError",
    "CorruptPayloadError",
    "LosslessCoder",
    "available_coders",
    "get_coder",
    "get_coder_or_fallback",
    "known_coders",
]

#: Largest number of codes (product of the shape) any coder accepts: 1 GiB of int8.
MAX_CODES = 1 << 30


class CoderUnavailableError(ValueError):
    """A known coder cannot run here because an optional package is missing."""


@runtime_checkable
class LosslessCoder(Protocol):
    """Lossless coder for int8 latent codes shaped ``(C, *spatial)``."""

    name: str  # stable id written into stream headers

    def encode(self, codes: np.ndarray) -> bytes:
        """Compress int8 codes ``(C, *spatial)`` to bytes."""
        ...

    def decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        """Decompress ``data`` to int8 codes of exactly ``shape``."""
        ...


# --------------------------------------------------------------------------------------------
# shared helpers


def _as_codes(codes: np.ndarray, coder: str) -> np.ndarray:
    """Validate the encoder input; return a C-contiguous int8 array."""
    if not isinstance(codes, np.ndarray):
        raise TypeError(f"{coder}: codes must be a numpy array, got {type(codes).__name__}")
    if codes.dtype != np.int8:
        raise TypeError(f"{coder}: codes must be int8, got {codes.dtype}")
    if codes.ndim < 2:
        raise ValueError(f"{coder}: codes must be shaped (C, *spatial) with >= 1 spatial axis, "
                         f"got shape {codes.shape}")
    if codes.size > MAX_CODES:
        raise ValueError(f"{coder}: {codes.size} codes exceed MAX_CODES={MAX_CODES}")
    return np.ascontiguousarray(codes)


def _as_shape(shape: tuple[int, ...], coder: str) -> tuple[int, ...]:
    """Validate a decode shape; return it as a tuple of ints."""
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{coder}: shape must be a tuple of ints, got {shape!r}") from None
    if len(out) < 2:
        raise ValueError(f"{coder}: shape must be (C, *spatial) with >= 1 spatial axis, got {out}")
    if any(s < 0 for s in out):
        raise ValueError(f"{coder}: negative dimension in shape {out}")
    if math.prod(out) > MAX_CODES:
        raise ValueError(f"{coder}: shape {out} has {math.prod(out)} codes, more than "
                         f"MAX_CODES={MAX_CODES}")
    return out


def _as_bytes(data: bytes | bytearray | memoryview, coder: str) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{coder}: data must be bytes, got {type(data).__name__}")
    return bytes(data)


def _zstd_frame_size(data: bytes) -> int:
    """Size in bytes of the zstd frame at the start of ``data`` (walks the block headers)."""
    pos = zstandard.frame_header_size(data)
    checksum = bool(data[4] & 0x04)
    while True:
        if pos + 3 > len(data):
            raise CorruptPayloadError("truncated zstd frame (block header missing)")
        head = int.from_bytes(data[pos:pos + 3], "little")
        last, btype, bsize = head & 1, (head >> 1) & 3, head >> 3
        pos += 3 + (1 if btype == 1 else bsize)
        if btype == 3:
            raise CorruptPayloadError("corrupt zstd frame (reserved block type)")
        if last:
            return pos + (4 if checksum else 0)


def zstd_decompress_bounded(data: bytes, max_size: int, what: str, *,
                            dict_data: zstandard.ZstdCompressionDict | None = None,
                            error: type[MalformedInputError] = CorruptPayloadError) -> bytes:
    """Decompress one zstd frame that must fill ``data`` exactly and be at most ``max_size`` bytes.

    The frame must declare its content size (every encoder here writes it); a frame claiming
    more than ``max_size`` is rejected before anything is allocated, so a hostile header cannot
    make the decoder allocate more than the shape implies. ``dict_data`` decompresses with a
    dictionary (the container's compressed stream headers); failures raise ``error`` (a
    :class:`~encoder_runtime.errors.MalformedInputError`) with ``what`` leading the message.
    """
    try:
        size = zstandard.frame_content_size(data)
    except zstandard.ZstdError as e:
        raise error(f"{what}: not a zstd frame ({e})") from None
    if size < 0 or size == zstandard.CONTENTSIZE_UNKNOWN:
        raise error(f"{what}: zstd frame does not declare its content size")
    if size > max_size:
        raise error(f"{what}: zstd frame claims {size} bytes, at most {max_size} allowed")
    try:
        end = _zstd_frame_size(data)
    except CorruptPayloadError as e:
        raise error(f"{what}: {e}") from None
    except zstandard.ZstdError as e:
        raise error(f"{what}: corrupt zstd frame ({e})") from None
    if end != len(data):
        raise error(f"{what}: {len(data) - end} bytes after the zstd frame"
                    if end < len(data) else f"{what}: truncated zstd frame")
    try:
        out = _dctx(dict_data).decompress(data, max_output_size=max_size)
    except zstandard.ZstdError as e:
        raise error(f"{what}: corrupt zstd frame ({e})") from None
    if len(out) != size:
        raise error(f"{what}: zstd frame gave {len(out)} bytes, header said {size}")
    return out


_local = threading.local()


#: zstd settings of the default coder: level-1 "fast" strategy with a 16 KiB window. The window
#: also caps zstd's block size, so the literals' Huffman tables adapt every 16 KiB; measured
#: 0.5-1.5 % smaller than level 1 at the same speed on photo codes (the decoder is unaffected).
SIGPLANE_ZSTD_PARAMS = dict(window_log=14, chain_log=12, hash_log=13, search_log=1, min_match=7,
                            target_length=0, strategy=zstandard.STRATEGY_FAST)


def _cctx(level: int | None) -> zstandard.ZstdCompressor:
    """A per-thread cached single-threaded compressor (zstandard contexts are not thread-safe).

    ``level=None`` gives the tuned :data:`SIGPLANE_ZSTD_PARAMS`.
    """
    cache = _local.__dict__.setdefault("cctx", {})
    c = cache.get(level)
    if c is None:
        if level is None:
            params = zstandard.ZstdCompressionParameters(
                **SIGPLANE_ZSTD_PARAMS, write_checksum=False, write_content_size=True)
            c = zstandard.ZstdCompressor(compression_params=params)
        else:
            c = zstandard.ZstdCompressor(level=level, write_checksum=False,
                                         write_content_size=True)
        cache[level] = c
    return c


def _dctx(dict_data: zstandard.ZstdCompressionDict | None = None) -> zstandard.ZstdDecompressor:
    """A per-thread cached decompressor (one per dictionary; ``None`` = no dictionary)."""
    cache = _local.__dict__.setdefault("dctx", {})
    d = cache.get(id(dict_data))
    if d is None or d[0] is not dict_data:
        d = cache[id(dict_data)] = (dict_data, zstandard.ZstdDecompressor(dict_data=dict_data))
    return d[1]


class _Coder:
    """Common checks: input validation, empty arrays (b""), hostile-input error wrapping."""

    name: str = ""

    def encode(self, codes: np.ndarray) -> bytes:
        """Compress int8 codes ``(C, *spatial)`` to bytes (b"" for an empty array)."""
        codes = _as_codes(codes, self.name)
        if codes.size == 0:
            return b""
        return self._encode(codes)

    def decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        """Decompress ``data`` to int8 codes of exactly ``shape``; ValueError on bad input."""
        shape = _as_shape(shape, self.name)
        data = _as_bytes(data, self.name)
        if math.prod(shape) == 0:
            if data:
                raise CorruptPayloadError(f"{self.name}: {len(data)} bytes for the empty shape "
                                          f"{shape}, expected none")
            return np.zeros(shape, np.int8)
        if not data:
            raise CorruptPayloadError(f"{self.name}: empty payload for shape {shape}")
        try:
            out = self._decode(data, shape)
        except CorruptPayloadError as e:
            raise CorruptPayloadError(f"{self.name}: {e} (shape {shape})") from None
        except (ValueError, IndexError, zstandard.ZstdError) as e:
            raise CorruptPayloadError(f"{self.name}: payload does not decode to shape {shape} "
                                      f"({type(e).__name__}: {e})") from None
        if out.shape != shape or out.dtype != np.int8:  # internal invariant
            raise CorruptPayloadError(f"{self.name}: decoded {out.dtype}{out.shape}, "
                                      f"expected int8{shape}")
        return out

    def _encode(self, codes: np.ndarray) -> bytes:
        raise NotImplementedError

    def _decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def _unpack(buf: np.ndarray, pos: int, nbits: int, what: str) -> tuple[np.ndarray, int]:
    """``nbits`` bits (as bool) packed MSB-first at byte ``pos`` of ``buf``; new position."""
    nbytes = (nbits + 7) >> 3
    if pos + nbytes > buf.size:
        raise CorruptPayloadError(f"payload too short for the {what} ({buf.size} bytes, "
                                  f"needs at least {pos + nbytes})")
    bits = np.unpackbits(buf[pos:pos + nbytes], count=nbits).view(bool)
    return bits, pos + nbytes


# --------------------------------------------------------------------------------------------
# plain zstd


class ZstdCoder(_Coder):
    """zstd at one level on the channel-planar int8 bytes (``codes.tobytes()``)."""

    def __init__(self, level: int) -> None:
        self.level = level
        self.name = f"zstd{level}"

    def _encode(self, codes: np.ndarray) -> bytes:
        return _cctx(self.level).compress(codes.tobytes())

    def _decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        n = math.prod(shape)
        raw = zstd_decompress_bounded(data, n, "payload")
        if len(raw) != n:
            raise CorruptPayloadError(f"decoded {len(raw)} bytes, expected {n}")
        return np.frombuffer(raw, np.int8).reshape(shape).copy()


# --------------------------------------------------------------------------------------------
# zigzag + bit planes + zstd


def _zigzag(x: np.ndarray) -> np.ndarray:
    """int8 -> uint8: 0, -1, 1, -2, 2 ... -> 0, 1, 2, 3, 4 ..."""
    z = np.left_shift(x.view(np.uint8), 1)
    np.bitwise_xor(z, (x >> 7).view(np.uint8), out=z)
    return z


def _unzigzag(z: np.ndarray) -> np.ndarray:
    """uint8 -> int8, inverse of :func:`_zigzag`."""
    x = np.right_shift(z, 1)
    np.bitwise_xor(x, (0 - (z & 1)).astype(np.uint8, copy=False), out=x)
    return x.view(np.int8)


class BitplaneZstdCoder(_Coder):
    """Zigzag, then each channel's bit planes packed (only as many planes as its largest value
    needs; plane-major across channels), then zstd at a low level.

    Payload (one zstd frame): ``ceil(C/2)`` bytes of 4-bit plane counts per channel, then for
    each bit b = 0..7 the packed bits of plane b of every channel that has it.
    """

    def __init__(self, level: int = 1) -> None:
        self.level = level
        self.name = "bitplane-zstd"

    def _encode(self, codes: np.ndarray) -> bytes:
        c = codes.shape[0]
        z = _zigzag(codes).reshape(c, -1)
        nbits = [int(v).bit_length() for v in z.max(axis=1)]
        counts = np.zeros(c + (c & 1), np.uint8)
        counts[:c] = nbits
        parts = [((counts[0::2] << 4) | counts[1::2]).tobytes()]
        for b in range(max(nbits)):
            rows = [i for i in range(c) if nbits[i] > b]
            sub = z if len(rows) == c else z[rows]
            parts.append(np.packbits((sub & (1 << b)) != 0, axis=-1).tobytes())
        return _cctx(self.level).compress(b"".join(parts))

    def _decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        c, n = shape[0], math.prod(shape[1:])
        row = (n + 7) >> 3
        head = (c + 1) >> 1
        buf = np.frombuffer(zstd_decompress_bounded(data, head + 8 * c * row, "payload"), np.uint8)
        if buf.size < head:
            raise CorruptPayloadError("payload shorter than its plane-count header")
        counts = np.empty(2 * head, np.uint8)
        counts[0::2], counts[1::2] = buf[:head] >> 4, buf[:head] & 15
        nbits = counts[:c]
        if (nbits > 8).any() or (c & 1 and counts[c] != 0):
            raise CorruptPayloadError(f"bad plane counts {nbits.tolist()}")
        need = head + row * int(nbits.sum())
        if buf.size != need:
            raise CorruptPayloadError(f"payload has {buf.size} bytes, plane counts imply {need}")
        z = np.zeros((c, n), np.uint8)
        pos = head
        for b in range(int(nbits.max(initial=0))):
            rows = np.flatnonzero(nbits > b)
            k = rows.size
            bits = np.unpackbits(buf[pos:pos + k * row].reshape(k, row), axis=-1, count=n)
            pos += k * row
            z[rows] |= bits << b
        return _unzigzag(z).reshape(shape)


# --------------------------------------------------------------------------------------------
# prediction + significance / magnitude planes + zstd (the default)

_PRED_NONE, _PRED_LEFT, _PRED_TOP = 0, 1, 2


def _grid(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(C, rows, cols) 2-D view of ``(C, *spatial)``: 1-D -> one row; n-D -> rows = all but last."""
    c = shape[0]
    if len(shape) == 2:
        return c, 1, shape[1]
    return c, math.prod(shape[1:-1]), shape[-1]


def _tile(rows: int) -> tuple[int, int]:
    """Tile (height, width) whose 8 values share one packed byte."""
    return (4, 2) if rows >= 4 else (1, 8)


def _residual(x: np.ndarray, axis: int) -> np.ndarray:
    """Difference to the previous element along ``axis`` (int8, wrapping mod 256); first kept."""
    r = x.copy()
    a = [slice(None)] * x.ndim
    b = list(a)
    a[axis], b[axis] = slice(1, None), slice(None, -1)
    np.subtract(x[tuple(a)], x[tuple(b)], out=r[tuple(a)])
    return r


def _l1_per_channel(k: np.ndarray) -> np.ndarray:
    """Sum of |k| per channel (first axis) of int8 ``k``; -128 counts 128."""
    a = np.abs(k).view(np.uint8).reshape(k.shape[0], -1)
    # uint32 accumulation is faster and cannot overflow below 2**25 values per channel
    return a.sum(axis=1, dtype=np.uint32 if a.shape[1] < 1 << 25 else np.uint64)


def _choose_predictors(x: np.ndarray) -> np.ndarray:
    """Per-channel predictor id (none / left / top) with the smallest L1 residual.

    Measured on every 4th row pair when there are >= 8 rows (a quarter of the work, same
    choice in practice). Ties go to the lower id.
    """
    c, r, w = x.shape
    if r >= 8:
        a = np.ascontiguousarray(x[:, 1::4])
        above = np.ascontiguousarray(x[:, 0::4][:, :a.shape[1]])
    elif r > 1:
        a, above = x[:, 1:], x[:, :-1]
    else:
        a, above = x, None
    costs = [_l1_per_channel(a), _l1_per_channel(a[..., 1:] - a[..., :-1])]
    if above is not None:
        costs.append(_l1_per_channel(a - above))
    return np.argmin(np.stack(costs), axis=0).astype(np.uint8)


def _prefix_sum(r: np.ndarray, axis: int) -> np.ndarray:
    """Inverse of :func:`_residual`: inclusive prefix sum mod 256 along ``axis`` (in place).

    Log-step (Hillis-Steele) scan: ceil(log2 n) vectorised adds (numpy buffers the overlapping
    operands); numpy's own cumsum on uint8 is a scalar loop and slower here.
    """
    u = r.view(np.uint8)
    n = u.shape[axis]
    s = 1
    while s < n:
        dst = [slice(None)] * u.ndim
        src = list(dst)
        dst[axis], src[axis] = slice(s, None), slice(None, n - s)
        np.add(u[tuple(dst)], u[tuple(src)], out=u[tuple(dst)])
        s <<= 1
    return r


def _to_tiles(y: np.ndarray, th: int, tw: int) -> np.ndarray:
    """(C, R, W) -> (C, Rp*Wp) with each th x tw tile contiguous (zero padding to full tiles)."""
    c, r, w = y.shape
    rp, wp = -(-r // th) * th, -(-w // tw) * tw
    if (rp, wp) != (r, w):
        y = np.pad(y, ((0, 0), (0, rp - r), (0, wp - w)))
    if th == 1:
        return y.reshape(c, -1)
    # th x 2 tiles: move pairs of bytes as one uint16; one strided copy per tile row is
    # 2-3x faster than a generic numpy transpose with a 4-long inner axis
    u = y.view(np.uint16).reshape(c, rp // th, th, wp // 2)
    out = np.empty((c, rp // th, wp // 2, th), np.uint16)
    for k in range(th):
        out[..., k] = u[:, :, k, :]
    return out.view(np.int8).reshape(c, -1)


def _from_tiles(t: np.ndarray, c: int, r: int, w: int, th: int, tw: int) -> np.ndarray:
    """Inverse of :func:`_to_tiles` (crops the padding)."""
    rp, wp = -(-r // th) * th, -(-w // tw) * tw
    if th == 1:
        y = t.reshape(c, rp, wp)
    else:
        u = t.view(np.uint16).reshape(c, rp // th, wp // 2, th)
        out = np.empty((c, rp // th, th, wp // 2), np.uint16)
        for k in range(th):
            out[:, :, k, :] = u[..., k]
        y = out.view(np.int8).reshape(c, rp, wp)
    return y[:, :r, :w]


class SigplaneZstdCoder(_Coder):
    """Prediction + significance/magnitude bit planes + zstd (the default coder).

    Encoding, per frame:

    1. Per channel, keep the codes or replace them by their left or top difference (int8,
       mod 256), whichever has the smallest sum of magnitudes (1-D codes: none/left).
    2. Lay each channel out in 4x2 tiles (8 values per packed byte; 1x8 when fewer than 4 rows).
    3. Significance plane ``v != 0`` for every position; for the non-zeros in that order: the
       plane ``|v| >= 2``; for those, ``|v| >= 3``; for those, the bit planes of ``|v| - 3``;
       then one sign bit per non-zero. All planes are packed MSB-first, in one zstd frame
       (:data:`SIGPLANE_ZSTD_PARAMS`).

    Payload: ``b"\\x01"`` (format) + zstd frame of: 2-bit predictor per channel
    (``ceil(C/4)`` bytes), remainder plane count (1 byte), significance plane, level planes,
    remainder planes (LSB first), signs. Every length follows from the shape and the bits
    decoded before it, so a payload of any other length is rejected. Codes that would come
    out larger than themselves (white noise) are stored: ``b"\\x00"`` + the raw codes.

    Bit planes lose to zstd's byte-level entropy coder on dense, spatially white codes
    (i.i.d. noise of large spread: ~+10 %); learned codes are sparse and smooth, where this
    coder is ~12 % below zstd-19.
    """

    FORMAT = 1
    STORED = 0

    def __init__(self, level: int | None = None) -> None:
        self.level = level  # None: SIGPLANE_ZSTD_PARAMS; an int: that zstd level (experiments)
        self.name = "sigplane-zstd"

    # -- encode
    def _encode(self, codes: np.ndarray) -> bytes:
        c, r, w = _grid(codes.shape)
        x = codes.reshape(c, r, w)
        mode = _choose_predictors(x)
        if (mode == mode[0]).all():
            m0 = int(mode[0])
            y = x if m0 == _PRED_NONE else _residual(x, 2 if m0 == _PRED_LEFT else 1)
        else:
            y = x.copy()
            for m, axis in ((_PRED_LEFT, 2), (_PRED_TOP, 1)):
                sel = mode == m
                if sel.any():
                    y[sel] = _residual(x[sel], axis)
        th, tw = _tile(r)
        yt = _to_tiles(y, th, tw).reshape(-1)
        mask = yt != 0
        nz = np.compress(mask, yt)  # ~3x faster than yt[mask]
        mag = np.abs(nz).view(np.uint8)  # |-128| -> 128 as uint8
        ge2 = mag >= 2
        m2 = np.compress(ge2, mag)
        ge3 = m2 >= 3
        rem = np.compress(ge3, m2) - np.uint8(3)
        nrem = int(rem.max()).bit_length() if rem.size else 0
        modes = np.zeros(-(-c // 4) * 4, np.uint8)
        modes[:c] = mode
        m4 = modes.reshape(-1, 4)
        parts = [((m4[:, 0] << 6) | (m4[:, 1] << 4) | (m4[:, 2] << 2) | m4[:, 3]).tobytes(),
                 bytes([nrem]),
                 np.packbits(mask).tobytes(),
                 np.packbits(ge2).tobytes(),
                 np.packbits(ge3).tobytes()]
        for b in range(nrem):
            parts.append(np.packbits((rem & (1 << b)) != 0).tobytes())
        parts.append(np.packbits(nz < 0).tobytes())
        out = bytes([self.FORMAT]) + _cctx(self.level).compress(b"".join(parts))
        if len(out) > 1 + codes.size:  # incompressible (noise-like) codes: store them
            return bytes([self.STORED]) + codes.tobytes()
        return out

    # -- decode
    def _decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        if data[0] == self.STORED:
            if len(data) != 1 + math.prod(shape):
                raise CorruptPayloadError(f"stored payload has {len(data) - 1} bytes, expected "
                                          f"{math.prod(shape)}")
            return np.frombuffer(data, np.int8, offset=1).reshape(shape).copy()
        if data[0] != self.FORMAT:
            raise CorruptPayloadError(f"unknown format byte {data[0]} (expected {self.FORMAT} "
                                      f"or {self.STORED})")
        c, r, w = _grid(shape)
        th, tw = _tile(r)
        npos = c * (-(-r // th) * th) * (-(-w // tw) * tw)
        head = -(-c // 4) + 1
        plane = npos >> 3
        # worst case: significance + 2 level planes + 7 remainder planes + signs, all full
        buf = np.frombuffer(zstd_decompress_bounded(data[1:], head + 11 * plane, "payload"),
                            np.uint8)
        if buf.size < head:
            raise CorruptPayloadError("payload shorter than its header")
        modes = np.unpackbits(buf[:head - 1]).reshape(-1, 2)
        mode = ((modes[:, 0] << 1) | modes[:, 1])[:c]
        if (mode > (_PRED_TOP if r > 1 else _PRED_LEFT)).any() or modes[c:].any():
            raise CorruptPayloadError(f"bad predictor ids {mode.tolist()}")
        nrem = int(buf[head - 1])
        if nrem > 7:
            raise CorruptPayloadError(f"{nrem} remainder planes (at most 7)")
        pos = head
        mask, pos = _unpack(buf, pos, npos, "significance plane")
        n1 = int(np.count_nonzero(mask))
        ge2, pos = _unpack(buf, pos, n1, "level-2 plane")
        idx2 = np.flatnonzero(ge2)
        ge3, pos = _unpack(buf, pos, idx2.size, "level-3 plane")
        idx3 = idx2[ge3]
        rem = np.zeros(idx3.size, np.uint8)
        for b in range(nrem):
            bits, pos = _unpack(buf, pos, idx3.size, f"remainder plane {b}")
            rem |= bits.view(np.uint8) << b
        neg, pos = _unpack(buf, pos, n1, "sign plane")
        if pos != buf.size:
            raise CorruptPayloadError(f"payload has {buf.size} bytes, its planes imply {pos}")
        if rem.size and int(rem.max()) > 125:
            raise CorruptPayloadError("magnitude above 128")
        mag = np.ones(n1, np.uint8)
        mag += ge2.view(np.uint8)
        mag[idx3] += rem + 1
        vals = np.where(neg, 0 - mag, mag).view(np.int8)  # uint8 wrap: 128 -> -128
        yt = np.zeros(npos, np.int8)
        yt[np.flatnonzero(mask)] = vals  # ~2x faster than yt[mask] = vals
        y = _from_tiles(yt.reshape(c, -1), c, r, w, th, tw)
        y = np.ascontiguousarray(y)
        for m, axis in ((_PRED_LEFT, 2), (_PRED_TOP, 1)):
            sel = mode == m
            if sel.all():
                _prefix_sum(y, axis)
            elif sel.any():
                y[sel] = _prefix_sum(y[sel], axis)
        return y.reshape(shape)


# --------------------------------------------------------------------------------------------
# JPEG-LS on a channel mosaic (optional)

_JPEGLS_MAX_SIDE = 65535
_STORED = b"\x00"  # escape: raw channel-planar codes follow (a JPEG-LS stream starts 0xFF)


def _jpegls_backend() -> tuple[Callable[[np.ndarray], bytes], Callable[[bytes], bytes]]:
    """(encode, decode) from pyjpegls, else imagecodecs; ImportError if neither is installed."""
    try:
        import jpeg_ls

        def enc(img: np.ndarray) -> bytes:
            return bytes(jpeg_ls.encode_buffer(img.tobytes(), img.shape[0], img.shape[1], 1, 8))

        def dec(data: bytes) -> bytes:
            return bytes(jpeg_ls.decode_from_buffer(data))

        return enc, dec
    except ImportError:
        pass
    import imagecodecs  # raises ImportError when missing

    if not imagecodecs.JPEGLS.available:
        raise ImportError("imagecodecs was built without JPEG-LS (CharLS)")
    return (lambda img: bytes(imagecodecs.jpegls_encode(img)),
            lambda data: imagecodecs.jpegls_decode(data).tobytes())


def _mosaic_grid(c: int, r: int, w: int) -> tuple[int, int]:
    """(tile rows, tile cols) with product ``c`` giving the squarest mosaic."""
    best = (c, 1)
    for gr in range(1, c + 1):
        if c % gr == 0:
            gc = c // gr
            if abs(math.log(gr * r / (gc * w))) < abs(math.log(best[0] * r / (best[1] * w))):
                best = (gr, gc)
    return best


def _jpegls_dims(data: bytes) -> tuple[int, int, int, int]:
    """(height, width, components, bits) from the SOF55 header of a JPEG-LS stream."""
    if data[:2] != b"\xff\xd8":
        raise CorruptPayloadError("not a JPEG-LS stream (no SOI marker)")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise CorruptPayloadError(f"JPEG-LS marker expected at byte {pos}")
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == 0xF7:  # SOF55
            if pos + 10 > len(data):
                break
            bits = data[pos + 4]
            h = int.from_bytes(data[pos + 5:pos + 7], "big")
            w = int.from_bytes(data[pos + 7:pos + 9], "big")
            return h, w, data[pos + 9], bits
        if marker == 0xF8 and pos + 4 < len(data) and data[pos + 4] in (4,):
            raise CorruptPayloadError("JPEG-LS oversize-dimension marker is not accepted")
        if length < 2:
            raise CorruptPayloadError(f"bad JPEG-LS segment length {length}")
        pos += 2 + length
    raise CorruptPayloadError("JPEG-LS stream has no frame header (SOF55)")


class JpeglsMosaicCoder(_Coder):
    """JPEG-LS (CharLS, NEAR=0) of ``codes + 128`` as one 8-bit grey mosaic of the channels.

    The channels are laid out as a grid of tiles (rows of the 2-D view ``(C, R, W)``), e.g.
    3x4 tiles for C=12 and 6x8 for C=48 at 64x96; the grid is the squarest one and follows
    from the shape. Needs pyjpegls (preferred, 2.7 MB wheel) or imagecodecs.

    Payload: the JPEG-LS stream (starts ``0xFF``), or, when CharLS cannot make it smaller
    than the codes themselves (tiny or incompressible frames), ``0x00`` + the raw codes.
    """

    def __init__(self) -> None:
        self.name = "jpegls"
        self._enc, self._dec = _jpegls_backend()

    def _layout(self, shape: tuple[int, ...]) -> tuple[int, int, int, int, int]:
        c, r, w = _grid(shape)
        gr, gc = _mosaic_grid(c, r, w)
        if gr * r > _JPEGLS_MAX_SIDE or gc * w > _JPEGLS_MAX_SIDE:
            raise ValueError(f"jpegls: mosaic {gr * r}x{gc * w} of shape {shape} exceeds "
                             f"{_JPEGLS_MAX_SIDE} per side; use another coder")
        return c, r, w, gr, gc

    def _encode(self, codes: np.ndarray) -> bytes:
        c, r, w, gr, gc = self._layout(codes.shape)
        u = codes.view(np.uint8).reshape(gr, gc, r, w) ^ np.uint8(0x80)
        img = np.ascontiguousarray(u.transpose(0, 2, 1, 3)).reshape(gr * r, gc * w)
        try:
            out = self._enc(img)
        except Exception:  # CharLS gives up on incompressible images (output buffer too small)
            out = b""
        if not out or len(out) >= 1 + codes.size:
            return _STORED + codes.tobytes()
        return out

    def _decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        c, r, w, gr, gc = self._layout(shape)
        if data[:1] == _STORED:
            if len(data) != 1 + math.prod(shape):
                raise CorruptPayloadError(f"stored payload has {len(data) - 1} bytes, expected "
                                          f"{math.prod(shape)}")
            return np.frombuffer(data, np.int8, offset=1).reshape(shape).copy()
        h, wd, comps, bits = _jpegls_dims(data)
        if data[-2:] != b"\xff\xd9":
            raise CorruptPayloadError("JPEG-LS stream does not end with its EOI marker "
                                      "(truncated or trailing bytes)")
        if (h, wd, comps) != (gr * r, gc * w, 1) or not 2 <= bits <= 8:
            raise CorruptPayloadError(f"JPEG-LS image is {h}x{wd}x{comps} at {bits} bits, "
                                      f"expected {gr * r}x{gc * w}x1 at <= 8 bits")
        try:
            raw = self._dec(data)
        except Exception as e:  # CharLS raises assorted exception types on corrupt input
            raise CorruptPayloadError(f"JPEG-LS decode failed ({type(e).__name__}: {e})") from None
        if len(raw) != math.prod(shape):
            raise CorruptPayloadError(f"JPEG-LS gave {len(raw)} samples, expected "
                                      f"{math.prod(shape)}")
        img = np.frombuffer(raw, np.uint8).reshape(gr, r, gc, w) ^ np.uint8(0x80)
        return np.ascontiguousarray(img.transpose(0, 2, 1, 3)).view(np.int8).reshape(shape)


# --------------------------------------------------------------------------------------------
# context-modelled binary arithmetic coder (native, optional)


class CtxAcCoder(_Coder):
    """Adaptive binary arithmetic coding with contexts from the already-coded neighbours and
    the previous channel: the firmware's portable C coder
    (``firmware_bridge/firmware/src/sc_lossless.c``) through the extension module
    ``encoder_runtime._sclossless``, so the Python runtime, the Cortex-M4 firmware and the
    aarch64 builds write the same bytes. Payload: a format byte (3 = coded, 1 = coded by an
    older version, 0 = stored raw codes), see docs/container-format.md. Unavailable when the
    extension was not built.
    """

    def __init__(self) -> None:
        from . import _sclossless  # ImportError -> CoderUnavailableError

        self.name = "ctx-ac"
        self._native = _sclossless

    def _encode(self, codes: np.ndarray) -> bytes:
        return self._native.encode(codes, *_grid(codes.shape))

    def _decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        raw = self._native.decode(data, *_grid(shape))  # ValueError on a bad payload
        return np.frombuffer(raw, np.int8).reshape(shape).copy()


class RansCoder(_Coder):
    """Static rANS (portable C shared with the firmware, ``firmware_bridge/firmware/src/sc_rans.c``,
    through ``encoder_runtime._sclossless``). Writes format 4: per row, a significance nibble per
    4 codes (context: the nonzero count of the same columns in the row above and the code on the
    left) and the nonzero values only (6 classes of the left / upper magnitudes), per-frame
    12-bit tables with log-scale counts, 8 interleaved 32-bit states with 16-bit
    renormalisation; frames of at most 32768 codes keep format 2 (per-code classes, per-channel
    tables) where that is smaller. Per-channel left differences on 2-D grids. Payload: format
    byte 4 or 2 (0 = stored raw codes), see docs/container-format.md.
    """

    def __init__(self) -> None:
        from . import _sclossless  # ImportError -> CoderUnavailableError

        if not hasattr(_sclossless, "rans_encode_format4"):  # built before rans format 4
            raise ImportError("encoder_runtime._sclossless predates rans format 4; rebuild it")
        self.name = "rans"
        self._native = _sclossless
        self._enc, self._dec = _sclossless.rans_encode, _sclossless.rans_decode

    def _encode(self, codes: np.ndarray) -> bytes:
        return self._enc(codes, *_grid(codes.shape))

    def _decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        raw = self._dec(data, *_grid(shape))  # ValueError on a bad payload
        return np.frombuffer(raw, np.int8).reshape(shape).copy()


# --------------------------------------------------------------------------------------------
# registry

_FACTORIES: dict[str, Callable[[], LosslessCoder]] = {
    "sigplane-zstd": SigplaneZstdCoder,
    "bitplane-zstd": BitplaneZstdCoder,
    "zstd3": lambda: ZstdCoder(3),
    "zstd19": lambda: ZstdCoder(19),
    "jpegls": JpeglsMosaicCoder,
    "ctx-ac": CtxAcCoder,
    "rans": RansCoder,
}
_OPTIONAL_PACKAGE = {"jpegls": "pyjpegls (or imagecodecs)",
                     "ctx-ac": "native extension encoder_runtime._sclossless (pip install with a C compiler)",
                     "rans": "native extension encoder_runtime._sclossless (pip install with a C compiler)"}
_CACHE: dict[str, LosslessCoder] = {}
_CACHE_LOCK = threading.Lock()

#: The coder new streams use: at most the rate of zstd-19 at zstd-1-class encode speed, with
#: numpy + zstandard only (chosen from benchmarks/results/lossless.json).
DEFAULT_CODER = "sigplane-zstd"
#: The coder new bundles name (``coder.default``; their ``coder.fallback`` is DEFAULT_CODER): the
#: context-modelled native coder, 14-34 % smaller than DEFAULT_CODER on every bundled model's codes
#: (benchmarks/results/lossless_bundled.json) at ~1/2-1/3 of its speed.
BUNDLE_CODER = "ctx-ac"


def known_coders() -> list[str]:
    """Every coder id this version knows (some may need an optional package)."""
    return list(_FACTORIES)


def get_coder(name: str) -> LosslessCoder:
    """The coder with stream id ``name``.

    Raises ``ValueError`` naming the known coders for an unknown id, and
    :class:`CoderUnavailableError` (a ``ValueError``) naming the missing package for a known
    coder whose optional dependency is not installed.
    """
    coder = _CACHE.get(name)
    if coder is not None:
        return coder
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"unknown lossless coder {name!r}; known coders: "
                         f"{', '.join(known_coders())}")
    with _CACHE_LOCK:
        if name not in _CACHE:
            try:
                _CACHE[name] = factory()
            except ImportError as e:
                raise CoderUnavailableError(
                    f"lossless coder {name!r} needs the optional package "
                    f"{_OPTIONAL_PACKAGE.get(name, '?')}: {e}") from None
        return _CACHE[name]


def get_coder_or_fallback(name: str, fallback: str | None = DEFAULT_CODER) -> LosslessCoder:
    """``get_coder(name)``, or ``get_coder(fallback)`` with a RuntimeWarning where ``name``'s
    optional package is not installed (e.g. a device without the native extension). Streams name
    their coder, so either choice decodes anywhere that coder is installed."""
    try:
        return get_coder(name)
    except CoderUnavailableError as exc:
        if not fallback or fallback == name:
            raise
        warnings.warn(f"{exc}; encoding with {fallback!r} instead", RuntimeWarning, stacklevel=2)
        return get_coder(fallback)


def available_coders() -> list[str]:
    """Ids of the coders that can run here (optional packages present), default first."""
    out = []
    for name in known_coders():
        try:
            get_coder(name)
        except CoderUnavailableError:
            continue
        out.append(name)
    return out
