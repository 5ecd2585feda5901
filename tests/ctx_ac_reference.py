"""Pure-Python reference of the ``ctx-ac`` bitstream (format 1), written from the format
description in ``firmware_bridge/firmware/src/sc_lossless.c`` / docs/container-format.md.

Slow (a few microseconds per binary decision) and meant only for tests: it checks that the
native coder writes exactly the documented bitstream (``encode`` must give the C encoder's
bytes, ``decode`` must read them back). Raises ``ValueError`` on malformed payloads.
"""

from __future__ import annotations

import numpy as np

FORMAT_STORED, FORMAT_AC = 0, 1
NCLS, NPREV, NACT, NUNARY, ESC_BITS, RATE, SLOW = 10, 3, 3, 14, 7, 4, 2
SIGN_AT = NCLS * NPREV * NACT
MAG_AT = SIGN_AT + 9
ESC_AT = MAG_AT + NCLS * NACT * NUNARY
NSLOTS = ESC_AT + ESC_BITS
_BOUNDS = (0, 1, 3, 5, 7, 10, 15, 23, 35, 56)  # first sum of each neighbour class
K_CLASS = [sum(s >= b for b in _BOUNDS) - 1 for s in range(64)]


class _Model:
    def __init__(self) -> None:
        self.fast = [32768] * NSLOTS
        self.slow = [32768] * NSLOTS
        self.n = [0] * NSLOTS

    def prob(self, i: int) -> int:
        return (self.fast[i] + self.slow[i] + 1) >> 1

    def update(self, i: int, bit: int) -> None:
        sh = 1 + self.n[i] // 2
        if sh >= RATE:
            sh = RATE
        else:
            self.n[i] += 1
        p, q = self.fast[i], self.slow[i]
        if bit:
            self.fast[i] = p + ((65536 - p) >> sh)
            self.slow[i] = q + ((65536 - q) >> (sh + SLOW))
        else:
            self.fast[i] = p - (p >> sh)
            self.slow[i] = q - (q >> (sh + SLOW))


def _sgn(v: int) -> int:
    return 1 if v > 0 else (2 if v < 0 else 0)


def _contexts(cur: list[int], up: list[int] | None, prev: list[int] | None, x: int,
              act: int) -> tuple[int, int, int]:
    cols = len(cur)
    if up is not None:
        t = up[x]
        l = cur[x - 1] if x > 0 else t
        d1 = up[x - 1] if x > 0 else t
        d2 = up[x + 1] if x + 1 < cols else t
        s = 2 * (abs(l) + abs(t)) + abs(d1) + abs(d2)
    else:
        l = cur[x - 1] if x > 0 else 0
        t = cur[x - 2] if x > 1 else 0
        s = 2 * (abs(l) + abs(t)) + (abs(cur[x - 3]) if x > 2 else 0)
        if prev is not None:
            s += (2 * abs(prev[x]) + (abs(prev[x - 1]) if x > 0 else 0)
                  + (abs(prev[x + 1]) if x + 1 < cols else 0))
    k = K_CLASS[min(s, 63)]
    p = min(abs(prev[x]), 2) if prev is not None else 0
    a = 0 if act < 64 else (1 if act < 256 else 2)
    return (k * NPREV + p) * NACT + a, SIGN_AT + _sgn(l) * 3 + _sgn(t), MAG_AT + (k * NACT + a) * NUNARY


def _scan(shape: tuple[int, int, int], code_at):
    """Walk the codes in coding order, calling ``code_at(ctx, c, r, x) -> value``."""
    c_n, rows, cols = shape
    out = [[[0] * cols for _ in range(rows)] for _ in range(c_n)]
    act = 0
    for c in range(c_n):
        for r in range(rows):
            cur = out[c][r]
            up = out[c][r - 1] if r else None
            prev = out[c - 1][r] if c else None
            for x in range(cols):
                v = code_at(_contexts(cur, up, prev, x, act), c, r, x)
                cur[x] = v
                act += (abs(v) << 5) - (act >> 3)
    return out


