/* One instantiation of the host encoder kernel, included by sc_host_encoder.c with
 *   SC_T (float / double), SC_I (int32_t / int64_t: same width), SC_VB (vector bytes),
 *   SC_MAGIC (1.5 * 2**mantissa bits: adding and subtracting it rounds half to even),
 *   SC_FN(x) (a unique name) and SC_TGT (a target attribute, or nothing).
 * GCC/Clang vector extensions only: the same source for SSE2, AVX2, AVX-512 and NEON. */

typedef SC_T SC_FN(vt) __attribute__((vector_size(SC_VB)));
typedef SC_I SC_FN(vi) __attribute__((vector_size(SC_VB)));

typedef struct {
    const plan_t *pl;
    const SC_FN(vt) *wt;     /* (K, cv) vectors: weights in tap order off[], channels padded */
    const SC_FN(vt) *bias;   /* (cv,) */
    const SC_FN(vt) *scale;  /* (cv,) 2**-shift */
    const SC_T *xs;          /* the converted slab */
    int8_t *out;             /* this item's codes (c_lat, P) */
    size_t cv;               /* channel vectors */
} SC_FN(ctx_t);

/* Requantize one block's accumulators (cv vectors) and store its codes at block index p. */
static SC_TGT inline __attribute__((always_inline)) void
SC_FN(store)(const SC_FN(ctx_t) *cx, const SC_FN(vt) *acc, size_t cv, size_t p)
{
    enum { V = SC_VB / sizeof(SC_T) };
    const SC_T cm = (SC_T)cx->pl->code_max;
    const SC_FN(vt) hi = (SC_FN(vt)){0} + cm, lo = (SC_FN(vt)){0} - cm;
    const size_t clat = cx->pl->clat, P = cx->pl->P;
    for (size_t v = 0; v < cv; v++) {
        SC_FN(vt) y = acc[v] * cx->scale[v];
        SC_FN(vi) m = (SC_FN(vi))(y > hi);
        y = (SC_FN(vt))(((SC_FN(vi))y & ~m) | ((SC_FN(vi))hi & m));
        m = (SC_FN(vi))(y < lo);
        y = (SC_FN(vt))(((SC_FN(vi))y & ~m) | ((SC_FN(vi))lo & m));
        y = (y + (SC_T)SC_MAGIC) - (SC_T)SC_MAGIC;       /* round half to even, |y| <= 127 */
        SC_FN(vi) q = __builtin_convertvector(y, SC_FN(vi));
        for (size_t l = 0; l < V && v * V + l < clat; l++)
            cx->out[(v * V + l) * P + p] = (int8_t)q[l];
    }
}

#define SC_ACC_MAX 12   /* accumulator vectors held in registers */

/* NB blocks (the first m valid) at block indices p.. with CV channel vectors: compile-time
 * CV and NB, so the accumulators stay in registers. */
static SC_TGT inline __attribute__((always_inline)) void
SC_FN(tile)(const SC_FN(ctx_t) *cx, const size_t *org, size_t m, size_t p, const int CV,
            const int NB)
{
    SC_FN(vt) acc[SC_ACC_MAX];
    const SC_T *xb[SC_ACC_MAX];
    const size_t K = cx->pl->K, *off = cx->pl->off;
    for (int j = 0; j < NB; j++) xb[j] = cx->xs + org[(size_t)j < m ? (size_t)j : m - 1];
    for (int j = 0; j < NB; j++)
        for (int v = 0; v < CV; v++) acc[j * CV + v] = cx->bias[v];
    const SC_FN(vt) *w = cx->wt;
    for (size_t k = 0; k < K; k++, w += CV) {
        const size_t o = off[k];
        for (int v = 0; v < CV; v++) {
            const SC_FN(vt) wv = w[v];
            for (int j = 0; j < NB; j++) acc[j * CV + v] += wv * xb[j][o];
        }
    }
    for (size_t j = 0; j < m; j++) SC_FN(store)(cx, acc + j * CV, (size_t)CV, p + j);
}

/* Any channel count, one block at a time (accumulators in memory). */
static SC_TGT void SC_FN(tile_any)(const SC_FN(ctx_t) *cx, const size_t *org, size_t p)
{
    SC_FN(vt) acc[SC_HE_MAX_CLAT];  /* cv <= SC_HE_MAX_CLAT */
    const size_t K = cx->pl->K, *off = cx->pl->off, cv = cx->cv;
    const SC_T *x = cx->xs + org[0];
    for (size_t v = 0; v < cv; v++) acc[v] = cx->bias[v];
    const SC_FN(vt) *w = cx->wt;
    for (size_t k = 0; k < K; k++, w += cv)
        for (size_t v = 0; v < cv; v++) acc[v] += w[v] * x[off[k]];
    SC_FN(store)(cx, acc, cv, p);
}

