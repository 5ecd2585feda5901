"""Pure-Python reference decoder of the ``rans`` bitstream (format 2), written from the format
description in ``firmware_bridge/firmware/src/sc_rans.c`` / docs/container-format.md. Slow
(a Python loop per code); tests use it on crops to pin the native coder's bytes."""

from __future__ import annotations

import numpy as np

FORMAT = 2
STORED = 0
PROB_BITS = 12
M = 1 << PROB_BITS
L = 1 << 23
NCLASS = (1, 2, 3, 6)
MERGE = ((0, 0, 0, 0, 0, 0), (0, 1, 1, 1, 1, 1), (0, 1, 1, 2, 2, 2), (0, 1, 2, 3, 4, 5))
K6 = (0, 1, 2, 3, 3, 4, 4, 4, 5)


def _tables(data: bytes, pos: int, ntab: int) -> tuple[list[list[int]], int]:
    tabs = []
    for _ in range(ntab):
        zmax = data[pos]
        pos += 1
        f = [0] * 256
        for z in range(zmax + 1):
            v = data[pos]
            pos += 1
            if v & 0x80:
                v = (v & 127) | (data[pos] << 7)
                pos += 1
            if v > M - 1:
                raise ValueError(f"frequency {v} > {M - 1}")
            f[z] = v
        if sum(f) not in (0, M):
            raise ValueError(f"table sums to {sum(f)}, expected 0 or {M}")
        tabs.append(f)
    return tabs, pos


def decode(data: bytes, grid: tuple[int, int, int]) -> np.ndarray:
    """Codes (C, rows, cols) int8 of a ``rans`` payload; ValueError / IndexError on bad input."""
    c, rows, cols = grid
    n = c * rows * cols
    if data[0] == STORED:
        if len(data) != n + 1:
            raise ValueError("stored payload of the wrong size")
        return np.frombuffer(data, np.int8, offset=1).reshape(grid).copy()
    if data[0] != FORMAT or data[1] & ~15:
        raise ValueError("bad format or config byte")
    scheme, per_ch = data[1] & 3, (data[1] >> 2) & 1
    if per_ch and c == 1:
        raise ValueError("per-channel tables for one channel")
    nk = NCLASS[scheme]
    pred, pos = [0] * c, 2
    if data[1] & 8:
        nb = (c + 7) // 8
        if len(data) < pos + nb:
            raise ValueError("truncated predictor flags")
        flags = int.from_bytes(data[pos:pos + nb], "little")
        if flags >> c:
            raise ValueError("predictor flags beyond the last channel")
        pred = [(flags >> ch) & 1 for ch in range(c)]
        pos += nb
    tabs, pos = _tables(data, pos, (c if per_ch else 1) * nk)
    cums = [np.concatenate([[0], np.cumsum(f)]).tolist() for f in tabs]
    if len(data) - pos < 16:
        raise ValueError("truncated states")
    st = [int.from_bytes(data[pos + 4 * j:pos + 4 * j + 4], "little") for j in range(4)]
    pos += 16
    if any(not L <= s < L << 8 for s in st):
        raise ValueError("state out of range")
    out = np.zeros(grid, np.int64)

    def y(ch: int, r: int, x: int) -> int:  # the coded value: code, or wrapped left difference
        d = int(out[ch, r, x]) - (int(out[ch, r, x - 1]) if pred[ch] and x else 0)
        return (d + 128) % 256 - 128

    i = 0
    for ch in range(c):
        for r in range(rows):
            for x in range(cols):
                left = abs(y(ch, r, x - 1)) if x else 0
                if rows > 1:
                    top = abs(y(ch, r - 1, x)) if r else 0
                else:
                    top = abs(y(ch - 1, r, x)) if ch else 0
                t = (ch if per_ch else 0) * nk + MERGE[scheme][K6[min(left + top, 8)]]
                f, cum = tabs[t], cums[t]
                s = st[i & 3]
                slot = s & (M - 1)
                z = int(np.searchsorted(cum, slot, side="right")) - 1
                if f[z] == 0:
                    raise ValueError("slot in an empty table")
                s = f[z] * (s >> PROB_BITS) + slot - cum[z]
                while s < L:
                    if pos >= len(data):
                        raise ValueError("truncated")
                    s = (s << 8) | data[pos]
                    pos += 1
                st[i & 3] = s
                v = (z + 1) // -2 if z & 1 else z // 2
                if pred[ch] and x:
                    v = (v + int(out[ch, r, x - 1]) + 128) % 256 - 128
                out[ch, r, x] = v
                i += 1
    if pos != len(data) or st != [L] * 4:
        raise ValueError("trailing bytes or final states != 2^23")
    return out.astype(np.int8)
