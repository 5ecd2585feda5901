/* Host encoder kernel (see sc_host_encoder.h): block gather + dot products + requantization,
 * instantiated from sc_host_encoder_kernel.h for float32 / float64 accumulators and, on x86_64,
 * for SSE2, AVX2 and AVX-512 (chosen once at run time); NEON on aarch64. */
#include "sc_host_encoder.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SC_HE_MAX_CLAT 256

typedef struct {
    size_t K;                  /* taps per block: c_in * prod(block) */
    size_t *off;               /* (K,) sample offset of each tap from its block's origin */
    size_t *widx;              /* (K,) the tap's index in the weight's (c_in, *block) order */
    size_t s[SC_HE_MAX_DIMS], b[SC_HE_MAX_DIMS], g[SC_HE_MAX_DIMS]; /* sizes, blocks, grid */
    size_t n, cin, clat, P;    /* items, channels, blocks per item */
    size_t per_g0, item, cnt;  /* samples per layer of blocks along axis 0, per item; layers per slab */
    int32_t code_max;
} plan_t;

/* 2**-shift as the kernel uses it: shifts beyond [-8, 62] give the same clamped codes for
 * |acc| < 2**62 and code_max < 256 (a left shift by 8 saturates any nonzero acc). */
static double scale_of(int32_t shift)
{
    return ldexp(1.0, -(shift < -8 ? -8 : shift > 62 ? 62 : shift));
}

/* Sample offsets (from the slab start) of the blocks of m layers along axis 0, in block order;
 * returns their count. */
static size_t slab_origins(const plan_t *pl, size_t m, size_t *org)
{
    size_t j = 0;
    for (size_t u = 0; u < m; u++)
        for (size_t g1 = 0; g1 < pl->g[1]; g1++)
            for (size_t g2 = 0; g2 < pl->g[2]; g2++)
                org[j++] = u * pl->per_g0 + (g1 * pl->b[1] * pl->s[2] + g2 * pl->b[2]) * pl->cin;
    return j;
}

#define SC_CAT2(a, b) a##_##b
#define SC_CAT(a, b) SC_CAT2(a, b)

#define SC_VB 16
#define SC_TGT
#define SC_SF f16
#define SC_SD d16
#include "sc_host_encoder_pair.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define SC_HE_X86 1
#define SC_VB 32
#define SC_TGT __attribute__((target("avx2,fma")))
#define SC_SF f32
#define SC_SD d32
#include "sc_host_encoder_pair.h"
#define SC_VB 64
#define SC_TGT __attribute__((target("avx512f,avx512dq,avx2,fma")))
#define SC_SF f64
#define SC_SD d64
#include "sc_host_encoder_pair.h"

#define SM_VNNI 0
#define SM_VB 32
#define SM_TGT __attribute__((target("avx2,fma")))
#define SM_FN(x) SC_CAT(x, m32)
#define SM_F(x) SC_CAT(x, f32)
#include "sc_host_encoder_madd.h"
#undef SM_VB
#undef SM_TGT
#undef SM_FN
#undef SM_F
#define SM_VB 64
#define SM_TGT __attribute__((target("avx512f,avx512bw,avx512dq,avx2,fma")))
#define SM_FN(x) SC_CAT(x, m64)
#define SM_F(x) SC_CAT(x, f64)
#include "sc_host_encoder_madd.h"
#undef SM_VNNI
#undef SM_TGT
#undef SM_FN
#define SM_VNNI 1
#define SM_TGT __attribute__((target("avx512f,avx512bw,avx512dq,avx512vnni,avx2,fma")))
#define SM_FN(x) SC_CAT(x, v64)
#include "sc_host_encoder_madd.h"
#undef SM_VNNI
#undef SM_VB
#undef SM_TGT
#undef SM_FN
#undef SM_F
#endif

typedef int (*kernel_fn)(const sc_he_args_t *, const plan_t *, const void *, int8_t *);

static int isa_limit = 3;

/* 0: 16-byte vectors (SSE2 / NEON), 1: AVX2, 2: AVX-512, 3: AVX-512 VNNI (at most isa_limit) */
static int isa_level(void)
{
#ifdef SC_HE_X86
    static int level = -1;
    if (level < 0) {
        __builtin_cpu_init();
        level = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
                && __builtin_cpu_supports("avx512bw")
                ? (__builtin_cpu_supports("avx512vnni") ? 3 : 2)
                : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
    }
    return level < isa_limit ? level : isa_limit;
#else
    return 0;
#endif
}

const char *sc_he_isa(void)
{
    static const char *names[] = {
#if defined(__aarch64__)
        "neon",
#elif defined(__x86_64__)
        "sse2",
#else
        "generic",
#endif
        "avx2", "avx512f", "avx512vnni"};
    return names[isa_level()];
}

