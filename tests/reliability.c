/* reliability.c - owns the reliability tests of the malloc front, the pools
 * and the PageArena under memory exhaustion, refused mmaps, fork, thread
 * churn and cross-thread frees (docs/DESIGN.md: The pools, Fork and thread
 * exit, Bad input):
 *
 *   exhaust   under RLIMIT_AS (run it under `ulimit -v`): every pool class
 *             and sizes routed to jemalloc, through malloc and calloc /
 *             realloc / posix_memalign / aligned_alloc in turn (soak: each
 *             class through malloc and one other), each allocated until it
 *             fails: the failure is
 *             NULL with ENOMEM (posix_memalign: ENOMEM), every block obtained
 *             keeps its pattern, and after freeing them the class allocates
 *             again; single requests that cannot fit fail cleanly; the
 *             PageArena's own metadata does not grow from cycle to cycle.
 *   mmap_fail this program's own mmap() (which the allocator's calls bind to:
 *             statically in process, through the dynamic symbol table under
 *             LD_PRELOAD) refuses anonymous mappings every Nth call, in
 *             bursts or at random while every class is allocated; then it
 *             recovers and every class allocates again.  Every pattern in
 *             both tiers; soak: 6 rounds per pattern and 64 MiB blocks too.
 *   fork1000  1000 forks while 4 threads are in the middle of a batch of
 *             allocations and frees (some blocks above 2 MiB); each child
 *             checks pre-fork blocks, allocates, frees.  Quick: 8
 *             operations per worker per fork, mixed sizes up to 96 KiB and
 *             3 MiB now and then, 8 in the child; soak: 100 up to 8 MiB, 40
 *             in the child.  (The TSan build forks 100 times.)
 *   churn     short-lived threads (quick 10,000; soak 50,000; TSan 2,000);
 *             blocks freed by later threads after their owner exited; RSS
 *             and pool bytes stay bounded.
 *   xthread8  8 threads hand blocks of every class (and some above 2 MiB) to
 *             each other; the receiver checks the pattern and frees (quick
 *             5,000 blocks per thread; soak 20,000; TSan a fifth).
 *
 * Every case bounds its work, never its time: a count of blocks, forks or
 * threads.  The one deadline, the fork child's deadlock guard, is 30 s for
 * work that takes milliseconds.
 *
 * Built twice like pool_threads.c (pool_test.h): -DHK_INPROCESS calls the
 * hk_* front in process; otherwise the libc names under LD_PRELOAD.
 * Usage: reliability exhaust|mmap_fail|fork1000|churn|xthread8 [--soak]
 * (--soak: the full volume of the soak tier, `make soak`;
 * RELIABILITY_VERBOSE=1 prints every exhaust run and churn sample). */
#include "pool_test.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>

/* Sizes above the pools' largest class: jemalloc's large arena (3 MiB), its
 * huge arena (8 MiB and more, jemalloc's oversize_threshold). */
static const size_t je_sizes[] = {L25_MAX + 1, 3 * MiB, 8 * MiB, 64 * MiB};
#define N_JE (sizeof je_sizes / sizeof je_sizes[0])

/* The soak tier's full volume (--soak) instead of the quick tier's. */
static bool soak;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* An anonymous mapping straight from the kernel (never through mmap()). */
static void *raw_map(size_t n, int prot) {
    long r = syscall(SYS_mmap, NULL, n, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0L);
    CHECKM(r != -1, "raw mmap of %zu bytes: errno %d", n, errno);
    return (void *)r;
}
static void raw_unmap(void *p, size_t n) { CHECK(syscall(SYS_munmap, p, n) == 0); }

/* Address space in use, from /proc/self/statm. */
static size_t va_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    CHECK(f != NULL);
    unsigned long size = 0;
    CHECK(fscanf(f, "%lu", &size) == 1);
    fclose(f);
    return (size_t)size * (size_t)sysconf(_SC_PAGESIZE);
}

/* ---- the mmap shim ----------------------------------------------------------------
 * This program defines mmap (and mmap64, the same function on LP64): the
 * allocator's calls land here -- in process the static link binds
 * arena/pa_os.c's call to it, and the executable exports it (-rdynamic), so
 * libhakmem.so's and libjemalloc's PLT calls resolve to it too.  It passes
 * every call to the kernel, and refuses anonymous ones with ENOMEM while a
 * failure mode is on.  Not built under ASan or TSan, whose runtimes
 * intercept mmap themselves. */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HAVE_MMAP_SHIM 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HAVE_MMAP_SHIM 0
#endif
#endif
#ifndef HAVE_MMAP_SHIM
#define HAVE_MMAP_SHIM 1
#endif

#if HAVE_MMAP_SHIM
enum { MM_PASS, MM_EVERY, MM_BURST, MM_RANDOM };
static _Atomic int mm_mode;
static _Atomic uint64_t mm_n, mm_m;            /* mode parameters */
static _Atomic uint64_t mm_calls, mm_refused;  /* anonymous mappings asked for / refused */
static _Atomic uint64_t mm_tick;               /* calls since the mode was set */

static void mm_set(int mode, uint64_t n, uint64_t m) {
    atomic_store(&mm_mode, MM_PASS);
    atomic_store(&mm_n, n);
    atomic_store(&mm_m, m);
    atomic_store(&mm_tick, 0);
    atomic_store(&mm_mode, mode);
}

static bool mm_should_fail(void) {
    int mode = atomic_load_explicit(&mm_mode, memory_order_relaxed);
    if (mode == MM_PASS)
        return false;
    uint64_t t = atomic_fetch_add(&mm_tick, 1), n = atomic_load(&mm_n), m = atomic_load(&mm_m);
    switch (mode) {
    case MM_EVERY: /* every nth call fails */
        return t % n == n - 1;
    case MM_BURST: /* n calls fail, then m succeed */
        return t % (n + m) < n;
    default: /* n percent of calls, decided by a hash of the call number */
        return t_word(m, (size_t)t) % 100 < n;
    }
}

