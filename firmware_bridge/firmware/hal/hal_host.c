/* Host HAL (POSIX): the "UART" is stdin/stdout, time is CLOCK_MONOTONIC. For tests and demos. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "sc_hal.h"

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t boot_ns, cyc_ns;

void hal_init(void) {
    boot_ns = now_ns();
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
}

uint32_t hal_time_us(void) { return (uint32_t)((now_ns() - boot_ns) / 1000u); }

uint32_t hal_random32(void) {
    uint32_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) { if (read(fd, &v, sizeof v) != (ssize_t)sizeof v) v = 0; close(fd); }
    return v ^ (uint32_t)now_ns();
}

void hal_uart_write(const uint8_t *data, size_t n) {
    while (n) {
        ssize_t w = write(1, data, n);
        if (w < 0) { if (errno == EINTR || errno == EAGAIN) continue; exit(3); }
        data += w; n -= (size_t)w;
    }
}

size_t hal_uart_read(uint8_t *buf, size_t cap) {
    ssize_t r = read(0, buf, cap);
    return r > 0 ? (size_t)r : 0;
}

void hal_cycle_start(void) { cyc_ns = now_ns(); }
uint32_t hal_cycle_elapsed(void) { return (uint32_t)(now_ns() - cyc_ns); }

void hal_report_calibration(void) {} /* no instruction counter to calibrate on a host */
