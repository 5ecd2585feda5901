/* sc_lossless: context-modelled binary arithmetic coder for int8 latent codes (formats 1, 3).
 *
 * Format 1. Codes (C, rows, cols) are coded channel by channel, row by row. Per code v:
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
 *
 * Format 3 (what sc_ll_encode writes) = format 1 with two changes for grids whose rows have at
 * least RUN = 16 codes (narrower grids are coded exactly as in format 1):
 *   prediction  before each channel, a predictor flag f (one context slot). With f = 1 the coded
 *               values are D(x) = code(x) - code(x - 1) (D(0) = code(0)) instead of the codes,
 *               everywhere: the coded value, the neighbours L, T, D1, D2, L3 and the previous
 *               channel's P-, P, P+ (read as D of that channel's own flag), act and the signs.
 *               Magnitudes reach 255: escape e = m - 15 as 8 bits. The decoder rejects a code
 *               outside int8. (The flag is the encoder's choice, see choose_pred.)
 *   blocks      on rows of at least 2 RUN = 32 codes, each row is cut into blocks of RUN
 *               columns (the last one shorter). Before a block at columns x0 .. x0 + len - 1,
 *               one flag: its D values are not all 0, in slot w + 12 (a + 3 b), a = the activity
 *               class, b = the previous block's flag in this row (0 for the first block), and
 *               w from counts of non-zero D capped at 2: with a row above, w = 3u + q, u over the
 *               row above at x0 - 1 .. x0 + len, q over the previous channel's row at x0 .. x0 +
 *               len - 1 (0 for channel 0); on row 0 (and 1-D), w = 9 + u, u over the previous
 *               channel's row at x0 - 1 .. x0 + len (0 for channel 0); columns outside the row
 *               are left out. A block with flag 0 is skipped: its D are 0, act decays as after
 *               len zeros, and the next code has L = 0 and T = D above it (2-D) or L = T = L3 =
 *               0. Otherwise its values are coded as in format 1, except that the last zero flag
 *               is not coded (it is 1) when the block's other values were all 0.
 */
#include "sc_lossless.h"

#include <string.h>

#if defined(__GNUC__)
#define HOT static inline __attribute__((always_inline)) /* the per-bit steps: always inlined */
#else
#define HOT static
#endif
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__aarch64__))
#define VECTORIZE __attribute__((optimize("tree-vectorize"))) /* integer sums: same result */
#else
#define VECTORIZE
#endif
/* 1: the per-value loops are compiled once per (row kind, predictor) pair (+4 KB of code, ~10 %
 * faster); 0 on microcontrollers, where code size matters more. The bytes are the same. */
#ifndef SC_LL_SPECIALISE
#if defined(__ARM_ARCH_6M__) || defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__)
#define SC_LL_SPECIALISE 0
#else
#define SC_LL_SPECIALISE 1
#endif
#endif
/* CHUNK(fn, two_d, pred, args...): fn(args..., two_d, pred), with two_d and pred passed as
 * constants where SC_LL_SPECIALISE (so each pair inlines its own loop), as variables otherwise. */
#if SC_LL_SPECIALISE
#define CHUNK(fn, two_d, pred, ...)                                                                \
    ((two_d) ? ((pred) ? fn(__VA_ARGS__, 1, 1) : fn(__VA_ARGS__, 1, 0))                           \
             : ((pred) ? fn(__VA_ARGS__, 0, 1) : fn(__VA_ARGS__, 0, 0)))
#else
#define CHUNK(fn, two_d, pred, ...) fn(__VA_ARGS__, two_d, pred)
#endif

#define NCLS 10        /* neighbour classes */
#define NPREV 3        /* previous-channel classes */
#define NACT 3         /* activity classes */
#define NUNARY 14      /* unary magnitude bins before the escape */
#define ESC_BITS 7     /* format 1 escape: m - 15 in 0..113 */
#define ESC_BITS3 8    /* format 3 escape: m - 15 in 0..240 (differences reach 255) */
#define RATE 4         /* final adaptation shift of the fast probability */
#define SLOW 2         /* the slow probability adapts SLOW shifts slower */
#define ACT_SHIFT 3
#define ACT1 64u
#define ACT2 256u
#define BAD_ACT 0xFFFFFFFFu /* dec_chunk: a code outside int8 */

