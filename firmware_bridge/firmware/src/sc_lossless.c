/* sc_lossless: context-modelled binary arithmetic coder for int8 latent codes.
 *
 * Bitstream (format byte 1), per code v in channel-major, row-major order:
 *   zero flag  (v != 0)            context: neighbour class k (0..9) x previous-channel class (0..2)
 *   sign       (v < 0)             context: signs of the left and top neighbours (3 x 3)
 *   magnitude  m = |v| (1..128):   unary bins (m > j) for j = 1..14, context (k, j);
 *                                  if m >= 15, e = m - 15 as 7 bits MSB-first, context: bit index
 * Neighbours (already coded, same channel): L = left, T = top, TL/TR = top-left/top-right, with
 * rows == 1 (1-D signals) or row 0 using L2 = two to the left as T and TL = TR = 0; missing
 * neighbours at the left/right border repeat the top one (0 when there is no row above).
 * s = 2(|L| + |T|) + |TL| + |TR| (capped at 63) maps to class k through a fixed table; the
 * previous-channel class is min(|v'|, 2) of the co-located code of channel c - 1 (0 for c = 0).
 * Probabilities are 16-bit P(bit = 1), start at 1/2 and move 1/32 of the way to each coded
 * bit. The arithmetic coder is a carry-less binary coder on 32-bit bounds [x1, x2]: the split
 * is x1 + ((x2 - x1) * p >> 16); a 1 keeps the low part; equal top bytes are shifted out;
 * the encoder flushes x1 as 4 big-endian bytes.
 */
#include "sc_lossless.h"

#include <string.h>

#define NCLS 10
#define NPREV 3
#define NUNARY 14
#define ESC_BITS 7
#define RATE 5

typedef struct {
    uint16_t zero[NCLS * NPREV];
    uint16_t sign[9];
    uint16_t mag[NCLS * NUNARY];
    uint16_t esc[ESC_BITS];
} model_t;

static const uint8_t k_class[64] = {
    0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8,
    9, 9, 9, 9, 9, 9, 9, 9};

static void model_init(model_t *m)
{
    size_t i;
    uint16_t *p = (uint16_t *)m;
    for (i = 0; i < sizeof(*m) / sizeof(uint16_t); i++) p[i] = 32768u;
}

static unsigned iabs8(int v) { return (unsigned)(v < 0 ? -v : v); }
static unsigned sgn3(int v) { return v > 0 ? 1u : (v < 0 ? 2u : 0u); }

/* Contexts of position x of a row. cur = the row being coded, up = the row above (NULL on
 * row 0), prev = co-located row of the previous channel (NULL for channel 0). */
typedef struct { unsigned zc, sc, mc; } ctx_t;

static ctx_t contexts(const int8_t *cur, const int8_t *up, const int8_t *prev, uint32_t x,
                      uint32_t cols)
{
    int l, t, tl, tr;
    unsigned s, k, pc;
    ctx_t c;
    if (up) {
        t = up[x];
        l = x > 0 ? cur[x - 1] : t;
        tl = x > 0 ? up[x - 1] : t;
        tr = x + 1 < cols ? up[x + 1] : t;
    } else {
        l = x > 0 ? cur[x - 1] : 0;
        t = x > 1 ? cur[x - 2] : 0;
        tl = tr = 0;
    }
    s = 2u * (iabs8(l) + iabs8(t)) + iabs8(tl) + iabs8(tr);
    k = k_class[s > 63 ? 63 : s];
    pc = prev ? iabs8(prev[x]) : 0u;
    pc = pc > 2 ? 2u : pc;
    c.zc = k * NPREV + pc;
    c.sc = sgn3(l) * 3u + sgn3(t);
    c.mc = k * NUNARY;
    return c;
}

/* ---------------------------------------------------------------------------------------- */
/* encoder */

typedef struct {
    uint32_t x1, x2;
    uint8_t *buf;
    size_t pos, cap;
    int full;
} enc_t;

