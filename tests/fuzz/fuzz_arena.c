/* fuzz_arena.c - owns the libFuzzer harness of the PageArena API
 * (arena/page_arena.h), linked from hakmem_hooks_static.  Each input is read
 * as a sequence of operations on a table of up to 256 spans: pa_alloc
 * (4 KiB .. 8 MiB in pages, odd sizes and the bucket sizes, alignment
 * 0 / 4 KiB .. 4 MiB, flags PA_F_NOTLS and PA_F_CACHED_ONLY), pa_alloc_at
 * on ranges freed earlier (and on live ones, which it must refuse),
 * pa_free of whole spans and of page-granular sub-ranges (front, back,
 * middle), pa_purge_range, pa_purge_all, pa_decay_now, pa_thread_flush,
 * frees from a thread that then exits, and the bad input pa_free and
 * pa_alloc refuse (EINVAL / NULL, nothing changed).
 *
 * The harness keeps its own model: which pages of each span are still
 * handed out.  Every live page carries three marker words derived from its
 * address and the span's seed; they are checked before any free and after
 * any refused call, and new spans must not overlap live pages, must map to
 * pa_desc_raw in the page map, and must read as zero when *zero says so.
 * The arena's bytes_out must equal the model's live bytes.  Any mismatch
 * prints one line and calls __builtin_trap().  HK_FUZZ_TRACE=1 prints each
 * operation. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena/page_arena.h"

#define FUZZ_NAME "fuzz_arena"
#include "fuzz_common.h"

#define PAGE PA_PAGE
#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define NSLOTS 256
#define MAX_PAGES 2048             /* 8 MiB spans at most */
#define LIVE_CAP (96 * MiB)        /* bytes handed out at once, at most */
#define ZERO_FULL_MAX (256 * KiB)  /* *zero: every byte checked up to here */
#define NFREED 32                  /* recently freed ranges remembered */
#define MAX_OPS 2048

/* ---- page markers ---------------------------------------------------------- */

/* The marker and zero loops are the harness's hot spot: no coverage or
 * ASan instrumentation there (the spans are mmap memory ASan does not
 * track anyway). */
#define HOT __attribute__((no_sanitize("address", "coverage")))

/* Offsets of the three marker words of the page at a: first, last, and
 * one that moves with the address. */
HOT static size_t mark_off(uintptr_t a, unsigned k) {
    return k == 0 ? 0 : k == 1 ? PAGE - 8 : 8 * (1 + (a >> 12) % 500);
}

HOT static uint64_t mark_val(uintptr_t a, uint64_t seed, unsigned k) {
    return mix(a ^ seed ^ ((uint64_t)k << 56));
}

HOT static void mark_page(uintptr_t a, uint64_t seed) {
    for (unsigned k = 0; k < 3; k++)
        *(uint64_t *)(a + mark_off(a, k)) = mark_val(a, seed, k);
}

HOT static bool page_marked(uintptr_t a, uint64_t seed) {
    for (unsigned k = 0; k < 3; k++)
        if (*(const uint64_t *)(a + mark_off(a, k)) != mark_val(a, seed, k))
            return false;
    return true;
}

/* Does [p, p+len) read as zero?  Every byte up to ZERO_FULL_MAX; above,
 * the first and last page whole and the marker words of every page (where
 * any earlier span's stale markers would be). */
HOT static bool reads_zero(const char *p, size_t len) {
    const uint64_t *w;
    size_t full = len <= ZERO_FULL_MAX ? len : PAGE;
    for (size_t i = 0; i < full; i += 8)
        if (*(const uint64_t *)(p + i))
            return false;
    if (len <= ZERO_FULL_MAX)
        return true;
    for (size_t i = len - PAGE; i < len; i += 8)
        if (*(const uint64_t *)(p + i))
            return false;
    for (size_t off = 0; off < len; off += PAGE)
        for (unsigned k = 0; k < 3; k++) {
            w = (const uint64_t *)(p + off + mark_off((uintptr_t)p + off, k));
            if (*w)
                return false;
        }
    return true;
}

