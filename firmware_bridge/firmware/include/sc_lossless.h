/* sc_lossless: context-modelled lossless coder for int8 latent codes (C99, no malloc).
 *
 * Codes are shaped (C, rows, cols), channel-major (a 1-D signal is one row; n-D spatial grids
 * flatten all but the last axis into rows). The payload is a versioned byte string:
 *
 *   byte 0 = SC_LL_FORMAT_RUN (3, written by sc_ll_encode) or SC_LL_FORMAT_AC (1, earlier
 *            versions; still decoded): a binary arithmetic-coded stream follows (see
 *            sc_lossless.c and docs/container-format.md "ctx-ac"); it ends with the coder's 4
 *            flush bytes and the decoder must consume it exactly.
 *   byte 0 = SC_LL_FORMAT_STORED (0): the n = C*rows*cols codes follow raw (used when the coded
 *            stream would not be smaller), so an encoding never exceeds sc_ll_bound(n) = n + 1.
 *
 * The encoder and decoder take caller-provided buffers only, run in O(n) time with at most
 * 25 binary decisions per code, and the decoder rejects truncated, padded or invalid input
 * with a negative status instead of reading or writing out of bounds.
 */
#ifndef SC_LOSSLESS_H
#define SC_LOSSLESS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SC_LL_FORMAT_STORED 0u
#define SC_LL_FORMAT_AC     1u
#define SC_LL_FORMAT_RUN    3u  /* format 1 + run mode for zero regions (2 is sc_rans.h's) */

enum {
    SC_LL_OK = 0,
    SC_LL_E_ARG = -1,      /* null pointer, zero-sized or overflowing dimensions */
    SC_LL_E_SPACE = -2,    /* output buffer smaller than sc_ll_bound(n) */
    SC_LL_E_FORMAT = -3,   /* unknown format byte */
    SC_LL_E_TRUNC = -4,    /* payload ends before the codes are complete */
    SC_LL_E_CORRUPT = -5,  /* decoded value outside int8 */
    SC_LL_E_TRAILING = -6  /* bytes left after the last code */
};

/* n = channels * rows * cols, or SC_LL_E_ARG for a zero dimension or when n + 1 overflows. */
int sc_ll_dims(uint32_t channels, uint32_t rows, uint32_t cols, size_t *n);

/* Copy a stored payload (in[0] == SC_LL_FORMAT_STORED, len >= 1) of n codes into out: SC_LL_OK,
 * SC_LL_E_TRUNC or SC_LL_E_TRAILING. Shared by every coder's decoder. */
int sc_ll_read_stored(const uint8_t *in, size_t len, size_t n, int8_t *out);

/* Largest encoded size of n codes (n + 1); 0 if n + 1 overflows size_t. */
size_t sc_ll_bound(size_t n);

/* Encode codes (C*rows*cols int8, channel-major) into out (cap bytes, >= sc_ll_bound(n)).
 * Writes the payload size to *out_len. Returns SC_LL_OK or a negative SC_LL_E_* status. */
int sc_ll_encode(const int8_t *codes, uint32_t channels, uint32_t rows, uint32_t cols,
                 uint8_t *out, size_t cap, size_t *out_len);

/* sc_ll_encode with the format chosen: SC_LL_FORMAT_RUN (what sc_ll_encode writes) or
 * SC_LL_FORMAT_AC (format 1, kept for tests of old streams); SC_LL_E_FORMAT for others. */
int sc_ll_encode_format(const int8_t *codes, uint32_t channels, uint32_t rows, uint32_t cols,
                        unsigned format, uint8_t *out, size_t cap, size_t *out_len);

/* Decode len bytes into out (C*rows*cols int8). Returns SC_LL_OK or a negative status; on
 * error the contents of out are unspecified. */
int sc_ll_decode(const uint8_t *in, size_t len, uint32_t channels, uint32_t rows, uint32_t cols,
                 int8_t *out);

/* Short English name of a status code. */
const char *sc_ll_strerror(int status);

#ifdef __cplusplus
}
#endif

#endif /* SC_LOSSLESS_H */
