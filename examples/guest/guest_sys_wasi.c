/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* guest_sys.h on WebAssembly: the two WASI (preview 1) imports a command
 * needs, fd_write and proc_exit, and its entry point _start. Any WASI host
 * runs it; examples/guest/run_wasm.mjs is the one for Node. */
#include <stdint.h>

#include "guest_sys.h"

typedef struct wasi_ciovec {
    const char *buf;
    uint32_t len;
} wasi_ciovec_t;

__attribute__((import_module("wasi_snapshot_preview1"), import_name("fd_write")))
int32_t cap_wasi_fd_write(int32_t fd, const wasi_ciovec_t *iovs, uint32_t n, uint32_t *written);
__attribute__((import_module("wasi_snapshot_preview1"), import_name("proc_exit")))
_Noreturn void cap_wasi_proc_exit(int32_t status);

void _start(void);

void _start(void)
{
    cap_guest_exit(cap_guest_main());
}

void cap_guest_write(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        wasi_ciovec_t iov = {buf, (uint32_t)n};
        uint32_t w = 0;
        if (cap_wasi_fd_write(fd, &iov, 1, &w) != 0 || w == 0) return;
        buf += w;
        n -= w;
    }
}

_Noreturn void cap_guest_exit(int status)
{
    cap_wasi_proc_exit(status);
}
