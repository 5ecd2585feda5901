/* Host encoder kernel: the integer encoder of docs/bundle-format.md (the Cortex-M4 kernel
 * firmware_bridge/firmware/src/sc_encoder.c, the int8 ONNX graph) in a form the compiler
 * vectorises, for x86_64 and aarch64 hosts.
 *
 *   acc[c, p]  = bias[c] + sum_{i,k} weight[c, i, k] * x[p*b + k, i]
 *   code[c, p] = clamp(round_half_to_even(acc[c, p] * 2**-shift[c]), -code_max, code_max)
 *
 * Every value in the sum is an integer; the kernel accumulates in float32 when the model's
 * worst case |acc| (sum |w| * max |x| + |bias|) is below 2**24 and in float64 otherwise, so
 * every partial sum is exact and the codes are bit-identical to the integer definition.
 */
#ifndef SC_HOST_ENCODER_H
#define SC_HOST_ENCODER_H

#include <stddef.h>
#include <stdint.h>

enum { SC_HE_U8 = 0, SC_HE_I16 = 1, SC_HE_U16 = 2 };
enum { SC_HE_OK = 0, SC_HE_EARG = -1, SC_HE_ENOMEM = -2 };

#define SC_HE_MAX_DIMS 3

typedef struct {
    int dtype;                         /* SC_HE_* sample type */
    uint32_t dims;                     /* spatial axes, 1..SC_HE_MAX_DIMS */
    uint32_t n;                        /* batch items */
    uint32_t size[SC_HE_MAX_DIMS];     /* spatial sizes, each a multiple of its block */
    uint32_t block[SC_HE_MAX_DIMS];
    uint32_t c_in, c_lat;
    const int8_t *weight;              /* (c_lat, c_in, *block) */
    const int32_t *bias, *shift;       /* (c_lat,) */
    int32_t code_max;                  /* 1..127 */
} sc_he_args_t;

/* Codes (n, c_lat, *grid) int8 of channel-last samples (n, *size, c_in). Returns SC_HE_*. */
int sc_he_encode(const sc_he_args_t *a, const void *samples, int8_t *codes);

/* The accumulator ("float32"/"float64") sc_he_encode uses for these weights. */
const char *sc_he_accumulator(const sc_he_args_t *a);

/* The instruction set the kernel was dispatched to on this machine ("avx512f", "avx2", ...). */
const char *sc_he_isa(void);

/* Use at most instruction set level (0: 16-byte vectors, 1: AVX2, 2: AVX-512, 3: AVX-512 VNNI;
 * tests run every
 * kernel with it); returns sc_he_isa() after the change. Not thread-safe: set it before encoding. */
const char *sc_he_limit_isa(int level);

#endif
