/* Unit tests + cross-language vectors + encoder-vs-reference on real data. Runs on the host (make
 * test) and on Cortex-M4 under QEMU (the pytest parses its output: CODES/TICKS/FRAME lines). */
#include <stdio.h>
#include <string.h>

#include "sc_bridge.h"
#include "sc_hal.h"
#include "gen/vectors.h"
#include "gen/model_audio.h"
#include "gen/model_rgb.h"
#include "gen/data_real.h"

static int failures, checks;
#define CHECK(cond, ...) do { checks++; if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); printf("\n"); } } while (0)

static uint8_t buf[4096], raw[2048];

static void hex_line(const char *tag, const char *name, const uint8_t *p, size_t n) {
    printf("%s %s ", tag, name);
    for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
    printf("\n");
}

static void test_crc(void) {
    CHECK(sc_crc32((const uint8_t *)"123456789", 9) == SC_CRC32_CHECK, "crc32 check value %08lx",
          (unsigned long)sc_crc32((const uint8_t *)"123456789", 9));
    uint32_t c = sc_crc32_update(0, (const uint8_t *)"1234", 4);
    CHECK(sc_crc32_update(c, (const uint8_t *)"56789", 5) == SC_CRC32_CHECK, "incremental crc");
    CHECK(sc_crc32((const uint8_t *)"", 0) == 0, "crc of empty");
}

static void test_cobs(void) {
    for (size_t i = 0; i < sizeof cobs_cases / sizeof cobs_cases[0]; i++) {
        size_t m = sc_cobs_encode(cobs_cases[i].in, cobs_cases[i].n, buf, sizeof buf);
        CHECK(m == cobs_cases[i].m && memcmp(buf, cobs_cases[i].out, m) == 0, "cobs encode case %u", (unsigned)i);
        size_t d = sc_cobs_decode(cobs_cases[i].out, cobs_cases[i].m, raw, sizeof raw);
        if (cobs_cases[i].n == 0) CHECK(d == (size_t)-1, "cobs decode empty case %u", (unsigned)i);
        else CHECK(d == cobs_cases[i].n && memcmp(raw, cobs_cases[i].in, d) == 0, "cobs decode case %u", (unsigned)i);
    }
    const uint8_t bad1[] = {0x05, 0x11}, bad2[] = {0x02, 0x00};
    CHECK(sc_cobs_decode(bad1, 2, raw, sizeof raw) == 0, "cobs rejects overrun");
    CHECK(sc_cobs_decode(bad2, 2, raw, sizeof raw) == 0, "cobs rejects zero");
    CHECK(sc_cobs_encode(bad1, 2, buf, 2) == 0, "cobs encode checks capacity");
}

static void test_frames(void) {
    sc_frame_t f;
    for (size_t i = 0; i < sizeof frame_cases / sizeof frame_cases[0]; i++) {
        size_t m = sc_frame_encode(frame_cases[i].type, frame_cases[i].flags, frame_cases[i].seq, frame_cases[i].t,
                                   frame_cases[i].payload, frame_cases[i].n, buf, sizeof buf);
        CHECK(m == frame_cases[i].m && memcmp(buf, frame_cases[i].wire, m) == 0, "frame encode case %u", (unsigned)i);
        int r = sc_frame_decode(frame_cases[i].wire, frame_cases[i].m - 1, raw, sizeof raw, &f);
        CHECK(r == SC_OK && f.type == frame_cases[i].type && f.flags == frame_cases[i].flags &&
              f.seq == frame_cases[i].seq && f.t_mcu_us == frame_cases[i].t && f.payload_len == frame_cases[i].n &&
              memcmp(f.payload, frame_cases[i].payload, f.payload_len) == 0, "frame decode case %u (r=%d)", (unsigned)i, r);
    }
    /* streaming receiver: junk, a flipped frame, all good frames, an overlong run */
    static uint8_t acc[SC_COBS_MAX(1024)], rraw[1024];
    sc_rx_t rx;
    sc_rx_init(&rx, acc, sizeof acc, rraw, sizeof rraw);
    int got = 0, errs = 0;
    const uint8_t junk[] = {0x11, 0x22, 0x33, 0x00, 0x00};
    for (size_t j = 0; j < sizeof junk; j++) errs += sc_rx_push(&rx, junk[j], &f) < 0;
    for (size_t i = 0; i < frame_cases[1].m; i++)
        errs += sc_rx_push(&rx, (uint8_t)(frame_cases[1].wire[i] ^ (i == 3 ? 0x10 : 0)), &f) < 0;
    for (size_t k = 0; k < sizeof frame_cases / sizeof frame_cases[0]; k++)
        for (size_t i = 0; i < frame_cases[k].m; i++) {
            int r = sc_rx_push(&rx, frame_cases[k].wire[i], &f);
            if (r == 1) got += f.seq == frame_cases[k].seq;
            if (r < 0) errs++;
        }
    for (size_t i = 0; i < 3000; i++) sc_rx_push(&rx, 0x55, &f);
    errs += sc_rx_push(&rx, 0, &f) < 0;
    got += 0;
    for (size_t i = 0; i < frame_cases[0].m; i++) got += sc_rx_push(&rx, frame_cases[0].wire[i], &f) == 1;
    CHECK(got == (int)(sizeof frame_cases / sizeof frame_cases[0]) + 1, "rx recovered %d frames", got);
    CHECK(errs == 3 && rx.errors == 3, "rx counted %d errors (%lu)", errs, (unsigned long)rx.errors);
}

