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

#if defined(__GNUC__)
#define HOT static inline __attribute__((always_inline)) /* the per-bit steps: always inlined */
#else
#define HOT static
#endif

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
#define NSTATE 7u      /* adaptation states n = 0..6: shift 1, 1, 2, 2, 3, 3, RATE */

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
/* shift of state n (1 + n / 2, at most RATE) and the state after it (n stops at NSTATE - 1) */
static const uint8_t k_shift[NSTATE] = {1, 1, 2, 2, 3, 3, RATE};
static const uint8_t k_next[NSTATE] = {1, 2, 3, 4, 5, 6, 6};
static const uint8_t k_sgn[256] = { /* sgn3 of an int8 by its byte: 0, 1 (+), 2 (-) */
#define SG4(v) v, v, v, v
#define SG16(v) SG4(v), SG4(v), SG4(v), SG4(v)
#define SG64(v) SG16(v), SG16(v), SG16(v), SG16(v)
    0, 1, 1, 1, SG4(1), SG4(1), SG4(1), SG16(1), SG16(1), SG16(1), SG64(1), /* 0..127 */
    SG64(2), SG64(2)                                                       /* -128..-1 */
#undef SG64
#undef SG16
#undef SG4
};

static void model_init(model_t *m)
{
    size_t i;
    for (i = 0; i < NSLOTS; i++) m->fast[i] = m->slow[i] = 32768u;
    memset(m->n, 0, sizeof(m->n));
}

/* Probability of a 1 in slot i (16 bits), then the slot's update with the coded bit. */
HOT unsigned prob(const model_t *m, unsigned i)
{
    return ((unsigned)m->fast[i] + m->slow[i] + 1u) >> 1;
}

HOT void update(model_t *m, unsigned i, unsigned bit)
{
    unsigned n = m->n[i], sh = k_shift[n], p = m->fast[i], q = m->slow[i];
    m->n[i] = k_next[n];
    if (bit) {
        m->fast[i] = (uint16_t)(p + ((65536u - p) >> sh));
        m->slow[i] = (uint16_t)(q + ((65536u - q) >> (sh + SLOW)));
    } else {
        m->fast[i] = (uint16_t)(p - (p >> sh));
        m->slow[i] = (uint16_t)(q - (q >> (sh + SLOW)));
    }
}

HOT unsigned iabs8(int v) { return (unsigned)(v < 0 ? -v : v); }

/* ---------------------------------------------------------------------------------------- */
/* contexts: one pass over a row's parts that are already known (row above, previous channel),
 * then a few operations per code with the left neighbours carried in registers */

#define SPAN 256u  /* columns prepared at a time (stack scratch, no malloc) */

typedef struct {
    uint16_t base[SPAN]; /* the sum s less its terms from the row being coded */
    uint8_t pc[SPAN];    /* p * NACT: previous-channel class */
} prep_t;

/* Prepares columns x0 .. x0 + len - 1 of a row: up = the row above (NULL on row 0), prev = the
 * co-located row of the previous channel (NULL for channel 0). */
static void prepare(prep_t *pp, const int8_t *up, const int8_t *prev, uint32_t x0, uint32_t len,
                    uint32_t cols)
{
    const int8_t *row = up ? up : prev; /* 2-D: T, D1, D2; row 0: P, P-, P+ */
    uint32_t i;
    if (row) { /* interior columns without branches, then the two row ends */
        const int8_t *rx = row + x0;
        const unsigned edge = up ? 1u : 0u; /* missing diagonals repeat T; missing P-/P+ are 0 */
        for (i = 1; i + 1 < len; i++)
            pp->base[i] = (uint16_t)(2u * iabs8(rx[i]) + iabs8(rx[i - 1]) + iabs8(rx[i + 1]));
        for (i = 0; i < len; i += (len > 1 ? len - 1 : 1)) {
            const size_t x = (size_t)x0 + i;
            const unsigned c = iabs8(row[x]);
            pp->base[i] = (uint16_t)(2u * c + (x > 0 ? iabs8(row[x - 1]) : edge * c)
                                     + (x + 1 < cols ? iabs8(row[x + 1]) : edge * c));
        }
    } else {
        memset(pp->base, 0, len * sizeof pp->base[0]);
    }
    if (prev) {
        for (i = 0; i < len; i++) {
            const unsigned p = iabs8(prev[x0 + i]);
            pp->pc[i] = (uint8_t)((p > 2 ? 2u : p) * NACT);
        }
    } else {
        memset(pp->pc, 0, len);
    }
}

