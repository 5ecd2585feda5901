/* Cortex-M4 (QEMU mps2-an386, semihosting) program: encode one embedded real-data buffer with a model
 * header generated from a bundle, print the codes and the SysTick ticks. Reads nothing.
 *   $(DIR)/bundle.h  python -m firmware_bridge.gen_header <bundle> -o bundle.h --prefix bundle
 *   $(DIR)/input.h   INPUT_A [INPUT_B] (T, or H W) and `static const int16_t|uint8_t|uint16_t input_data[]`
 *                    (channel-last (T, C) int16 or (H, W, C) uint8 / uint16), written by tests/test_bridge_firmware.py
 * Build: make m4-bundle M4B=$(DIR)  ->  $(DIR)/sc_bundle.elf
 * Output lines: "TICKS calib <t> insns 200000", "TICKS encode <t> blocks <n> macs <m>", "CODES <hex>",
 * "RESULT DONE". Under -icount shift=3, instructions = ticks * 40 / 8. */
#include <stdio.h>

#include "sc_bridge.h"
#include "sc_hal.h"
#include "bundle.h"
#include "input.h"

#if BUNDLE_DIMS == 2
#define N_BLOCKS ((INPUT_A / BUNDLE_B0) * (INPUT_B / BUNDLE_B1))
#else
#define N_BLOCKS (INPUT_A / BUNDLE_B0)
#endif

static int8_t codes[N_BLOCKS * BUNDLE_C_LAT];
static int16_t xb[BUNDLE_K];

int main(int argc, char **argv) {
    (void)argc; (void)argv;
    hal_init();
    hal_report_calibration();
    hal_cycle_start();
#if BUNDLE_DIMS == 2 && defined(BUNDLE_INPUT_UINT16)
    sc_encode_2d_u16(&bundle_model, input_data, INPUT_A, INPUT_B, codes, xb);
#elif BUNDLE_DIMS == 2
    sc_encode_2d_u8(&bundle_model, input_data, INPUT_A, INPUT_B, codes, xb);
#else
    sc_encode_1d_i16(&bundle_model, input_data, INPUT_A, codes, xb);
#endif
    uint32_t t = hal_cycle_elapsed();
    printf("TICKS encode %lu blocks %lu macs %lu\n", (unsigned long)t, (unsigned long)N_BLOCKS,
           (unsigned long)N_BLOCKS * BUNDLE_C_LAT * BUNDLE_K);
    fputs("CODES ", stdout);
    for (size_t i = 0; i < sizeof codes; i++) printf("%02x", (unsigned)(uint8_t)codes[i]);
    fputs("\nRESULT DONE\n", stdout);
    return 0;
}