__attribute__((visibility("default"))) void *mmap(void *addr, size_t len, int prot, int flags,
                                                  int fd, off_t off) {
    if ((flags & MAP_ANONYMOUS) && !(flags & MAP_FIXED)) {
        atomic_fetch_add_explicit(&mm_calls, 1, memory_order_relaxed);
        if (mm_should_fail()) {
            atomic_fetch_add_explicit(&mm_refused, 1, memory_order_relaxed);
            errno = ENOMEM;
            return MAP_FAILED;
        }
    }
    long r = syscall(SYS_mmap, addr, len, prot, flags, fd, (long)off);
    return r == -1 ? MAP_FAILED : (void *)r;
}
__attribute__((visibility("default"), alias("mmap"))) void *mmap64(void *addr, size_t len,
                                                                   int prot, int flags, int fd,
                                                                   off_t off);
#endif

/* ---- allocating through one API ---------------------------------------------------- */

enum { API_MALLOC, API_CALLOC, API_REALLOC, API_MEMALIGN, API_ALIGNED, API_COUNT };
static const char *const api_names[API_COUNT] = {"malloc", "calloc", "realloc",
                                                 "posix_memalign", "aligned_alloc"};

static size_t api_align(int api, size_t n) {
    if (api == API_MEMALIGN)
        return 64;
    if (api == API_ALIGNED)
        return n < 4 * KiB ? 256 : 4 * KiB;
    return 16;
}

/* True when the n-byte block reads as zero (sampled above 64 KiB: head,
 * tail and one word per page). */
static bool zero_ok(const void *p, size_t n) {
    if (n <= 64 * KiB)
        return t_is_zero(p, n);
    if (!t_is_zero(p, 4 * KiB) || !t_is_zero((const char *)p + n - 4 * KiB, 4 * KiB))
        return false;
    for (size_t off = 4 * KiB; off + 8 <= n; off += 4 * KiB)
        if (!t_is_zero((const char *)p + off, 8))
            return false;
    return true;
}

/* One n-byte block through `api`, filled with its pattern; NULL when the
 * allocator refused, which must come with ENOMEM (posix_memalign: the
 * ENOMEM return, *out untouched).  `what` names the caller in messages. */
static void *api_alloc(int api, size_t n, const char *what) {
    void *p = NULL;
    size_t align = api_align(api, n);
    errno = 0;
    switch (api) {
    case API_MALLOC:
        p = T_malloc(opaque(n));
        break;
    case API_CALLOC:
        p = n % 16 ? T_calloc(opaque(n), 1) : T_calloc(opaque(n / 16), 16);
        if (p)
            CHECKM(zero_ok(p, n), "%s: calloc(%zu) is not zeroed", what, n);
        break;
    case API_REALLOC: { /* grow a block of half the size: a failure keeps it */
        size_t half = n / 2 < 16 ? 16 : n / 2;
        void *old = T_malloc(half);
        if (!old)
            break;
        block_fill(old, half);
        const uint64_t seed = block_seed(old, half);
        errno = 0;
        p = T_realloc(old, opaque(n));
        if (!p) {
            int e = errno;
            block_check(old, "realloc refused: the old block");
            T_free(old);
            errno = e;
            break;
        }
        size_t dense = half - 8 < 2040 ? half - 8 : 2040;
        CHECKM(t_verify((char *)p + 8, dense, seed) == dense,
               "%s: realloc(%zu -> %zu) lost the contents", what, half, n);
        break;
    }
    case API_MEMALIGN: {
        void *out = (void *)&p; /* any non-NULL value: must stay as it is */
        int rc = T_posix_memalign(&out, align, opaque(n));
        if (rc != 0) {
            CHECKM(rc == ENOMEM, "%s: posix_memalign(%zu, %zu) returned %d, not ENOMEM", what,
                   align, n, rc);
            CHECKM(out == (void *)&p, "%s: posix_memalign failed but wrote *out", what);
            errno = ENOMEM;
            return NULL;
        }
        p = out;
        break;
    }
    case API_ALIGNED:
        p = T_aligned_alloc(align, opaque(n));
        break;
    }
    if (!p) {
        CHECKM(errno == ENOMEM, "%s: %s(%zu) returned NULL with errno %d, not ENOMEM", what,
               api_names[api], n, errno);
        return NULL;
    }
    CHECKM(t_aligned(p, align), "%s: %s(%zu) = %p is not %zu-aligned", what, api_names[api], n,
           p, align);
    block_fill(p, n);
    return p;
}

/* ---- exhaust ------------------------------------------------------------------------
 * RLIMIT_AS is the limit.  A PROT_NONE reservation (the ballast) takes all
 * but a headroom of what is left before each run, so each run fills a known
 * amount of address space (and runs fast). */

#define EX_HEADROOM (160 * MiB) /* the most a run is given: realloc to 64 MiB needs 32 + 64 and slack */
#define EX_HEADROOM_SMALL (40 * MiB) /* for sizes up to 8 MiB (soak: all of them) */
#define EX_HEADROOM_POOLS (16 * MiB) /* quick tier: pool classes */
#define EX_HEADROOM_CROSS (soak ? EX_HEADROOM : EX_HEADROOM_SMALL)
#define EX_DEFAULT_LIMIT ((size_t)400000 * KiB) /* when run without ulimit -v */

static void **ex_v;     /* the blocks of the current run (raw mapping) */
static size_t ex_cap;
static void *ex_ballast;
static size_t ex_ballast_len, ex_limit;

static void ex_ballast_set(size_t headroom) {
    if (ex_ballast)
        raw_unmap(ex_ballast, ex_ballast_len);
    ex_ballast = NULL;
    size_t used = va_bytes();
    CHECKM(used + headroom < ex_limit, "%zu KiB in use, limit %zu KiB: raise ulimit -v",
           used >> 10, ex_limit >> 10);
    ex_ballast_len = (ex_limit - used - headroom) & ~(MiB - 1);
    if (ex_ballast_len)
        ex_ballast = raw_map(ex_ballast_len, PROT_NONE);
}

typedef struct {
    size_t got;     /* blocks obtained before the failure */
    double seconds;
} ex_result;

static uint64_t pools_active(void) {
    return t_stat("stats.tiny.active") + t_stat("stats.mid.active") + t_stat("stats.l25.active");
}

/* Allocate n-byte blocks through `api` until the allocator says ENOMEM,
 * check every block, free them all, then allocate one again. */

