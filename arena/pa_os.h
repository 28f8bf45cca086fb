/* pa_os.h - OS primitives (defined in pa_os.c), the only way HAKMEM reaches
 * the kernel: page-aligned mappings, purges, page protection, random bits,
 * writes to a descriptor and a kept duplicate of one, the leaf lock, a
 * malloc-free message writer, the clock. */
#ifndef PA_OS_H
#define PA_OS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PA_PAGE ((size_t)4096)
#define PA_LIKELY(x) __builtin_expect(!!(x), 1)
#define PA_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define PA_INTERNAL __attribute__((visibility("hidden")))

/* Internal invariants: checked when built with -DHAKMEM_DEBUG=1 (CMake
 * option HAKMEM_DEBUG), compiled out otherwise (the condition is still
 * type-checked).  A failure prints one line and aborts. */
#ifndef HAKMEM_DEBUG
#define HAKMEM_DEBUG 0
#endif
#define PA_ASSERT(c)                                                  \
    do {                                                              \
        if (HAKMEM_DEBUG && PA_UNLIKELY(!(c)))                        \
            pa_assert_fail(#c, __FILE__, __LINE__);                   \
    } while (0)
__attribute__((noreturn, cold)) void pa_assert_fail(const char *what, const char *file,
                                                    int line);

/* Map `size` bytes aligned to `align` (a power of two >= 4 KiB).  Fresh
 * mappings read as zero.  NULL when the OS refuses. */
void *pa_os_map(size_t size, size_t align);
void pa_os_unmap(void *p, size_t size);
/* Give the pages back to the OS but keep the range mapped; it reads as zero
 * afterwards (MADV_DONTNEED). */
void pa_os_purge(void *p, size_t size);
/* MADV_FREE: the kernel may reclaim lazily; contents become undefined. */
void pa_os_purge_lazy(void *p, size_t size);
/* MADV_HUGEPAGE; false when the kernel refused (no THP support). */
bool pa_os_hugepage(void *p, size_t size);
/* Make whole pages readable and writable (access) or inaccessible.  False
 * when the OS refuses (e.g. too many mappings); errno is kept. */
bool pa_os_protect(void *p, size_t size, bool access);

/* 64 random bits from the kernel, or (no entropy yet) from the clock and a
 * stack address. */
uint64_t pa_os_random(void);

/* Write all n bytes to fd, retrying short writes; errors are dropped and
 * errno is kept. */
void pa_os_write(int fd, const char *s, size_t n);

/* A descriptor kept for a later write (the HAKMEM_STATS dump at exit), and
 * the file it was opened on. */
typedef struct { int fd; uint64_t dev, ino; } pa_os_fd;
/* Duplicate fd close-on-exec at a high number (1000 and up where the limit
 * allows), so the file stays reachable after the program closes fd itself.
 * k.fd is -1 when fd is not open or no number is free. */
pa_os_fd pa_os_fd_keep(int fd);
/* Is k still open on the file it was kept for (not closed, and not reused
 * by the program for another file)? */
bool pa_os_fd_intact(const pa_os_fd *k);

/* Map exactly [addr, addr+size) without replacing anything there
 * (MAP_FIXED_NOREPLACE; on kernels that take it as a hint, a different
 * result is unmapped).  NULL, with *err EEXIST when something is mapped
 * there or ENOMEM, when it cannot be had. */
void *pa_os_map_at(void *addr, size_t size, int *err);
/* Arena kinds (hooks/hk_kinds.c). */
/* Map size bytes aligned to align somewhere in [floor, limit), probing
 * downward from the top with pa_os_map_at.  NULL if no place is free. */
void *pa_os_map_below(size_t size, size_t align, uintptr_t floor, uintptr_t limit);
/* MADV_DONTDUMP (on) or MADV_DODUMP (off); false when the kernel refused. */
bool pa_os_dontdump(void *p, size_t size, bool on);
/* Replace the range with a fresh anonymous mapping: no pages, reads zero,
 * no madvise flags left (dd, hg, nh).  False when the kernel refused; the
 * range may then be unmapped and must not be used. */
bool pa_os_remap(void *p, size_t size);
/* The kernel's transparent huge page mode: 0 none or never, 1 madvise,
 * 2 always (read from sysfs, without malloc). */
unsigned pa_os_thp_mode(void);

/* Counters, read by the statistics table. */
extern _Atomic uint64_t pa_os_nmap, pa_os_nunmap, pa_os_nmadvise;

/* Monotonic milliseconds (coarse clock, vDSO, no syscall). */
uint64_t pa_os_now_ms(void);

/* A leaf lock: held for a few instructions, never across a call that can take
 * another lock.  Re-initialised in a fork child. */
typedef struct { atomic_int held; } pa_lock_t;
void pa_lock_slow(pa_lock_t *l);
static inline void pa_lock(pa_lock_t *l) {
    if (PA_UNLIKELY(atomic_exchange_explicit(&l->held, 1, memory_order_acquire)))
        pa_lock_slow(l);
}
static inline void pa_unlock(pa_lock_t *l) {
    atomic_store_explicit(&l->held, 0, memory_order_release);
}
/* In a fork child: true when the lock was held at fork time (the structure it
 * guards may be half-updated).  Leaves the lock free. */
static inline bool pa_lock_reset(pa_lock_t *l) {
    bool was = atomic_load_explicit(&l->held, memory_order_relaxed) != 0;
    atomic_store_explicit(&l->held, 0, memory_order_relaxed);
    return was;
}

/* Message building without malloc or stdio: append to a fixed buffer. */
typedef struct { char buf[256]; size_t n; } pa_msg;
void pa_msg_str(pa_msg *m, const char *s);
void pa_msg_u64(pa_msg *m, uint64_t v);
void pa_msg_ptr(pa_msg *m, const void *p);
/* Write the message plus a newline to stderr in one write(2). */
void pa_msg_emit(pa_msg *m);

#endif
