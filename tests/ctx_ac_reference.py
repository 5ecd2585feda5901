"""Pure-Python reference of the ``ctx-ac`` bitstream (format 3, and format 1 that it extends),
written from the format description in ``firmware_bridge/firmware/src/sc_lossless.c`` /
docs/container-format.md.

Slow (a few microseconds per binary decision) and meant only for tests: it checks that the
native coder writes exactly the documented bitstream (``encode`` must give the C encoder's
bytes, ``decode`` must read them back). One walk over the codes (``_scan``: contexts and
binarisation) serves both directions: the writer codes the given bits, the reader decodes
them. Raises ``ValueError`` on malformed payloads.
"""

from __future__ import annotations

import numpy as np

FORMAT_STORED, FORMAT_AC, FORMAT_RUN = 0, 1, 3
NCLS, NPREV, NACT, NUNARY, ESC_BITS, ESC_BITS3, RATE, SLOW = 10, 3, 3, 14, 7, 8, 4, 2
RUN, NRUN = 16, 72  # format 3: block length, block-flag contexts
SIGN_AT = NCLS * NPREV * NACT
MAG_AT = SIGN_AT + 9
ESC_AT = MAG_AT + NCLS * NACT * NUNARY
RUN_AT = ESC_AT + ESC_BITS3
PRED_AT = RUN_AT + NRUN
NSLOTS = PRED_AT + 1
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


class _Interval:
    """The carry-less coder's bounds [x1, x2], shared by the encoder and the decoder."""

    def __init__(self, model: _Model) -> None:
        self.m, self.x1, self.x2 = model, 0, 0xFFFFFFFF

    def split(self, i: int) -> int:
        return self.x1 + (((self.x2 - self.x1) * self.m.prob(i)) >> 16)

    def narrow(self, i: int, bit: int, xmid: int) -> list[int]:
        """Keeps the half of ``bit``, adapts slot i; returns the equal top bytes shifted out."""
        if bit:
            self.x2 = xmid
        else:
            self.x1 = xmid + 1
        self.m.update(i, bit)
        shifted = []
        while not ((self.x1 ^ self.x2) & 0xFF000000):
            shifted.append(self.x2 >> 24)
            self.x1 = (self.x1 << 8) & 0xFFFFFFFF
            self.x2 = ((self.x2 << 8) & 0xFFFFFFFF) | 255
        return shifted


class _Writer(_Interval):
    def __init__(self, model: _Model) -> None:
        super().__init__(model)
        self.out = bytearray()

    def bit(self, i: int, b: int) -> int:
        """Codes bit b in slot i; returns it."""
        self.out += bytes(self.narrow(i, b, self.split(i)))
        return b


class _Reader(_Interval):
    def __init__(self, model: _Model, buf: bytes) -> None:
        super().__init__(model)
        self.buf, self.x, self.pos = buf, int.from_bytes(buf[:4], "big"), 4

    def bit(self, i: int, _b: int = 0) -> int:
        """Decodes the bit of slot i (``_b``, the encoder's argument, is ignored)."""
        xmid = self.split(i)
        b = int(self.x <= xmid)
        for _ in self.narrow(i, b, xmid):
            if self.pos >= len(self.buf):
                raise ValueError("payload truncated")
            self.x = ((self.x << 8) & 0xFFFFFFFF) | self.buf[self.pos]
            self.pos += 1
        return b


def _code_value(io: _Writer | _Reader, ctx: tuple[int, int, int], v: int, esc: int,
                implied: bool = False) -> int:
    """Codes (writer) or decodes (reader; ``v`` is ignored) one value: the binarisation (the
    zero flag left out when it is ``implied`` to be 1; ``esc`` escape bits)."""
    zc, sc, mc = ctx
    if not implied and not io.bit(zc, int(v != 0)):
        return 0
    neg, mag = io.bit(sc, int(v < 0)), abs(v)
    for j in range(1, NUNARY + 1):
        if not io.bit(mc + j - 1, int(mag > j)):
            return -j if neg else j
    e = 0
    for j in range(esc):
        e = (e << 1) | io.bit(ESC_AT + j, ((mag - NUNARY - 1) >> (esc - 1 - j)) & 1)
    mag = NUNARY + 1 + e
    return -mag if neg else mag


def _diffs(plane: list[list[int]]) -> list[list[int]]:
    """Left differences D of a plane's rows (D(0) = the code)."""
    return [[row[0]] + [row[x] - row[x - 1] for x in range(1, len(row))] for row in plane]


def choose_pred(plane: list[list[int]]) -> int:
    """A predictor flag for a channel: sum |D| below sum |code| and, with more than one row, at
    most half the sum of |code - code above| (row 0 against zeros). The native encoder decides
    the same way, and also tries both flags on channels where sum |D| is below that sum but
    above its half (not replicated here: the flag is the encoder's choice, see ``encode``)."""
    sv = sum(abs(v) for row in plane for v in row)
    sd = sum(abs(v) for row in _diffs(plane) for v in row)
    st = sum(abs(v) for v in plane[0]) + sum(
        abs(a - b) for r in range(1, len(plane)) for a, b in zip(plane[r], plane[r - 1]))
    return int(sd < sv and (len(plane) == 1 or 2 * sd <= st))