static void enc_bit(enc_t *e, uint16_t *p, unsigned bit)
{
    uint32_t xmid = e->x1 + (uint32_t)(((uint64_t)(e->x2 - e->x1) * *p) >> 16);
    if (bit) {
        e->x2 = xmid;
        *p = (uint16_t)(*p + ((65536u - *p) >> RATE));
    } else {
        e->x1 = xmid + 1u;
        *p = (uint16_t)(*p - (*p >> RATE));
    }
    while (((e->x1 ^ e->x2) & 0xFF000000u) == 0) {
        if (e->pos < e->cap) e->buf[e->pos++] = (uint8_t)(e->x2 >> 24);
        else e->full = 1;
        e->x1 <<= 8;
        e->x2 = (e->x2 << 8) | 255u;
    }
}

static void enc_code(enc_t *e, model_t *m, ctx_t c, int v)
{
    unsigned mag, j;
    enc_bit(e, &m->zero[c.zc], v != 0);
    if (v == 0) return;
    enc_bit(e, &m->sign[c.sc], v < 0);
    mag = iabs8(v);
    for (j = 1; j <= NUNARY; j++) {
        enc_bit(e, &m->mag[c.mc + j - 1], mag > j);
        if (mag <= j) return;
    }
    mag -= NUNARY + 1;
    for (j = 0; j < ESC_BITS; j++) enc_bit(e, &m->esc[j], (mag >> (ESC_BITS - 1 - j)) & 1u);
}

static int dims(uint32_t channels, uint32_t rows, uint32_t cols, size_t *n)
{
    size_t plane;
    if (channels == 0 || rows == 0 || cols == 0) return SC_LL_E_ARG;
    if ((size_t)rows > (size_t)-1 / cols) return SC_LL_E_ARG;
    plane = (size_t)rows * cols;
    if (plane > ((size_t)-1 - 1) / channels) return SC_LL_E_ARG;
    *n = plane * channels;
    return SC_LL_OK;
}

size_t sc_ll_bound(size_t n) { return n == (size_t)-1 ? 0 : n + 1; }

