/* Cortex-M HAL for QEMU mps2 boards: output through semihosting stdio, SysTick as the cycle counter.
 * Under `qemu-system-arm -icount shift=N`, one instruction = 2^N ns of virtual time and SysTick
 * counts the 25 MHz system clock, so instructions = ticks * 40 / 2^N. */
#include <stdio.h>

#include "sc_hal.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static uint32_t cyc0, rng = 0x12345678u;

void hal_init(void) {
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 5u; /* enable, processor clock, no interrupt */
}

uint32_t hal_time_us(void) { return 0; }

uint32_t hal_random32(void) { rng = rng * 1664525u + 1013904223u; return rng; }

void hal_uart_write(const uint8_t *data, size_t n) { fwrite(data, 1, n, stdout); }

size_t hal_uart_read(uint8_t *buf, size_t cap) { (void)buf; (void)cap; return 0; }

void hal_cycle_start(void) { cyc0 = SYST_CVR; }

uint32_t hal_cycle_elapsed(void) { return (cyc0 - SYST_CVR) & 0x00FFFFFFu; /* counts down */ }

void hal_report_calibration(void) {
#if defined(__arm__) && defined(__ARM_ARCH_7EM__)
    /* 100000 x (subs + bne) = 200000 instructions (+3): calibrates TICKS -> instructions */
    uint32_t n = 100000u;
    hal_cycle_start();
    __asm__ volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(n) : : "cc");
    printf("TICKS calib %lu insns 200000\n", (unsigned long)hal_cycle_elapsed());
#endif
}
