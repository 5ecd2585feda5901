#include "sc_bridge.h"

/* Bitwise, table-free (saves 1 KiB of flash); a table or the MCU's CRC unit can replace it as long
 * as the "123456789" -> 0xCBF43926 test passes. */
uint32_t sc_crc32_update(uint32_t crc, const uint8_t *data, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= data[i];
        for (int b = 0; b < 8; b++) crc = (crc >> 1) ^ (SC_CRC32_POLY_REFLECTED & (0u - (crc & 1u)));
    }
    return ~crc;
}

uint32_t sc_crc32(const uint8_t *data, size_t n) { return sc_crc32_update(0, data, n); }
