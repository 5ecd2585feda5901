/* Host tool for the ctx-ac lossless coder (src/sc_lossless.c): int8 codes <-> payload.
 * Build: cc -Iinclude tools/sc_llcodec.c src/sc_lossless.c
 * Run:   sc_llcodec enc C ROWS COLS < codes.raw > payload.bin
 *        sc_llcodec dec C ROWS COLS < payload.bin > codes.raw
 * Exit status 0, 2 on usage / input errors, 3 when the coder reports an error (message on stderr).
 * Used by tests/test_native_coder.py to check that aarch64 (qemu-aarch64-static) writes the same
 * bytes as the x86 Python extension. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_lossless.h"

#define MAX_IN (64u << 20)

int main(int argc, char **argv)
{
    unsigned long c, r, w;
    size_t n, len = 0, out_len = 0;
    uint8_t *in, *out;
    int st;
    if (argc != 5 || (strcmp(argv[1], "enc") && strcmp(argv[1], "dec"))) {
        fprintf(stderr, "usage: sc_llcodec enc|dec C ROWS COLS < in > out\n");
        return 2;
    }
    c = strtoul(argv[2], 0, 10);
    r = strtoul(argv[3], 0, 10);
    w = strtoul(argv[4], 0, 10);
    if (!c || !r || !w || c > MAX_IN || r > MAX_IN || w > MAX_IN || c * r > MAX_IN
        || c * r * w > MAX_IN) {
        fprintf(stderr, "error: dimensions must be positive, at most %u codes\n", MAX_IN);
        return 2;
    }
    n = (size_t)c * r * w;
    in = malloc(n + 2);
    out = malloc(n + 1);
    if (!in || !out) { fprintf(stderr, "error: out of memory\n"); return 2; }
    len = fread(in, 1, n + 2, stdin);
    if (!strcmp(argv[1], "enc")) {
        if (len != n) { fprintf(stderr, "error: expected %lu code bytes\n", (unsigned long)n); return 2; }
        st = sc_ll_encode((const int8_t *)in, (uint32_t)c, (uint32_t)r, (uint32_t)w, out, n + 1, &out_len);
    } else {
        st = sc_ll_decode(in, len, (uint32_t)c, (uint32_t)r, (uint32_t)w, (int8_t *)out);
        out_len = n;
    }
    if (st != SC_LL_OK) { fprintf(stderr, "error: %s\n", sc_ll_strerror(st)); return 3; }
    fwrite(out, 1, out_len, stdout);
    return 0;
}
