/* Unit tests of the ctx-ac lossless coder (src/sc_lossless.c) on the host, aarch64/armhf
 * (qemu user mode) and Cortex-M4 (qemu-system-arm, semihosting). Prints one
 * "LLCRC <case> <bytes> <crc32>" line per case so the targets' outputs can be compared, then
 * "RESULT PASS" or "RESULT FAIL". Fixed-size static buffers: no malloc. */
#include <stdio.h>
#include <string.h>

#include "sc_bridge.h"
#include "sc_lossless.h"

#define NMAX 4096
static int8_t codes[NMAX], back[NMAX];
static uint8_t buf[NMAX + 1];
static int fails;

#define CHECK(cond, what) do { if (!(cond)) { printf("FAIL %s: %s\n", name, what); fails++; return; } } while (0)

static uint32_t rng = 12345u;
static uint32_t next(void) { rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5; return rng; }

/* Laplace-like codes with spatial structure: scale varies smoothly, a few large values. */
static void fill(uint32_t n, int kind)
{
    uint32_t i;
    if (kind == 3) { memset(codes, 0, n); return; }
    for (i = 0; i < n; i++) {
        uint32_t u = next();
        int mag = 0, v;
        if (kind == 0) mag = (u & 7u) < 5u ? 0 : (int)((u >> 3) & 3u);
        else if (kind == 1) mag = (int)((u >> 8) % 200u) - 60;
        else mag = (int)(u & 255u) - 128;
        if (kind == 1) mag = mag < 0 ? 0 : mag;
        v = (u >> 16) & 1u ? -mag : mag;
        if (kind != 2) v = v > 127 ? 127 : v < -128 ? -128 : v;
        else v = (int)(int8_t)(u & 255u);
        codes[i] = (int8_t)v;
    }
    if (n > 3 && kind == 1) { codes[0] = -128; codes[1] = 127; codes[2] = 15; codes[3] = -14; }
}

static void round_trip(const char *name, uint32_t c, uint32_t r, uint32_t w, int kind, int hostile)
{
    uint32_t n = c * r * w, k;
    size_t len = 0;
    int st;
    fill(n, kind);
    st = sc_ll_encode(codes, c, r, w, buf, (size_t)n + 1, &len);
    CHECK(st == SC_LL_OK, "encode");
    CHECK(len >= 1 && len <= (size_t)n + 1, "bound");
    CHECK(sc_ll_encode(codes, c, r, w, buf, (size_t)n, &len) == SC_LL_E_SPACE, "small buffer");
    st = sc_ll_encode(codes, c, r, w, buf, (size_t)n + 1, &len);
    memset(back, 0x55, sizeof back);
    CHECK(sc_ll_decode(buf, len, c, r, w, back) == SC_LL_OK, "decode");
    CHECK(memcmp(codes, back, n) == 0, "round trip");
    printf("LLCRC %s %lu %08lx\n", name, (unsigned long)len, (unsigned long)sc_crc32(buf, len));
    if (!hostile) return;
    for (k = 0; k < len; k++) CHECK(sc_ll_decode(buf, k, c, r, w, back) != SC_LL_OK, "truncation accepted");
    buf[len] = 0;
    CHECK(sc_ll_decode(buf, len + 1, c, r, w, back) == SC_LL_E_TRAILING, "padding accepted");
    for (k = 0; k < 200 && len > 1; k++) { /* bit flips: any status, no crash */
        uint32_t at = 1 + next() % (uint32_t)(len - 1), bit = next() & 7u;
        buf[at] ^= (uint8_t)(1u << bit);
        (void)sc_ll_decode(buf, len, c, r, w, back);
        buf[at] ^= (uint8_t)(1u << bit);
    }
    buf[0] = 7;
    CHECK(sc_ll_decode(buf, len, c, r, w, back) == SC_LL_E_FORMAT, "format byte");
}

static void bad_args(void)
{
    const char *name = "args";
    size_t len;
    CHECK(sc_ll_encode(codes, 0, 1, 1, buf, 8, &len) == SC_LL_E_ARG, "zero channels");
    CHECK(sc_ll_decode(buf, 8, 1, 0, 1, back) == SC_LL_E_ARG, "zero rows");
    CHECK(sc_ll_decode(buf, 0, 1, 1, 1, back) == SC_LL_E_TRUNC, "empty payload");
}

int main(void)
{
    round_trip("sparse-2d", 4, 16, 24, 0, 1);
    round_trip("wide-2d", 3, 8, 17, 1, 1);
    round_trip("noise-stored", 2, 8, 8, 2, 1);
    round_trip("sparse-1d", 6, 1, 300, 0, 1);
    round_trip("one-code", 1, 1, 1, 1, 0);
    round_trip("zeros", 8, 16, 32, 3, 0);
    bad_args();
    printf("RESULT %s\n", fails ? "FAIL" : "PASS");
    return fails ? 1 : 0;
}
