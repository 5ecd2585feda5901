#include "sc_bridge.h"

/* Classic COBS: a full 254-byte run gets code 0xFF and, at the end of data, a final 0x01 block. */
size_t sc_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t out_cap) {
    if (out_cap < SC_COBS_MAX(n)) return 0;
    size_t code_pos = 0, o = 1;
    uint8_t code = 1;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == 0) {
            out[code_pos] = code; code_pos = o++; code = 1;
        } else {
            out[o++] = in[i];
            if (++code == 0xFF) { out[code_pos] = code; code_pos = o++; code = 1; }
        }
    }
    out[code_pos] = code;
    return o;
}

size_t sc_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t out_cap) {
    size_t i = 0, o = 0;
    if (n == 0) return 0;
    while (i < n) {
        uint8_t code = in[i];
        if (code == 0 || i + code > n) return 0;
        for (size_t j = i + 1; j < i + code; j++) {
            if (in[j] == 0 || o >= out_cap) return 0;
            out[o++] = in[j];
        }
        i += code;
        if (code != 0xFF && i < n) {
            if (o >= out_cap) return 0;
            out[o++] = 0;
        }
    }
    return o == 0 ? (size_t)-1 : o; /* (size_t)-1: valid but empty (caller rejects as short) */
}
