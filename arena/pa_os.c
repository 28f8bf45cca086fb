/* pa_os.c - owns every system call of HAKMEM: mmap/munmap/madvise with
 * their counters, mprotect, getrandom, write, the kept descriptor (fcntl,
 * fstat), the clocks, the leaf lock's slow path and the malloc-free stderr
 * message writer. */
#define _GNU_SOURCE
#include "arena/pa_os.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

_Atomic uint64_t pa_os_nmap, pa_os_nunmap, pa_os_nmadvise;

static void count(_Atomic uint64_t *c) {
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

void *pa_os_map(size_t size, size_t align) {
    if (align < PA_PAGE)
        align = PA_PAGE;
    size_t over = align > PA_PAGE ? align - PA_PAGE : 0;
    if (size + over < size)
        return NULL;
    int saved = errno;
    char *p = mmap(NULL, size + over, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        errno = saved;
        return NULL;
    }
    count(&pa_os_nmap);
    if (over) {
        uintptr_t a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
        size_t head = a - (uintptr_t)p, tail = over - head;
        if (head)
            munmap(p, head);
        if (tail)
            munmap((char *)a + size, tail);
        p = (char *)a;
    }
    return p;
}

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

void pa_os_unmap(void *p, size_t size) {
    if (size == 0)
        return;
    count(&pa_os_nunmap);
    munmap(p, size);
}

void pa_os_purge(void *p, size_t size) {
    count(&pa_os_nmadvise);
    madvise(p, size, MADV_DONTNEED);
}

void pa_os_purge_lazy(void *p, size_t size) {
    count(&pa_os_nmadvise);
    if (madvise(p, size, MADV_FREE) != 0)
        madvise(p, size, MADV_DONTNEED);
}

bool pa_os_hugepage(void *p, size_t size) {
    count(&pa_os_nmadvise);
    int saved = errno;
    bool ok = madvise(p, size, MADV_HUGEPAGE) == 0;
    errno = saved;
    return ok;
}


void *pa_os_map_at(void *addr, size_t size, int *err) {
    int saved = errno;
    char *p = mmap(addr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    int e = errno;
    errno = saved;
    if (p == MAP_FAILED) {
        *err = e == EEXIST ? EEXIST : ENOMEM;
        return NULL;
    }
    count(&pa_os_nmap);
    if (p != addr) { /* a kernel before 4.17: the flag was a hint */
        pa_os_unmap(p, size);
        *err = EEXIST;
        return NULL;
    }
    return p;
}

void *pa_os_map_below(size_t size, size_t align, uintptr_t floor, uintptr_t limit) {
    if (align < PA_PAGE)
        align = PA_PAGE;
    if (size > limit || limit - size < floor)
        return NULL;
    /* Steps of at least 16 MiB, at most 4096 probes. */
    uintptr_t step = size > ((uintptr_t)16 << 20) ? size : (uintptr_t)16 << 20;
    step = (step + align - 1) & ~(uintptr_t)(align - 1);
    uintptr_t a = (limit - size) & ~(uintptr_t)(align - 1);
    for (unsigned probes = 0; a >= floor && probes < 4096; probes++) {
        int err = 0;
        void *p = pa_os_map_at((void *)a, size, &err);
        if (p)
            return p;
        if (err != EEXIST || a < floor + step)
            break;
        a -= step;
    }
    return NULL;
}

bool pa_os_dontdump(void *p, size_t size, bool on) {
    count(&pa_os_nmadvise);
    int saved = errno;
    bool ok = madvise(p, size, on ? MADV_DONTDUMP : MADV_DODUMP) == 0;
    errno = saved;
    return ok;
}

bool pa_os_remap(void *p, size_t size) {
    int saved = errno;
    void *q = mmap(p, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    errno = saved;
    count(&pa_os_nmap);
    return q == p;
}

unsigned pa_os_thp_mode(void) {
    char buf[128];
    int saved = errno;
    int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    errno = saved;
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* "always [madvise] never": the bracketed word is the mode. */
    if (strstr(buf, "[always]"))
        return 2;
    return strstr(buf, "[madvise]") ? 1 : 0;
}

bool pa_os_protect(void *p, size_t size, bool access) {
    int saved = errno;
    bool ok = mprotect(p, size, access ? PROT_READ | PROT_WRITE : PROT_NONE) == 0;
    errno = saved;
    return ok;
}

uint64_t pa_os_random(void) {
    uint64_t v = 0;
    int saved = errno;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        v = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&ts ^
            (uint64_t)ts.tv_sec << 32;
    }
    errno = saved;
    return v;
}

void pa_os_write(int fd, const char *s, size_t n) {
    int saved = errno;
    while (n) {
        ssize_t r = write(fd, s, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        s += r;
        n -= (size_t)r;
    }
    errno = saved;
}

pa_os_fd pa_os_fd_keep(int fd) {
    static const int floors[] = {1000, 100, 10};
    pa_os_fd k = {-1, 0, 0};
    int saved = errno;
    struct stat st;
    if (fstat(fd, &st) == 0) {
        /* Lower floors when RLIMIT_NOFILE is below the first (EINVAL). */
        for (unsigned i = 0; i < sizeof floors / sizeof floors[0] && k.fd < 0; i++)
            k.fd = fcntl(fd, F_DUPFD_CLOEXEC, floors[i]);
        k.dev = (uint64_t)st.st_dev;
        k.ino = (uint64_t)st.st_ino;
    }
    errno = saved;
    return k;
}

bool pa_os_fd_intact(const pa_os_fd *k) {
    int saved = errno;
    struct stat st;
    bool ok = k->fd >= 0 && fstat(k->fd, &st) == 0 && (uint64_t)st.st_dev == k->dev &&
              (uint64_t)st.st_ino == k->ino;
    errno = saved;
    return ok;
}

uint64_t pa_os_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void pa_lock_slow(pa_lock_t *l) {
    for (unsigned spins = 0;; spins++) {
        if (atomic_load_explicit(&l->held, memory_order_relaxed) == 0 &&
            !atomic_exchange_explicit(&l->held, 1, memory_order_acquire))
            return;
        if (spins < 64)
            __builtin_ia32_pause();
        else
            sched_yield();
    }
}

void pa_msg_str(pa_msg *m, const char *s) {
    while (*s && m->n < sizeof m->buf - 2)
        m->buf[m->n++] = *s++;
}

void pa_msg_u64(pa_msg *m, uint64_t v) {
    char t[24];
    int i = 0;
    do {
        t[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i && m->n < sizeof m->buf - 2)
        m->buf[m->n++] = t[--i];
}

void pa_msg_ptr(pa_msg *m, const void *p) {
    static const char hex[] = "0123456789abcdef";
    uintptr_t v = (uintptr_t)p;
    char t[20];
    int i = 0;
    do {
        t[i++] = hex[v & 15];
        v >>= 4;
    } while (v);
    pa_msg_str(m, "0x");
    while (i && m->n < sizeof m->buf - 2)
        m->buf[m->n++] = t[--i];
}

void pa_msg_emit(pa_msg *m) {
    m->buf[m->n++] = '\n';
    pa_os_write(2, m->buf, m->n);
    m->n = 0;
}

void pa_assert_fail(const char *what, const char *file, int line) {
    pa_msg m = {.n = 0};
    pa_msg_str(&m, "hakmem: internal invariant failed: ");
    pa_msg_str(&m, what);
    pa_msg_str(&m, " (");
    pa_msg_str(&m, file);
    pa_msg_str(&m, ":");
    pa_msg_u64(&m, (uint64_t)line);
    pa_msg_str(&m, ")");
    pa_msg_emit(&m);
    abort();
}