static ex_result ex_run(int api, size_t n) {
    char what[96];
    snprintf(what, sizeof what, "exhaust %s(%zu)", api_names[api], n);
    double t0 = now_s();
    const uint64_t active0 = pools_active(), je0 = t_stat("stats.large.nmalloc") -
                                                  t_stat("stats.large.nfree");
    size_t k = 0;
    for (;;) {
        CHECKM(k < ex_cap, "%s: %zu blocks and still no failure: is RLIMIT_AS set?", what, k);
        void *p = api_alloc(api, n, what);
        if (!p)
            break;
        ex_v[k++] = p;
    }
    /* The allocator is still usable while memory is short: the blocks are
     * intact and a free makes room for the next allocation. */
    for (size_t i = 0; i < k; i++)
        block_check(ex_v[i], what);
    if (k) { /* (realloc needs room for the old block too: malloc here) */
        T_free(ex_v[k - 1]);
        void *p = api_alloc(api == API_REALLOC ? API_MALLOC : api, n, what);
        CHECKM(p != NULL, "%s: a free at the limit did not make room for one block", what);
        ex_v[k - 1] = p;
    }
    for (size_t i = 0; i < k; i++)
        block_free(ex_v[i], what);
    /* And again once everything is back. */
    void *p = api_alloc(api, n, what);
    CHECKM(p != NULL, "%s: allocation fails after every block was freed (%zu before)", what, k);
    block_free(p, what);
    /* The statistics agree that every block came back. */
    const uint64_t active1 = pools_active(), je1 = t_stat("stats.large.nmalloc") -
                                                   t_stat("stats.large.nfree");
    CHECKM(active1 <= active0 + 64 * KiB && je1 == je0,
           "%s: after every block was freed the pools count %llu bytes in use (%llu before) "
           "and jemalloc %llu blocks (%llu before)", what, (unsigned long long)active1,
           (unsigned long long)active0, (unsigned long long)je1, (unsigned long long)je0);
    return (ex_result){k, now_s() - t0};
}

/* Requests that can never fit. */
static void ex_huge(void) {
    static const size_t sizes[] = {(size_t)1 << 30, (size_t)4 << 30, PTRDIFF_MAX,
                                   (size_t)PTRDIFF_MAX + 1, SIZE_MAX - 4 * KiB, SIZE_MAX};
    void *keep = block_new(100);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = opaque(sizes[i]);
        errno = 0;
        CHECKM(T_malloc(n) == NULL && errno == ENOMEM, "malloc(%zu): errno %d", n, errno);
        errno = 0;
        CHECKM(T_calloc(1, n) == NULL && errno == ENOMEM, "calloc(1, %zu): errno %d", n, errno);
        errno = 0;
        CHECKM(T_realloc(keep, n) == NULL && errno == ENOMEM, "realloc(p, %zu): errno %d", n,
               errno);
        block_check(keep, "realloc refused");
        void *out = keep;
        CHECKM(T_posix_memalign(&out, 4096, n) == ENOMEM && out == keep,
               "posix_memalign(4096, %zu)", n);
        errno = 0;
        CHECKM(T_aligned_alloc(4096, n) == NULL && errno == ENOMEM,
               "aligned_alloc(4096, %zu): errno %d", n, errno);
    }
    /* Products that overflow size_t. */
    errno = 0;
    CHECK(T_calloc(opaque(SIZE_MAX / 2), 3) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(T_calloc(opaque((size_t)1 << 33), (size_t)1 << 31) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(T_reallocarray(keep, opaque(SIZE_MAX / 16), 17) == NULL && errno == ENOMEM);
    block_free(keep, "exhaust huge");
}

static void ex_purge(void) { CHECK(t_mallctl()("page_arena.purge", NULL, NULL, NULL, 0) == 0); }

static size_t ex_runs;
static double ex_slowest;

/* One run to ENOMEM from a clean start (the PageArena's caches purged, so
 * every run has the same room); it must get at least one block. */
static ex_result ex_class(int api, size_t n, bool show) {
    size_t room = n > 8 * MiB                ? EX_HEADROOM
                  : soak || n > L25_MAX ? EX_HEADROOM_SMALL
                                        : EX_HEADROOM_POOLS;
    ex_purge();
    ex_ballast_set(room);
    ex_result r = ex_run(api, n);
    CHECKM(r.got > 0, "exhaust %s(%zu): not a single block with %zu MiB free", api_names[api], n,
           room >> 20);
    ex_runs++;
    if (r.seconds > ex_slowest)
        ex_slowest = r.seconds;
    if (show || getenv("RELIABILITY_VERBOSE"))
        printf("exhaust %s(%zu): %zu blocks, %.2f s\n", api_names[api], n, r.got, r.seconds);
    return r;
}

/* Memory freed at the limit serves another size: exhaust `a`, free it all,
 * then exhaust `b` in the same room, the PageArena's caches left as they
 * are.  `b` must get at least half the bytes `a` had.  Returns false (after
 * saying why) when it does not. */
static bool ex_cross(size_t a, size_t b) {
    ex_purge();
    ex_ballast_set(EX_HEADROOM_CROSS);
    size_t got_a = ex_run(API_MALLOC, a).got * a;
    uint64_t cached = t_stat("stats.page_arena.bytes_cached");
    size_t got_b = ex_run(API_MALLOC, b).got * b;
    printf("exhaust %zu then %zu: %zu KiB, then %zu KiB (%llu KiB cached in between)\n", a, b,
           got_a >> 10, got_b >> 10, (unsigned long long)(cached >> 10));
    if (got_b >= got_a / 2)
        return true;
    fprintf(stderr,
            "exhaust: at the limit, %zu-byte blocks got only %zu KiB after %zu KiB of %zu-byte "
            "blocks were freed: the PageArena keeps %llu KiB cached instead of reusing or "
            "unmapping it\n",
            b, got_b >> 10, got_a >> 10, a, (unsigned long long)(cached >> 10));
    return false;
}

static void run_exhaust(void) {
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_AS, &rl) == 0);
    if (rl.rlim_cur == RLIM_INFINITY) {
        printf("RLIMIT_AS is unlimited: setting it to %zu KiB (ctest runs this under ulimit -v)\n",
               EX_DEFAULT_LIMIT >> 10);
        rl.rlim_cur = EX_DEFAULT_LIMIT;
        CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
    }
    ex_limit = rl.rlim_cur;
    ex_cap = EX_HEADROOM / 16 * 5 / 4;
    ex_v = raw_map(ex_cap * sizeof *ex_v, PROT_READ | PROT_WRITE);
    CHECKM(ex_limit >= va_bytes() + EX_HEADROOM + 16 * MiB,
           "RLIMIT_AS %zu KiB leaves too little room (%zu KiB in use)", ex_limit >> 10,
           va_bytes() >> 10);

    const uint64_t meta_start = t_stat("stats.page_arena.meta_bytes") +
                                t_stat("stats.page_arena.pagemap_bytes");
    ex_huge();
    /* Every pool class (its largest size) and the jemalloc route, through
     * the five APIs in turn (soak: through malloc and through one of the
     * other four in turn). */
    for (unsigned i = 0; i < POOL_NCLASS + N_JE; i++) {
        size_t n = i < POOL_NCLASS ? pool_classes[i].size : je_sizes[i - POOL_NCLASS];
        bool show = n == 16 || n == TINY_MAX || n == MID_MAX || n >= L25_MAX;
        if (soak) {
            ex_class(API_MALLOC, n, show);
            ex_class(1 + (int)(i % (API_COUNT - 1)), n, show);
        } else {
            ex_class((int)(i % API_COUNT), n, show);
        }
    }
    ex_huge();

    /* The PageArena's metadata (descriptors, page-map leaves) is reused,
     * never returned: after a first cycle has grown it to its working size,
     * the same cycle again must not add to it.  The page map is the one
     * exception, within bounds: it gets a 2 MiB leaf for each GiB of address
     * space first used, and where mmap places memory is up to ASLR, so a
     * later cycle may reach into one more GiB (seen: 1 or 2 leaves). */
    static const size_t sample[] = {16, 1000, 1025, 8200, 65536, 65537, 300000, L25_MAX,
                                    3 * MiB};
    const int ncycles = soak ? 4 : 3;
    uint64_t meta[4], leaves[4];
    for (int cycle = 0; cycle < ncycles; cycle++) {
        for (size_t i = 0; i < sizeof sample / sizeof sample[0]; i++)
            ex_class(i % 2 ? API_CALLOC : API_MALLOC, sample[i], false);
        meta[cycle] = t_stat("stats.page_arena.meta_bytes");
        leaves[cycle] = t_stat("stats.page_arena.pagemap_bytes");
        printf("exhaust cycle %d: PageArena metadata %llu KiB, page map %llu KiB (%llu KiB at "
               "the start)\n", cycle, (unsigned long long)(meta[cycle] >> 10),
               (unsigned long long)(leaves[cycle] >> 10), (unsigned long long)(meta_start >> 10));
    }
    for (int cycle = 2; cycle < ncycles; cycle++) {
        CHECKM(meta[cycle] <= meta[1] + 256 * KiB,
               "PageArena metadata grows per exhaust cycle: %llu KiB after cycle 1, %llu KiB "
               "after cycle %d", (unsigned long long)(meta[1] >> 10),
               (unsigned long long)(meta[cycle] >> 10), cycle);
        CHECKM(leaves[cycle] <= leaves[1] + 2 * MiB,
               "the page map grows per exhaust cycle: %llu KiB after cycle 1, %llu KiB after "
               "cycle %d", (unsigned long long)(leaves[1] >> 10),
               (unsigned long long)(leaves[cycle] >> 10), cycle);
    }
    printf("exhaust: %zu runs to ENOMEM, slowest %.2f s\n", ex_runs, ex_slowest);

    /* Freed memory is not stranded in a cache tier of another size. */
    int stranded = 0;
    stranded += !ex_cross(16, L25_MAX);    /* 64 KiB slabs, then 2 MiB spans */
    stranded += !ex_cross(81920, 16);      /* 2 MiB runs (warm 2 MiB tier), then 64 KiB slabs */
    stranded += !ex_cross(1 * MiB, 65536); /* odd 1 MiB spans, then Mid runs */
    stranded += !ex_cross(3 * MiB, 4096);  /* the jemalloc route, then Mid runs */
    CHECKM(stranded == 0, "%d of 4 sizes could not reuse memory freed at the limit", stranded);
}