/* ---- the model -------------------------------------------------------------- */

typedef struct {
    char *base;                   /* NULL: empty slot */
    size_t npages;
    size_t nlive;                 /* pages still handed out */
    uint64_t seed;
    uint8_t live[MAX_PAGES / 8];  /* bit per page: still handed out */
} span;

static span spans[NSLOTS];
static size_t live_bytes;
static uint64_t seed_counter;
static uint64_t bytes_out_base;

typedef struct { uintptr_t addr; size_t npages; } range;
static range freed[NFREED];
static unsigned freed_next;

static bool page_live(const span *s, size_t k) { return s->live[k / 8] >> (k % 8) & 1; }
static void set_live(span *s, size_t k, bool on) {
    if (on)
        s->live[k / 8] |= (uint8_t)(1u << (k % 8));
    else
        s->live[k / 8] &= (uint8_t)~(1u << (k % 8));
}

/* How many pages of [a, a + n pages) are live in the model. */
static size_t live_pages_in(uintptr_t a, size_t n) {
    size_t c = 0;
    for (unsigned i = 0; i < NSLOTS; i++) {
        const span *s = &spans[i];
        uintptr_t b = (uintptr_t)s->base, e = b + s->npages * PAGE;
        if (!s->base || e <= a || a + n * PAGE <= b)
            continue;
        uintptr_t lo = a > b ? a : b, hi = a + n * PAGE < e ? a + n * PAGE : e;
        for (uintptr_t p = lo; p < hi; p += PAGE)
            c += page_live(s, (p - b) / PAGE);
    }
    return c;
}

/* Every live page of s keeps its markers and maps to pa_desc_raw. */
static void check_span(const span *s, const char *why) {
    for (size_t k = 0; k < s->npages; k++) {
        if (!page_live(s, k))
            continue;
        uintptr_t a = (uintptr_t)s->base + k * PAGE;
        REQUIRE(pa_pagemap_get((void *)a) == &pa_desc_raw,
                "%s: span %p page %zu: page map says %p, not raw", why, (void *)s->base, k,
                (const void *)pa_pagemap_get((void *)a));
        REQUIRE(page_marked(a, s->seed), "%s: span %p (%zu pages) page %zu: markers broken",
                why, (void *)s->base, s->npages, k);
    }
}

static void check_bytes_out(const char *why) {
    pa_stats st;
    pa_stats_get(&st);
    REQUIRE(st.bytes_out - bytes_out_base == live_bytes,
            "%s: bytes_out %llu, the model holds %zu", why,
            (unsigned long long)(st.bytes_out - bytes_out_base), live_bytes);
}

/* A new span from pa_alloc or pa_alloc_at: alignment, no overlap with live
 * pages, page map, zero; then it joins the table in slot i (empty). */
static void adopt(unsigned i, char *p, size_t npages, size_t align, bool zero, const char *what) {
    uintptr_t a = (uintptr_t)p;
    REQUIRE((a & (align - 1)) == 0, "%s(%zu pages): %p not aligned to %zu", what, npages,
            (void *)p, align);
    size_t clash = live_pages_in(a, npages);
    REQUIRE(clash == 0, "%s(%zu pages) = %p: %zu of its pages are live already", what, npages,
            (void *)p, clash);
    REQUIRE(pa_pagemap_get(p) == &pa_desc_raw &&
                pa_pagemap_get(p + (npages - 1) * PAGE) == &pa_desc_raw,
            "%s(%zu pages) = %p: page map not raw", what, npages, (void *)p);
    if (zero)
        REQUIRE(reads_zero(p, npages * PAGE), "%s(%zu pages) = %p: *zero but not zero", what,
                npages, (void *)p);
    span *s = &spans[i];
    s->base = p;
    s->npages = s->nlive = npages;
    s->seed = mix(++seed_counter);
    memset(s->live, 0, sizeof s->live);
    for (size_t k = 0; k < npages; k++) {
        set_live(s, k, true);
        mark_page(a + k * PAGE, s->seed);
    }
    live_bytes += npages * PAGE;
}

