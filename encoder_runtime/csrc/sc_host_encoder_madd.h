/* The x86 integer fast path of the host encoder, included by sc_host_encoder.c (no include
 * guard: one instantiation per vector width) with
 *   SM_VB (32: AVX2, 64: AVX-512BW), SM_VNNI (1: AVX-512 VNNI's fused vpdpwssd),
 *   SM_FN(x) (a unique name), SM_TGT (its target attribute),
 *   SM_F(x) (the float32 instantiation of sc_host_encoder_kernel.h of the same width).
 * For models whose taps pair up in memory (tap 2m+1 follows tap 2m) and whose sums are float32-
 * exact: int16 samples × int16 weight pairs summed by pmaddwd (32-bit lanes, one per latent
 * channel), the int32 sums converted to float32 (exact) and requantized by SM_F(store). */
#include <immintrin.h>

#if SM_VB == 64
#define SM_V __m512i
#define SM_SET1(x) _mm512_set1_epi32(x)
#if SM_VNNI
#define SM_MADD(acc, w, x) _mm512_dpwssd_epi32(acc, w, x)
#define SM_DOT4(acc, x, w) _mm512_dpbusd_epi32(acc, x, w)
#else
#define SM_MADD(acc, w, x) _mm512_add_epi32(acc, _mm512_madd_epi16(w, x))
#define SM_DOT4(acc, x, w) (acc)
#endif
#define SM_TOF(a) ((SM_F(vt))_mm512_cvtepi32_ps(a))
#else
#define SM_V __m256i
#define SM_SET1(x) _mm256_set1_epi32(x)
#define SM_MADD(acc, w, x) _mm256_add_epi32(acc, _mm256_madd_epi16(w, x))
#define SM_DOT4(acc, x, w) (acc)
#define SM_TOF(a) ((SM_F(vt))_mm256_cvtepi32_ps(a))
#endif

#define SM_ACC_MAX 12

/* NB blocks (the first m valid) at block indices p.. with CV channel vectors; taps in groups of
 * G adjacent samples of type XT (G = 2: int16 pairs by pmaddwd; G = 4: uint8 quads by VNNI
 * vpdpbusd), each group broadcast to all lanes against the lanes' G weights. */
static SM_TGT inline __attribute__((always_inline)) void
SM_FN(tile)(const SM_F(ctx_t) *cx, const SM_V *wt, const SM_V *bias, const void *xs, size_t esize,
            const size_t *org, size_t m, size_t p, const int CV, const int NB, const int G)
{
    SM_V acc[SM_ACC_MAX];
    const char *xb[SM_ACC_MAX];
    const size_t KG = cx->pl->K / G, *off = cx->pl->off;
    for (int j = 0; j < NB; j++) xb[j] = (const char *)xs + org[(size_t)j < m ? (size_t)j : m - 1] * esize;
    for (int j = 0; j < NB; j++)
        for (int v = 0; v < CV; v++) acc[j * CV + v] = bias[v];
    for (size_t kg = 0; kg < KG; kg++, wt += CV) {
        const size_t o = off[G * kg] * esize;
        for (int j = 0; j < NB; j++) {
            int32_t group;
            memcpy(&group, xb[j] + o, sizeof group);
            const SM_V x = SM_SET1(group);
            for (int v = 0; v < CV; v++)
                acc[j * CV + v] = G == 4 ? SM_DOT4(acc[j * CV + v], x, wt[v])
                                         : SM_MADD(acc[j * CV + v], wt[v], x);
        }
    }
    for (size_t j = 0; j < m; j++) {
        SM_F(vt) f[SM_ACC_MAX];
        for (int v = 0; v < CV; v++) f[v] = SM_TOF(acc[j * CV + v]);
        SM_F(store)(cx, f, (size_t)CV, p + j);
    }
}

#define SM_TILES(CV, NB)                                                                       \
    for (j = 0; j < nblk; j += NB)                                                             \
        SM_FN(tile)(cx, wt, bias, xs, esize, org + j, nblk - j < NB ? nblk - j : NB, p0 + j,    \
                    CV, NB, G);                                                                \
    break;

#define SM_BLOCKS(NAME, G_)                                                                    \
    static SM_TGT void SM_FN(NAME)(const SM_F(ctx_t) *cx, const SM_V *wt, const SM_V *bias,    \
                                   const void *xs, size_t esize, const size_t *org,            \
                                   size_t nblk, size_t p0)                                     \
    {                                                                                          \
        enum { G = G_ };                                                                       \
        size_t j;                                                                              \
        switch (cx->cv) {                                                                      \
        case 1: SM_TILES(1, 12)                                                                \
        case 2: SM_TILES(2, 6)                                                                 \
        case 3: SM_TILES(3, 4)                                                                 \
        default: SM_TILES(4, 3)                                                                \
        }                                                                                      \
    }