const char *sc_he_limit_isa(int level)
{
    isa_limit = level < 0 ? 0 : level > 3 ? 3 : level;
    return sc_he_isa();
}

/* float32 is exact when every partial sum stays below 2**24 in magnitude. */
static int needs_float64(const sc_he_args_t *a, size_t K)
{
    const int64_t xmax = a->dtype == SC_HE_U8 ? 255 : a->dtype == SC_HE_I16 ? 32768 : 65535;
    for (uint32_t c = 0; c < a->c_lat; c++) {
        int64_t s = 0;
        for (size_t k = 0; k < K; k++) {
            int64_t w = a->weight[c * K + k];
            s += w < 0 ? -w : w;
        }
        int64_t b = a->bias[c];
        if (s * xmax + (b < 0 ? -b : b) >= ((int64_t)1 << 24)) return 1;
    }
    return 0;
}

const char *sc_he_accumulator(const sc_he_args_t *a)
{
    size_t K = a->c_in;
    for (uint32_t d = 0; d < a->dims && d < SC_HE_MAX_DIMS; d++) K *= a->block[d];
    return needs_float64(a, K) ? "float64" : "float32";
}

int sc_he_encode(const sc_he_args_t *a, const void *samples, int8_t *codes)
{
    plan_t pl;
    if (!a || !samples || !codes || a->dims < 1 || a->dims > SC_HE_MAX_DIMS || a->n == 0
        || a->c_in == 0 || a->c_lat == 0 || a->c_lat > SC_HE_MAX_CLAT || a->code_max < 1
        || a->code_max > 127 || (a->dtype != SC_HE_U8 && a->dtype != SC_HE_I16 && a->dtype != SC_HE_U16))
        return SC_HE_EARG;
    pl.K = a->c_in, pl.P = 1;
    for (uint32_t d = 0; d < SC_HE_MAX_DIMS; d++) {
        pl.s[d] = d < a->dims ? a->size[d] : 1;
        pl.b[d] = d < a->dims ? a->block[d] : 1;
        if (pl.b[d] == 0 || pl.s[d] == 0 || pl.s[d] % pl.b[d]) return SC_HE_EARG;
        pl.g[d] = pl.s[d] / pl.b[d];
        pl.K *= pl.b[d], pl.P *= pl.g[d];
    }
    pl.n = a->n, pl.cin = a->c_in, pl.clat = a->c_lat, pl.code_max = a->code_max;
    pl.per_g0 = pl.b[0] * pl.s[1] * pl.s[2] * pl.cin;
    pl.item = pl.s[0] * pl.s[1] * pl.s[2] * pl.cin;
    pl.cnt = pl.per_g0 >= 16384 ? 1 : 16384 / pl.per_g0;
    if (pl.cnt > pl.g[0]) pl.cnt = pl.g[0];
    pl.off = malloc(pl.K * sizeof(size_t));
    pl.widx = malloc(pl.K * sizeof(size_t));
    if (!pl.off || !pl.widx) {
        free(pl.off), free(pl.widx);
        return SC_HE_ENOMEM;
    }
    /* taps in memory order (u0, u1, u2, i) so that a block is read front to back */
    size_t k = 0;
    for (size_t u0 = 0; u0 < pl.b[0]; u0++)
        for (size_t u1 = 0; u1 < pl.b[1]; u1++)
            for (size_t u2 = 0; u2 < pl.b[2]; u2++)
                for (size_t i = 0; i < pl.cin; i++, k++) {
                    pl.off[k] = ((u0 * pl.s[1] + u1) * pl.s[2] + u2) * pl.cin + i;
                    pl.widx[k] = ((i * pl.b[0] + u0) * pl.b[1] + u1) * pl.b[2] + u2;
                }
    static const kernel_fn kernels[4][2] = {
        {encode_f16, encode_d16},
#ifdef SC_HE_X86
        {encode_f32, encode_d32},
        {encode_f64, encode_d64},
        {encode_f64, encode_d64},
#else
        {encode_f16, encode_d16},
        {encode_f16, encode_d16},
        {encode_f16, encode_d16},
#endif
    };
    const int level = isa_level(), f64 = needs_float64(a, pl.K);
    int rc = SC_HE_EARG;
#ifdef SC_HE_X86
    if (!f64) /* int16 pairs by pmaddwd where the taps pair up (the float path otherwise) */
        rc = level == 3 ? encode_v64(a, &pl, samples, codes)
             : level == 2 ? encode_m64(a, &pl, samples, codes)
             : level == 1 ? encode_m32(a, &pl, samples, codes) : SC_HE_EARG;
#endif
    if (rc == SC_HE_EARG) rc = kernels[level][f64](a, &pl, samples, codes);
    free(pl.off), free(pl.widx);
    return rc;
}