def _block_slot(up: list[int] | None, prev: list[int] | None, x0: int, n: int) -> int:
    """Format 3 block-flag slot less the activity / left-block terms (D rows)."""
    def nz(row: list[int], a: int, b: int) -> int:
        return min(sum(v != 0 for v in row[max(a, 0):b]), 2)

    if up is None:
        return RUN_AT + 9 + (nz(prev, x0 - 1, x0 + n + 1) if prev is not None else 0)
    return RUN_AT + 3 * nz(up, x0 - 1, x0 + n + 1) + (nz(prev, x0, x0 + n) if prev is not None else 0)


def _scan(shape: tuple[int, int, int], io: _Writer | _Reader, fmt: int,
          src: list | None = None, preds: list[int] | None = None) -> list:
    """Walks the codes in coding order: codes ``src`` (writer) or decodes them (reader). The
    contexts read the coded values D (the codes, or with a channel's predictor flag their left
    differences); format 3 with rows of at least RUN codes adds the flags (the writer's are
    ``preds``, else :func:`choose_pred`'s; the reader appends them to ``preds``) and, with rows
    of at least 2 RUN codes, the blocks."""
    c_n, rows, cols = shape
    fmt3 = fmt == FORMAT_RUN and cols >= RUN
    blocks = fmt3 and cols >= 2 * RUN
    out = [[[0] * cols for _ in range(rows)] for _ in range(c_n)]
    dv = [[[0] * cols for _ in range(rows)] for _ in range(c_n)]
    act = 0
    for c in range(c_n):
        pred = 0
        if fmt3:
            pred = io.bit(PRED_AT, (preds[c] if preds else choose_pred(src[c])) if src else 0)
            if not src and preds is not None:
                preds.append(pred)
        want = (_diffs(src[c]) if pred else src[c]) if src else None
        esc = ESC_BITS3 if pred else ESC_BITS
        for r in range(rows):
            cur, codes = dv[c][r], out[c][r]
            up = dv[c][r - 1] if r else None
            prev = dv[c - 1][r] if c else None
            left = 0
            for x0 in range(0, cols, RUN):  # (format 1: the same walk, in chunks)
                n = min(RUN, cols - x0)
                nonzero = not blocks  # False: the last zero flag is implied while all were 0
                if blocks:
                    a = 0 if act < 64 else (1 if act < 256 else 2)
                    flag = int(any(want[r][x0:x0 + n])) if want else 0
                    left = io.bit(_block_slot(up, prev, x0, n) + 12 * (a + 3 * left), flag)
                    if not left:  # all D = 0
                        for x in range(x0, x0 + n):
                            codes[x] = codes[x - 1] if pred and x else 0
                            act -= act >> 3
                        continue
                for x in range(x0, x0 + n):
                    implied = not nonzero and x == x0 + n - 1
                    v = _code_value(io, _contexts(cur, up, prev, x, act),
                                    want[r][x] if want else 0, esc, implied)
                    nonzero = nonzero or v != 0
                    code = v + (codes[x - 1] if pred and x else 0)
                    if not -128 <= code <= 127:
                        raise ValueError("decoded value outside int8")
                    cur[x], codes[x] = v, code
                    act += (abs(v) << 5) - (act >> 3)
    return out


def encode(codes: np.ndarray, fmt: int = FORMAT_RUN, preds: list[int] | None = None) -> bytes:
    """The format-``fmt`` (3 or 1) payload of int8 codes (C, rows, cols) with the predictor
    flags ``preds`` (format 3; default :func:`choose_pred`'s), or the stored form when not
    smaller."""
    codes = np.ascontiguousarray(codes, np.int8)
    w = _Writer(_Model())
    _scan(codes.shape, w, fmt, codes.tolist(), preds)
    if len(w.out) + 4 >= codes.size:
        return bytes([FORMAT_STORED]) + codes.tobytes()
    return bytes([fmt]) + bytes(w.out) + w.x1.to_bytes(4, "big")


def decode(data: bytes, shape: tuple[int, int, int], preds: list[int] | None = None) -> np.ndarray:
    """int8 codes (C, rows, cols) of a payload (a format-3 payload's predictor flags are
    appended to ``preds`` if given); ValueError on malformed input."""
    n = shape[0] * shape[1] * shape[2]
    if not data:
        raise ValueError("payload truncated")
    if data[0] == FORMAT_STORED:
        if len(data) != n + 1:
            raise ValueError(f"stored payload has {len(data) - 1} bytes, expected {n}")
        return np.frombuffer(data, np.int8, offset=1).reshape(shape).copy()
    if data[0] not in (FORMAT_AC, FORMAT_RUN):
        raise ValueError(f"unknown format byte {data[0]}")
    if len(data) < 5:
        raise ValueError("payload truncated")
    if len(data) > n:
        raise ValueError("bytes after the last code")
    rd = _Reader(_Model(), data[1:])
    out = _scan(shape, rd, data[0], preds=preds)
    if rd.pos != len(rd.buf):
        raise ValueError("bytes after the last code")
    return np.array(out, np.int8).reshape(shape)


def pred_flags(data: bytes, shape: tuple[int, int, int]) -> list[int]:
    """The predictor flags a format-3 payload carries (empty for other formats and narrow rows)."""
    preds: list[int] = []
    if data[:1] == bytes([FORMAT_RUN]):
        decode(data, shape, preds)
    return preds