/* ---- mmap_fail ------------------------------------------------------------------------ */

#if HAVE_MMAP_SHIM
#define MF_SLOTS 2048

static void mf_purge(void) { CHECK(t_mallctl()("page_arena.purge", NULL, NULL, NULL, 0) == 0); }

/* The sizes mmap_fail allocates: every class, and the jemalloc route (the
 * quick tier leaves out the 64 MiB blocks: the huge arena has 8 MiB). */
#define MF_NJE (soak ? N_JE : N_JE - 1)
#define MF_NSIZES (POOL_NCLASS + MF_NJE)
static size_t mf_size(unsigned i) {
    return i < POOL_NCLASS ? pool_classes[i].size : je_sizes[(i - POOL_NCLASS) % MF_NJE];
}

static void run_mmap_fail(void) {
    /* 1. The allocator's mmap calls come here. */
    void *self_mmap = dlsym(RTLD_DEFAULT, "mmap");
    CHECKM(self_mmap == (void *)mmap, "mmap resolves to %p, not this program's %p", self_mmap,
           (void *)mmap);
    mf_purge();
    uint64_t c0 = atomic_load(&mm_calls), maps0 = t_stat("stats.page_arena.cold.maps");
    void *probe[8];
    for (int i = 0; i < 8; i++)
        probe[i] = block_new(i < 4 ? 1 * MiB + (size_t)i * 64 * KiB : 3 * MiB + (size_t)i * MiB);
    uint64_t c1 = atomic_load(&mm_calls), maps1 = t_stat("stats.page_arena.cold.maps");
    CHECKM(maps1 > maps0, "no PageArena mapping was made (%llu -> %llu)",
           (unsigned long long)maps0, (unsigned long long)maps1);
    CHECKM(c1 - c0 >= maps1 - maps0,
           "the PageArena made %llu mappings but this program's mmap saw %llu calls",
           (unsigned long long)(maps1 - maps0), (unsigned long long)(c1 - c0));
    for (int i = 0; i < 8; i++)
        block_free(probe[i], "mmap_fail probe");
    /* libjemalloc's own mappings too: arena 0 has jemalloc's default hooks. */
    typedef void *(*mallocx_fn)(size_t, int);
    typedef void (*dallocx_fn)(void *, int);
    mallocx_fn je_mallocx;
    dallocx_fn je_dallocx;
    void *sym_m = dlsym(RTLD_DEFAULT, "mallocx"), *sym_d = dlsym(RTLD_DEFAULT, "dallocx");
    CHECKM(sym_m && sym_d, "jemalloc's mallocx/dallocx not found");
    memcpy(&je_mallocx, &sym_m, sizeof sym_m);
    memcpy(&je_dallocx, &sym_d, sizeof sym_d);
    const int arena0 = (1 << 20) /* MALLOCX_ARENA(0) */ | (1 << 8) /* MALLOCX_TCACHE_NONE */;
    uint64_t c2 = atomic_load(&mm_calls);
    void *je0 = je_mallocx(96 * MiB, arena0);
    CHECK(je0 != NULL);
    uint64_t c3 = atomic_load(&mm_calls);
    je_dallocx(je0, arena0);
    CHECKM(c3 > c2, "libjemalloc's mmap calls do not reach this program's mmap");
    printf("mmap_fail: the shim saw %llu of the PageArena's %llu mappings and %llu of "
           "jemalloc's arena 0\n", (unsigned long long)(c1 - c0),
           (unsigned long long)(maps1 - maps0), (unsigned long long)(c3 - c2));

    /* A refused mapping is a NULL with ENOMEM, for a pool class and for the
     * jemalloc route. */
    mf_purge();
    mm_set(MM_BURST, 1000000, 0);
    for (int api = 0; api < API_COUNT; api++) {
        CHECK(api_alloc(api, 8 * MiB + (size_t)api * MiB, "refused (jemalloc route)") == NULL);
        CHECK(api_alloc(api, 1 * MiB + (size_t)api * 64 * KiB, "refused (L25 span)") == NULL);
    }
    mm_set(MM_PASS, 0, 0);

    /* 2. Every class allocated while mappings are refused. */
    static void *slot[MF_SLOTS];
    const uint64_t alloc_start = t_pool_allocated();
    const uint64_t m0 = pools_nmalloc(), f0 = pools_nfree();
    static const struct { int mode; uint64_t n, m; const char *name; } phases[] = {
        {MM_EVERY, 2, 0, "every 2nd"},  {MM_EVERY, 3, 0, "every 3rd"},
        {MM_EVERY, 7, 0, "every 7th"},  {MM_BURST, 5, 5, "bursts of 5"},
        {MM_BURST, 40, 10, "bursts of 40"}, {MM_RANDOM, 30, 1, "30% random"},
        {MM_RANDOM, 70, 2, "70% random"}, {MM_BURST, 1000000, 0, "all refused"},
    };
    uint64_t rs = 0x5eed;
    uint64_t total_null = 0, total_ok = 0;
    for (size_t ph = 0; ph < sizeof phases / sizeof phases[0]; ph++) {
        uint64_t r0 = atomic_load(&mm_refused);
        uint64_t nulls = 0, oks = 0;
        mm_set(phases[ph].mode, phases[ph].n, phases[ph].m);
        for (int round = 0; round < (soak ? 6 : 2); round++) {
            for (unsigned i = 0; i < MF_NSIZES * 6; i++) {
                unsigned s = (unsigned)(t_rand(&rs) % MF_SLOTS);
                if (slot[s]) {
                    block_free(slot[s], "mmap_fail");
                    slot[s] = NULL;
                }
                size_t n = mf_size(i % MF_NSIZES);
                int api = (int)(t_rand(&rs) % API_COUNT);
                void *p = api_alloc(api, n, "mmap_fail");
                if (p) {
                    slot[s] = p;
                    oks++;
                } else {
                    nulls++;
                }
            }
            /* Cached spans would hide the refusals: send them back. */
            mm_set(MM_PASS, 0, 0);
            for (unsigned s = 0; s < MF_SLOTS; s++)
                if (slot[s] && t_rand(&rs) % 2) {
                    block_free(slot[s], "mmap_fail");
                    slot[s] = NULL;
                }
            mf_purge();
            mm_set(phases[ph].mode, phases[ph].n, phases[ph].m);
        }
        mm_set(MM_PASS, 0, 0);
        uint64_t refused = atomic_load(&mm_refused) - r0;
        printf("mmap_fail %-13s: %llu mappings refused, %llu blocks, %llu NULL (ENOMEM)\n",
               phases[ph].name, (unsigned long long)refused, (unsigned long long)oks,
               (unsigned long long)nulls);
        CHECKM(refused > 0, "phase %s refused no mapping: the allocator did not call mmap",
               phases[ph].name);
        total_null += nulls;
        total_ok += oks;
        /* 3. Recovered: every class and every API allocates again. */
        for (unsigned i = 0; i < MF_NSIZES; i++)
            for (int api = 0; api < API_COUNT; api++) {
                void *p = api_alloc(api, mf_size(i), "mmap_fail recovery");
                CHECKM(p != NULL, "after phase %s: %s(%zu) fails with mmap working again",
                       phases[ph].name, api_names[api], mf_size(i));
                block_free(p, "mmap_fail recovery");
            }
    }
    for (unsigned s = 0; s < MF_SLOTS; s++)
        if (slot[s])
            block_free(slot[s], "mmap_fail final");
    CHECKM(total_null > 0, "no allocation ever failed");
    /* Statistics agree: every block allocated was freed, the pools gave
     * their slabs back. */
    const uint64_t m1 = pools_nmalloc(), f1 = pools_nfree(), alloc = t_pool_allocated();
#ifdef HK_INPROCESS
    CHECKM(m1 - m0 == f1 - f0, "%llu mallocs counted but %llu frees",
           (unsigned long long)(m1 - m0), (unsigned long long)(f1 - f0));
#else
    (void)f0, (void)f1; /* the process's own mallocs run through the pools too */
#endif
    CHECKM(m1 - m0 >= total_ok, "%llu blocks allocated but only %llu counted",
           (unsigned long long)total_ok, (unsigned long long)(m1 - m0));
    CHECKM(alloc <= alloc_start + 16 * MiB,
           "pools hold %llu KiB after every block was freed, %llu KiB before",
           (unsigned long long)(alloc >> 10), (unsigned long long)(alloc_start >> 10));
    printf("mmap_fail: %llu blocks, %llu refusals seen as NULL/ENOMEM; pools hold %llu KiB\n",
           (unsigned long long)total_ok, (unsigned long long)total_null,
           (unsigned long long)(alloc >> 10));
}
#else
static void run_mmap_fail(void) {
    CHECKM(0, "mmap_fail needs the mmap shim, which sanitizer builds leave out");
}
#endif