/* Left neighbours of the next code: l, t (the sign context's pair) and l3, see above. */
typedef struct { int l, t, l3; } nbr_t;

HOT unsigned act_class(unsigned act) { return act < ACT1 ? 0u : act < ACT2 ? 1u : 2u; }

/* Zero-flag slot of a code with neighbour sum s. */
HOT unsigned zero_slot(unsigned s, unsigned pc, unsigned a, unsigned *k)
{
    *k = k_class[s > 63 ? 63 : s];
    return ZERO_AT + *k * (NPREV * NACT) + pc + a;
}

HOT unsigned nbr_sum(const nbr_t *nb, unsigned base, int two_d)
{
    return two_d ? base + 2u * iabs8(nb->l)
                 : base + 2u * (iabs8(nb->l) + iabs8(nb->t)) + iabs8(nb->l3);
}

/* Moves the neighbours on by one code v (up = row above or NULL, x = the next column). */
HOT void nbr_shift(nbr_t *nb, int v, const int8_t *up, uint32_t x, uint32_t cols)
{
    if (up) {
        nb->l = v;
        nb->t = x < cols ? up[x] : 0;
    } else {
        nb->l3 = nb->t;
        nb->t = nb->l;
        nb->l = v;
    }
}

static void nbr_start(nbr_t *nb, const int8_t *up)
{
    nb->l3 = 0;
    nb->l = nb->t = up ? up[0] : 0; /* 2-D: L of column 0 repeats T */
}

HOT unsigned next_act(unsigned act, unsigned mag)
{
    return act + (mag << (8 - ACT_SHIFT)) - (act >> ACT_SHIFT);
}

/* ---------------------------------------------------------------------------------------- */
/* encoder */

typedef struct {
    uint32_t x1, x2;
    uint8_t *buf;
    size_t pos, cap;
    int full;
} enc_t;

HOT void enc_bit(enc_t *e, model_t *m, unsigned i, unsigned bit)
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

/* Sign, unary magnitude and escape bits of a non-zero code v. */
static void enc_nonzero(enc_t *e, model_t *m, unsigned sc, unsigned mc, int v)
{
    unsigned mag = iabs8(v), j;
    enc_bit(e, m, sc, v < 0);
    for (j = 1; j <= NUNARY; j++) {
        enc_bit(e, m, mc + j - 1u, mag > j);
        if (mag <= j) return;
    }
    mag -= NUNARY + 1;
    for (j = 0; j < ESC_BITS; j++) enc_bit(e, m, ESC_AT + j, (mag >> (ESC_BITS - 1 - j)) & 1u);
}

static void enc_row(enc_t *e_io, model_t *m, const int8_t *cur, const int8_t *up,
                    const int8_t *prev, uint32_t cols, unsigned *act_io)
{
    enc_t st = *e_io, *e = &st; /* a local copy: the output bytes cannot alias it */
    prep_t pp;
    nbr_t nb;
    unsigned act = *act_io;
    uint32_t x0, i;
    const int two_d = up != NULL;
    nbr_start(&nb, up);
    for (x0 = 0; x0 < cols; x0 += SPAN) {
        uint32_t len = cols - x0 < SPAN ? cols - x0 : SPAN;
        prepare(&pp, up, prev, x0, len, cols);
        for (i = 0; i < len; i++) {
            int v = cur[x0 + i];
            unsigned k, a = act_class(act), mag = iabs8(v);
            unsigned zc = zero_slot(nbr_sum(&nb, pp.base[i], two_d), pp.pc[i], a, &k);
            enc_bit(e, m, zc, v != 0);
            if (v)
                enc_nonzero(e, m, SIGN_AT + k_sgn[(uint8_t)nb.l] * 3u + k_sgn[(uint8_t)nb.t],
                            MAG_AT + (k * NACT + a) * NUNARY, v);
            act = next_act(act, mag);
            nbr_shift(&nb, v, up, x0 + i + 1, cols);
        }
        if (e->full) break;
    }
    *act_io = act;
    *e_io = st;
}

int sc_ll_dims(uint32_t channels, uint32_t rows, uint32_t cols, size_t *n)
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

