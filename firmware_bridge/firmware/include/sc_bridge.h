/* sensorcodec firmware bridge: COBS, CRC-32, frames and the int8 block encoder (portable C99). */
#ifndef SC_BRIDGE_H
#define SC_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#include "sc_protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- CRC-32/ISO-HDLC (zlib): reflected poly 0xEDB88320, init/xorout 0xFFFFFFFF ---- */
uint32_t sc_crc32_update(uint32_t crc, const uint8_t *data, size_t n); /* start with crc = 0 */
uint32_t sc_crc32(const uint8_t *data, size_t n);

/* ---- COBS (no delimiter). Returns the output length, or 0 on error / output too small. ---- */
#define SC_COBS_MAX(n) ((n) + (n) / 254u + 1u)
size_t sc_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t out_cap);
size_t sc_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t out_cap);

/* ---- frames ---- */
typedef struct {
    uint8_t type, flags, version;
    uint16_t seq;
    uint32_t t_mcu_us;
    const uint8_t *payload; /* points into the caller's decode buffer */
    size_t payload_len;
} sc_frame_t;

/* Wire bytes: COBS(header + payload + crc32 LE) followed by 0x00. Returns length or 0. */
size_t sc_frame_encode(uint8_t type, uint8_t flags, uint16_t seq, uint32_t t_mcu_us,
                       const uint8_t *payload, size_t payload_len, uint8_t *out, size_t out_cap);

enum { SC_OK = 0, SC_ERR_COBS = -1, SC_ERR_SHORT = -2, SC_ERR_CRC = -3, SC_ERR_VERSION = -4,
       SC_ERR_OVERSIZE = -5 };
/* Decode one delimited chunk (without its 0x00) into buf; f->payload points into buf. */
int sc_frame_decode(const uint8_t *chunk, size_t n, uint8_t *buf, size_t buf_cap, sc_frame_t *f);

/* Streaming receiver with a fixed buffer: push bytes one at a time; returns 1 when *f holds a
 * frame, 0 when more bytes are needed, <0 for a dropped chunk (counted in rx->errors). */
typedef struct {
    uint8_t *acc; size_t acc_cap, acc_len; uint8_t *raw; size_t raw_cap;
    uint8_t overflow; uint32_t errors, frames;
} sc_rx_t;
void sc_rx_init(sc_rx_t *rx, uint8_t *acc, size_t acc_cap, uint8_t *raw, size_t raw_cap);
int sc_rx_push(sc_rx_t *rx, uint8_t byte, sc_frame_t *f);

/* little-endian helpers */
static inline void sc_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void sc_put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline uint16_t sc_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t sc_get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* ---- the integer block encoder of docs/bundle-format.md ----
 * acc[c]  = bias[c] + sum_k weight[c][k] * xb[k]          (k over C_in x block, weight order)
 * code[c] = clamp(round_half_to_even(acc[c] * 2^-shift[c]), -code_max, code_max)
 * Requires |acc| < 2^31 (bundles guarantee < 2^24). */
typedef struct {
    uint16_t c_lat, c_in;
    uint8_t dims;          /* 1 or 2 */
    uint16_t block[2];     /* block size per axis (block[1] = 1 for 1-D) */
    uint16_t k;            /* c_in * block[0] * block[1] */
    int16_t code_max;
    const int8_t *weight;  /* (c_lat, c_in, block...) C order */
    const int32_t *bias;   /* (c_lat) */
    const int32_t *shift;  /* (c_lat) */
} sc_model_t;

int32_t sc_requant(int32_t acc, int32_t shift, int32_t code_max);
void sc_encode_block(const sc_model_t *m, const int16_t *xb, int8_t *codes);
/* (T, C) int16 -> codes (c_lat, T / b); T must be a multiple of b. xb: scratch of m->k int16. */
void sc_encode_1d_i16(const sc_model_t *m, const int16_t *x, uint32_t t, int8_t *codes, int16_t *xb);
/* (H, W, C) uint8 -> codes (c_lat, H / b0, W / b1). */
void sc_encode_2d_u8(const sc_model_t *m, const uint8_t *x, uint32_t h, uint32_t w, int8_t *codes, int16_t *xb);
/* Same for (H, W, C_in) samples of at most 15 bits held in uint16 (e.g. 12-bit spectral cubes). */
void sc_encode_2d_u16(const sc_model_t *m, const uint16_t *x, uint32_t h, uint32_t w, int8_t *codes, int16_t *xb);

#ifdef __cplusplus
}
#endif
#endif /* SC_BRIDGE_H */