/* ---- fork1000 -------------------------------------------------------------------------
 * The work is counted, not timed: before each fork the main thread opens an
 * epoch, each worker does a batch of FK_OPS operations in it, and the fork
 * comes once every worker is FK_LIVE operations into its batch, so it lands
 * while all of them are allocating and freeing. */

/* TSan makes each fork of a threaded process about 100x slower: the TSan
 * build (make tsan) checks the races with 100 forks; every other build
 * forks 1000 times. */
#ifdef __SANITIZE_THREAD__
#define FK_FORKS 100
#else
#define FK_FORKS 1000
#endif
#define FK_WORKERS 4
#define FK_SHARED 32
#define FK_OPS (soak ? 100u : 8u) /* per worker per fork */
#define FK_LIVE 2u                 /* operations into the batch at the fork */
#define FK_TOP (soak ? 256 * KiB : 96 * KiB) /* the largest of the mixed sizes */
#define FK_BIG_EVERY (soak ? 1u : 64u)       /* forks with 2 and 3 MiB pre-fork blocks */

static t_batch fk_batch = T_BATCH_INIT;
static _Atomic(void *) fk_shared[FK_SHARED]; /* blocks the workers publish */
static _Atomic uint64_t fk_ops;

/* One operation: free a slot or fill it (mixed sizes up to FK_TOP; quick
 * tier: 3 MiB one in 1024; soak: 8 MiB one in 256, 3 MiB two in 256); every
 * 8th also swaps a block into the table the children free from. */
