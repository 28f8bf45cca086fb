/* bench_blockcache.c - owns the arena-kinds example workloads of the HAKMEM
 * bench: a block cache on a no-dump arena, and a pointer chase on a huge
 * arena.
 *
 *     bench_blockcache <variant> <scale>
 *
 * Block cache variants (4 threads share a cache of 64 KiB - 1 MiB blocks in
 * 16 locked shards, 160 MiB in all; a lookup that misses allocates the
 * block, writes one byte per page and inserts it, evicting the oldest
 * blocks of its shard, which are freed by whichever thread evicts them):
 *   nodump_pa     a HAK_ARENA_NODUMP arena on the PageArena
 *   nodump_folly  a standalone no-dump hook in the style of folly's
 *                 JemallocNodumpAllocator: jemalloc's own hooks with an
 *                 alloc hook that calls the original alloc (one mmap per
 *                 extent under retain:false) and madvise(MADV_DONTDUMP)
 *   default       jemalloc's default hooks (arenas.create)
 * scale x 1.2 M lookups in all; long enough to pass jemalloc's 10 s decay.
 * Pointer-chase variants (one 512 MiB block, a random cycle of 64-byte
 * nodes, scale x 4 M dependent loads timed):
 *   chase_huge    a HAK_ARENA_HUGE arena
 *   chase_plain   an arena on the ordinary PageArena hooks
 * Prints one line:
 *
 *     RESULT workload=<blockcache|chase>_<variant> ops=.. secs=.. check=<ok|FAIL:..>
 *            rss_kib=<VmHWM> ...
 *
 * with, for the block cache, hits= misses= (cache lookups), hook_allocs=
 * (alloc hook calls of the variant's own hooks), kind_arenas= (no-dump
 * arenas alive); for the chase, cpu_secs= (the timed loop's thread CPU
 * time: on a loaded machine wall time mostly measures waiting for a core),
 * setup_secs= (mapping, faulting in and linking the 512 MiB),
 * anon_huge_kib= (AnonHugePages over the
 * process after setup) and dtlb_misses= (perf_event_open dTLB read misses
 * during the timed loop, -1 where the CPU or VM does not count them).
 * BENCH_STATS=1 prints every HAKMEM statistic to stderr at the end.
 * Exports nothing. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"

#include <jemalloc/jemalloc.h>

#include "hakmem.h"

#define PAGE 4096u
#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
enum { THREADS = 4, SHARDS = 16, KEYS = 4096 };
#define CAPACITY (160 * MiB)

static const char *g_name = "blockcache_?";

static uint64_t rng_next(uint64_t *s) { /* xorshift64* */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_sec(void) { /* this thread's CPU time: not the time it waited for a core */
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static _Noreturn void fail(const char *reason) {
    fprintf(stderr, "bench_blockcache: %s: %s\n", g_name, reason);
    printf("RESULT workload=%s ops=0 secs=0 check=FAIL:", g_name);
    for (const char *c = reason; *c; c++)
        putchar(*c == ' ' || *c == '=' ? '_' : *c);
    printf(" rss_kib=%ld\n", peak_rss_kib());
    fflush(stdout);
    abort();
}

/* ---- the folly-style standalone no-dump hook ------------------------------ */

static extent_hooks_t *folly_orig;
static extent_hooks_t folly_hooks;
static _Atomic uint64_t folly_allocs;

static void *folly_alloc(extent_hooks_t *h, void *new_addr, size_t size, size_t alignment,
                         bool *zero, bool *commit, unsigned ind) {
    void *p = folly_orig->alloc(h, new_addr, size, alignment, zero, commit, ind);
    if (p) {
        atomic_fetch_add_explicit(&folly_allocs, 1, memory_order_relaxed);
        madvise(p, size, MADV_DONTDUMP);
    }
    return p;
}

static int folly_arena(unsigned *ind) {
    size_t sz = sizeof *ind;
    int err = mallctl("arenas.create", ind, &sz, NULL, 0);
    if (err)
        return err;
    char name[64];
    snprintf(name, sizeof name, "arena.%u.extent_hooks", *ind);
    sz = sizeof folly_orig;
    if ((err = mallctl(name, &folly_orig, &sz, NULL, 0)) != 0)
        return err;
    folly_hooks = *folly_orig;
    folly_hooks.alloc = folly_alloc;
    extent_hooks_t *h = &folly_hooks;
    return mallctl(name, NULL, NULL, &h, sizeof h);
}

static int64_t stat(const char *name) { return hk_read(hak_mallctl, name); }

/* ---- block cache --------------------------------------------------------- */

typedef struct { uint8_t *p; size_t n; } entry;
static struct shard {
    pthread_mutex_t lock;
    size_t bytes;
    unsigned ring[KEYS], head, count; /* insertion order (FIFO eviction) */
    char pad[64];
} shards[SHARDS];
static entry table[KEYS]; /* key -> block, under the key's shard lock */
static int g_flags;
static uint64_t g_ops_per_thread;
static _Atomic uint64_t g_hits, g_misses;

static size_t size_of(unsigned key) { /* 64 KiB - 1 MiB, skewed small */
    uint64_t h = key * 0x9E3779B97F4A7C15ULL;
    size_t n = (64 * KiB) << ((h >> 40) % 5);
    n += (size_t)((h >> 8) % n);
    return n > MiB ? MiB : n;
}

static uint8_t tag_of(unsigned key) { return (uint8_t)(key * 131u + 7u) | 1u; }

static void *cache_worker(void *arg) {
    uint64_t rng = 0x9E3779B97F4A7C15ULL * ((uintptr_t)arg + 1);
    uint64_t hits = 0, misses = 0;
    for (uint64_t i = 0; i < g_ops_per_thread; i++) {
        uint64_t r = rng_next(&rng);
        /* 80 % of lookups go to a fifth of the keys */
        unsigned key = (r % 100) < 80 ? (unsigned)((r >> 8) % (KEYS / 5))
                                       : (unsigned)((r >> 8) % KEYS);
        struct shard *s = &shards[key % SHARDS];
        uint8_t t = tag_of(key);
        pthread_mutex_lock(&s->lock);
        entry e = table[key];
        if (e.p) {
            if (e.p[0] != t || e.p[e.n - 1] != t || e.p[(e.n / 2) & ~(size_t)(PAGE - 1)] != t)
                fail("a cached block was overwritten");
            pthread_mutex_unlock(&s->lock);
            hits++;
            continue;
        }
        pthread_mutex_unlock(&s->lock);
        misses++;
        size_t n = size_of(key);
        uint8_t *p = mallocx(n, g_flags);
        if (!p)
            fail("mallocx returned NULL");
        for (size_t off = 0; off < n; off += PAGE)
            p[off] = t;
        p[n - 1] = t;
        entry victims[64];
        unsigned nv = 0;
        pthread_mutex_lock(&s->lock);
        if (table[key].p) { /* another thread filled it meanwhile */
            victims[nv++] = (entry){p, n};
        } else {
            table[key] = (entry){p, n};
            s->ring[(s->head + s->count) % KEYS] = key;
            s->count++;
            s->bytes += n;
            while (s->bytes > CAPACITY / SHARDS && s->count > 1 && nv < 64) {
                unsigned old = s->ring[s->head];
                s->head = (s->head + 1) % KEYS;
                s->count--;
                victims[nv++] = table[old];
                s->bytes -= table[old].n;
                table[old] = (entry){NULL, 0};
            }
        }
        pthread_mutex_unlock(&s->lock);
        for (unsigned v = 0; v < nv; v++)
            dallocx(victims[v].p, g_flags);
    }
    atomic_fetch_add(&g_hits, hits);
    atomic_fetch_add(&g_misses, misses);
    return NULL;
}

static int run_cache(const char *variant, double scale) {
    unsigned ind = 0;
    int err;
    size_t sz = sizeof ind;
    if (strcmp(variant, "nodump_pa") == 0) {
        hak_arena_opts o = {.flags = HAK_ARENA_NODUMP};
        err = hak_arena_create_with(&ind, &o);
    } else if (strcmp(variant, "nodump_folly") == 0) {
        err = folly_arena(&ind);
    } else {
        err = mallctl("arenas.create", &ind, &sz, NULL, 0);
    }
    if (err)
        fail("arena creation failed");
    g_flags = MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE;
    double ops = 1.2e6 * scale + 0.5;
    g_ops_per_thread = ops < THREADS ? 1 : (uint64_t)ops / THREADS;
    for (unsigned i = 0; i < SHARDS; i++)
        pthread_mutex_init(&shards[i].lock, NULL);
    pthread_t t[THREADS];
    double t0 = now_sec();
    for (unsigned i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, cache_worker, (void *)(uintptr_t)i) != 0)
            fail("pthread_create failed");
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    double secs = now_sec() - t0;
    long rss = peak_rss_kib();
    /* What proves the variant ran on its own hooks. */
    int64_t hook_allocs = strcmp(variant, "nodump_folly") == 0 ? (int64_t)atomic_load(&folly_allocs)
                          : strcmp(variant, "nodump_pa") == 0
                              ? stat("stats.arena_kinds.nodump.hits") + stat("stats.arena_kinds.nodump.misses")
                              : stat("stats.hooks.alloc_calls") + (int64_t)atomic_load(&folly_allocs);
    int64_t kind_arenas = stat("stats.arena_kinds.nodump.arenas");
    if (getenv("BENCH_STATS")) /* every HAKMEM statistic, before the cache is emptied */
        hak_stats_print(NULL, NULL, "");
    for (unsigned k = 0; k < KEYS; k++)
        if (table[k].p)
            dallocx(table[k].p, g_flags);
    printf("RESULT workload=%s ops=%" PRIu64 " secs=%.6f check=ok rss_kib=%ld hits=%" PRIu64
           " misses=%" PRIu64 " hook_allocs=%" PRId64 " kind_arenas=%" PRId64
           " kind_returned=%" PRId64 "\n",
           g_name, g_ops_per_thread * THREADS, secs, rss, atomic_load(&g_hits),
           atomic_load(&g_misses), hook_allocs, kind_arenas,
           stat("stats.arena_kinds.nodump.returned"));
    fflush(stdout);
    return 0;
}

