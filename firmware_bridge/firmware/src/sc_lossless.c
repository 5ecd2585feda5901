/* sc_lossless: context-modelled binary arithmetic coder for int8 latent codes (format 1).
 *
 * Codes (C, rows, cols) are coded channel by channel, row by row. Per code v:
 *   zero flag  (v != 0)          context (k, p, a): neighbour class k (0..9), previous-channel
 *                                class p (0..2), activity class a (0..2)
 *   sign       (v < 0)           context: signs (0, +, -) of the neighbours L and T (3 x 3)
 *   magnitude  m = |v| (1..128)  unary bins (m > j) for j = 1..14, context (k, a, j);
 *                                if m >= 15, e = m - 15 as 7 bits MSB-first, context: bit index
 * Neighbours (already coded): with a row above, L = left, T = top, D1 = top-left, D2 =
 * top-right (missing left/right neighbours repeat T) and s = 2(|L| + |T|) + |D1| + |D2|; on
 * row 0 (and for 1-D signals, rows == 1) L, T, L3 = one, two, three to the left and P-, P, P+ =
 * the previous channel's codes at x - 1, x, x + 1 (missing ones and channel 0: 0), and
 * s = 2(|L| + |T|) + |L3| + 2|P| + |P-| + |P+|.
 *   k = CLASS[min(s, 63)]
 *   p = min(|co-located code of channel c - 1|, 2)   (0 for channel 0)
 *   a = 0 if act < 64, 1 if act < 256, else 2, where act += (|v| << 5) - (act >> 3) after every
 *       code (a running mean of |v| x 256 over ~8 codes; starts at 0, never reset).
 * Each context has two 16-bit probabilities of a 1 (start 32768) and a count n of the bits it
 * has seen: with sh = min(1 + n / 2, 4) (n stops growing once sh = 4), the fast one moves by
 * (target - p) >> sh and the slow one by (target - q) >> (sh + 2); bits are coded with
 * (p + q + 1) >> 1. The coder is a carry-less binary arithmetic coder on 32-bit bounds
 * [x1, x2] = [0, 2^32 - 1]: split = x1 + ((x2 - x1) * P >> 16) (64-bit product); a 1 sets
 * x2 = split, a 0 sets x1 = split + 1; while the top bytes of x1 and x2 are equal, that byte is
 * emitted and x1 <<= 8, x2 = x2 << 8 | 255. The encoder ends with x1 as 4 big-endian bytes; the
 * decoder starts with x = the first 4 bytes and must end exactly at the end of the payload.
 */
#include "sc_lossless.h"

#include <string.h>

#define NCLS 10        /* neighbour classes */
#define NPREV 3        /* previous-channel classes */
#define NACT 3         /* activity classes */
#define NUNARY 14      /* unary magnitude bins before the escape */
#define ESC_BITS 7     /* escape: m - 15 in 0..113 */
#define RATE 4         /* final adaptation shift of the fast probability */
#define SLOW 2         /* the slow probability adapts SLOW shifts slower */
#define ACT_SHIFT 3
#define ACT1 64u
#define ACT2 256u

typedef struct {
    uint16_t zero[NCLS * NPREV * NACT];
    uint16_t sign[9];
    uint16_t mag[NCLS * NACT * NUNARY];
    uint16_t esc[ESC_BITS];
} probs_t;

#define NSLOTS (sizeof(probs_t) / sizeof(uint16_t))

typedef struct {
    uint16_t fast[NSLOTS];
    uint16_t slow[NSLOTS];
    uint8_t n[NSLOTS];
} model_t;

/* slot offsets into the flat arrays */
#define ZERO_AT 0u
#define SIGN_AT (NCLS * NPREV * NACT)
#define MAG_AT (SIGN_AT + 9u)
#define ESC_AT (MAG_AT + NCLS * NACT * NUNARY)

static const uint8_t k_class[64] = {
    0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8,
    9, 9, 9, 9, 9, 9, 9, 9};

static void model_init(model_t *m)
{
    size_t i;
    for (i = 0; i < NSLOTS; i++) m->fast[i] = m->slow[i] = 32768u;
    memset(m->n, 0, sizeof(m->n));
}

static unsigned prob(const model_t *m, unsigned i)
{
    return ((unsigned)m->fast[i] + m->slow[i] + 1u) >> 1;
}

static void update(model_t *m, unsigned i, unsigned bit)
{
    unsigned n = m->n[i], sh = 1u + n / 2u, p = m->fast[i], q = m->slow[i];
    if (sh >= RATE) sh = RATE;
    else m->n[i] = (uint8_t)(n + 1u);
    if (bit) {
        m->fast[i] = (uint16_t)(p + ((65536u - p) >> sh));
        m->slow[i] = (uint16_t)(q + ((65536u - q) >> (sh + SLOW)));
    } else {
        m->fast[i] = (uint16_t)(p - (p >> sh));
        m->slow[i] = (uint16_t)(q - (q >> (sh + SLOW)));
    }
}

