/* Host tool: encode raw samples from stdin with a generated model header, write int8 codes to stdout.
 * Build: cc -Iinclude -DMODEL_HEADER='"bundle.h"' tools/sc_encode.c src/sc_*.c   (header prefix "bundle")
 * Run:   sc_encode H W < hwc_uint8.raw > codes.raw      (2-D; hwc_uint16.raw for uint16 bundles)     sc_encode T < tc_int16.raw   (1-D) */
#include <stdio.h>
#include <stdlib.h>

#include "sc_bridge.h"
#include MODEL_HEADER

int main(int argc, char **argv) {
    static int16_t xb[BUNDLE_K];
    if (argc != 1 + BUNDLE_DIMS) { fprintf(stderr, "usage: sc_encode %s\n", BUNDLE_DIMS == 2 ? "H W" : "T"); return 2; }
    unsigned long a = strtoul(argv[1], 0, 10), b = BUNDLE_DIMS == 2 ? strtoul(argv[2], 0, 10) : 1;
    if (a % BUNDLE_B0 || b % BUNDLE_B1) { fprintf(stderr, "error: size not a multiple of the block\n"); return 2; }
    size_t n = (size_t)a * b * BUNDLE_C_IN, ncodes = (size_t)(a / BUNDLE_B0) * (b / BUNDLE_B1) * BUNDLE_C_LAT;
    int8_t *codes = malloc(ncodes);
#if BUNDLE_DIMS == 2 && defined(BUNDLE_INPUT_UINT16)
    uint16_t *x = malloc(n * 2);
    if (!x || !codes || fread(x, 2, n, stdin) != n) { fprintf(stderr, "error: short input\n"); return 2; }
    sc_encode_2d_u16(&bundle_model, x, (uint32_t)a, (uint32_t)b, codes, xb);
#elif BUNDLE_DIMS == 2
    uint8_t *x = malloc(n);
    if (!x || !codes || fread(x, 1, n, stdin) != n) { fprintf(stderr, "error: short input\n"); return 2; }
    sc_encode_2d_u8(&bundle_model, x, (uint32_t)a, (uint32_t)b, codes, xb);
#else
    int16_t *x = malloc(n * 2);
    if (!x || !codes || fread(x, 2, n, stdin) != n) { fprintf(stderr, "error: short input\n"); return 2; }
    sc_encode_1d_i16(&bundle_model, x, (uint32_t)a, codes, xb);
#endif
    fwrite(codes, 1, ncodes, stdout);
    return 0;
}