static void remember_freed(uintptr_t a, size_t npages) {
    freed[freed_next++ % NFREED] = (range){a, npages};
}

/* Free pages [k, k + n) of s (all live): pa_free must take them. */
static void free_pages(span *s, size_t k, size_t n, unsigned flags) {
    uintptr_t a = (uintptr_t)s->base + k * PAGE;
    int rc = pa_free((void *)a, n * PAGE, flags);
    REQUIRE(rc == 0, "pa_free(%p, %zu pages, %u) of live pages = %d", (void *)a, n, flags, rc);
    for (size_t j = k; j < k + n; j++)
        set_live(s, j, false);
    s->nlive -= n;
    live_bytes -= n * PAGE;
    remember_freed(a, n);
    if (!s->nlive)
        s->base = NULL;
}

/* The maximal live run of s at or after page k (wrapping); false if none. */
static bool live_run(const span *s, size_t k, size_t *lo, size_t *hi) {
    for (size_t t = 0; t < s->npages; t++) {
        size_t j = (k + t) % s->npages;
        if (page_live(s, j)) {
            size_t a = j, b = j + 1;
            while (a > 0 && page_live(s, a - 1))
                a--;
            while (b < s->npages && page_live(s, b))
                b++;
            *lo = a;
            *hi = b;
            return true;
        }
    }
    return false;
}

static void release(unsigned i) {
    span *s = &spans[i];
    if (!s->base)
        return;
    check_span(s, "free");
    size_t lo, hi;
    while (s->base && live_run(s, 0, &lo, &hi))
        free_pages(s, lo, hi - lo, 0);
}

static int occupied_from(unsigned i) {
    for (unsigned k = 0; k < NSLOTS; k++) {
        unsigned j = (i + k) % NSLOTS;
        if (spans[j].base)
            return (int)j;
    }
    return -1;
}

/* The occupied span at or after slot i and one of its live runs [lo, hi),
 * chosen by the input; NULL when no span is occupied. */
static span *pick_run(reader *r, unsigned i, size_t *lo, size_t *hi) {
    int j = occupied_from(i);
    if (j < 0)
        return NULL;
    live_run(&spans[j], rd16(r), lo, hi);
    return &spans[j];
}

/* ---- choices ------------------------------------------------------------------ */

static size_t pick_pages(reader *r) {
    static const size_t edge[] = {15, 17, 31, 33, 511, 513, 1023, 1024, 1025, 2047, 2048, 3, 5};
    uint8_t k = rd8(r) % 16;
    size_t n;
    if (k < 3)
        n = 1;
    else if (k == 3)
        n = 16;
    else if (k == 4)
        n = 32;
    else if (k == 5)
        n = 512;
    else if (k < 10)
        n = 1 + rd8(r) % 64;
    else if (k < 13)
        n = 1 + rd16(r) % 512;
    else if (k == 13)
        n = 1 + rd16(r) % MAX_PAGES;
    else
        n = edge[rd8(r) % (sizeof edge / sizeof edge[0])];
    if (live_bytes + n * PAGE > LIVE_CAP)
        n = 1 + n % 64;
    return n;
}

static size_t pick_align(reader *r) {
    static const size_t a[] = {0, 0, 0, 4096, 64 * KiB, 64 * KiB, 2 * MiB, 2 * MiB,
                               1, 2048, 8192, 128 * KiB, MiB, 4 * MiB};
    return a[rd8(r) % (sizeof a / sizeof a[0])];
}

static unsigned pick_flags(reader *r) {
    static const unsigned f[] = {0, 0, 0, PA_F_NOTLS, PA_F_CACHED_ONLY,
                                 PA_F_NOTLS | PA_F_CACHED_ONLY};
    return f[rd8(r) % (sizeof f / sizeof f[0])];
}

/* ---- operations ----------------------------------------------------------------- */

