/* sc_rans: static context-classed rANS coder for int8 latent codes (C99, no malloc).
 *
 * Codes are shaped (C, rows, cols), channel-major, like sc_lossless.h. The payload is
 *
 *   byte 0 = SC_RANS_FORMAT_SIG (4): significance nibbles + nonzero values, 16 frequency
 *            tables, 8 rANS states and 16-bit renormalisation words (what sc_rans_encode
 *            writes, see sc_rans.c and docs/container-format.md "rans");
 *   byte 0 = SC_RANS_FORMAT (2): byte 1 = config, the frequency tables, 4 rANS states and the
 *            renormalisation bytes (what small frames use where it is smaller);
 *   byte 0 = SC_LL_FORMAT_STORED (0): the n = C*rows*cols codes follow raw (used when coding
 *            would not be smaller), so an encoding never exceeds n + 1 bytes.
 *
 * Both sides take a caller-provided work area (sc_rans_enc_work / sc_rans_dec_work bytes,
 * aligned for uint32_t) and the output buffer; nothing else is allocated. The decoder checks
 * every table and state and rejects truncated, padded or invalid input with a negative
 * SC_LL_E_* status (sc_lossless.h), never reading or writing out of bounds; it runs O(n).
 * Link with sc_lossless.c (sc_ll_dims, sc_ll_strerror).
 */
#ifndef SC_RANS_H
#define SC_RANS_H

#include <stddef.h>
#include <stdint.h>

#include "sc_lossless.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SC_RANS_FORMAT 2u
#define SC_RANS_FORMAT_SIG 4u /* significance nibbles + nonzero values (3 is ctx-ac's) */
/* A coded code costs at least -log2(4095/4096) bits, so a payload of len bytes never holds
 * more than about 22700 * len codes; decoders may reject larger shapes before allocating. */
#define SC_RANS_MAX_CODES_PER_BYTE 32768u
/* format 4 codes 4 zero codes with one symbol */
#define SC_RANS_SIG_MAX_CODES_PER_BYTE (4u * 32768u)

/* Work area sizes in bytes for `channels` channels (0 if it would overflow size_t). */
size_t sc_rans_enc_work(uint32_t channels);
size_t sc_rans_dec_work(uint32_t channels);
/* The decoder work for a payload whose byte 0 is format (format 4: 80 KB for any C). */
size_t sc_rans_dec_work_format(unsigned format, uint32_t channels);
/* A larger encoder work area for a (channels, rows, cols) frame with which format 4 derives
 * the symbols once instead of twice (same bytes; about 2.5 bytes a code; 0 on overflow). */
size_t sc_rans_enc_work_frame(uint32_t channels, uint32_t rows, uint32_t cols);

/* Encode codes (C*rows*cols int8) into out (cap >= n + 1 bytes); *out_len = payload size. */
int sc_rans_encode(const int8_t *codes, uint32_t channels, uint32_t rows, uint32_t cols,
                   uint8_t *out, size_t cap, size_t *out_len, void *work, size_t work_len);

/* The same in a given format (SC_RANS_FORMAT or SC_RANS_FORMAT_SIG; stored where not smaller),
 * for tests and benchmarks; sc_rans_encode writes format 4 (format 2 on frames of fewer than
 * 2048 codes, and where it is smaller on frames of at most 32768 codes). */
int sc_rans_encode_format(const int8_t *codes, uint32_t channels, uint32_t rows, uint32_t cols,
                          unsigned format, uint8_t *out, size_t cap, size_t *out_len, void *work,
                          size_t work_len);

/* Decode len payload bytes into out (C*rows*cols int8). Returns SC_LL_OK or a negative
 * status; on error the contents of out are unspecified. */
int sc_rans_decode(const uint8_t *in, size_t len, uint32_t channels, uint32_t rows, uint32_t cols,
                   int8_t *out, void *work, size_t work_len);

#ifdef __cplusplus
}
#endif

#endif /* SC_RANS_H */