#define RUN 16u        /* format 3: codes per block */
#define TRIAL_ROWS 8u  /* format 3 encoder: rows coded to try a predictor flag */
#define NRUN 72u       /* block-flag contexts: 12 neighbourhood x 3 activity x 2 left block */

typedef struct {
    uint16_t zero[NCLS * NPREV * NACT];
    uint16_t sign[9];
    uint16_t mag[NCLS * NACT * NUNARY];
    uint16_t esc[ESC_BITS3];
    uint16_t run[NRUN];     /* format 3 only */
    uint16_t pred[1];       /* format 3 only: a channel's predictor flag */
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
#define RUN_AT (ESC_AT + ESC_BITS3)
#define PRED_AT (RUN_AT + NRUN)

static const uint8_t k_class[64] = {
    0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8,
    9, 9, 9, 9, 9, 9, 9, 9};
/* shift of state n (1 + n / 2, at most RATE) and the state after it (n stops at NSTATE - 1) */
static const uint8_t k_shift[NSTATE] = {1, 1, 2, 2, 3, 3, RATE};
static const uint8_t k_next[NSTATE] = {1, 2, 3, 4, 5, 6, 6};

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

/* Sign class of a coded value: 0, 1 (+), 2 (-). */
HOT unsigned sgn3(int v) { return (unsigned)(v > 0) + 2u * (unsigned)(v < 0); }

/* The coded value D of column x of a row: the code, or (format 3, pred) its difference to the
 * code on its left (column 0: the code). */
HOT int d_at(const int8_t *row, uint32_t x, int pred)
{
    return pred && x ? row[x] - row[x - 1] : row[x];
}

/* ---------------------------------------------------------------------------------------- */
/* contexts: a few operations per code from the row above / previous channel, with the left
 * neighbours carried in registers */

/* What a row's contexts read: ctx = the row above (2-D: T, D1, D2) or on row 0 the previous
 * channel's row (P, P-, P+), or NULL; prev = the previous channel's co-located row or NULL. */
typedef struct {
    const int8_t *ctx, *prev, *up;
    uint32_t cols;
    unsigned edge;            /* 1: missing diagonals repeat T (2-D); 0: missing P-/P+ are 0 */
    int pred, pred_prev, pred_ctx; /* predictor flags of this channel, the previous one, ctx */
    int runs;                 /* format 3 run blocks */
} rowctx_t;

static void rowctx_init(rowctx_t *rc, const int8_t *up, const int8_t *prev, uint32_t cols,
                        int pred, int pred_prev, int runs)
{
    rc->ctx = up ? up : prev;
    rc->prev = prev;
    rc->up = up;
    rc->cols = cols;
    rc->edge = up ? 1u : 0u;
    rc->pred = pred;
    rc->pred_prev = pred_prev;
    rc->pred_ctx = up ? pred : pred_prev;
    rc->runs = runs && cols >= 2u * RUN;
}

/* Contexts known before a chunk of up to RUN columns is coded: base = the neighbour sum s
 * less its terms from the row being coded, pc = p * NACT (previous-channel class). */
typedef struct {
    uint16_t base[RUN];
    uint8_t pc[RUN];
} prep_t;

/* Prepares columns x0 .. x0 + len - 1 (len <= RUN) of a row. */
VECTORIZE static void prepare(prep_t *pp, const rowctx_t *rc, uint32_t x0, uint32_t len)
{
    const int8_t *row = rc->ctx, *prev = rc->prev;
    uint32_t i;
    if (row) {
        uint16_t ad[RUN + 2]; /* |D| of the context row at x0 - 1 .. x0 + len */
        const int pr = rc->pred_ctx;
        if (pr && x0 == 0) ad[1] = (uint16_t)iabs8(row[0]);
        if (pr)
            for (i = x0 == 0; i < len; i++) ad[i + 1] = (uint16_t)iabs8(row[x0 + i] - row[x0 + i - 1]);
        else
            for (i = 0; i < len; i++) ad[i + 1] = (uint16_t)iabs8(row[x0 + i]);
        ad[0] = (uint16_t)(x0 > 0 ? iabs8(d_at(row, x0 - 1, pr)) : rc->edge * ad[1]);
        ad[len + 1] = (uint16_t)(x0 + len < rc->cols ? iabs8(d_at(row, x0 + len, pr))
                                                      : rc->edge * ad[len]);
        for (i = 0; i < len; i++) pp->base[i] = (uint16_t)(2u * ad[i + 1] + ad[i] + ad[i + 2]);
    } else {
        memset(pp->base, 0, sizeof pp->base);
    }
    if (prev) {
        for (i = 0; i < len; i++) {
            const unsigned p = iabs8(d_at(prev, x0 + i, rc->pred_prev));
            pp->pc[i] = (uint8_t)((p > 2 ? 2u : p) * NACT);
        }
    } else {
        memset(pp->pc, 0, sizeof pp->pc);
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

/* Moves the neighbours on by one coded value v (x = the next column). */
HOT void nbr_shift(nbr_t *nb, int v, const rowctx_t *rc, uint32_t x, int two_d, int pred)
{
    if (two_d) {
        nb->l = v;
        nb->t = x < rc->cols ? d_at(rc->up, x, pred) : 0;
    } else {
        nb->l3 = nb->t;
        nb->t = nb->l;
        nb->l = v;
    }
}

static void nbr_start(nbr_t *nb, const int8_t *up)
{
    nb->l3 = 0;
    nb->l = nb->t = up ? up[0] : 0; /* 2-D: L of column 0 repeats T (column 0: D = code) */
}

HOT unsigned next_act(unsigned act, unsigned mag)
{
    return act + (mag << (8 - ACT_SHIFT)) - (act >> ACT_SHIFT);
}

/* ---------------------------------------------------------------------------------------- */
/* format 3 run mode (rows of at least RUN codes): where no run block is open and a code has
 * neighbour sum s = 0 and activity class 0, one flag says whether the run block starting there
 * (RUN codes, fewer at the row end) holds a non-zero code. If not, its codes are all 0 and
 * skipped. If it does, the block's codes are coded as in format 1 (no run mode inside it),
 * except that the last one's zero flag is implied when all the others were 0. */

/* act after k zero codes (next_act(act, 0) k times; below 8 it no longer changes). */
HOT unsigned act_zeros(unsigned act, uint32_t k)
{
    while (k-- && act >= 8u) act -= act >> ACT_SHIFT;
    return act;
}

/* One bit per non-zero byte of the 8 bytes at p (bit 8i for byte i, any byte order). */
HOT uint64_t nz_bytes(const int8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    w |= w >> 4;
    w |= w >> 2;
    w |= w >> 1;
    return w & 0x0101010101010101ull;
}

/* One bit per byte of the 8 bytes at p that differs from the byte before it (at p - 1). */
HOT uint64_t nz_diff_bytes(const int8_t *p)
{
    uint64_t w, v;
    memcpy(&w, p, 8);
    memcpy(&v, p - 1, 8);
    w ^= v;
    w |= w >> 4;
    w |= w >> 2;
    w |= w >> 1;
    return w & 0x0101010101010101ull;
}

/* min(2, non-zero values D in row[a .. b - 1]) (pred: D = differences, see d_at) */
HOT unsigned nz_count2(const int8_t *row, uint32_t a, uint32_t b, int pred)
{
    unsigned c = 0;
    if (pred && a == 0 && b > 0) c = row[a++] != 0;
    for (; a + 8u <= b && c < 2u; a += 8u) {
        const uint64_t m = pred ? nz_diff_bytes(row + a) : nz_bytes(row + a);
        c += m ? ((m & (m - 1u)) ? 2u : 1u) : 0u;
    }
    for (; a < b; a++) c += d_at(row, a, pred) != 0;
    return c > 2 ? 2u : c;
}

/* Run-flag slot of a block at columns x .. x + bl - 1: 2-D rows: u = non-zero codes of the
 * row above at columns x - 1 .. x + bl, q = of the previous channel's row at x .. x + bl - 1
 * (each capped at 2; q = 0 for channel 0), slot 3u + q; row 0 / 1-D: u of the previous
 * channel's row at x - 1 .. x + bl (0 for channel 0), slot 9 + u. */
HOT unsigned run_slot(const rowctx_t *rc, uint32_t x, uint32_t bl)
{
    const uint32_t a = x ? x - 1 : 0, b = x + bl < rc->cols ? x + bl + 1 : rc->cols;
    const unsigned u = rc->ctx ? nz_count2(rc->ctx, a, b, rc->pred_ctx) : 0u;
    if (!rc->up) return RUN_AT + 9u + u;
    return RUN_AT + 3u * u + (rc->prev ? nz_count2(rc->prev, x, x + bl, rc->pred_prev) : 0u);
}

/* Whether blk[0 .. bl - 1] all equal ref (word compares). */
HOT int all_equal(const int8_t *blk, uint32_t bl, int8_t ref)
{
    const uint64_t r = 0x0101010101010101ull * (uint8_t)ref;
    uint32_t i = 0;
    uint64_t w;
    for (; i + 8u <= bl; i += 8u) {
        memcpy(&w, blk + i, 8);
        if (w != r) return 0;
    }
    for (; i < bl; i++)
        if (blk[i] != ref) return 0;
    return 1;
}

/* The code a zero block at column x repeats: the one on its left (pred), else 0. */
HOT int8_t block_ref(const int8_t *cur, uint32_t x, int pred)
{
    return pred && x ? cur[x - 1] : 0;
}

/* Neighbours after a zero block (of at least 3 values, or ending the row): 2-D: L = 0, T =
 * the row above at the next column x; 1-D: L = T = L3 = 0. */
HOT void nbr_after_zeros(nbr_t *nb, const rowctx_t *rc, uint32_t x)
{
    nb->l = 0;
    if (rc->up) nb->t = x < rc->cols ? d_at(rc->up, x, rc->pred) : 0;
    else nb->t = nb->l3 = 0;
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

/* Sign, unary magnitude and escape bits (esc of them) of a non-zero value v. */
static void enc_nonzero(enc_t *e, model_t *m, unsigned sc, unsigned mc, int v, unsigned esc)
{
    unsigned mag = iabs8(v), j;
    enc_bit(e, m, sc, v < 0);
    for (j = 1; j <= NUNARY; j++) {
        enc_bit(e, m, mc + j - 1u, mag > j);
        if (mag <= j) return;
    }
    mag -= NUNARY + 1;
    for (j = 0; j < esc; j++) enc_bit(e, m, ESC_AT + j, (mag >> (esc - 1 - j)) & 1u);
}

/* Codes columns x0 .. x0 + len - 1 value by value (nz = 0: the last zero flag is implied
 * while the others are 0); returns act after them. */
HOT unsigned enc_chunk(enc_t *e, model_t *m, const int8_t *cur, const rowctx_t *rc,
                       const prep_t *pp, nbr_t *nb, uint32_t x0, uint32_t len, int nz,
                       unsigned act, const int two_d, const int pred)
{
    const unsigned esc = pred ? ESC_BITS3 : ESC_BITS;
    uint32_t i;
    for (i = 0; i < len; i++) {
        const uint32_t x = x0 + i;
        const int v = d_at(cur, x, pred);
        const unsigned a = act_class(act), mag = iabs8(v);
        unsigned k;
        const unsigned zc = zero_slot(nbr_sum(nb, pp->base[i], two_d), pp->pc[i], a, &k);
        if (nz || i + 1u < len) enc_bit(e, m, zc, v != 0);
        if (v) {
            nz = 1;
            enc_nonzero(e, m, SIGN_AT + sgn3(nb->l) * 3u + sgn3(nb->t),
                        MAG_AT + (k * NACT + a) * NUNARY, v, esc);
        }
        act = next_act(act, mag);
        nbr_shift(nb, v, rc, x + 1, two_d, pred);
    }
    return act;
}

static void enc_row(enc_t *e_io, model_t *m, const int8_t *cur, const rowctx_t *rc,
                    unsigned *act_io)
{
    enc_t st = *e_io, *e = &st; /* a local copy: the output bytes cannot alias it */
    nbr_t nb;
    prep_t pp;
    unsigned act = *act_io, left = 0;
    uint32_t x0;
    const int two_d = rc->up != NULL, pred = rc->pred;
    const uint32_t cols = rc->cols;
    nbr_start(&nb, rc->up);
    for (x0 = 0; x0 < cols && !e->full; x0 += RUN) {
        const uint32_t len = cols - x0 < RUN ? cols - x0 : RUN;
        int nz = 1; /* 0: the block's last zero flag is implied while no value was non-zero */
        if (rc->runs) {
            const int zero = all_equal(cur + x0, len, block_ref(cur, x0, pred));
            enc_bit(e, m, run_slot(rc, x0, len) + 12u * (act_class(act) + 3u * left), !zero);
            left = !zero;
            if (zero) {
                act = act_zeros(act, len);
                nbr_after_zeros(&nb, rc, x0 + len);
                continue;
            }
            nz = 0;
        }
        prepare(&pp, rc, x0, len);
        act = CHUNK(enc_chunk, two_d, pred, e, m, cur, rc, &pp, &nb, x0, len, nz, act);
    }
    *act_io = act;
    *e_io = st;
}

/* Format 3 encoder: what choose_pred needs to try both predictor flags on a channel. */
typedef struct {
    const enc_t *e;
    const model_t *m;
    unsigned act;
    const int8_t *plane, *prev_plane; /* the channel's codes, the previous channel's or NULL */
    uint32_t rows, cols;
    int pred_prev;
} chan_t;

/* About the bits the coder has written after coding the first TRIAL_ROWS rows of a channel with
 * predictor flag pred, from copies of the coder and model (the copy writes into the output
 * buffer's unused part, which the real coding overwrites). */
static uint64_t trial_bits(const chan_t *ch, int pred)
{
    model_t m = *ch->m; /* 3 KB more stack while the encoder tries a flag */
    enc_t e = *ch->e;
    rowctx_t rc;
    unsigned act = ch->act, range_bits = 0;
    uint32_t r, range;
    enc_bit(&e, &m, PRED_AT, (unsigned)pred);
    for (r = 0; r < ch->rows && r < TRIAL_ROWS && !e.full; r++) {
        const int8_t *cur = ch->plane + (size_t)r * ch->cols;
        rowctx_init(&rc, r ? cur - ch->cols : NULL,
                    ch->prev_plane ? ch->prev_plane + (size_t)r * ch->cols : NULL, ch->cols, pred,
                    ch->pred_prev, 1);
        enc_row(&e, &m, cur, &rc, &act);
    }
    for (range = e.x2 - e.x1; range; range >>= 1) range_bits++; /* 25..32 */
    return e.full ? (uint64_t)-1 : 8u * (uint64_t)e.pos + 32u - range_bits;
}

/* Format 3 predictor flag of a channel (an encoder choice): 1 when the sum of the left
 * differences' magnitudes (see d_at) is at most half the sum of the differences to the row above
 * (rows > 1) and below the codes' own; 0 when it is not below both; in between, the flag whose
 * trial on the first TRIAL_ROWS rows writes fewer bits (ties: 0). */
VECTORIZE static int choose_pred(const chan_t *ch)
{
    uint64_t sv = 0, sd = 0, st;
    uint32_t r, x;
    const uint32_t cols = ch->cols;
    const int8_t *p = ch->plane;
    for (r = 0; r < ch->rows; r++, p += cols) {
        uint64_t rv = iabs8(p[0]), rd = rv;
        for (x = 1; x < cols; x++) {
            rv += iabs8(p[x]);
            rd += iabs8(p[x] - p[x - 1]);
        }
        sv += rv;
        sd += rd;
    }
    if (sd >= sv) return 0;
    if (ch->rows == 1) return 1;
    p = ch->plane;
    for (st = 0, x = 0; x < cols; x++) st += iabs8(p[x]); /* row 0 against zeros */
    for (r = 1; r < ch->rows; r++) {
        const int8_t *up = p, *row = (p += cols);
        for (x = 0; x < cols; x++) st += iabs8(row[x] - up[x]);
    }
    if (sd >= st) return 0;
    if (2u * sd <= st) return 1;
    return trial_bits(ch, 1) < trial_bits(ch, 0);
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
    return sc_ll_encode_format(codes, channels, rows, cols, SC_LL_FORMAT_RUN, out, cap, out_len);
}

int sc_ll_encode_format(const int8_t *codes, uint32_t channels, uint32_t rows, uint32_t cols,
                        unsigned format, uint8_t *out, size_t cap, size_t *out_len)
{
    model_t m; /* 3.0 KB on the stack: reentrant, no globals */
    enc_t e;
    rowctx_t rc;
    size_t n, plane;
    uint32_t ch, r;
    unsigned act = 0;
    int st, pred = 0, pred_prev = 0;
    const int fmt3 = format == SC_LL_FORMAT_RUN;
    if (!codes || !out || !out_len) return SC_LL_E_ARG;
    if (format != SC_LL_FORMAT_AC && format != SC_LL_FORMAT_RUN) return SC_LL_E_FORMAT;
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
        if (fmt3 && cols >= RUN) { /* narrower rows: no flag, no prediction */
            const chan_t cs = {&e, &m, act, plane_p, prev_p, rows, cols, pred_prev};
            pred = choose_pred(&cs);
            enc_bit(&e, &m, PRED_AT, (unsigned)pred);
        }
        for (r = 0; r < rows && !e.full; r++) {
            const int8_t *cur = plane_p + (size_t)r * cols;
            rowctx_init(&rc, r ? cur - cols : NULL, prev_p ? prev_p + (size_t)r * cols : NULL, cols,
                        pred, pred_prev, fmt3);
            enc_row(&e, &m, cur, &rc, &act);
        }
        pred_prev = pred;
    }
    if (e.full || e.pos + 4 >= n) { /* not smaller than the raw codes: store them */
        out[0] = SC_LL_FORMAT_STORED;
        memcpy(out + 1, codes, n);
        *out_len = n + 1;
        return SC_LL_OK;
    }
    out[0] = (uint8_t)format;
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

/* A non-zero value (its zero flag was 1; esc escape bits); the caller checks its range. */
static int dec_nonzero(dec_t *d, model_t *m, unsigned sc, unsigned mc, unsigned esc)
{
    unsigned neg, mag, j, e = 0;
    neg = dec_bit(d, m, sc);
    for (mag = 1; mag <= NUNARY; mag++)
        if (!dec_bit(d, m, mc + mag - 1u)) return neg ? -(int)mag : (int)mag;
    for (j = 0; j < esc; j++) e = (e << 1) | dec_bit(d, m, ESC_AT + j);
    mag = NUNARY + 1 + e;
    return neg ? -(int)mag : (int)mag;
}

/* Decodes columns x0 .. x0 + len - 1 (see enc_chunk); returns act after them, or BAD_ACT for
 * a code outside int8 (corrupt payload). */
HOT unsigned dec_chunk(dec_t *d, model_t *m, int8_t *cur, const rowctx_t *rc, const prep_t *pp,
                       nbr_t *nb, uint32_t x0, uint32_t len, int nz, unsigned act,
                       const int two_d, const int pred)
{
    const unsigned esc = pred ? ESC_BITS3 : ESC_BITS;
    uint32_t i;
    for (i = 0; i < len; i++) {
        const uint32_t x = x0 + i;
        const unsigned a = act_class(act);
        unsigned k;
        const unsigned zc = zero_slot(nbr_sum(nb, pp->base[i], two_d), pp->pc[i], a, &k);
        int v = 0, code;
        if ((!nz && i + 1u == len) || dec_bit(d, m, zc)) {
            nz = 1;
            v = dec_nonzero(d, m, SIGN_AT + sgn3(nb->l) * 3u + sgn3(nb->t),
                            MAG_AT + (k * NACT + a) * NUNARY, esc);
        }
        code = pred && x ? v + cur[x - 1] : v;
        if (code < -128 || code > 127) return BAD_ACT;
        cur[x] = (int8_t)code;
        act = next_act(act, iabs8(v));
        nbr_shift(nb, v, rc, x + 1, two_d, pred);
    }
    return act;
}

static int dec_row(dec_t *d_io, model_t *m, int8_t *cur, const rowctx_t *rc, unsigned *act_io)
{
    dec_t st = *d_io, *d = &st; /* a local copy: the decoded codes cannot alias it */
    nbr_t nb;
    prep_t pp;
    unsigned act = *act_io, left = 0;
    uint32_t x0;
    const int two_d = rc->up != NULL, pred = rc->pred;
    const uint32_t cols = rc->cols;
    nbr_start(&nb, rc->up);
    for (x0 = 0; x0 < cols; x0 += RUN) {
        const uint32_t len = cols - x0 < RUN ? cols - x0 : RUN;
        int nz = 1;
        if (rc->runs) {
            left = dec_bit(d, m, run_slot(rc, x0, len) + 12u * (act_class(act) + 3u * left));
            if (!left) {
                memset(cur + x0, block_ref(cur, x0, pred), len);
                act = act_zeros(act, len);
                nbr_after_zeros(&nb, rc, x0 + len);
                continue;
            }
            nz = 0;
        }
        prepare(&pp, rc, x0, len);
        act = CHUNK(dec_chunk, two_d, pred, d, m, cur, rc, &pp, &nb, x0, len, nz, act);
        if (act == BAD_ACT) return SC_LL_E_CORRUPT;
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
    rowctx_t rc;
    size_t n, plane, i;
    uint32_t ch, r;
    unsigned act = 0;
    int st, pred = 0, pred_prev = 0, fmt3;
    if (!in || !out) return SC_LL_E_ARG;
    if ((st = sc_ll_dims(channels, rows, cols, &n)) != SC_LL_OK) return st;
    if (len < 1) return SC_LL_E_TRUNC;
    if (in[0] == SC_LL_FORMAT_STORED) return sc_ll_read_stored(in, len, n, out);
    if (in[0] != SC_LL_FORMAT_AC && in[0] != SC_LL_FORMAT_RUN) return SC_LL_E_FORMAT;
    if (len < 5) return SC_LL_E_TRUNC;
    if (len > n) return SC_LL_E_TRAILING; /* a coded payload is always shorter than n + 1 */
    fmt3 = in[0] == SC_LL_FORMAT_RUN;
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
        if (fmt3 && cols >= RUN) pred = (int)dec_bit(&d, &m, PRED_AT);
        for (r = 0; r < rows; r++) {
            int8_t *cur = plane_p + (size_t)r * cols;
            rowctx_init(&rc, r ? cur - cols : NULL, prev_p ? prev_p + (size_t)r * cols : NULL, cols,
                        pred, pred_prev, fmt3);
            st = dec_row(&d, &m, cur, &rc, &act);
            if (st != SC_LL_OK) return st;
        }
        pred_prev = pred;
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
