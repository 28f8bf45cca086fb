/* bench_arenas.c - owns the in-process "arenas" workload of the HAKMEM bench.
 *
 *     bench_arenas <default|hakmem> <scale>
 *
 * Linked with jemalloc and libhakmem_hooks.  Creates one jemalloc arena,
 * with jemalloc's default extent hooks (mallctl "arenas.create") or with the
 * PageArena hooks (hak_arena_create), then replaces blocks of 64 KiB - 32 MiB
 * in a working set of 64 slots with mallocx(MALLOCX_ARENA | TCACHE_NONE),
 * touching every page.  Run "hakmem" with HAKMEM_PAGE_ARENA_ENABLE=0 for the
 * PageArena-off baseline.  Prints one line:
 *
 *     RESULT workload=arenas_<mode> ops=<steps> secs=<timed> check=<ok|FAIL:..>
 *            rss_kib=<VmHWM> hk_cold_maps=.. hk_warm_hits=.. hk_pa=..
 *            hk_hooks_alloc=..
 *
 * (hak_mallctl values; -1 when a name is refused).  Exports nothing.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"

#include <jemalloc/jemalloc.h>

#include "hakmem.h"

#define PAGE 4096u
enum { SLOTS = 64, LOOKUP_CHECKS = 64 };

static const char *g_name = "arenas_?";

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


static void print_result(uint64_t ops, double secs, const char *check) {
    printf("RESULT workload=%s ops=%" PRIu64 " secs=%.6f check=%s rss_kib=%ld hk_cold_maps=%" PRId64
           " hk_warm_hits=%" PRId64 " hk_pa=%" PRId64 " hk_hooks_alloc=%" PRId64 "\n",
           g_name, ops, secs, check, peak_rss_kib(), hk_read(hak_mallctl, "stats.page_arena.cold.maps"),
           hk_read(hak_mallctl, "stats.page_arena.warm.hits"), hk_read(hak_mallctl, "opt.page_arena.enable"),
           hk_read(hak_mallctl, "stats.hooks.alloc_calls"));
    fflush(stdout);
}

static _Noreturn void fail(const char *reason) {
    char check[160];
    fprintf(stderr, "bench_arenas: %s: %s\n", g_name, reason);
    snprintf(check, sizeof check, "FAIL:%s", reason);
    for (char *c = check; *c; c++)
        if (*c == ' ' || *c == '=')
            *c = '_';
    print_result(0, 0.0, check);
    abort();
}

static uint8_t tag_of(unsigned slot, size_t n) {
    return (uint8_t)(((slot * 0x9E3779B1u) ^ (uint32_t)(n >> 12) ^ (uint32_t)n) | 1);
}

/* Which arena owns p, as jemalloc says (p is jemalloc's own block). */
static unsigned arena_of(void *p) {
    unsigned ind = ~0u;
    size_t sz = sizeof ind;
    if (mallctl("arenas.lookup", &ind, &sz, &p, sizeof p) != 0)
        return ~0u;
    return ind;
}

int main(int argc, char **argv) {
    char *end = NULL;
    double scale = argc == 3 ? strtod(argv[2], &end) : 0;
    int hakmem = argc == 3 && strcmp(argv[1], "hakmem") == 0;
    if (argc != 3 || (!hakmem && strcmp(argv[1], "default") != 0) || end == argv[2] || *end ||
        !(scale > 0 && scale <= 1e6)) {
        fprintf(stderr, "usage: %s <default|hakmem> <scale>\n", argv[0]);
        return 2;
    }
    g_name = hakmem ? "arenas_hakmem" : "arenas_default";

    unsigned ind = 0;
    size_t sz = sizeof ind;
    int err = hakmem ? hak_arena_create(&ind) : mallctl("arenas.create", &ind, &sz, NULL, 0);
    if (err != 0)
        fail(hakmem ? "hak_arena_create failed" : "mallctl arenas.create failed");
    const int flags = MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE;

    double s = (double)20000 * scale + 0.5;
    uint64_t steps = s < 1 ? 1 : (uint64_t)s;
    uint8_t *ptr[SLOTS] = {0};
    size_t len[SLOTS] = {0};
    uint64_t rng = 0x9E3779B97F4A7C15ULL;

    double t0 = now_sec();
    for (uint64_t i = 0; i < steps; i++) {
        uint64_t r = rng_next(&rng);
        unsigned slot = (unsigned)(r >> 56) % SLOTS;
        if (ptr[slot]) {
            uint8_t *p = ptr[slot];
            size_t n = len[slot];
            uint8_t t = tag_of(slot, n);
            if (p[0] != t || p[n - 1] != t || p[(n / 2) & ~(size_t)(PAGE - 1)] != t)
                fail("a block was overwritten");
            dallocx(p, MALLOCX_TCACHE_NONE);
        }
        unsigned e = 16 + (unsigned)(r % 9); /* [2^16, 2^25): 64 KiB - 32 MiB */
        size_t n = ((size_t)1 << e) + (size_t)((r >> 16) % ((size_t)1 << e));
        uint8_t *p = mallocx(n, flags);
        if (!p)
            fail("mallocx returned NULL");
        uint8_t t = tag_of(slot, n);
        for (size_t off = 0; off < n; off += PAGE)
            p[off] = t;
        p[n - 1] = t;
        ptr[slot] = p;
        len[slot] = n;
        if (i < LOOKUP_CHECKS && arena_of(p) != ind)
            fail("a block did not come from the created arena");
    }
    double secs = now_sec() - t0;

    for (unsigned i = 0; i < SLOTS; i++)
        if (ptr[i])
            dallocx(ptr[i], MALLOCX_TCACHE_NONE);
    print_result(steps, secs, "ok");
    return 0;
}
