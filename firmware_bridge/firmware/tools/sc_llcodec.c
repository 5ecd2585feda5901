/* Host tool for the ctx-ac and rans lossless coders (src/sc_lossless.c, src/sc_rans.c):
 * int8 codes <-> payload.
 * Build: cc -Iinclude tools/sc_llcodec.c src/sc_lossless.c src/sc_rans.c
 * Run:   sc_llcodec enc C ROWS COLS < codes.raw > payload.bin     (ctx-ac)
 *        sc_llcodec dec C ROWS COLS < payload.bin > codes.raw
 *        sc_llcodec renc|rdec C ROWS COLS ...                       (rans)
 * Exit status 0, 2 on usage / input errors, 3 when the coder reports an error (message on stderr).
 * Used by tests/test_native_coder.py to check that aarch64 (qemu-aarch64-static) writes the same
 * bytes as the x86 Python extension. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_lossless.h"
#include "sc_rans.h"

#define MAX_IN (64u << 20)

int main(int argc, char **argv)
{
    unsigned long c, r, w;
    size_t n, len = 0, out_len = 0;
    uint8_t *in, *out;
    void *work = NULL;
    size_t wlen = 0;
    int st, rans;
    if (argc != 5 || (strcmp(argv[1], "enc") && strcmp(argv[1], "dec") && strcmp(argv[1], "renc")
                      && strcmp(argv[1], "rdec"))) {
        fprintf(stderr, "usage: sc_llcodec enc|dec|renc|rdec C ROWS COLS < in > out\n");
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
    rans = argv[1][0] == 'r';
    if (rans) {
        wlen = argv[1][1] == 'e' ? sc_rans_enc_work((uint32_t)c) : sc_rans_dec_work((uint32_t)c);
        work = wlen ? malloc(wlen) : NULL;
    }
    in = malloc(n + 2);
    out = malloc(n + 1);
    if (!in || !out || (rans && !work)) { fprintf(stderr, "error: out of memory\n"); return 2; }
    len = fread(in, 1, n + 2, stdin);
    if (!strcmp(argv[1] + rans, "enc")) {
        if (len != n) { fprintf(stderr, "error: expected %lu code bytes\n", (unsigned long)n); return 2; }
        st = rans ? sc_rans_encode((const int8_t *)in, (uint32_t)c, (uint32_t)r, (uint32_t)w, out,
                                   n + 1, &out_len, work, wlen)
                  : sc_ll_encode((const int8_t *)in, (uint32_t)c, (uint32_t)r, (uint32_t)w, out,
                                 n + 1, &out_len);
    } else {
        st = rans ? sc_rans_decode(in, len, (uint32_t)c, (uint32_t)r, (uint32_t)w, (int8_t *)out,
                                   work, wlen)
                  : sc_ll_decode(in, len, (uint32_t)c, (uint32_t)r, (uint32_t)w, (int8_t *)out);
        out_len = n;
    }
    if (st != SC_LL_OK) { fprintf(stderr, "error: %s\n", sc_ll_strerror(st)); return 3; }
    fwrite(out, 1, out_len, stdout);
    return 0;
}
