/* Minimal Cortex-M startup for QEMU mps2 boards with newlib + rdimon semihosting. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(int argc, char **argv);
extern void initialise_monitor_handles(void);
extern void __libc_init_array(void);

void Reset_Handler(void) {
#if defined(__ARM_FP)
    *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20); /* CPACR: enable CP10/CP11 (FPU) */
#endif
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    initialise_monitor_handles();
    __libc_init_array();
    exit(main(0, 0));
}

static void Default_Handler(void) { for (;;) {} }

__attribute__((section(".isr_vector"), used)) void (*const vector_table[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler, 0,
    Default_Handler, Default_Handler,
};

/* -nostartfiles drops crti/crtn; newlib's __libc_init_array still calls these. */
void _init(void) {}
void _fini(void) {}
