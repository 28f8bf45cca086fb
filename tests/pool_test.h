/* pool_test.h - owns the helpers shared by the pools / malloc-front tests
 * (api_conformance.c, pool_threads.c, front_routing.c, reliability.c): the
 * CHECK macros, the T_* allocation layer, access to hak_mallctl statistics,
 * byte patterns, self-checking (tagged) blocks, small utilities and the
 * counted fork batches of the fork tests.
 *
 * The allocation layer: compiled with -DHK_INPROCESS the T_* names call the
 * inlined malloc front of hooks/hk_malloc.h directly (link hakmem_core; this
 * is what the sanitizer builds run).  Without it they are the libc names,
 * and the test runs with LD_PRELOAD=libhakmem.so; t_require_hakmem() then
 * fails unless HAKMEM really is the process's allocator. */
#ifndef POOL_TEST_H
#define POOL_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hakmem.h"

#ifdef HK_INPROCESS
#include "hooks/hk_malloc.h"
#define T_malloc(n) hk_malloc(n)
#define T_free(p) hk_free(p)
#define T_calloc(n, m) hk_calloc(n, m)
#define T_realloc(p, n) hk_realloc(p, n)
#define T_reallocarray(p, n, m) hk_reallocarray(p, n, m)
#define T_posix_memalign(o, a, n) hk_posix_memalign(o, a, n)
#define T_aligned_alloc(a, n) hk_memalign(a, n)
#define T_memalign(a, n) hk_memalign(a, n)
#define T_valloc(n) hk_valloc(n)
#define T_pvalloc(n) hk_pvalloc(n)
#define T_usable(p) hk_usable_size(p)
#define T_VARIANT "inprocess"
#else
#include <malloc.h>
#include "pools/classes.h"
#define T_malloc(n) malloc(n)
#define T_free(p) free(p)
#define T_calloc(n, m) calloc(n, m)
#define T_realloc(p, n) realloc(p, n)
#define T_reallocarray(p, n, m) reallocarray(p, n, m)
#define T_posix_memalign(o, a, n) posix_memalign(o, a, n)
#define T_aligned_alloc(a, n) aligned_alloc(a, n)
#define T_memalign(a, n) memalign(a, n)
#define T_valloc(n) valloc(n)
#define T_pvalloc(n) pvalloc(n)
#define T_usable(p) malloc_usable_size((void *)(p))
#define T_VARIANT "preload"
#endif

/* ---- checks ------------------------------------------------------------------ */

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,     \
                    #cond);                                                      \
            _exit(1);                                                            \
        }                                                                        \
    } while (0)

/* CHECK with context: CHECKM(cond, "size %zu", n). */
#define CHECKM(cond, ...)                                                        \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__,     \
                    #cond);                                                      \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
            _exit(1);                                                            \
        }                                                                        \
    } while (0)

/* Hide a value from the optimiser (no constant folding of huge sizes, no
 * -Walloc-size-larger-than warnings, no elided malloc/free pairs). */