#define SC_TILES(CV, NB)                                                                       \
    for (j = 0; j < nblk; j += NB)                                                             \
        SC_FN(tile)(cx, org + j, nblk - j < NB ? nblk - j : NB, p0 + j, CV, NB);               \
    break;

static SC_TGT void SC_FN(blocks)(const SC_FN(ctx_t) *cx, const size_t *org, size_t nblk, size_t p0)
{
    size_t j;
    switch (cx->cv) {
    case 1: SC_TILES(1, 12)
    case 2: SC_TILES(2, 6)
    case 3: SC_TILES(3, 4)
    case 4: SC_TILES(4, 3)
    case 6: SC_TILES(6, 2)
    case 8: SC_TILES(8, 1)
    case 12: SC_TILES(12, 1)
    default:
        for (j = 0; j < nblk; j++) SC_FN(tile_any)(cx, org + j, p0 + j);
    }
}
#undef SC_TILES
#undef SC_ACC_MAX

static SC_TGT void SC_FN(convert)(int dtype, const void *src, size_t n, SC_T *dst)
{
    if (dtype == SC_HE_U8) {
        const uint8_t *s = (const uint8_t *)src;
        for (size_t i = 0; i < n; i++) dst[i] = (SC_T)s[i];
    } else if (dtype == SC_HE_I16) {
        const int16_t *s = (const int16_t *)src;
        for (size_t i = 0; i < n; i++) dst[i] = (SC_T)s[i];
    } else {
        const uint16_t *s = (const uint16_t *)src;
        for (size_t i = 0; i < n; i++) dst[i] = (SC_T)s[i];
    }
}

static SC_TGT int SC_FN(encode)(const sc_he_args_t *a, const plan_t *pl, const void *samples,
                                int8_t *codes)
{
    enum { V = SC_VB / sizeof(SC_T) };
    const size_t esize = a->dtype == SC_HE_U8 ? 1 : 2;
    size_t cv = (pl->clat + V - 1) / V;
    static const size_t fast[] = {1, 2, 3, 4, 6, 8, 12};
    for (size_t i = 0; i < sizeof fast / sizeof fast[0]; i++)
        if (fast[i] >= cv) { cv = fast[i] - cv <= 1 ? fast[i] : cv; break; }
    const size_t cpad = cv * V, nslab = pl->cnt * pl->per_g0, norg = pl->cnt * pl->g[1] * pl->g[2];
    /* one allocation: weights and bias/scale vectors (64-byte aligned), slab, block origins */
    const size_t nvec = (pl->K + 2) * cv, bytes = 64 + nvec * SC_VB + (nslab + 1) * sizeof(SC_T)
                                                  + norg * sizeof(size_t);
    char *mem = malloc(bytes);
    if (!mem) return SC_HE_ENOMEM;
    SC_FN(vt) *wt = (SC_FN(vt) *)(mem + (64 - (uintptr_t)mem % 64)), *bs = wt + pl->K * cv;
    SC_T *xs = (SC_T *)(bs + 2 * cv);
    size_t *org = (size_t *)(void *)(xs + nslab + (nslab & 1));
    SC_T *w = (SC_T *)wt, *b = (SC_T *)bs;
    for (size_t k = 0; k < pl->K; k++)
        for (size_t c = 0; c < cpad; c++)
            w[k * cpad + c] = c < pl->clat ? (SC_T)a->weight[c * pl->K + pl->widx[k]] : 0;
    for (size_t c = 0; c < cpad; c++) {
        b[c] = c < pl->clat ? (SC_T)a->bias[c] : 0;
        b[cpad + c] = c < pl->clat ? (SC_T)scale_of(a->shift[c]) : 1;
    }
    SC_FN(ctx_t) cx = {pl, wt, bs, bs + cv, xs, NULL, cv};
    const size_t g12 = pl->g[1] * pl->g[2];
    for (size_t item = 0; item < pl->n; item++) {
        cx.out = codes + item * pl->clat * pl->P;
        for (size_t g0 = 0; g0 < pl->g[0]; g0 += pl->cnt) {
            const size_t m = pl->g[0] - g0 < pl->cnt ? pl->g[0] - g0 : pl->cnt;
            SC_FN(convert)(a->dtype, (const char *)samples + (item * pl->item + g0 * pl->per_g0) * esize,
                           m * pl->per_g0, xs);
            const size_t j = slab_origins(pl, m, org);
            SC_FN(blocks)(&cx, org, j, g0 * g12);
        }
    }
    free(mem);
    return SC_HE_OK;
}
