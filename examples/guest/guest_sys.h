/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* What the guest needs from below: write bytes to a file descriptor, end
 * the program. guest_sys_linux.c makes raw Linux system calls (x86-64,
 * riscv64), guest_sys_wasi.c calls the WASI imports (wasm32). Each also
 * holds the program's entry point, _start, which calls cap_guest_main. */
#ifndef CAPSTORE_GUEST_SYS_H
#define CAPSTORE_GUEST_SYS_H

#include <stddef.h>

void cap_guest_write(int fd, const char *buf, size_t n);
_Noreturn void cap_guest_exit(int status);

/** The program (guest_main.c); returns the exit status. */
int cap_guest_main(void);

#endif
