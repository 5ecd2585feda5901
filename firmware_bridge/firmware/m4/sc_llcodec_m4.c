/* Cortex-M4 (qemu mps2-an386, semihosting) batch encoder for the ctx-ac and rans coders: reads
 * jobs "C ROWS COLS IN OUT" from the host file ll_jobs.txt (qemu's working directory), encodes
 * the int8 codes in file IN with src/sc_lossless.c (payload to OUT) and src/sc_rans.c (payload
 * to OUT.rans), decodes both back and checks the round trips. Prints "JOB <n> <bytes> <bytes>"
 * per job, then "RESULT PASS" or "RESULT FAIL". Used by tests/test_native_coder.py to compare
 * with the x86 extension. */
#include <stdio.h>
#include <string.h>

#include "sc_lossless.h"
#include "sc_rans.h"

#define MAXN (1u << 19)
#define WORK_WORDS 160000u /* rans encoder work for up to 48 channels (602 KB) */
static int8_t codes[MAXN], back[MAXN];
static uint8_t payload[MAXN + 1];
static uint32_t work[WORK_WORDS];

static int write_file(const char *name, const uint8_t *data, size_t len)
{
    FILE *f = fopen(name, "wb");
    int ok = f && fwrite(data, 1, len, f) == len;
    if (f) fclose(f);
    return ok;
}

/* rans round trip of codes[0 .. n) into payload; the payload size, or 0 on failure */
static size_t rans_job(uint32_t c, uint32_t r, uint32_t w, size_t n)
{
    size_t len = 0;
    if (sc_rans_enc_work(c) > sizeof work || sc_rans_dec_work(c) > sizeof work) return 0;
    if (sc_rans_encode(codes, c, r, w, payload, n + 1, &len, work, sizeof work) != SC_LL_OK) return 0;
    if (sc_rans_decode(payload, len, c, r, w, back, work, sizeof work) != SC_LL_OK) return 0;
    return memcmp(codes, back, n) ? 0 : len;
}

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
        if (!write_file(out_name, payload, len)) { printf("JOB %d FAIL output\n", jobs); fails++; continue; }
        {
            size_t rlen = rans_job((uint32_t)c, (uint32_t)r, (uint32_t)w, n);
            char rname[300];
            strcpy(rname, out_name);
            strcat(rname, ".rans");
            if (!rlen || !write_file(rname, payload, rlen)) {
                printf("JOB %d FAIL rans\n", jobs);
                fails++;
                continue;
            }
            printf("JOB %d %lu %lu\n", jobs, (unsigned long)len, (unsigned long)rlen);
        }
    }
    fclose(list);
    printf("RESULT %s jobs=%d\n", fails || !jobs ? "FAIL" : "PASS", jobs);
    return fails ? 1 : 0;
}
