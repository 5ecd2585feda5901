/* Example firmware: an MCU that encodes its sensor blocks with the int8 encoder and sends codes.
 *
 * Boot: flush the line (0x00), send HELLO (boot nonce, schema hash, BOOT flag). Loop: take the next
 * sensor block (here: real ECG samples compiled in from tests/gen/data_real.h), encode it to int8
 * codes (4 channels x 4 positions per 64 samples), send it as a DATA frame (kind CODES); answer
 * HELLO, TIMESYNC and CMD (ACK; a retried CMD gets the same ACK again, not a second execution).
 * Everything goes through sc_hal.h, so the same file runs on the host (stdin/stdout) and on boards.
 *
 * Host usage: sc_example [frames] [rate_hz]   (frames 0 = forever; rate 0 = as fast as possible)
 */
#include <stdlib.h>
#include <string.h>

#include "sc_bridge.h"
#include "sc_hal.h"
#include "gen/model_audio.h"
#include "gen/data_real.h"

#define BLOCK_SAMPLES 64u
#define N_POS (BLOCK_SAMPLES / AUDIO_B0)

static uint8_t tx[SC_COBS_MAX(SC_MAX_FRAME_DEFAULT) + 1], rxacc[SC_COBS_MAX(SC_MAX_FRAME_DEFAULT)],
    rxraw[SC_MAX_FRAME_DEFAULT], pl[SC_MAX_FRAME_DEFAULT];
static uint16_t data_seq, ctl_seq, last_cmd_seq = 0xFFFF;
static uint32_t nonce;
static int streaming = 1, have_last_ack;
static uint8_t last_ack[64];
static size_t last_ack_len;

static void send(uint8_t type, uint8_t flags, uint16_t seq, const uint8_t *p, size_t n) {
    size_t m = sc_frame_encode(type, flags, seq, hal_time_us(), p, n, tx, sizeof tx);
    if (m) hal_uart_write(tx, m);
}

static void send_hello(uint8_t flags) {
    uint8_t h[SC_PAYLOAD_HELLO_SIZE];
    h[0] = SC_PROTO_VERSION; h[1] = SC_CRCKIND_CRC32; sc_put_u16(h + 2, SC_MAX_FRAME_DEFAULT);
    sc_put_u32(h + 4, SC_SCHEMA_HASH); sc_put_u32(h + 8, nonce); sc_put_u32(h + 12, 0x000100u);
    send(SC_T_HELLO, flags, ctl_seq++, h, sizeof h);
}

static void on_frame(const sc_frame_t *f, uint32_t rx_us) {
    if (f->type == SC_T_HELLO) {
        send_hello(0);
    } else if (f->type == SC_T_TIMESYNC && f->payload_len >= SC_PAYLOAD_TIMESYNC_SIZE) {
        uint8_t t[SC_PAYLOAD_TIMESYNC_SIZE];
        memcpy(t, f->payload, 8);
        sc_put_u32(t + 8, rx_us);
        send(SC_T_TIMESYNC, 0, ctl_seq++, t, sizeof t);
    } else if (f->type == SC_T_CMD && f->payload_len >= 1) {
        if (have_last_ack && f->seq == last_cmd_seq && (f->flags & SC_F_RETRY)) {
            hal_uart_write(last_ack, last_ack_len); /* duplicate: same answer, no re-execution */
            return;
        }
        uint8_t status = SC_ACK_OK, a[SC_PAYLOAD_ACK_SIZE];
        switch (f->payload[0]) {
        case SC_CMD_PING: break;
        case SC_CMD_START: streaming = 1; break;
        case SC_CMD_STOP: streaming = 0; break;
        default: status = SC_ACK_UNKNOWN_CMD;
        }
        sc_put_u16(a, f->seq); a[2] = status;
        last_ack_len = sc_frame_encode(status == SC_ACK_OK ? SC_T_ACK : SC_T_NAK, 0, ctl_seq++, hal_time_us(), a,
                                       sizeof a, last_ack, sizeof last_ack);
        last_cmd_seq = f->seq; have_last_ack = 1;
        hal_uart_write(last_ack, last_ack_len);
    }
}

int main(int argc, char **argv) {
    static const unsigned shape[] = DATA_AUDIO_SHAPE;
    uint32_t frames = argc > 1 ? (uint32_t)strtoul(argv[1], 0, 10) : 64u;
    uint32_t rate = argc > 2 ? (uint32_t)strtoul(argv[2], 0, 10) : 0u;
    static int16_t xb[AUDIO_K];
    sc_rx_t rx;
    sc_frame_t f;
    uint8_t in[256];
    hal_init();
    nonce = hal_random32();
    sc_rx_init(&rx, rxacc, sizeof rxacc, rxraw, sizeof rxraw);
    static const uint8_t flush = 0;
    hal_uart_write(&flush, 1);
    send_hello(SC_F_BOOT);
    uint32_t pos = 0, sent = 0, next_us = hal_time_us();
    while (frames == 0 || sent < frames) {
        size_t n = hal_uart_read(in, sizeof in);
        uint32_t now = hal_time_us();
        for (size_t i = 0; i < n; i++)
            if (sc_rx_push(&rx, in[i], &f) == 1) on_frame(&f, now);
        if (!streaming || (rate && (int32_t)(now - next_us) < 0)) continue;
        next_us += rate ? 1000000u / rate : 0;
        /* DATA payload: kind, dtype, dims (C_lat, positions), then the codes */
        pl[0] = SC_KIND_CODES; pl[1] = SC_DT_INT8;
        sc_put_u16(pl + 2, AUDIO_C_LAT); sc_put_u16(pl + 4, N_POS); sc_put_u16(pl + 6, 0);
        if (pos + BLOCK_SAMPLES > shape[0]) pos = 0;
        sc_encode_1d_i16(&audio_model, data_audio + pos, BLOCK_SAMPLES, (int8_t *)(pl + SC_PAYLOAD_DATA_SIZE), xb);
        pos += BLOCK_SAMPLES;
        send(SC_T_DATA, sent == 0 ? SC_F_BOOT : 0, data_seq++, pl, SC_PAYLOAD_DATA_SIZE + AUDIO_C_LAT * N_POS);
        sent++;
    }
    return 0;
}
