/* The tiny hardware abstraction the example firmware needs. One implementation per board:
 * hal/hal_host.c (POSIX stdin/stdout, for tests) and hal/hal_semihost.c (Cortex-M under QEMU). */
#ifndef SC_HAL_H
#define SC_HAL_H
#include <stddef.h>
#include <stdint.h>

void hal_init(void);
uint32_t hal_time_us(void);                          /* free-running microseconds, wraps at 2^32 */
uint32_t hal_random32(void);                         /* boot nonce source */
void hal_uart_write(const uint8_t *data, size_t n);  /* blocking */
size_t hal_uart_read(uint8_t *buf, size_t cap);      /* non-blocking: 0 when nothing pending */
void hal_cycle_start(void);                          /* start a cycle/instruction measurement */
uint32_t hal_cycle_elapsed(void);                    /* ticks since hal_cycle_start (0 if unknown) */
void hal_report_calibration(void);                   /* print "TICKS calib <ticks> insns 200000" where
                                                        ticks->instructions can be calibrated */
#endif
