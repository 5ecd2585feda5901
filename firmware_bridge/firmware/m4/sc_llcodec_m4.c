/* Cortex-M4 (qemu mps2-an386, semihosting) batch encoder for the ctx-ac coder: reads jobs
 * "C ROWS COLS IN OUT" from the host file ll_jobs.txt (qemu's working directory), encodes the
 * int8 codes in file IN with src/sc_lossless.c and writes the payload to OUT, decodes it back
 * and checks the round trip. Prints "JOB <n> <bytes>" per job, then "RESULT PASS" or
 * "RESULT FAIL". Used by tests/test_native_coder.py to compare with the x86 extension. */
#include <stdio.h>
#include <string.h>

#include "sc_lossless.h"

#define MAXN (1u << 20)
static int8_t codes[MAXN], back[MAXN];
static uint8_t payload[MAXN + 1];

int main(void)
{
    char in_name[256], out_name[256];
    unsigned long c, r, w;
    int jobs = 0, fails = 0;
    FILE *list = fopen("ll_jobs.txt", "r");
    if (!list) { printf("RESULT FAIL no ll_jobs.txt\n"); return 1; }
    while (fscanf(list, "%lu %lu %lu %255s %255s", &c, &r, &w, in_name, out_name) == 5) {
        size_t n = (size_t)c * r * w, len = 0;
        FILE *f = fopen(in_name, "rb");
        int st;
        jobs++;
        if (!f || n == 0 || n > MAXN || fread(codes, 1, n, f) != n) {
            printf("JOB %d FAIL input\n", jobs);
            fails++;
            if (f) fclose(f);
            continue;
        }
        fclose(f);
        st = sc_ll_encode(codes, (uint32_t)c, (uint32_t)r, (uint32_t)w, payload, n + 1, &len);
        if (st == SC_LL_OK)
            st = sc_ll_decode(payload, len, (uint32_t)c, (uint32_t)r, (uint32_t)w, back);
        if (st != SC_LL_OK || memcmp(codes, back, n) != 0) {
            printf("JOB %d FAIL %s\n", jobs, sc_ll_strerror(st));
            fails++;
            continue;
        }
        f = fopen(out_name, "wb");
        if (!f || fwrite(payload, 1, len, f) != len) { printf("JOB %d FAIL output\n", jobs); fails++; }
        if (f) fclose(f);
        printf("JOB %d %lu\n", jobs, (unsigned long)len);
    }
    fclose(list);
    printf("RESULT %s jobs=%d\n", fails || !jobs ? "FAIL" : "PASS", jobs);
    return fails ? 1 : 0;
}