static unsigned iabs8(int v) { return (unsigned)(v < 0 ? -v : v); }
static unsigned sgn3(int v) { return v > 0 ? 1u : (v < 0 ? 2u : 0u); }

typedef struct { unsigned zc, sc, mc; } ctx_t;

/* Contexts of position x: cur = the row being coded, up = the row above (NULL on row 0),
 * prev = the co-located row of the previous channel (NULL for channel 0). */
static ctx_t contexts(const int8_t *cur, const int8_t *up, const int8_t *prev, uint32_t x,
                      uint32_t cols, unsigned act)
{
    int l, t;
    unsigned s, k, p, a;
    ctx_t c;
    if (up) { /* 2-D: left, top, top-left, top-right */
        int d1, d2;
        t = up[x];
        l = x > 0 ? cur[x - 1] : t;
        d1 = x > 0 ? up[x - 1] : t;
        d2 = x + 1 < cols ? up[x + 1] : t;
        s = 2u * (iabs8(l) + iabs8(t)) + iabs8(d1) + iabs8(d2);
    } else { /* row 0 / 1-D: three to the left, previous channel at x - 1, x, x + 1 */
        l = x > 0 ? cur[x - 1] : 0;
        t = x > 1 ? cur[x - 2] : 0;
        s = 2u * (iabs8(l) + iabs8(t)) + (x > 2 ? iabs8(cur[x - 3]) : 0u);
        if (prev)
            s += 2u * iabs8(prev[x]) + (x > 0 ? iabs8(prev[x - 1]) : 0u)
                 + (x + 1 < cols ? iabs8(prev[x + 1]) : 0u);
    }
    k = k_class[s > 63 ? 63 : s];
    p = prev ? iabs8(prev[x]) : 0u;
    p = p > 2 ? 2u : p;
    a = act < ACT1 ? 0u : act < ACT2 ? 1u : 2u;
    c.zc = ZERO_AT + (k * NPREV + p) * NACT + a;
    c.sc = SIGN_AT + sgn3(l) * 3u + sgn3(t);
    c.mc = MAG_AT + (k * NACT + a) * NUNARY;
    return c;
}

static unsigned next_act(unsigned act, int v)
{
    return act + (iabs8(v) << (8 - ACT_SHIFT)) - (act >> ACT_SHIFT);
}

/* ---------------------------------------------------------------------------------------- */
/* encoder */

typedef struct {
    uint32_t x1, x2;
    uint8_t *buf;
    size_t pos, cap;
    int full;
} enc_t;

static void enc_bit(enc_t *e, model_t *m, unsigned i, unsigned bit)
{
    uint32_t xmid = e->x1 + (uint32_t)(((uint64_t)(e->x2 - e->x1) * prob(m, i)) >> 16);
    if (bit) e->x2 = xmid;
    else e->x1 = xmid + 1u;
    update(m, i, bit);
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
    enc_bit(e, m, c.zc, v != 0);
    if (v == 0) return;
    enc_bit(e, m, c.sc, v < 0);
    mag = iabs8(v);
    for (j = 1; j <= NUNARY; j++) {
        enc_bit(e, m, c.mc + j - 1u, mag > j);
        if (mag <= j) return;
    }
    mag -= NUNARY + 1;
    for (j = 0; j < ESC_BITS; j++) enc_bit(e, m, ESC_AT + j, (mag >> (ESC_BITS - 1 - j)) & 1u);
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
    model_t m; /* 2.6 KB on the stack: reentrant, no globals */
    enc_t e;
    size_t n, plane;
    uint32_t ch, r, x;
    unsigned act = 0;
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
            for (x = 0; x < cols; x++) {
                enc_code(&e, &m, contexts(cur, up, prev, x, cols, act), cur[x]);
                act = next_act(act, cur[x]);
            }
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

static unsigned dec_bit(dec_t *d, model_t *m, unsigned i)
{
    uint32_t xmid = d->x1 + (uint32_t)(((uint64_t)(d->x2 - d->x1) * prob(m, i)) >> 16);
    unsigned bit = d->x <= xmid;
    if (bit) d->x2 = xmid;
    else d->x1 = xmid + 1u;
    update(m, i, bit);
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
    if (!dec_bit(d, m, c.zc)) return 0;
    neg = dec_bit(d, m, c.sc);
    for (mag = 1; mag <= NUNARY; mag++)
        if (!dec_bit(d, m, c.mc + mag - 1u)) return neg ? -(int)mag : (int)mag;
    for (j = 0; j < ESC_BITS; j++) e = (e << 1) | dec_bit(d, m, ESC_AT + j);
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
    unsigned act = 0;
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
    if (len > n) return SC_LL_E_TRAILING; /* a coded payload is always shorter than n + 1 */
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
                int v = dec_code(&d, &m, contexts(cur, up, prev, x, cols, act));
                if (v == 256) return SC_LL_E_CORRUPT;
                cur[x] = (int8_t)v;
                act = next_act(act, v);
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