int sc_ll_encode(const int8_t *codes, uint32_t channels, uint32_t rows, uint32_t cols,
                 uint8_t *out, size_t cap, size_t *out_len)
{
    model_t m;
    enc_t e;
    size_t n, plane;
    uint32_t ch, r, x;
    int st;
    if (!codes || !out || !out_len) return SC_LL_E_ARG;
    if ((st = dims(channels, rows, cols, &n)) != SC_LL_OK) return st;
    if (cap < n + 1) return SC_LL_E_SPACE;
    plane = (size_t)rows * cols;
    model_init(&m);
    e.x1 = 0;
    e.x2 = 0xFFFFFFFFu;
    e.buf = out + 1;
    e.pos = 0;
    e.cap = n > 4 ? n - 4 : 0; /* coded bytes + 4 flush bytes must stay below n */
    e.full = 0;
    for (ch = 0; ch < channels && !e.full; ch++) {
        const int8_t *plane_p = codes + ch * plane;
        const int8_t *prev_p = ch ? plane_p - plane : NULL;
        for (r = 0; r < rows && !e.full; r++) {
            const int8_t *cur = plane_p + (size_t)r * cols;
            const int8_t *up = r ? cur - cols : NULL;
            const int8_t *prev = prev_p ? prev_p + (size_t)r * cols : NULL;
            for (x = 0; x < cols; x++) enc_code(&e, &m, contexts(cur, up, prev, x, cols), cur[x]);
        }
    }
    if (e.full || e.pos + 4 >= n) { /* not smaller than the raw codes: store them */
        out[0] = SC_LL_FORMAT_STORED;
        memcpy(out + 1, codes, n);
        *out_len = n + 1;
        return SC_LL_OK;
    }
    out[0] = SC_LL_FORMAT_AC;
    e.buf[e.pos++] = (uint8_t)(e.x1 >> 24);
    e.buf[e.pos++] = (uint8_t)(e.x1 >> 16);
    e.buf[e.pos++] = (uint8_t)(e.x1 >> 8);
    e.buf[e.pos++] = (uint8_t)e.x1;
    *out_len = e.pos + 1;
    return SC_LL_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* decoder */

typedef struct {
    uint32_t x1, x2, x;
    const uint8_t *buf;
    size_t pos, len;
    int trunc;
} dec_t;

static unsigned dec_bit(dec_t *d, uint16_t *p)
{
    uint32_t xmid = d->x1 + (uint32_t)(((uint64_t)(d->x2 - d->x1) * *p) >> 16);
    unsigned bit = d->x <= xmid;
    if (bit) {
        d->x2 = xmid;
        *p = (uint16_t)(*p + ((65536u - *p) >> RATE));
    } else {
        d->x1 = xmid + 1u;
        *p = (uint16_t)(*p - (*p >> RATE));
    }
    while (((d->x1 ^ d->x2) & 0xFF000000u) == 0) {
        d->x1 <<= 8;
        d->x2 = (d->x2 << 8) | 255u;
        if (d->pos < d->len) d->x = (d->x << 8) | d->buf[d->pos++];
        else { d->x <<= 8; d->trunc = 1; }
    }
    return bit;
}

/* Decoded value, or 256 for a magnitude outside int8. */
static int dec_code(dec_t *d, model_t *m, ctx_t c)
{
    unsigned neg, mag, j, e = 0;
    if (!dec_bit(d, &m->zero[c.zc])) return 0;
    neg = dec_bit(d, &m->sign[c.sc]);
    for (mag = 1; mag <= NUNARY; mag++)
        if (!dec_bit(d, &m->mag[c.mc + mag - 1])) return neg ? -(int)mag : (int)mag;
    for (j = 0; j < ESC_BITS; j++) e = (e << 1) | dec_bit(d, &m->esc[j]);
    mag = NUNARY + 1 + e;
    if (mag > 128 || (mag == 128 && !neg)) return 256;
    return neg ? -(int)mag : (int)mag;
}

int sc_ll_decode(const uint8_t *in, size_t len, uint32_t channels, uint32_t rows, uint32_t cols,
                 int8_t *out)
{
    model_t m;
    dec_t d;
    size_t n, plane, i;
    uint32_t ch, r, x;
    int st;
    if (!in || !out) return SC_LL_E_ARG;
    if ((st = dims(channels, rows, cols, &n)) != SC_LL_OK) return st;
    if (len < 1) return SC_LL_E_TRUNC;
    if (in[0] == SC_LL_FORMAT_STORED) {
        if (len < n + 1) return SC_LL_E_TRUNC;
        if (len > n + 1) return SC_LL_E_TRAILING;
        memcpy(out, in + 1, n);
        return SC_LL_OK;
    }
    if (in[0] != SC_LL_FORMAT_AC) return SC_LL_E_FORMAT;
    if (len < 5) return SC_LL_E_TRUNC;
    if (len > n + 1) return SC_LL_E_TRAILING; /* the encoder stores instead */
    plane = (size_t)rows * cols;
    model_init(&m);
    d.x1 = 0;
    d.x2 = 0xFFFFFFFFu;
    d.buf = in + 1;
    d.len = len - 1;
    d.x = 0;
    for (i = 0; i < 4; i++) d.x = (d.x << 8) | d.buf[i];
    d.pos = 4;
    d.trunc = 0;
    for (ch = 0; ch < channels; ch++) {
        int8_t *plane_p = out + ch * plane;
        const int8_t *prev_p = ch ? plane_p - plane : NULL;
        for (r = 0; r < rows; r++) {
            int8_t *cur = plane_p + (size_t)r * cols;
            const int8_t *up = r ? cur - cols : NULL;
            const int8_t *prev = prev_p ? prev_p + (size_t)r * cols : NULL;
            for (x = 0; x < cols; x++) {
                int v = dec_code(&d, &m, contexts(cur, up, prev, x, cols));
                if (v == 256) return SC_LL_E_CORRUPT;
                cur[x] = (int8_t)v;
            }
            if (d.trunc) return SC_LL_E_TRUNC;
        }
    }
    if (d.pos != d.len) return SC_LL_E_TRAILING;
    return SC_LL_OK;
}

const char *sc_ll_strerror(int status)
{
    switch (status) {
    case SC_LL_OK: return "ok";
    case SC_LL_E_ARG: return "bad arguments (null pointer or bad dimensions)";
    case SC_LL_E_SPACE: return "output buffer too small";
    case SC_LL_E_FORMAT: return "unknown format byte";
    case SC_LL_E_TRUNC: return "payload truncated";
    case SC_LL_E_CORRUPT: return "decoded value outside int8 (corrupt payload)";
    case SC_LL_E_TRAILING: return "bytes after the last code";
    default: return "unknown status";
    }
}
