/* bench_workloads.h - what the bench programs' sources share
 * (bench_workloads and bench_cxx): the command line and RESULT line of
 * bench_main.c, the workload entry points, the deterministic random numbers,
 * the clock, and the seals that catch a block handed out twice or
 * overwritten.  Valid C11 and C++17. */
#ifndef BENCH_WORKLOADS_H
#define BENCH_WORKLOADS_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BENCH_PAGE 4096u

/* ---- bench_main.c: command line, RESULT line, failures ---------------- */

/* One entry of a program's workload table.  takes_idle: the workload
 * accepts the optional <idle-seconds> argument (g_idle_seconds). */
struct bench_workload {
    const char *name;
    void (*run)(double scale);
    int takes_idle;
};

/* The whole command line of a bench program:
 *
 *     <program> <workload> <scale> [<idle-seconds>]
 *
 * runs the named workload of `table` and returns main's exit status: 0, or
 * 2 with a message on stderr for a bad argument. */
int bench_main(int argc, char **argv, const struct bench_workload *table, size_t n);

/* The name printed in the RESULT line (set by bench_main). */
extern const char *g_workload;
/* The <idle-seconds> argument (default 15). */
extern double g_idle_seconds;

/* Print the RESULT line: ops, timed seconds, check, peak RSS, the proof of
 * which allocator is live, then `extra` (" key=value" fields, or ""). */
void print_result_extra(uint64_t ops, double secs, const char *check, const char *extra);
static inline void print_result(uint64_t ops, double secs, const char *check) {
    print_result_extra(ops, secs, check, "");
}

/* A verification failure or an out-of-memory: the reason on stderr, a
 * RESULT line with check=FAIL:<reason>, then abort. */
__attribute__((noreturn, format(printf, 1, 2))) void fail(const char *fmt, ...);


/* Resident set of this process now, in KiB (/proc/self/statm), read without
 * allocating; -1 if it cannot be read. */
long current_rss_kib(void);

/* ---- workload entry points (scale: 1.0 = the full definition) --------- */

/* bench_shapes.c */
void run_xmalloc(double scale);
void run_sh_batch(double scale);
void run_sh_batch_xt(double scale);
void run_malloc_simple(double scale);
void run_malloc_large(double scale);
void run_idle_rss(double scale);

/* bench_larson.c: the larson runner, shared by larson (malloc/free, here)
 * and larson_sized (C++ new / sized delete, bench_cxx.cc): how blocks are
 * made and released, and which size a random number picks. */
struct larson_ops {
    void *(*alloc)(size_t n);
    void (*release)(void *p, size_t n);
    size_t (*size)(uint64_t r);
};
void larson_run(const struct larson_ops *ops, double scale);
void run_larson(double scale);

/* ---- utilities --------------------------------------------------------- */

/* malloc that fails the workload on NULL (inline, so that a workload's loop
 * calls malloc itself and nothing else). */
static inline void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p)
        fail("malloc(%zu) returned NULL", n);
    return p;
}

/* xorshift64*: fixed seeds, so every allocator sees the same sequence. */
static inline uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static inline uint64_t rng_seed(uint64_t k) {
    uint64_t s = 0x9E3779B97F4A7C15ULL * (k + 1);
    return s ? s : 1;
}

static inline double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline uint64_t scaled(uint64_t base, double scale) {
    double v = (double)base * scale + 0.5;
    return v < 1.0 ? 1 : (uint64_t)v;
}

/* Size in [2^lo, 2^hi): a random power of two, then uniform inside it
 * (roughly log-uniform, without libm). */
static inline size_t log_size(uint64_t r, unsigned lo, unsigned hi) {
    unsigned e = lo + (unsigned)(r % (hi - lo));
    size_t base = (size_t)1 << e;
    return base + (size_t)((r >> 16) % base);
}

/* A tag byte that depends on everything we know about a block. */
static inline uint8_t tag_of(uint64_t a, uint64_t b) {
    uint64_t h = (a * 0x9E3779B97F4A7C15ULL) ^ (b + 0x632BE59BD9B4E019ULL);
    return (uint8_t)((h >> 56) | 1);
}

/* A block carries its tag in its first, middle and last bytes, so a block
 * handed out twice, or overlapping its neighbour, is caught. */
static inline void mark(uint8_t *p, size_t n, uint8_t tag) {
    p[0] = tag;
    p[n / 2] = (uint8_t)(tag ^ 0x3C);
    p[n - 1] = (uint8_t)(tag ^ 0x5A);
}

static inline void check_mark(const uint8_t *p, size_t n, uint8_t tag) {
    if (p[0] != tag || p[n / 2] != (uint8_t)(tag ^ 0x3C) || p[n - 1] != (uint8_t)(tag ^ 0x5A))
        fail("block %p of %zu bytes was overwritten", (const void *)p, n);
}

/* Write one byte in every page of the block, plus the mark. */
static inline void touch_pages(uint8_t *p, size_t n, uint8_t tag) {
    for (size_t off = 0; off < n; off += BENCH_PAGE)
        p[off] = tag;
    mark(p, n, tag);
}

static inline void check_pages(const uint8_t *p, size_t n, uint8_t tag) {
    size_t page = (n / 4) & ~(size_t)(BENCH_PAGE - 1);
    check_mark(p, n, tag);
    if (p[page] != tag)
        fail("page at +%zu of a %zu-byte block was overwritten", page, n);
}

/* A stamp in the first 8 bytes (blocks are at least 16 bytes), and a byte
 * derived from it in the middle and at the end. */
static inline uint8_t stamp_byte(uint64_t stamp) {
    return (uint8_t)(stamp ^ (stamp >> 29) ^ 0xA5);
}

static inline void put_stamp(uint8_t *p, size_t n, uint64_t stamp) {
    memcpy(p, &stamp, sizeof stamp);
    p[n / 2] = stamp_byte(stamp);
    p[n - 1] = stamp_byte(stamp);
}

static inline void check_stamp(const uint8_t *p, size_t n, uint64_t stamp) {
    uint64_t got;
    memcpy(&got, p, sizeof got);
    if (got != stamp)
        fail("block %p of %zu bytes was overwritten (stamp %llx, expected %llx)",
             (const void *)p, n, (unsigned long long)got, (unsigned long long)stamp);
    if (p[n / 2] != stamp_byte(stamp) || p[n - 1] != stamp_byte(stamp))
        fail("block %p of %zu bytes was overwritten (middle or last byte)", (const void *)p, n);
}

/* Any size >= 4: the full stamp from 16 bytes up, a tag byte below. */
static inline void seal(void *vp, size_t n, uint64_t stamp) {
    uint8_t *p = (uint8_t *)vp;
    if (n >= 16)
        put_stamp(p, n, stamp);
    else
        mark(p, n, tag_of(stamp, n));
}

static inline void check_seal(const void *vp, size_t n, uint64_t stamp) {
    const uint8_t *p = (const uint8_t *)vp;
    if (n >= 16)
        check_stamp(p, n, stamp);
    else
        check_mark(p, n, tag_of(stamp, n));
}

#ifdef __cplusplus
}
#endif

#endif
