#include "sc_bridge.h"

size_t sc_frame_encode(uint8_t type, uint8_t flags, uint16_t seq, uint32_t t_mcu_us,
                       const uint8_t *payload, size_t payload_len, uint8_t *out, size_t out_cap) {
    /* Encode in place: raw frame at the end of out, COBS to the front (COBS never overtakes its input
     * when the raw frame starts at least SC_COBS_MAX(n) - n bytes in). */
    size_t n = SC_HEADER_SIZE + payload_len + SC_TRAILER_SIZE;
    if (out_cap < SC_COBS_MAX(n) + 1u) return 0;
    uint8_t *raw = out + (out_cap - n);
    raw[0] = (uint8_t)((SC_PROTO_VERSION << 4) | (type & 0x0Fu));
    raw[1] = flags;
    sc_put_u16(raw + 2, seq);
    sc_put_u32(raw + 4, t_mcu_us);
    for (size_t i = 0; i < payload_len; i++) raw[SC_HEADER_SIZE + i] = payload[i];
    sc_put_u32(raw + SC_HEADER_SIZE + payload_len, sc_crc32(raw, SC_HEADER_SIZE + payload_len));
    /* raw sits at the end; its COBS encoding (len <= n + n/254 + 1) is written from out[0]. Safe
     * because the encoder writes output index <= input index + 1 + i/254 and raw starts later. */
    size_t code_pos = 0, o = 1;
    uint8_t code = 1;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = raw[i];
        if (b == 0) { out[code_pos] = code; code_pos = o++; code = 1; }
        else {
            out[o++] = b;
            if (++code == 0xFF) { out[code_pos] = code; code_pos = o++; code = 1; }
        }
    }
    out[code_pos] = code;
    out[o++] = 0;
    return o;
}

int sc_frame_decode(const uint8_t *chunk, size_t n, uint8_t *buf, size_t buf_cap, sc_frame_t *f) {
    if (n > SC_COBS_MAX(buf_cap)) return SC_ERR_OVERSIZE;
    size_t m = sc_cobs_decode(chunk, n, buf, buf_cap);
    if (m == 0) return SC_ERR_COBS;
    if (m == (size_t)-1 || m < SC_HEADER_SIZE + SC_TRAILER_SIZE) return SC_ERR_SHORT;
    if (sc_get_u32(buf + m - 4) != sc_crc32(buf, m - 4)) return SC_ERR_CRC;
    f->version = (uint8_t)(buf[0] >> 4);
    if (f->version != SC_PROTO_VERSION) return SC_ERR_VERSION;
    f->type = (uint8_t)(buf[0] & 0x0F);
    f->flags = buf[1];
    f->seq = sc_get_u16(buf + 2);
    f->t_mcu_us = sc_get_u32(buf + 4);
    f->payload = buf + SC_HEADER_SIZE;
    f->payload_len = m - SC_HEADER_SIZE - SC_TRAILER_SIZE;
    return SC_OK;
}

void sc_rx_init(sc_rx_t *rx, uint8_t *acc, size_t acc_cap, uint8_t *raw, size_t raw_cap) {
    rx->acc = acc; rx->acc_cap = acc_cap; rx->acc_len = 0; rx->raw = raw; rx->raw_cap = raw_cap;
    rx->overflow = 0; rx->errors = 0; rx->frames = 0;
}

int sc_rx_push(sc_rx_t *rx, uint8_t byte, sc_frame_t *f) {
    if (byte != 0) {
        if (rx->overflow) return 0;
        if (rx->acc_len >= rx->acc_cap) { rx->overflow = 1; rx->acc_len = 0; return 0; }
        rx->acc[rx->acc_len++] = byte;
        return 0;
    }
    size_t n = rx->acc_len;
    rx->acc_len = 0;
    if (rx->overflow) { rx->overflow = 0; rx->errors++; return SC_ERR_OVERSIZE; }
    if (n == 0) return 0;
    int r = sc_frame_decode(rx->acc, n, rx->raw, rx->raw_cap, f);
    if (r != SC_OK) { rx->errors++; return r; }
    rx->frames++;
    return 1;
}