int sc_ll_read_stored(const uint8_t *in, size_t len, size_t n, int8_t *out)
{
    if (len < n + 1) return SC_LL_E_TRUNC;
    if (len > n + 1) return SC_LL_E_TRAILING;
    memcpy(out, in + 1, n);
    return SC_LL_OK;
}

int sc_ll_encode(const int8_t *codes, uint32_t channels, uint32_t rows, uint32_t cols,
                 uint8_t *out, size_t cap, size_t *out_len)
{
    model_t m; /* 2.6 KB + 0.8 KB of row scratch on the stack: reentrant, no globals */
    enc_t e;
    size_t n, plane;
    uint32_t ch, r;
    unsigned act = 0;
    int st;
    if (!codes || !out || !out_len) return SC_LL_E_ARG;
    if ((st = sc_ll_dims(channels, rows, cols, &n)) != SC_LL_OK) return st;
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
            enc_row(&e, &m, cur, r ? cur - cols : NULL, prev_p ? prev_p + (size_t)r * cols : NULL,
                    cols, &act);
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

HOT unsigned dec_bit(dec_t *d, model_t *m, unsigned i)
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

/* A non-zero code's value (its zero flag was 1), or 256 for a magnitude outside int8. */
static int dec_nonzero(dec_t *d, model_t *m, unsigned sc, unsigned mc)
{
    unsigned neg, mag, j, e = 0;
    neg = dec_bit(d, m, sc);
    for (mag = 1; mag <= NUNARY; mag++)
        if (!dec_bit(d, m, mc + mag - 1u)) return neg ? -(int)mag : (int)mag;
    for (j = 0; j < ESC_BITS; j++) e = (e << 1) | dec_bit(d, m, ESC_AT + j);
    mag = NUNARY + 1 + e;
    if (mag > 128 || (mag == 128 && !neg)) return 256;
    return neg ? -(int)mag : (int)mag;
}

static int dec_row(dec_t *d_io, model_t *m, int8_t *cur, const int8_t *up, const int8_t *prev,
                   uint32_t cols, unsigned *act_io)
{
    dec_t st = *d_io, *d = &st; /* a local copy: the decoded codes cannot alias it */
    prep_t pp;
    nbr_t nb;
    unsigned act = *act_io;
    uint32_t x0, i;
    const int two_d = up != NULL;
    nbr_start(&nb, up);
    for (x0 = 0; x0 < cols; x0 += SPAN) {
        uint32_t len = cols - x0 < SPAN ? cols - x0 : SPAN;
        prepare(&pp, up, prev, x0, len, cols);
        for (i = 0; i < len; i++) {
            int v = 0;
            unsigned k, a = act_class(act);
            unsigned zc = zero_slot(nbr_sum(&nb, pp.base[i], two_d), pp.pc[i], a, &k);
            if (dec_bit(d, m, zc)) {
                v = dec_nonzero(d, m, SIGN_AT + k_sgn[(uint8_t)nb.l] * 3u + k_sgn[(uint8_t)nb.t],
                                MAG_AT + (k * NACT + a) * NUNARY);
                if (v == 256) return SC_LL_E_CORRUPT;
            }
            cur[x0 + i] = (int8_t)v;
            act = next_act(act, iabs8(v));
            nbr_shift(&nb, v, up, x0 + i + 1, cols);
        }
    }
    *act_io = act;
    *d_io = st;
    return d->trunc ? SC_LL_E_TRUNC : SC_LL_OK;
}

int sc_ll_decode(const uint8_t *in, size_t len, uint32_t channels, uint32_t rows, uint32_t cols,
                 int8_t *out)
{
    model_t m;
    dec_t d;
    size_t n, plane, i;
    uint32_t ch, r;
    unsigned act = 0;
    int st;
    if (!in || !out) return SC_LL_E_ARG;
    if ((st = sc_ll_dims(channels, rows, cols, &n)) != SC_LL_OK) return st;
    if (len < 1) return SC_LL_E_TRUNC;
    if (in[0] == SC_LL_FORMAT_STORED) return sc_ll_read_stored(in, len, n, out);
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
            st = dec_row(&d, &m, cur, r ? cur - cols : NULL,
                         prev_p ? prev_p + (size_t)r * cols : NULL, cols, &act);
            if (st != SC_LL_OK) return st;
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