static void op_alloc(reader *r, unsigned i) {
    release(i);
    size_t n = pick_pages(r), align = pick_align(r);
    unsigned flags = pick_flags(r);
    bool zero = true; /* must be overwritten */
    char *p = pa_alloc(n * PAGE, align, NULL, &zero, flags);
    if (!p) {
        REQUIRE(flags & PA_F_CACHED_ONLY, "pa_alloc(%zu pages, align %zu, flags %u) failed", n,
                align, flags);
        return;
    }
    adopt(i, p, n, align < PAGE ? PAGE : align, zero, "pa_alloc");
}

/* pa_alloc_at on (part of) a range freed earlier: exactly that address or
 * NULL.  On live pages: always NULL. */
static void op_alloc_at(reader *r, unsigned i) {
    release(i);
    uintptr_t a;
    size_t n;
    uint8_t k = rd8(r);
    if (k % 4 == 0) { /* live pages: must be refused */
        int j = occupied_from(rd8(r));
        size_t lo, hi;
        if (j < 0 || !live_run(&spans[j], rd16(r), &lo, &hi))
            return;
        a = (uintptr_t)spans[j].base + lo * PAGE;
        n = 1 + rd8(r) % (hi - lo);
        bool z = false;
        void *q = pa_alloc_at((void *)a, n * PAGE, NULL, &z);
        REQUIRE(q == NULL, "pa_alloc_at(%p, %zu pages) of live pages = %p", (void *)a, n, q);
        check_span(&spans[j], "after pa_alloc_at of live pages");
        return;
    }
    const range *f = &freed[rd8(r) % NFREED];
    if (!f->addr)
        return;
    size_t skip = rd8(r) % f->npages;
    a = f->addr + skip * PAGE;
    n = 1 + rd16(r) % (f->npages - skip);
    bool zero = true;
    char *q = pa_alloc_at((void *)a, n * PAGE, NULL, &zero);
    if (!q)
        return;
    REQUIRE((uintptr_t)q == a, "pa_alloc_at(%p) = %p", (void *)a, (void *)q);
    adopt(i, q, n, PAGE, zero, "pa_alloc_at");
}

/* Free a sub-range of a live run: the front, the back, the middle, or all. */
static void op_free_part(reader *r, unsigned i) {
    size_t lo, hi;
    span *s = pick_run(r, i, &lo, &hi);
    if (!s)
        return;
    size_t len = hi - lo, k = 1 + rd16(r) % len, at;
    switch (rd8(r) % 4) {
    case 0: at = lo; break;                /* front */
    case 1: at = hi - k; break;            /* back */
    case 2:                                /* middle: pages stay on both sides */
        if (len < 3)
            return;
        k = 1 + k % (len - 2);
        at = lo + 1 + rd16(r) % (len - 1 - k);
        break;
    default: at = lo; k = len; break;      /* the whole run */
    }
    check_span(s, "sub-range free");
    free_pages(s, at, k, rd8(r) & 1 ? PA_F_NOTLS : 0);
    if (s->base)
        check_span(s, "after a sub-range free");
}

static char global_pages[3 * 4096];

/* Bad input: pa_free returns EINVAL and changes nothing; pa_alloc returns
 * NULL. */