def encode(codes: np.ndarray) -> bytes:
    """The format-1 payload of int8 codes (C, rows, cols), or the stored form when not smaller."""
    codes = np.ascontiguousarray(codes, np.int8)
    n = codes.size
    vals = codes.tolist()
    m, out = _Model(), bytearray()
    st = {"x1": 0, "x2": 0xFFFFFFFF}

    def bit(i: int, b: int) -> None:
        x1, x2 = st["x1"], st["x2"]
        xmid = x1 + (((x2 - x1) * m.prob(i)) >> 16)
        if b:
            x2 = xmid
        else:
            x1 = xmid + 1
        m.update(i, b)
        while not ((x1 ^ x2) & 0xFF000000):
            out.append(x2 >> 24)
            x1, x2 = (x1 << 8) & 0xFFFFFFFF, ((x2 << 8) & 0xFFFFFFFF) | 255
        st["x1"], st["x2"] = x1, x2

    def code_at(ctx, c, r, x):
        v = vals[c][r][x]
        zc, sc, mc = ctx
        bit(zc, v != 0)
        if v:
            bit(sc, v < 0)
            mag = abs(v)
            for j in range(1, NUNARY + 1):
                bit(mc + j - 1, mag > j)
                if mag <= j:
                    break
            else:
                e = mag - NUNARY - 1
                for j in range(ESC_BITS):
                    bit(ESC_AT + j, (e >> (ESC_BITS - 1 - j)) & 1)
        return v

    _scan(codes.shape, code_at)
    if len(out) + 4 >= n:
        return bytes([FORMAT_STORED]) + codes.tobytes()
    return bytes([FORMAT_AC]) + bytes(out) + st["x1"].to_bytes(4, "big")


def decode(data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """int8 codes (C, rows, cols) of a payload; ValueError on malformed input."""
    n = shape[0] * shape[1] * shape[2]
    if not data:
        raise ValueError("payload truncated")
    if data[0] == FORMAT_STORED:
        if len(data) != n + 1:
            raise ValueError(f"stored payload has {len(data) - 1} bytes, expected {n}")
        return np.frombuffer(data, np.int8, offset=1).reshape(shape).copy()
    if data[0] != FORMAT_AC:
        raise ValueError(f"unknown format byte {data[0]}")
    if len(data) < 5:
        raise ValueError("payload truncated")
    if len(data) > n:
        raise ValueError("bytes after the last code")
    buf = data[1:]
    m = _Model()
    st = {"x1": 0, "x2": 0xFFFFFFFF, "x": int.from_bytes(buf[:4], "big"), "pos": 4}

    def bit(i: int) -> int:
        x1, x2, xv = st["x1"], st["x2"], st["x"]
        xmid = x1 + (((x2 - x1) * m.prob(i)) >> 16)
        b = int(xv <= xmid)
        if b:
            x2 = xmid
        else:
            x1 = xmid + 1
        m.update(i, b)
        while not ((x1 ^ x2) & 0xFF000000):
            x1, x2 = (x1 << 8) & 0xFFFFFFFF, ((x2 << 8) & 0xFFFFFFFF) | 255
            if st["pos"] >= len(buf):
                raise ValueError("payload truncated")
            xv = ((xv << 8) & 0xFFFFFFFF) | buf[st["pos"]]
            st["pos"] += 1
        st["x1"], st["x2"], st["x"] = x1, x2, xv
        return b

    def code_at(ctx, c, r, x):
        zc, sc, mc = ctx
        if not bit(zc):
            return 0
        neg = bit(sc)
        for mag in range(1, NUNARY + 1):
            if not bit(mc + mag - 1):
                return -mag if neg else mag
        e = 0
        for j in range(ESC_BITS):
            e = (e << 1) | bit(ESC_AT + j)
        mag = NUNARY + 1 + e
        if mag > 128 or (mag == 128 and not neg):
            raise ValueError("decoded value outside int8")
        return -mag if neg else mag

    out = _scan(shape, code_at)
    if st["pos"] != len(buf):
        raise ValueError("bytes after the last code")
    return np.array(out, np.int8).reshape(shape)