SM_BLOCKS(blocks2, 2)
#if SM_VNNI
SM_BLOCKS(blocks4, 4)
#endif
#undef SM_BLOCKS
#undef SM_TILES

/* The grouped-tap integer path when it applies (returns SC_HE_EARG otherwise: the caller falls
 * back to the float kernels): G = 4 for uint8 samples under VNNI, else G = 2. Each slab (a
 * layer of blocks along axis 0) is first copied / widened into xs. */
static SM_TGT int SM_FN(encode)(const sc_he_args_t *a, const plan_t *pl, const void *samples,
                                int8_t *codes)
{
    enum { L = SM_VB / 4 };  /* int32 lanes: latent channels per vector */
    const size_t cv = (pl->clat + L - 1) / L, cpad = cv * L;
    if (cv > 4 || a->dtype == SC_HE_U16) return SC_HE_EARG;
    size_t G = SM_VNNI && a->dtype == SC_HE_U8 ? 4 : 2;
    for (;; G = 2) {
        int ok = pl->K % G == 0;
        for (size_t k = 0; ok && k < pl->K; k++)
            ok = k % G == 0 || pl->off[k] == pl->off[k - 1] + 1;
        if (ok) break;
        if (G == 2) return SC_HE_EARG;
    }
    const size_t KG = pl->K / G, wsize = G == 4 ? 1 : 2;
    const size_t esize = a->dtype == SC_HE_U8 ? 1 : 2, nslab = pl->cnt * pl->per_g0;
    const size_t norg = pl->cnt * pl->g[1] * pl->g[2], nxs = (nslab + 7) & ~(size_t)3;
    const size_t bytes = 64 + (KG + 2) * cv * SM_VB + nxs * 2 + norg * sizeof(size_t);
    char *mem = malloc(bytes);
    if (!mem) return SC_HE_ENOMEM;
    SM_V *wt = (SM_V *)(void *)(mem + (64 - (uintptr_t)mem % 64)), *bias = wt + KG * cv;
    SM_F(vt) *sc = (SM_F(vt) *)(void *)(bias + cv);
    int16_t *xs = (int16_t *)(void *)(sc + cv);
    size_t *org = (size_t *)(void *)(xs + nxs);
    int32_t *b = (int32_t *)(void *)bias;
    float *s = (float *)(void *)sc;
    for (size_t kg = 0; kg < KG; kg++)
        for (size_t c = 0; c < cpad; c++)
            for (size_t h = 0; h < G; h++) {
                const int8_t w = c < pl->clat ? a->weight[c * pl->K + pl->widx[G * kg + h]] : 0;
                const size_t i = (kg * cpad + c) * G + h;
                if (wsize == 1) ((int8_t *)(void *)wt)[i] = w;
                else ((int16_t *)(void *)wt)[i] = w;
            }
    for (size_t c = 0; c < cpad; c++) {
        b[c] = c < pl->clat ? a->bias[c] : 0;
        s[c] = c < pl->clat ? (float)scale_of(a->shift[c]) : 1.0f;
    }
    SM_F(ctx_t) cx = {pl, NULL, NULL, sc, NULL, NULL, cv};
    const size_t g12 = pl->g[1] * pl->g[2];
    for (size_t item = 0; item < pl->n; item++) {
        cx.out = codes + item * pl->clat * pl->P;
        for (size_t g0 = 0; g0 < pl->g[0]; g0 += pl->cnt) {
            const size_t m = pl->g[0] - g0 < pl->cnt ? pl->g[0] - g0 : pl->cnt, n = m * pl->per_g0;
            const void *src = (const char *)samples + (item * pl->item + g0 * pl->per_g0) * esize;
            const size_t j = slab_origins(pl, m, org);
#if SM_VNNI
            if (G == 4) { /* uint8 quads from a copy of the slab (one streaming read: faster
                           * than gathering the blocks from the frame) */
                memcpy(xs, src, n);
                SM_FN(blocks4)(&cx, wt, bias, xs, 1, org, j, g0 * g12);
                continue;
            }
#endif
            if (esize == 1) {
                const uint8_t *u8 = (const uint8_t *)src;
                for (size_t i = 0; i < n; i++) xs[i] = (int16_t)u8[i];
            } else {
                memcpy(xs, src, n * 2);
            }
            SM_FN(blocks2)(&cx, wt, bias, xs, 2, org, j, g0 * g12);
        }
    }
    free(mem);
    return SC_HE_OK;
}

#undef SM_V
#undef SM_SET1
#undef SM_MADD
#undef SM_DOT4
#undef SM_TOF
#undef SM_ACC_MAX