static void fk_op(void **slots, uint64_t *rs) {
    uint64_t r = t_rand(rs);
    unsigned i = (unsigned)(r % 32);
    if (slots[i]) {
        block_free(slots[i], "fork1000 worker");
        slots[i] = NULL;
    } else {
        unsigned k = (unsigned)((r >> 32) % 1024);
        size_t n = k < 4 && soak ? 8 * MiB
                   : k < 12 && soak ? 3 * MiB
                   : k == 0 ? 3 * MiB
                            : pick_size(rs, FK_TOP);
        slots[i] = block_new(n);
    }
    if (r % 8 == 0) {
        void *p = block_new(pick_size(rs, FK_TOP));
        void *old = atomic_exchange(&fk_shared[(r >> 8) % FK_SHARED], p);
        if (old)
            block_free(old, "fork1000 worker (shared)");
    }
    atomic_fetch_add_explicit(&fk_ops, 1, memory_order_relaxed);
}

static void *fk_worker(void *arg) {
    uint64_t rs = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 7;
    void *slots[32] = {0};
    for (unsigned done = 0;; done++) {
        if (!t_batch_wait(&fk_batch, done))
            break;
        for (unsigned op = 0; op < FK_OPS; op++) {
            if (op == FK_LIVE)
                t_batch_live(&fk_batch);
            fk_op(slots, &rs);
        }
    }
    for (int i = 0; i < 32; i++)
        if (slots[i])
            block_free(slots[i], "fork1000 worker exit");
    return NULL;
}

static void fk_child(void **pre, int npre, unsigned f) {
    alarm(30); /* a deadlock after fork ends here, with SIGALRM */
    for (int i = 0; i < npre; i++)
        block_check(pre[i], "fork1000 child (pre-fork block)");
    for (int i = 0; i < npre; i += 2)
        block_free(pre[i], "fork1000 child (pre-fork block)");
    for (int i = 0; i < FK_SHARED; i += 4) { /* blocks of the workers, now gone */
        void *p = atomic_exchange(&fk_shared[(i + f) % FK_SHARED], NULL);
        if (p)
            block_free(p, "fork1000 child (a worker's block)");
    }
    uint64_t rs = (uint64_t)f * 0x9e3779b97f4a7c15ull + 3;
    void *mine[16] = {0};
    for (int step = 0; step < (soak ? 40 : 8); step++) {
        unsigned i = (unsigned)(t_rand(&rs) % 16);
        if (mine[i])
            block_free(mine[i], "fork1000 child");
        size_t n = step == 5 && f % (soak ? 8 : 64) == 0 ? 3 * MiB : pick_size(&rs, FK_TOP);
        mine[i] = step % 3 ? block_new(n) : api_alloc((int)(step % API_COUNT), n, "fork1000 child");
        CHECK(mine[i] != NULL);
    }
    for (int i = 0; i < 16; i++)
        if (mine[i])
            block_free(mine[i], "fork1000 child exit");
    _exit(0);
}

static void run_fork1000(void) {
    pthread_t th[FK_WORKERS];
    for (int i = 0; i < FK_WORKERS; i++)
        CHECK(pthread_create(&th[i], NULL, fk_worker, (void *)(uintptr_t)(i + 1)) == 0);
    /* Blocks made just before each fork, for the child to check and free:
     * one of each pool, and on every 64th fork (soak: every fork) a 2 MiB
     * span and a 3 MiB jemalloc block, whose pages the parent writes anew
     * after each fork (copy-on-write faults: the quick tier's cost). */
    static const size_t pre_sizes[] = {16, 1000, 1025, 65536, 65537, L25_MAX, 3 * MiB};
    enum { NPRE = sizeof pre_sizes / sizeof pre_sizes[0], NPRE_SMALL = 5 };
    double t0 = now_s();
    for (unsigned f = 0; f < FK_FORKS; f++) {
        void *pre[NPRE];
        const int npre = f % FK_BIG_EVERY == 0 ? NPRE : NPRE_SMALL;
        for (int i = 0; i < npre; i++)
            pre[i] = block_new(pre_sizes[i]);
        fflush(stdout);
        t_batch_open(&fk_batch, f + 1, FK_WORKERS); /* fork with every worker inside it */
        pid_t pid = fork();
        CHECKM(pid >= 0, "fork %u: errno %d", f, errno);
        if (pid == 0)
            fk_child(pre, npre, f);
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECKM(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork %u: child %s %d%s", f,
               WIFEXITED(status) ? "exited with" : "killed by signal",
               WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
               WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? " (deadlock guard)" : "");
        for (int i = 0; i < npre; i++) /* the parent's copies are untouched */
            block_free(pre[i], "fork1000 parent");
    }
    double t1 = now_s();
    t_batch_stop(&fk_batch);
    for (int i = 0; i < FK_WORKERS; i++)
        CHECK(pthread_join(th[i], NULL) == 0);
    for (int i = 0; i < FK_SHARED; i++) {
        void *p = atomic_exchange(&fk_shared[i], NULL);
        if (p)
            block_free(p, "fork1000 parent (shared)");
    }
    const uint64_t ops = atomic_load(&fk_ops);
    printf("fork1000: %d children exited 0 in %.1f s; workers did %llu operations\n", FK_FORKS,
           t1 - t0, (unsigned long long)ops);
    CHECKM(ops == (uint64_t)FK_FORKS * FK_WORKERS * FK_OPS,
           "the workers did %llu operations, %llu expected", (unsigned long long)ops,
           (unsigned long long)FK_FORKS * FK_WORKERS * FK_OPS);
}

