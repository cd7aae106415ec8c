/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* guest_sys.h on bare Linux: raw system calls and the entry point, for
 * x86-64 and riscv64 (a static program with no libc and no loader). */
#include "guest_sys.h"

#if defined(__x86_64__)
#define SYS_WRITE 1
#define SYS_EXIT_GROUP 231
static long sys3(long nr, long a, long b, long c)
{
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return ret;
}
/* The kernel leaves argc at the top of the stack and no return address:
 * align the stack for a call and never come back. */
__asm__(".text\n.globl _start\n.type _start,@function\n_start:\n"
        "  xor %ebp, %ebp\n  and $-16, %rsp\n  call cap_guest_start\n  hlt\n");
#elif defined(__riscv) && __riscv_xlen == 64
#define SYS_WRITE 64
#define SYS_EXIT_GROUP 94
static long sys3(long nr, long a, long b, long c)
{
    register long a0 __asm__("a0") = a;
    register long a1 __asm__("a1") = b;
    register long a2 __asm__("a2") = c;
    register long a7 __asm__("a7") = nr;
    __asm__ volatile("ecall" : "+r"(a0) : "r"(a1), "r"(a2), "r"(a7) : "memory");
    return a0;
}
/* gp must hold __global_pointer$ before any code the linker relaxed
 * against it runs (loading it must not be relaxed itself). */
__asm__(".text\n.globl _start\n.type _start,@function\n_start:\n"
        "  .option push\n  .option norelax\n  la gp, __global_pointer$\n  .option pop\n"
        "  andi sp, sp, -16\n  call cap_guest_start\n  unimp\n");
#else
#error "guest_sys_linux.c is for x86-64 and riscv64"
#endif

void cap_guest_start(void);

void cap_guest_start(void)
{
    cap_guest_exit(cap_guest_main());
}

void cap_guest_write(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        long w = sys3(SYS_WRITE, fd, (long)buf, (long)n);
        if (w <= 0) return; /* nowhere to report it */
        buf += w;
        n -= (size_t)w;
    }
}

_Noreturn void cap_guest_exit(int status)
{
    for (;;) sys3(SYS_EXIT_GROUP, status, 0, 0);
}