static void test_requant(void) {
    static const int32_t cases[][4] = { /* acc, shift, code_max, expected */
        {3, 1, 127, 2}, {5, 1, 127, 2}, {-3, 1, 127, -2}, {-5, 1, 127, -2}, {7, 2, 127, 2}, {6, 2, 127, 2},
        {10, 2, 127, 2}, {-6, 2, 127, -2}, {-10, 2, 127, -2}, {-1, 1, 127, 0}, {1, 1, 127, 0}, {-2, 2, 127, 0},
        {1000, 0, 127, 127}, {-1000, 0, 127, -127}, {3, -2, 127, 12}, {-3, -5, 127, -96}, {5, -40, 127, 127},
        {-5, -40, 127, -127}, {0, -40, 127, 0}, {1 << 30, 62, 127, 0}, {-(1 << 30), 62, 127, 0},
        {16777215, 17, 127, 127}, {-192, 7, 127, -2}, {-128, 8, 127, 0}, {-384, 8, 127, -2}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK(sc_requant(cases[i][0], cases[i][1], cases[i][2]) == cases[i][3], "requant(%ld, %ld) = %ld, want %ld",
              (long)cases[i][0], (long)cases[i][1], (long)sc_requant(cases[i][0], cases[i][1], cases[i][2]), (long)cases[i][3]);
}

static int8_t codes[4096];
static int16_t xb[1024];

static void test_encoder(void) {
    static const unsigned a_shape[] = DATA_AUDIO_SHAPE, r_shape[] = DATA_RGB_SHAPE;
    /* audio: (T, 1) int16, block 16 -> 4 channels */
    uint32_t na = (a_shape[0] / AUDIO_B0) * AUDIO_C_LAT;
    hal_cycle_start();
    sc_encode_1d_i16(&audio_model, data_audio, a_shape[0], codes, xb);
    uint32_t ta = hal_cycle_elapsed();
    CHECK(memcmp(codes, codes_audio, na) == 0, "audio codes differ from the reference");
    hex_line("CODES", "audio", (const uint8_t *)codes, na);
    printf("TICKS audio %lu blocks %u macs %u\n", (unsigned long)ta, a_shape[0] / AUDIO_B0,
           (a_shape[0] / AUDIO_B0) * AUDIO_C_LAT * AUDIO_K);
    /* rgb: (H, W, 3) uint8, block 8x8 -> 16 channels */
    uint32_t nb = (r_shape[0] / RGB_B0) * (r_shape[1] / RGB_B1), nr = nb * RGB_C_LAT;
    hal_cycle_start();
    sc_encode_2d_u8(&rgb_model, data_rgb, r_shape[0], r_shape[1], codes, xb);
    uint32_t tr = hal_cycle_elapsed();
    CHECK(memcmp(codes, codes_rgb, nr) == 0, "rgb codes differ from the reference");
    hex_line("CODES", "rgb", (const uint8_t *)codes, nr);
    printf("TICKS rgb %lu blocks %lu macs %lu\n", (unsigned long)tr, (unsigned long)nb, (unsigned long)(nb * RGB_C_LAT * RGB_K));
    /* a C-built DATA frame of codes (int8 (4, 16)) for the Python decoder */
    uint8_t pl[SC_PAYLOAD_DATA_SIZE + 64];
    pl[0] = SC_KIND_CODES; pl[1] = SC_DT_INT8; sc_put_u16(pl + 2, 4); sc_put_u16(pl + 4, 16); sc_put_u16(pl + 6, 0);
    sc_encode_1d_i16(&audio_model, data_audio, 256, (int8_t *)(pl + SC_PAYLOAD_DATA_SIZE), xb);
    size_t m = sc_frame_encode(SC_T_DATA, SC_F_BOOT, 0, 12345, pl, sizeof pl, buf, sizeof buf);
    hex_line("FRAME", "data", buf, m);
}

int main(int argc, char **argv) {
    (void)argc; (void)argv;
    hal_init();
    hal_report_calibration();
    test_crc();
    test_cobs();
    test_frames();
    test_requant();
    test_encoder();
    printf("RESULT %s checks=%d failures=%d\n", failures ? "FAIL" : "PASS", checks, failures);
    return failures ? 1 : 0;
}