/* ---- churn ------------------------------------------------------------------------- */

/* Threads in all: the soak tier 50,000, the quick tier 10,000, the TSan
 * build 2,000 (its per-thread cost). */
#ifdef __SANITIZE_THREAD__
#define CH_THREADS (soak ? 10000u : 2000u)
#else
#define CH_THREADS (soak ? 50000u : 10000u)
#endif
#define CH_BATCH 8
#define CH_PER 6    /* blocks per thread */
#define CH_ORPHANS 256 /* blocks left for later threads */
#define CH_POOL_MAX (128 * MiB) /* orphans pin slabs and 2 MiB runs of many heaps */

static pthread_mutex_t ch_mu = PTHREAD_MUTEX_INITIALIZER;
static void *ch_orphan[CH_ORPHANS];
static _Atomic uint64_t ch_adopted; /* blocks freed by a thread other than their owner */

typedef struct {
    unsigned id;
    void *hand; /* one block for the main thread, freed after the join */
} ch_slot;

static void *ch_thread(void *arg) {
    ch_slot *s = arg;
    uint64_t rs = 0x2545f4914f6cdd1dull ^ ((uint64_t)s->id * 0x9e3779b97f4a7c15ull);
    void *b[CH_PER];
    for (int i = 0; i < CH_PER; i++) {
        size_t n = s->id % 211 == 0 && i == 0 ? 3 * MiB : pick_size(&rs, 256 * KiB);
        b[i] = block_new(n);
    }
    block_free(b[0], "churn own free");
    block_free(b[1], "churn own free");
    /* Swap two blocks with the orphan table: free what earlier (mostly
     * exited) threads left, leave two of ours. */
    void *took[2];
    pthread_mutex_lock(&ch_mu);
    for (int i = 0; i < 2; i++) {
        unsigned k = (unsigned)(t_rand(&rs) % CH_ORPHANS);
        took[i] = ch_orphan[k];
        ch_orphan[k] = b[2 + i];
    }
    pthread_mutex_unlock(&ch_mu);
    for (int i = 0; i < 2; i++)
        if (took[i]) {
            block_free(took[i], "churn orphan free");
            atomic_fetch_add_explicit(&ch_adopted, 1, memory_order_relaxed);
        }
    block_free(b[4], "churn own free");
    s->hand = b[5];
    return NULL;
}

static void run_churn(void) {
    const uint64_t alloc_start = t_pool_allocated();
    const size_t rss_start = t_rss();
    uint64_t peak_alloc = 0;
    size_t peak_rss = 0;
    double t0 = now_s();
    for (unsigned base = 0; base < CH_THREADS; base += CH_BATCH) {
        pthread_t th[CH_BATCH];
        ch_slot slot[CH_BATCH];
        for (unsigned i = 0; i < CH_BATCH; i++) {
            slot[i] = (ch_slot){.id = base + i};
            CHECKM(pthread_create(&th[i], NULL, ch_thread, &slot[i]) == 0, "thread %u",
                   base + i);
        }
        for (unsigned i = 0; i < CH_BATCH; i++)
            CHECK(pthread_join(th[i], NULL) == 0);
        for (unsigned i = 0; i < CH_BATCH; i++) /* the owner has exited */
            block_free(slot[i].hand, "churn main free");
        if ((base / CH_BATCH) % 125 == 0) {
            uint64_t a = t_pool_allocated();
            size_t rss = t_rss();
            if (a > peak_alloc)
                peak_alloc = a;
            if (rss > peak_rss)
                peak_rss = rss;
            if (getenv("RELIABILITY_VERBOSE"))
                printf("churn: %u threads: pools hold %llu KiB, rss %zu KiB\n", base,
                       (unsigned long long)(a >> 10), rss >> 10);
            CHECKM(a < CH_POOL_MAX, "after %u threads the pools hold %llu KiB", base,
                   (unsigned long long)(a >> 10));
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
            /* (sanitizer shadow memory is not the allocator's: the pools'
             * own bytes above are the bound there) */
            CHECKM(rss < 200 * MiB, "after %u threads rss is %zu KiB", base, rss >> 10);
#endif
        }
    }
    double t1 = now_s();
    for (unsigned k = 0; k < CH_ORPHANS; k++)
        if (ch_orphan[k]) {
            block_free(ch_orphan[k], "churn final free");
            ch_orphan[k] = NULL;
        }
    uint64_t alloc = t_pool_allocated();
    size_t rss = t_rss();
    printf("churn: %u threads in %.1f s, %llu blocks freed by a later thread; pools hold "
           "%llu KiB (peak sampled %llu KiB), rss %zu KiB (start %zu, peak sampled %zu)\n",
           CH_THREADS, t1 - t0, (unsigned long long)atomic_load(&ch_adopted),
           (unsigned long long)(alloc >> 10), (unsigned long long)(peak_alloc >> 10), rss >> 10,
           rss_start >> 10, peak_rss >> 10);
    CHECK(atomic_load(&ch_adopted) > CH_THREADS);
    CHECKM(alloc <= alloc_start + 8 * MiB,
           "pools hold %llu KiB after every block was freed, %llu KiB at the start",
           (unsigned long long)(alloc >> 10), (unsigned long long)(alloc_start >> 10));
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    CHECKM(rss < 200 * MiB, "rss %zu KiB after %u threads", rss >> 10, CH_THREADS);
#endif
}