static void op_bad(reader *r) {
    pa_stats before, after;
    pa_stats_get(&before);
    uint8_t kind = rd8(r) % 10;
    int j = occupied_from(rd8(r));
    size_t lo = 0, hi = 0;
    if (j >= 0)
        live_run(&spans[j], rd16(r), &lo, &hi);
    uintptr_t base = j >= 0 ? (uintptr_t)spans[j].base : 0;
    uintptr_t a = 0;
    size_t len = 0;
    switch (kind) {
    case 0: /* not page-aligned */
        if (j < 0)
            return;
        a = base + lo * PAGE + 1 + rd16(r) % (PAGE - 1);
        len = PAGE;
        break;
    case 1: /* not a page multiple, or zero */
        if (j < 0)
            return;
        a = base + lo * PAGE;
        len = (rd8(r) & 1) ? 0 : rd16(r) % ((hi - lo) * PAGE) | 1;
        break;
    case 2: /* NULL, or memory the arena never handed out */
        a = rd8(r) & 1 ? 0 : ((uintptr_t)global_pages + PAGE - 1) & ~(uintptr_t)(PAGE - 1);
        len = PAGE;
        break;
    case 3: /* a range freed before (a double free) */
    case 4: {
        const range *f = &freed[rd8(r) % NFREED];
        if (!f->addr)
            return;
        a = f->addr;
        len = f->npages * PAGE;
        break;
    }
    case 5: /* a live run plus pages past its end, or before its start */
        if (j < 0)
            return;
        if (rd8(r) & 1) {
            a = base + lo * PAGE;
            len = (hi - lo + 1 + rd8(r) % 8) * PAGE;
        } else {
            size_t before_pages = 1 + rd8(r) % 8;
            a = base + lo * PAGE - before_pages * PAGE;
            len = (hi - lo + before_pages) * PAGE;
        }
        break;
    case 6: /* an enormous size */
        if (j < 0)
            return;
        a = base + lo * PAGE;
        len = rd8(r) & 1 ? (size_t)1 << 40 : ((size_t)1 << 48) + PAGE;
        break;
    default: { /* pa_alloc of a size or alignment it refuses */
        static const size_t sizes[] = {0, 1, 100, 4095, 4097, 65537, ((size_t)1 << 47) + PAGE,
                                       SIZE_MAX & ~(size_t)4095};
        static const size_t aligns[] = {3 * 4096, 6000, 65536 + 4096, (size_t)3 << 20};
        bool z = false;
        void *q;
        if (rd8(r) & 1)
            q = pa_alloc(sizes[rd8(r) % 8], 0, NULL, &z, pick_flags(r));
        else
            q = pa_alloc(PAGE * (1 + rd8(r) % 32), aligns[rd8(r) % 4], NULL, &z, pick_flags(r));
        REQUIRE(q == NULL, "pa_alloc of a refused request = %p", q);
        pa_stats_get(&after);
        REQUIRE(after.bytes_out == before.bytes_out, "refused pa_alloc changed bytes_out");
        return;
    }
    }
    /* A range whose every page is live (across two spans) is not bad input
     * the harness can predict: skip it. */
    if (a && !(a & (PAGE - 1)) && len && !(len & (PAGE - 1)) && len < ((size_t)1 << 40) &&
        live_pages_in(a, len / PAGE) == len / PAGE)
        return;
    int rc = pa_free((void *)a, len, rd8(r) & 1 ? PA_F_NOTLS : 0);
    REQUIRE(rc == EINVAL, "pa_free(%p, %zu) of bad input = %d", (void *)a, len, rc);
    pa_stats_get(&after);
    REQUIRE(after.bytes_out == before.bytes_out && after.bytes_cached == before.bytes_cached,
            "refused pa_free(%p, %zu) changed the arena", (void *)a, len);
    if (j >= 0)
        check_span(&spans[j], "after a refused pa_free");
}

/* pa_purge_range on live pages: they stay handed out and read as zero. */
static void op_purge_range(reader *r, unsigned i) {
    size_t lo, hi;
    span *s = pick_run(r, i, &lo, &hi);
    if (!s)
        return;
    size_t k = 1 + rd16(r) % (hi - lo), at = lo + rd16(r) % (hi - lo - k + 1);
    char *p = s->base + at * PAGE;
    pa_purge_range(p, k * PAGE);
    REQUIRE(reads_zero(p, k * PAGE), "pa_purge_range(%p, %zu pages): not zero", (void *)p, k);
    for (size_t t = at; t < at + k; t++)
        mark_page((uintptr_t)s->base + t * PAGE, s->seed);
    check_span(s, "after pa_purge_range");
}

typedef struct { uintptr_t pages[16]; unsigned n; } thread_job;