static inline size_t opaque(size_t x) {
    __asm__ volatile("" : "+r"(x));
    return x;
}
static inline void *opaque_ptr(void *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* ---- patterns ------------------------------------------------------------------ */

static inline uint64_t t_word(uint64_t seed, size_t k) {
    uint64_t x = seed + (uint64_t)k * 0x9e3779b97f4a7c15ull;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    return x ^ (x >> 29);
}

/* Byte i of the pattern `seed`: byte (i % 8) of word i / 8. */
static inline uint8_t t_byte(uint64_t seed, size_t i) {
    return (uint8_t)(t_word(seed, i / 8) >> (8 * (i % 8)));
}

static inline void t_fill(void *p, size_t n, uint64_t seed) {
    unsigned char *b = p;
    size_t k = 0;
    for (; (k + 1) * 8 <= n; k++) {
        uint64_t w = t_word(seed, k);
        memcpy(b + k * 8, &w, 8);
    }
    for (size_t i = k * 8; i < n; i++)
        b[i] = t_byte(seed, i);
}

/* Index of the first byte that differs from the pattern, or n. */
static inline size_t t_verify(const void *p, size_t n, uint64_t seed) {
    const unsigned char *b = p;
    size_t k = 0;
    for (; (k + 1) * 8 <= n; k++) {
        uint64_t w = t_word(seed, k), got;
        memcpy(&got, b + k * 8, 8);
        if (got != w)
            break;
    }
    for (size_t i = k * 8; i < n; i++)
        if (b[i] != t_byte(seed, i))
            return i;
    return n;
}

/* True when n bytes at p are all zero. */
static inline int t_is_zero(const void *p, size_t n) {
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        if (w)
            return 0;
    }
    for (; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

static inline int t_aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

/* ---- HAKMEM introspection --------------------------------------------------------- */

typedef int (*t_mallctl_fn)(const char *, void *, size_t *, void *, size_t);

static inline t_mallctl_fn t_mallctl(void) {
#ifdef HK_INPROCESS
    return hak_mallctl;
#else
    static t_mallctl_fn fn;
    if (!fn) {
        void *sym = dlsym(RTLD_DEFAULT, "hak_mallctl");
        CHECKM(sym != NULL, "hak_mallctl not found: is libhakmem.so preloaded?");
        memcpy(&fn, &sym, sizeof fn);
    }
    return fn;
#endif
}

static inline uint64_t t_stat(const char *name) {
    uint64_t v = 0;
    size_t len = sizeof v;
    int rc = t_mallctl()(name, &v, &len, NULL, 0);
    CHECKM(rc == 0 && len == sizeof v, "hak_mallctl(%s) = %d", name, rc);
    return v;
}

/* Bytes of slabs and runs the three pools hold. */
static inline uint64_t t_pool_allocated(void) {
    return t_stat("stats.tiny.allocated") + t_stat("stats.mid.allocated") +
           t_stat("stats.l25.allocated");
}

/* Preload variant: fail unless libhakmem.so is live and malloc is its own. */
static inline void t_require_hakmem(void) {
#ifndef HK_INPROCESS
    void *ctl = dlsym(RTLD_DEFAULT, "hak_mallctl");
    CHECKM(ctl != NULL, "HAKMEM is not live: dlsym(hak_mallctl) == NULL "
                        "(run with LD_PRELOAD=libhakmem.so)");
    static const char *const names[] = {
        "malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign",
        "aligned_alloc", "memalign", "valloc", "pvalloc", "malloc_usable_size"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void *f = dlsym(RTLD_DEFAULT, names[i]);
        Dl_info info;
        CHECKM(f && dladdr(f, &info) && info.dli_fname &&
                   strstr(info.dli_fname, "libhakmem") != NULL,
               "%s does not resolve into libhakmem.so (%s)", names[i],
               f && dladdr(f, &info) && info.dli_fname ? info.dli_fname : "?");
    }
#endif
}

/* Resident set size in bytes, from /proc/self/statm. */
static inline size_t t_rss(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    CHECK(f != NULL);
    unsigned long size = 0, res = 0;
    CHECK(fscanf(f, "%lu %lu", &size, &res) == 2);
    fclose(f);
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

/* xorshift64*: per-thread deterministic random numbers. */
static inline uint64_t t_rand(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* ---- tagged blocks ----------------------------------------------------------------
 * A block of n >= 16 bytes holds n in its first word and a pattern seeded by
 * its address and size after that.  Blocks above 8 KiB are patterned
 * sparsely (head, tail and one word per KiB) to keep the tests fast.
 * block_check() dies naming `who` on a mismatch, so the address and size
 * alone say what a block must hold (pool_threads.c, reliability.c). */

#define DENSE_MAX (8 * KiB)
#define BLOCK_MAX (64 * MiB) /* largest size block_check() accepts */

static inline uint64_t block_seed(const void *p, size_t n) {
    return (uint64_t)(uintptr_t)p * 0x100000001b3ull ^ n;
}

static inline void block_fill(void *p, size_t n) {
    char *b = p;
    memcpy(b, &n, sizeof n);
    uint64_t seed = block_seed(p, n);
    if (n <= DENSE_MAX) {
        t_fill(b + 8, n - 8, seed);
        return;
    }
    t_fill(b + 8, 2040, seed);
    t_fill(b + n - 2048, 2048, seed + 1);
    for (size_t off = 2048; off + 2048 + 8 <= n; off += 1024) {
        uint64_t w = t_word(seed, off);
        memcpy(b + off, &w, 8);
    }
}

/* Checks the block and returns its size; dies naming `who` on a mismatch. */
static inline size_t block_check(const void *p, const char *who) {
    const char *b = p;
    size_t n;
    memcpy(&n, b, sizeof n);
    CHECKM(n >= 16 && n <= BLOCK_MAX, "%s: block %p has a bad size word %zu", who, p, n);
    uint64_t seed = block_seed(p, n);
    bool ok;
    if (n <= DENSE_MAX) {
        ok = t_verify(b + 8, n - 8, seed) == n - 8;
    } else {
        ok = t_verify(b + 8, 2040, seed) == 2040 &&
             t_verify(b + n - 2048, 2048, seed + 1) == 2048;
        for (size_t off = 2048; ok && off + 2048 + 8 <= n; off += 1024) {
            uint64_t w;
            memcpy(&w, b + off, 8);
            ok = w == t_word(seed, off);
        }
    }
    CHECKM(ok, "%s: block %p (%zu bytes) was corrupted", who, p, n);
    CHECKM(T_usable(p) >= n, "%s: block %p usable %zu < %zu", who, p, T_usable(p), n);
    return n;
}

static inline void *block_new(size_t n) {
    void *p = T_malloc(n);
    CHECKM(p != NULL, "malloc(%zu)", n);
    block_fill(p, n);
    return p;
}

static inline void block_free(void *p, const char *who) {
    block_check(p, who);
    T_free(p);
}

/* Mixed sizes: 60% Tiny, 30% Mid, 10% L25 up to `top`. */
static inline size_t pick_size(uint64_t *rs, size_t top) {
    uint64_t r = t_rand(rs);
    unsigned k = (unsigned)(r % 100);
    r >>= 8;
    if (k < 60)
        return 16 + r % (1024 - 16 + 1);
    if (k < 90)
        return 1025 + r % (64 * KiB - 1024);
    return 64 * KiB + 1 + r % (top - 64 * KiB);
}

/* Allocations and frees HAKMEM counted: the pools and the jemalloc route
 * (all of them under HAKMEM_MODE=jemalloc). */
static inline uint64_t pools_nmalloc(void) {
    return t_stat("stats.tiny.nmalloc") + t_stat("stats.mid.nmalloc") +
           t_stat("stats.l25.nmalloc") + t_stat("stats.large.nmalloc");
}
static inline uint64_t pools_nfree(void) {
    return t_stat("stats.tiny.nfree") + t_stat("stats.mid.nfree") + t_stat("stats.l25.nfree") +
           t_stat("stats.large.nfree");
}

/* ---- hand-off queue ----------------------------------------------------------------
 * A mutex-protected FIFO of pointers that threads pass blocks through. */

#define T_QCAP_MAX 256

typedef struct {
    pthread_mutex_t mu;
    void *buf[T_QCAP_MAX];
    size_t cap, head, tail;
} t_queue;

static inline void t_queue_init(t_queue *q, size_t cap) {
    pthread_mutex_init(&q->mu, NULL);
    q->cap = cap <= T_QCAP_MAX ? cap : T_QCAP_MAX;
    q->head = q->tail = 0;
}

/* False when the queue is full. */
static inline bool t_queue_push(t_queue *q, void *p) {
    pthread_mutex_lock(&q->mu);
    bool ok = q->tail - q->head < q->cap;
    if (ok)
        q->buf[q->tail++ % q->cap] = p;
    pthread_mutex_unlock(&q->mu);
    return ok;
}

/* Up to max pointers, oldest first; how many. */
static inline size_t t_queue_pop(t_queue *q, void **out, size_t max) {
    pthread_mutex_lock(&q->mu);
    size_t k = 0;
    while (k < max && q->head != q->tail)
        out[k++] = q->buf[q->head++ % q->cap];
    pthread_mutex_unlock(&q->mu);
    return k;
}

/* ---- fork batches ------------------------------------------------------------------
 * Counted work around a fork: the main thread opens batch k, each worker
 * does a fixed number of operations in it and calls t_batch_live() a few
 * operations in; t_batch_open() returns once every worker has, so the fork
 * lands while all of them are allocating.  Workers sleep between batches
 * (on 2 cores a spinning worker would take the child's core); the mutex is
 * never held across a fork. */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned epoch; /* the batch the workers may do (mu) */
    bool stop;      /* (mu) */
    _Atomic unsigned live;
} t_batch;

#define T_BATCH_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false, 0}

/* Worker: waits for the batch after `done`; false once t_batch_stop(). */
static inline bool t_batch_wait(t_batch *b, unsigned done) {
    pthread_mutex_lock(&b->mu);
    while (b->epoch == done && !b->stop)
        pthread_cond_wait(&b->cv, &b->mu);
    bool go = b->epoch != done;
    pthread_mutex_unlock(&b->mu);
    return go;
}

static inline void t_batch_live(t_batch *b) { atomic_fetch_add(&b->live, 1); }

/* Main: opens batch `epoch`, returns once `workers` workers are live in it. */
static inline void t_batch_open(t_batch *b, unsigned epoch, unsigned workers) {
    atomic_store(&b->live, 0);
    pthread_mutex_lock(&b->mu);
    b->epoch = epoch;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    while (atomic_load(&b->live) < workers)
        sched_yield();
}

static inline void t_batch_stop(t_batch *b) {
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

#endif