/* ---- xthread8 ------------------------------------------------------------------------- */

#define XT_THREADS 8
/* Blocks per thread; the TSan build (about 15x slower per block) does a
 * fifth of each tier. */
#ifdef __SANITIZE_THREAD__
#define XT_BLOCKS (soak ? 4000u : 1000u)
#else
#define XT_BLOCKS (soak ? 20000u : 5000u)
#endif
#define XT_QCAP 64

static t_queue xt_q[XT_THREADS];
static _Atomic uint64_t xt_sent, xt_received, xt_je_blocks;


/* Receive: check every block's pattern, then free it. */
static size_t xt_drain(unsigned me) {
    void *got[32];
    size_t k = t_queue_pop(&xt_q[me], got, 32);
    for (size_t i = 0; i < k; i++)
        block_free(got[i], "xthread8 receiver");
    if (k)
        atomic_fetch_add(&xt_received, k);
    return k;
}

static void *xt_thread(void *arg) {
    unsigned me = (unsigned)(uintptr_t)arg;
    uint64_t rs = 0x9e3779b97f4a7c15ull * (me + 11);
    const uint64_t total = (uint64_t)XT_THREADS * XT_BLOCKS;
    for (unsigned i = 0; i < XT_BLOCKS; i++) {
        /* Every class in turn, a size anywhere in it; now and then one for
         * jemalloc. */
        size_t n;
        if (i % 64 == 63) {
            n = je_sizes[(i / 64 + me) % 3];
            atomic_fetch_add(&xt_je_blocks, 1);
        } else {
            unsigned c = (i * 7 + me) % POOL_NCLASS;
            size_t top = pool_classes[c].size, low = c ? pool_classes[c - 1].size + 1 : 16;
            n = low + t_rand(&rs) % (top - low + 1);
        }
        void *p = i % 5 == 0 ? api_alloc((int)(i / 5 % API_COUNT), n, "xthread8") : block_new(n);
        CHECK(p != NULL);
        unsigned to = (me + 1 + (unsigned)(t_rand(&rs) % (XT_THREADS - 1))) % XT_THREADS;
        while (!t_queue_push(&xt_q[to], p))
            if (!xt_drain(me))
                sched_yield();
        atomic_fetch_add(&xt_sent, 1);
        xt_drain(me);
    }
    /* Keep receiving until every block of every thread arrived. */
    while (atomic_load(&xt_received) < total)
        if (!xt_drain(me))
            sched_yield();
    return NULL;
}

static void run_xthread8(void) {
    for (unsigned i = 0; i < XT_THREADS; i++)
        t_queue_init(&xt_q[i], XT_QCAP);
    const uint64_t alloc_start = t_pool_allocated();
    const uint64_t m0 = pools_nmalloc(), f0 = pools_nfree();
    double t0 = now_s();
    pthread_t th[XT_THREADS];
    for (unsigned i = 0; i < XT_THREADS; i++)
        CHECK(pthread_create(&th[i], NULL, xt_thread, (void *)(uintptr_t)i) == 0);
    for (unsigned i = 0; i < XT_THREADS; i++)
        CHECK(pthread_join(th[i], NULL) == 0);
    double t1 = now_s();
    const uint64_t m1 = pools_nmalloc(), f1 = pools_nfree(), alloc = t_pool_allocated();
    const uint64_t total = (uint64_t)XT_THREADS * XT_BLOCKS;
    for (unsigned i = 0; i < XT_THREADS; i++)
        CHECKM(xt_q[i].head == xt_q[i].tail, "queue %u still holds %zu blocks", i,
               xt_q[i].tail - xt_q[i].head);
    CHECKM(atomic_load(&xt_sent) == total && atomic_load(&xt_received) == total,
           "%llu blocks sent, %llu received, %llu expected",
           (unsigned long long)atomic_load(&xt_sent),
           (unsigned long long)atomic_load(&xt_received), (unsigned long long)total);
    /* realloc allocates twice per block (half size, then the grown copy). */
    CHECKM(m1 - m0 >= total, "%llu allocations counted for %llu blocks",
           (unsigned long long)(m1 - m0), (unsigned long long)total);
#ifdef HK_INPROCESS
    CHECKM(m1 - m0 == f1 - f0, "%llu allocations counted but %llu frees",
           (unsigned long long)(m1 - m0), (unsigned long long)(f1 - f0));
#else
    /* The process's own allocations (thread start-up) go through HAKMEM too. */
    CHECKM(m1 - m0 <= f1 - f0 + 64, "%llu allocations counted but %llu frees",
           (unsigned long long)(m1 - m0), (unsigned long long)(f1 - f0));
#endif
    CHECKM(alloc <= alloc_start + 16 * MiB,
           "pools hold %llu KiB after every block was freed, %llu KiB before",
           (unsigned long long)(alloc >> 10), (unsigned long long)(alloc_start >> 10));
    printf("xthread8: %llu blocks (%llu for jemalloc) handed across %d threads in %.1f s; "
           "%llu allocations, %llu frees counted; pools hold %llu KiB\n",
           (unsigned long long)total, (unsigned long long)atomic_load(&xt_je_blocks), XT_THREADS,
           t1 - t0, (unsigned long long)(m1 - m0), (unsigned long long)(f1 - f0),
           (unsigned long long)(alloc >> 10));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* CHECK ends with _exit: keep what was printed */
    t_require_hakmem();
    static const struct { const char *name; void (*fn)(void); } cases[] = {
        {"exhaust", run_exhaust},   {"mmap_fail", run_mmap_fail}, {"fork1000", run_fork1000},
        {"churn", run_churn},       {"xthread8", run_xthread8},
    };
    soak = argc == 3 && strcmp(argv[2], "--soak") == 0;
    CHECKM(argc == 2 || soak, "usage: %s exhaust|mmap_fail|fork1000|churn|xthread8 [--soak]",
           argv[0]);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (strcmp(argv[1], cases[i].name) == 0) {
            double t0 = now_s();
            cases[i].fn();
            printf("reliability %s%s (%s): all checks passed in %.1f s\n", argv[1],
                   soak ? " --soak" : "", T_VARIANT, now_s() - t0);
            return 0;
        }
    CHECKM(0, "unknown test %s", argv[1]);
}