static void *thread_free(void *arg) {
    thread_job *j = arg;
    for (unsigned k = 0; k < j->n; k++)
        if (pa_free((void *)j->pages[k], PAGE, 0) != 0)
            return (void *)1;
    return NULL; /* exit: the thread's hot cache goes to the shared stack */
}

/* Single pages freed by a thread that then exits (its hot cache). */
static void op_thread_free(reader *r) {
    thread_job job = {.n = 0};
    unsigned want = 1 + rd8(r) % 16;
    for (unsigned t = 0; t < want; t++) {
        int j = occupied_from(rd8(r));
        size_t lo, hi;
        if (j < 0 || !live_run(&spans[j], rd16(r), &lo, &hi))
            break;
        span *s = &spans[j];
        check_span(s, "thread free");
        size_t k = lo + rd16(r) % (hi - lo);
        job.pages[job.n++] = (uintptr_t)s->base + k * PAGE;
        set_live(s, k, false);
        s->nlive--;
        live_bytes -= PAGE;
        remember_freed(job.pages[job.n - 1], 1);
        if (!s->nlive)
            s->base = NULL;
    }
    if (!job.n)
        return;
    pthread_t t;
    void *res;
    REQUIRE(pthread_create(&t, NULL, thread_free, &job) == 0, "pthread_create");
    pthread_join(t, &res);
    REQUIRE(res == NULL, "pa_free of a live page in a thread failed");
}

enum {
    OP_ALLOC, OP_ALLOC2, OP_ALLOC_AT, OP_FREE, OP_FREE_PART, OP_FREE_PART2, OP_BAD,
    OP_PURGE_RANGE, OP_VERIFY, OP_MAINT, OP_THREAD_FREE, OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "alloc", "alloc", "alloc_at", "free", "free_part", "free_part", "bad",
    "purge_range", "verify", "maint", "thread_free"};
static bool trace; /* HK_FUZZ_TRACE=1: one line per operation on stderr */

static void step(reader *r) {
    uint8_t op = rd8(r) % OP_COUNT;
    unsigned i = rd8(r);
    if (trace)
        fprintf(stderr, "op %s slot %u (live %zu bytes)\n", op_names[op], i, live_bytes);
    switch (op) {
    case OP_ALLOC:
    case OP_ALLOC2:
        op_alloc(r, i);
        break;
    case OP_ALLOC_AT:
        op_alloc_at(r, i);
        break;
    case OP_FREE: {
        int j = occupied_from(i);
        if (j >= 0)
            release((unsigned)j);
        break;
    }
    case OP_FREE_PART:
    case OP_FREE_PART2:
        op_free_part(r, i);
        break;
    case OP_BAD:
        op_bad(r);
        break;
    case OP_PURGE_RANGE:
        op_purge_range(r, i);
        break;
    case OP_VERIFY: {
        int j = occupied_from(i);
        if (j >= 0)
            check_span(&spans[j], "verify");
        check_bytes_out("verify");
        break;
    }
    case OP_MAINT:
        switch (rd8(r) % 8) {
        case 0: pa_purge_all(); break;
        case 1: case 2: pa_decay_now(); break;
        default: pa_thread_flush(); break;
        }
        check_bytes_out("maintenance");
        break;
    default:
        op_thread_free(r);
        break;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    REQUIRE(pa_init(), "pa_init failed");
    trace = getenv("HK_FUZZ_TRACE") != NULL;
    pa_stats st;
    pa_stats_get(&st);
    bytes_out_base = st.bytes_out;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    reader r = {data, size, 0};
    for (unsigned ops = 0; r.i < r.n && ops < MAX_OPS; ops++)
        step(&r);
    for (unsigned i = 0; i < NSLOTS; i++)
        release(i);
    memset(freed, 0, sizeof freed); /* nothing carries over to the next input */
    freed_next = 0;
    REQUIRE(live_bytes == 0, "live bytes %zu after freeing everything", live_bytes);
    check_bytes_out("end of input");
    return 0;
}
