"""Pure-Python reference decoder of the ``rans`` bitstream (formats 2 and 4), written from the
format description in ``firmware_bridge/firmware/src/sc_rans.c`` / docs/container-format.md. Slow
(a Python loop per code); tests use it on crops to pin the native coder's bytes."""

from __future__ import annotations

import numpy as np

FORMAT = 2
FORMAT_SIG = 4  # significance nibbles + nonzero values
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


def _quantise(cnt: list[int], zlim: int) -> list[int]:
    """sc_rans.c quantise(): 12-bit frequencies of counts (a lone symbol gets 4095 and its upper
    neighbour 1; the rounding error goes onto the largest), then format 4's rule: a lone last
    symbol's neighbour is the one below it."""
    freq, total = [0] * 256, sum(cnt[:zlim])
    if total == 0:
        return freq
    am = used = sm = 0
    for z in range(zlim):
        if cnt[z]:
            freq[z] = min(max((cnt[z] * M + total // 2) // total, 1), M - 1)
            sm, used = sm + freq[z], used + 1
            am = z if freq[z] > freq[am] else am
    if used == 1:
        freq[am] = M - 1
        freq[am + 1 if am < 255 else am - 1] = 1
    while sm != M and used > 1:  # the same ties as the C loops: strictly larger moves am
        for z in range(zlim):
            am = z if freq[z] > freq[am] else am
        if sm < M:
            freq[am], sm = freq[am] + M - sm, M
        else:
            take = min(sm - M, freq[am] - 1)
            freq[am], sm, am = freq[am] - take, sm - take, 0
            for z in range(zlim):
                am = z if freq[z] > freq[am] else am
            if sm != M and freq[am] == 1:
                raise ValueError("unquantisable counts")
    if freq[zlim] and zlim < 256:
        freq[zlim], freq[zlim - 2] = 0, 1
    return freq


def _sig_tables(data: bytes, pos: int) -> tuple[list[list[int]], int]:
    """Format 4's 16 tables: zmax, then a log-scale count byte q per symbol 0 .. zmax."""
    tabs = []
    for t in range(16):
        zlim, zq = 16 if t < 10 else 255, data[pos]
        if zq >= zlim:
            raise ValueError(f"table {t}: zmax {zq} >= {zlim}")
        q = list(data[pos + 1:pos + 2 + zq])
        if len(q) != zq + 1:
            raise ValueError("truncated table")
        cnt = [v if v < 32 else (16 + v % 16) << (v // 16 - 1) for v in q] + [0] * (256 - len(q))
        tabs.append(_quantise(cnt, zlim))
        pos += 2 + zq
    return tabs, pos


def _pred_flags(data: bytes, pos: int, c: int) -> tuple[list[int], int]:
    nb = (c + 7) // 8
    if len(data) < pos + nb:
        raise ValueError("truncated predictor flags")
    flags = int.from_bytes(data[pos:pos + nb], "little")
    if flags >> c:
        raise ValueError("predictor flags beyond the last channel")
    return [(flags >> ch) & 1 for ch in range(c)], pos + nb


class _States:
    """``nlane`` interleaved rANS states read from ``data`` at ``pos`` (symbol j: state j % nlane),
    refilled by ``word`` bytes (little endian) below ``low``."""

    def __init__(self, data: bytes, pos: int, nlane: int, low: int, word: int) -> None:
        if len(data) - pos < 4 * nlane:
            raise ValueError("truncated states")
        self.st = [int.from_bytes(data[pos + 4 * j:pos + 4 * j + 4], "little") for j in range(nlane)]
        if any(not low <= s < low << (8 * word) for s in self.st):
            raise ValueError("state out of range")
        self.data, self.pos, self.low, self.word, self.i = data, pos + 4 * nlane, low, word, 0

    def get(self, f: list[int], cum: list[int]) -> int:
        lane = self.i % len(self.st)
        s = self.st[lane]
        slot = s & (M - 1)
        z = int(np.searchsorted(cum, slot, side="right")) - 1
        if f[z] == 0:
            raise ValueError("slot in an empty table")
        s = f[z] * (s >> PROB_BITS) + slot - cum[z]
        while s < self.low:
            if self.pos + self.word > len(self.data):
                raise ValueError("truncated")
            s = (s << (8 * self.word)) | int.from_bytes(self.data[self.pos:self.pos + self.word], "little")
            self.pos += self.word
        self.st[lane] = s
        self.i += 1
        return z

    def finish(self) -> None:
        if self.pos != len(self.data) or any(s != self.low for s in self.st):
            raise ValueError(f"trailing bytes or final states != {self.low}")


def _decode_sig(data: bytes, grid: tuple[int, int, int]) -> np.ndarray:
    """Format 4: per row, nibbles of 4 columns: a mask symbol (table 2 popcount(T nibble) + the
    left column's y != 0), then the value symbols zig(y) - 1 of its set bits (table 10 + k6)."""
    c, rows, cols = grid
    if data[1] & ~8 or (data[1] & 8 and rows < 2):
        raise ValueError("bad config byte")
    pred, pos = ([0] * c, 2)
    if data[1] & 8:
        pred, pos = _pred_flags(data, pos, c)
    tabs, pos = _sig_tables(data, pos)
    cums = [np.concatenate([[0], np.cumsum(f)]).tolist() for f in tabs]
    st = _States(data, pos, 8, 1 << 15, 2)
    out = np.zeros(grid, np.int64)
    y = np.zeros(grid, np.int64)  # the coded values (codes or left differences)
    for ch in range(c):
        for r in range(rows):
            tch, tr = (ch, r - 1) if rows > 1 else (ch - 1, r)
            for x0 in range(0, cols, 4):
                u = sum(1 for x in range(x0, min(x0 + 4, cols)) if tr >= 0 and tch >= 0 and y[tch, tr, x])
                t = 2 * u + int(x0 > 0 and y[ch, r, x0 - 1] != 0)
                nib = st.get(tabs[t], cums[t])
                if nib >> min(4, cols - x0):
                    raise ValueError("mask bit beyond the row")
                for b in range(4):
                    if nib >> b & 1:
                        x = x0 + b
                        s = (abs(y[ch, r, x - 1]) if x else 0) + (abs(y[tch, tr, x]) if tr >= 0 and tch >= 0 else 0)
                        t = 10 + K6[min(s, 8)]
                        z = st.get(tabs[t], cums[t]) + 1
                        y[ch, r, x] = (z + 1) // -2 if z & 1 else z // 2
            for x in range(cols):
                left = out[ch, r, x - 1] if pred[ch] and x else 0
                out[ch, r, x] = (y[ch, r, x] + left + 128) % 256 - 128
    st.finish()
    return out.astype(np.int8)


def decode(data: bytes, grid: tuple[int, int, int]) -> np.ndarray:
    """Codes (C, rows, cols) int8 of a ``rans`` payload; ValueError / IndexError on bad input."""
    c, rows, cols = grid
    n = c * rows * cols
    if data[0] == STORED:
        if len(data) != n + 1:
            raise ValueError("stored payload of the wrong size")
        return np.frombuffer(data, np.int8, offset=1).reshape(grid).copy()
    if data[0] == FORMAT_SIG and len(data) <= n:
        return _decode_sig(data, grid)
    if data[0] != FORMAT or data[1] & ~15:
        raise ValueError("bad format or config byte")
    scheme, per_ch = data[1] & 3, (data[1] >> 2) & 1
    if per_ch and c == 1:
        raise ValueError("per-channel tables for one channel")
    nk = NCLASS[scheme]
    pred, pos = [0] * c, 2
    if data[1] & 8:
        pred, pos = _pred_flags(data, pos, c)
    tabs, pos = _tables(data, pos, (c if per_ch else 1) * nk)
    cums = [np.concatenate([[0], np.cumsum(f)]).tolist() for f in tabs]
    st = _States(data, pos, 4, L, 1)
    out = np.zeros(grid, np.int64)

    def y(ch: int, r: int, x: int) -> int:  # the coded value: code, or wrapped left difference
        d = int(out[ch, r, x]) - (int(out[ch, r, x - 1]) if pred[ch] and x else 0)
        return (d + 128) % 256 - 128

    for ch in range(c):
        for r in range(rows):
            for x in range(cols):
                left = abs(y(ch, r, x - 1)) if x else 0
                if rows > 1:
                    top = abs(y(ch, r - 1, x)) if r else 0
                else:
                    top = abs(y(ch - 1, r, x)) if ch else 0
                t = (ch if per_ch else 0) * nk + MERGE[scheme][K6[min(left + top, 8)]]
                z = st.get(tabs[t], cums[t])
                v = (z + 1) // -2 if z & 1 else z // 2
                if pred[ch] and x:
                    v = (v + int(out[ch, r, x - 1]) + 128) % 256 - 128
                out[ch, r, x] = v
    st.finish()
    return out.astype(np.int8)