/* ---- pointer chase --------------------------------------------------------- */

#define CHASE_BYTES (512 * MiB)
#define NODE 64

static long anon_huge_kib(void) {
    return proc_kib("/proc/self/smaps_rollup", "AnonHugePages:");
}

static int dtlb_counter(void) {
    struct perf_event_attr pe;
    memset(&pe, 0, sizeof pe);
    pe.type = PERF_TYPE_HW_CACHE;
    pe.size = sizeof pe;
    pe.config = PERF_COUNT_HW_CACHE_DTLB | (PERF_COUNT_HW_CACHE_OP_READ << 8) |
                (PERF_COUNT_HW_CACHE_RESULT_MISS << 16);
    pe.disabled = 1;
    pe.exclude_kernel = 1;
    pe.exclude_hv = 1;
    return (int)syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0);
}

static int run_chase(const char *variant, double scale) {
    unsigned ind;
    hak_arena_opts o = {.flags = strcmp(variant, "chase_huge") == 0 ? HAK_ARENA_HUGE : 0};
    if (hak_arena_create_with(&ind, &o) != 0)
        fail("arena creation failed");
    int flags = MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE;
    double s0 = now_sec();
    char *mem = mallocx(CHASE_BYTES, flags | MALLOCX_ALIGN(2 * MiB));
    if (!mem)
        fail("mallocx returned NULL");
    size_t nodes = CHASE_BYTES / NODE;
    uint32_t *order = malloc(nodes * sizeof *order);
    if (!order)
        fail("malloc returned NULL");
    for (size_t i = 0; i < nodes; i++)
        order[i] = (uint32_t)i;
    uint64_t rng = 0x2545F4914F6CDD1DULL;
    for (size_t i = nodes - 1; i > 0; i--) { /* Fisher-Yates */
        size_t j = (size_t)(rng_next(&rng) % (i + 1));
        uint32_t x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    /* One cycle through every node: node order[i] points to order[i+1].
     * Written in address order (pos[] is order's inverse), so setup does
     * not itself chase TLB misses over the block. */
    uint32_t *pos = malloc(nodes * sizeof *pos);
    if (!pos)
        fail("malloc returned NULL");
    for (size_t i = 0; i < nodes; i++)
        pos[order[i]] = (uint32_t)i;
    for (size_t j = 0; j < nodes; j++)
        *(char **)(mem + j * NODE) = mem + (size_t)order[(pos[j] + 1) % nodes] * NODE;
    free(pos);
    free(order);
    long huge = anon_huge_kib();
    double setup = now_sec() - s0;
    double steps_d = 4e6 * scale + 0.5;
    uint64_t steps = steps_d < 1 ? 1 : (uint64_t)steps_d;
    int fd = dtlb_counter();
    if (fd >= 0) {
        ioctl(fd, PERF_EVENT_IOC_RESET, 0);
        ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
    }
    double t0 = now_sec(), c0 = cpu_sec();
    char *p = mem;
    for (uint64_t i = 0; i < steps; i++)
        p = *(char **)p;
    double secs = now_sec() - t0, cpu = cpu_sec() - c0;
    int64_t misses = -1;
    if (fd >= 0) {
        uint64_t v;
        ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
        if (read(fd, &v, sizeof v) == (ssize_t)sizeof v)
            misses = (int64_t)v;
        close(fd);
    }
    if ((uintptr_t)p < (uintptr_t)mem || (uintptr_t)p >= (uintptr_t)mem + CHASE_BYTES)
        fail("the chase left the block");
    printf("RESULT workload=%s ops=%" PRIu64 " secs=%.6f cpu_secs=%.6f setup_secs=%.6f check=ok"
           " rss_kib=%ld anon_huge_kib=%ld dtlb_misses=%" PRId64 " kind_huge_arenas=%" PRId64 "\n",
           g_name, steps, secs, cpu, setup, peak_rss_kib(), huge, misses,
           stat("stats.arena_kinds.huge.arenas"));
    fflush(stdout);
    dallocx(mem, MALLOCX_TCACHE_NONE);
    return 0;
}

int main(int argc, char **argv) {
    static const char *const variants[] = {"nodump_pa", "nodump_folly", "default", "chase_huge",
                                           "chase_plain"};
    char *end = NULL;
    double scale = argc == 3 ? strtod(argv[2], &end) : 0;
    int v = -1;
    for (int i = 0; argc == 3 && i < 5; i++)
        if (strcmp(argv[1], variants[i]) == 0)
            v = i;
    if (v < 0 || end == argv[2] || *end || !(scale > 0 && scale <= 1e6)) {
        fprintf(stderr,
                "usage: %s <nodump_pa|nodump_folly|default|chase_huge|chase_plain> <scale>\n",
                argv[0]);
        return 2;
    }
    static char name[64];
    snprintf(name, sizeof name, "%s_%s", v < 3 ? "blockcache" : "chase",
             v < 3 ? argv[1] : argv[1] + 6);
    g_name = name;
    return v < 3 ? run_cache(argv[1], scale) : run_chase(argv[1], scale);
}
