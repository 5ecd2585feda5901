#include "sc_bridge.h"

/* floor(a / 2^s) for s in [1, 62] without relying on implementation-defined >> of negatives. */
static int64_t floor_shift(int64_t a, int s) {
    return a >= 0 ? (a >> s) : -(((-a) - 1) >> s) - 1;
}

int32_t sc_requant(int32_t acc, int32_t shift, int32_t code_max) {
    int64_t q;
    if (shift > 0) {
        int s = shift > 62 ? 62 : (int)shift;
        int64_t a = acc;
        q = floor_shift(a, s);
        int64_t r = a - q * ((int64_t)1 << s); /* 0 <= r < 2^s */
        int64_t half = (int64_t)1 << (s - 1);
        if (r > half || (r == half && (q & 1))) q++;
    } else if (shift == 0) {
        q = acc;
    } else if (-shift > 31) {
        q = acc > 0 ? (int64_t)code_max + 1 : acc < 0 ? -(int64_t)code_max - 1 : 0;
    } else {
        q = (int64_t)acc * ((int64_t)1 << (-shift));
    }
    if (q > code_max) q = code_max;
    if (q < -code_max) q = -code_max;
    return (int32_t)q;
}

void sc_encode_block(const sc_model_t *m, const int16_t *xb, int8_t *codes) {
    const int8_t *w = m->weight;
    const uint32_t k = m->k;
    for (uint32_t c = 0; c < m->c_lat; c++, w += k) {
        int32_t acc = m->bias[c];
        for (uint32_t i = 0; i < k; i++) acc += (int32_t)w[i] * (int32_t)xb[i];
        codes[c] = (int8_t)sc_requant(acc, m->shift[c], m->code_max);
    }
}

void sc_encode_1d_i16(const sc_model_t *m, const int16_t *x, uint32_t t, int8_t *codes, int16_t *xb) {
    const uint32_t b = m->block[0], cin = m->c_in, np = t / b;
    int8_t tmp[256];
    for (uint32_t p = 0; p < np; p++) {
        /* gather (C_in, b) from channel-last (T, C_in) */
        for (uint32_t i = 0; i < cin; i++)
            for (uint32_t j = 0; j < b; j++) xb[i * b + j] = x[(p * b + j) * cin + i];
        sc_encode_block(m, xb, tmp);
        for (uint32_t c = 0; c < m->c_lat; c++) codes[c * np + p] = tmp[c];
    }
}

/* gather (C_in, b0, b1) blocks from channel-last (H, W, C_in) samples of any integer type */
#define SC_ENCODE_2D(X)                                                                            \
    const uint32_t b0 = m->block[0], b1 = m->block[1], cin = m->c_in;                              \
    const uint32_t gh = h / b0, gw = w / b1, np = gh * gw;                                         \
    int8_t tmp[256];                                                                               \
    for (uint32_t py = 0; py < gh; py++)                                                           \
        for (uint32_t px = 0; px < gw; px++) {                                                     \
            for (uint32_t i = 0; i < cin; i++)                                                     \
                for (uint32_t u = 0; u < b0; u++)                                                  \
                    for (uint32_t v = 0; v < b1; v++)                                              \
                        xb[(i * b0 + u) * b1 + v] = (int16_t)X[((py * b0 + u) * w + (px * b1 + v)) * cin + i]; \
            sc_encode_block(m, xb, tmp);                                                           \
            for (uint32_t c = 0; c < m->c_lat; c++) codes[c * np + py * gw + px] = tmp[c];         \
        }

void sc_encode_2d_u8(const sc_model_t *m, const uint8_t *x, uint32_t h, uint32_t w, int8_t *codes, int16_t *xb) {
    SC_ENCODE_2D(x)
}

void sc_encode_2d_u16(const sc_model_t *m, const uint16_t *x, uint32_t h, uint32_t w, int8_t *codes, int16_t *xb) {
    SC_ENCODE_2D(x)
}
