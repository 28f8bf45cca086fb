/* fuzz_malloc.c - owns the libFuzzer harness of HAKMEM's malloc front: the
 * hk_* functions of hooks/hk_malloc.h, linked from hakmem_core as the
 * -DHK_INPROCESS tests use them.  Each input is read as a sequence of
 * operations on a table of up to 256 live blocks: malloc, calloc, realloc
 * (grow, shrink, to 0, from NULL), reallocarray, posix_memalign, memalign
 * (which is also the in-process aligned_alloc), valloc, pvalloc, free,
 * usable size, bursts, frees from another thread, blocks made by a thread
 * that exits, refused sizes and alignments, and misuse (interior pointers,
 * immediate double frees, foreign pointers) under HAKMEM_ON_ERROR=warn.
 *
 * Every block is filled with a pattern derived from its address, size and
 * an allocation counter (all of it up to 64 KiB; above that the first and
 * last 4 KiB and two 32-byte samples in every page) and checked before it
 * is freed or reallocated; realloc is checked against the old block's
 * pattern over the preserved prefix.  Results are checked for alignment,
 * usable size, zeroed calloc memory and overlap with live blocks.  Any
 * mismatch prints one line and calls __builtin_trap().
 *
 * Misuse lines are caught in a memfd and checked; set HK_FUZZ_NO_CAPTURE=1
 * to let them (and any crash inside such a call) reach stderr, and
 * HK_FUZZ_TRACE=1 to print each operation.  The harness
 * re-executes itself with HAKMEM_ON_ERROR=warn when that is not set. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hakmem.h"
#include "hooks/hk_malloc.h"
#include "pools/classes.h"

#define FUZZ_NAME "fuzz_malloc"
#include "fuzz_common.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define NSLOTS 256
#define LIVE_CAP (64 * MiB)       /* bytes live at once, at most */
#define LARGE_SPAN (14 * MiB)     /* sizes above 2 MiB: up to 2 MiB + this */
#define FULL_MAX (64 * KiB)       /* patterns cover the whole block up to here */
#define ZERO_FULL_MAX (256 * KiB) /* calloc: every byte checked up to here */
#define EDGE 4096                 /* sampled blocks: head and tail covered */
#define PAGE 4096
#define MAX_OPS 2048

/* ---- patterns ----------------------------------------------------------- */

/* The pattern loops are the harness's hot spot: no coverage or ASan
 * instrumentation there (the blocks are HAKMEM's mmap memory, which ASan
 * does not track anyway). */
#define HOT __attribute__((no_sanitize("address", "coverage")))

HOT static inline uint64_t pat_word(uint64_t seed, size_t k) {
    return (seed + k) * 0x9e3779b97f4a7c15ull;
}
HOT static inline uint8_t pat_byte(uint64_t seed, size_t i) {
    return (uint8_t)(pat_word(seed, i / 8) >> (8 * (i % 8)));
}

enum { V_FILL, V_CHECK, V_ZERO };

/* Apply op to bytes [lo, hi) of mem: fill with the pattern, check it, or
 * check for zero.  Returns the offset of the first bad byte, or SIZE_MAX.
 * The aligned middle runs in 8-byte words, one tight loop per op. */
HOT static size_t range_op(unsigned char *mem, uint64_t seed, size_t lo, size_t hi, int op) {
    size_t i = lo, wlo = (lo + 7) & ~(size_t)7, whi = hi & ~(size_t)7;
    if (wlo >= whi)
        wlo = whi = hi; /* too short: bytes only */
    for (; i < wlo; i++) {
        uint8_t want = op == V_ZERO ? 0 : pat_byte(seed, i);
        if (op == V_FILL)
            mem[i] = want;
        else if (mem[i] != want)
            return i;
    }
    uint64_t *w = (uint64_t *)(mem + wlo); /* blocks are 16-byte aligned */
    size_t nw = (whi - wlo) / 8, k0 = wlo / 8, k = 0;
    if (op == V_FILL) {
        for (; k < nw; k++)
            w[k] = pat_word(seed, k0 + k);
    } else if (op == V_CHECK) {
        for (; k < nw; k++)
            if (w[k] != pat_word(seed, k0 + k))
                break;
    } else {
        for (; k < nw; k++)
            if (w[k])
                break;
    }
    for (i = wlo + 8 * k; i < hi; i++) {
        uint8_t want = op == V_ZERO ? 0 : pat_byte(seed, i);
        if (op == V_FILL)
            mem[i] = want;
        else if (mem[i] != want)
            return i;
    }
    return SIZE_MAX;
}

HOT static size_t clip_op(unsigned char *mem, uint64_t seed, size_t lo, size_t hi,
                      size_t lim, int op) {
    if (hi > lim)
        hi = lim;
    return lo < hi ? range_op(mem, seed, lo, hi, op) : SIZE_MAX;
}

/* The bytes a block of n bytes at address `base` carries its pattern in,
 * limited to the first lim: all of them up to `full`; above, the head and
 * the tail, and bytes 0..31 and 2048..2079 of every page the block covers
 * (by address, so stale bytes of any earlier block land on them too).
 * mem holds the bytes (the new block after a realloc, checked against the
 * old block's positions and seed). */
HOT static size_t visit(unsigned char *mem, uintptr_t base, size_t n, size_t lim,
                    uint64_t seed, int op, size_t full) {
    if (lim > n)
        lim = n;
    if (n <= full)
        return clip_op(mem, seed, 0, n, lim, op);
    size_t bad = clip_op(mem, seed, 0, EDGE, lim, op);
    if (bad != SIZE_MAX)
        return bad;
    size_t first = ((base + PAGE) & ~(uintptr_t)(PAGE - 1)) - base;
    for (size_t off = first; off < lim; off += PAGE) {
        if ((bad = clip_op(mem, seed, off, off + 32, lim, op)) != SIZE_MAX ||
            (bad = clip_op(mem, seed, off + 2048, off + 2080, lim, op)) != SIZE_MAX)
            return bad;
    }
    return clip_op(mem, seed, n - EDGE, n, lim, op);
}

/* ---- the table of live blocks -------------------------------------------- */

typedef struct {
    unsigned char *p; /* NULL: empty */
    size_t n;         /* bytes asked for */
    uint64_t seed;
} slot;

static slot slots[NSLOTS];
static size_t live_bytes;
static uint64_t alloc_counter;

/* Freed pointers are remembered for one operation only: the immediate
 * double free (docs/DESIGN.md, Bad input: detected while the slab is alive,
 * or once its pages are back in the PageArena). */
static void *just_freed;

static size_t usable_of(const void *p) { return hk_usable_size(p); }

static void check_pattern(const slot *s, const char *why) {
    size_t bad = visit(s->p, (uintptr_t)s->p, s->n, s->n, s->seed, V_CHECK, FULL_MAX);
    REQUIRE(bad == SIZE_MAX, "%s: block %p (%zu bytes): pattern broken at offset %zu",
            why, (void *)s->p, s->n, bad);
}

/* A new block q of n bytes: no overlap with any live block, alignment,
 * usable size. */
static void check_new(const unsigned char *q, size_t n, size_t align, const char *what) {
    REQUIRE(((uintptr_t)q & (align - 1)) == 0, "%s(%zu): %p not aligned to %zu", what, n,
            (const void *)q, align);
    size_t u = usable_of(q);
    REQUIRE(u >= n && u > 0, "%s(%zu): usable size %zu", what, n, u);
    size_t len = n ? n : 1;
    for (unsigned i = 0; i < NSLOTS; i++) {
        const slot *s = &slots[i];
        if (!s->p)
            continue;
        size_t sl = s->n ? s->n : 1;
        REQUIRE(q + len <= s->p || s->p + sl <= q,
                "%s(%zu) = %p overlaps live block %p (%zu bytes)", what, n,
                (const void *)q, (void *)s->p, s->n);
    }
}

static void fill(slot *s) {
    s->seed = mix((uintptr_t)s->p ^ mix(s->n + (++alloc_counter << 32)));
    visit(s->p, (uintptr_t)s->p, s->n, s->n, s->seed, V_FILL, FULL_MAX);
}

/* Put a fresh block into slot i (which is empty).  zeroed: calloc. */
static void adopt(unsigned i, void *q, size_t n, size_t align, bool zeroed, const char *what) {
    check_new(q, n, align, what);
    if (zeroed) {
        size_t bad = visit(q, (uintptr_t)q, n, n, 0, V_ZERO, ZERO_FULL_MAX);
        REQUIRE(bad == SIZE_MAX, "%s(%zu) = %p: byte %zu is not zero", what, n, q, bad);
    }
    slot *s = &slots[i];
    s->p = q;
    s->n = n;
    live_bytes += n;
    fill(s);
}

static void release(unsigned i) {
    slot *s = &slots[i];
    if (!s->p)
        return;
    check_pattern(s, "free");
    hk_free(s->p);
    just_freed = s->p;
    live_bytes -= s->n;
    s->p = NULL;
}

static void release_all(void) {
    for (unsigned i = 0; i < NSLOTS; i++)
        release(i);
    just_freed = NULL;
}

/* An occupied slot at or after i (wrapping), or -1. */
static int occupied_from(unsigned i) {
    for (unsigned k = 0; k < NSLOTS; k++) {
        unsigned j = (i + k) % NSLOTS;
        if (slots[j].p)
            return (int)j;
    }
    return -1;
}

/* ---- sizes and alignments -------------------------------------------------- */

static const size_t special_sizes[] = {
    0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 1023, TINY_MAX, TINY_MAX + 1, 4095, 4096, 4097,
    MID_MAX - 1, MID_MAX, MID_MAX + 1, 128 * KiB, 256 * KiB + 1, L25_MAX - 1, L25_MAX,
    L25_MAX + 1, 4 * MiB, 8 * MiB - 1, 8 * MiB, 8 * MiB + 1,
};

/* A size from any class: Tiny, Mid, L25, a class edge, a special size, or
 * (rarely) above 2 MiB; kept under the live-bytes cap. */
static size_t pick_size(reader *r) {
    uint8_t k = rd8(r) % 16;
    size_t n;
    if (k < 6) {
        n = rd16(r) % (TINY_MAX + 1);
    } else if (k < 9) {
        n = TINY_MAX + 1 + rd16(r) % (MID_MAX - TINY_MAX);
    } else if (k < 12) {
        n = MID_MAX + 1 + rd32(r) % (L25_MAX - MID_MAX);
    } else if (k < 14) {
        uint8_t c = rd8(r);
        n = pool_classes[c % POOL_NCLASS].size;
        n = n + (c >> 6) % 3 - 1; /* size - 1, size, size + 1 */
    } else if (k == 14) {
        n = special_sizes[rd8(r) % (sizeof special_sizes / sizeof special_sizes[0])];
    } else {
        n = L25_MAX + 1 + rd32(r) % LARGE_SPAN;
    }
    if (live_bytes + n > LIVE_CAP)
        n %= MID_MAX + 1;
    return n;
}

/* Valid alignments: powers of two from 1 to 4 MiB. */
static size_t pick_align(reader *r) {
    static const size_t a[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048,
                               4096, 8192, 16 * KiB, 64 * KiB, 256 * KiB, MiB, 2 * MiB, 4 * MiB};
    return a[rd8(r) % (sizeof a / sizeof a[0])];
}

/* ---- misuse, with the report line caught --------------------------------- */

static int capture_fd = -1, saved_stderr = -1;
static bool no_capture;

static void capture_begin(void) {
    if (no_capture)
        return;
    fflush(stderr);
    REQUIRE(ftruncate(capture_fd, 0) == 0 && lseek(capture_fd, 0, SEEK_SET) == 0,
            "memfd reset failed");
    dup2(capture_fd, 2);
}

/* The one line the call must have printed: "hakmem: fn(p): fault" with one
 * of the two faults. */
static void capture_expect(const char *fn, const void *p) {
    if (no_capture)
        return;
    dup2(saved_stderr, 2);
    char buf[512];
    ssize_t len = pread(capture_fd, buf, sizeof buf - 1, 0);
    buf[len > 0 ? len : 0] = 0;
    char want[160];
    int w = snprintf(want, sizeof want, "hakmem: %s(%p): ", fn, p);
    REQUIRE(strncmp(buf, want, (size_t)w) == 0 &&
                (strcmp(buf + w, "double free\n") == 0 ||
                 strcmp(buf + w, "invalid pointer\n") == 0),
            "%s(%p): expected one report line, got \"%s\"", fn, p, buf);
}

static int global_object;

/* Interior pointers of live blocks, the immediate double free, and pointers
 * HAKMEM never handed out: each reported in one line, nothing touched. */
static void op_misuse(reader *r) {
    uint8_t kind = rd8(r) % 6;
    int i = occupied_from(rd8(r));
    int stack_object = 0;
    void *bad = NULL;
    switch (kind) {
    case 0: /* interior pointer of a live block */
    case 1:
        if (i < 0)
            return;
        {
            size_t u = usable_of(slots[i].p);
            if (u < 2)
                return;
            bad = slots[i].p + 1 + rd32(r) % (u - 1);
        }
        break;
    case 2: /* the block freed by the previous operation */
        if (!just_freed)
            return;
        bad = just_freed;
        for (unsigned k = 0; k < NSLOTS; k++)
            if (slots[k].p == bad)
                return; /* handed out again: live */
        break;
    case 3:
        bad = &stack_object;
        break;
    case 4:
        bad = &global_object;
        break;
    default: { /* a libc (here: ASan) block */
        void *libc = malloc(32);
        capture_begin();
        hk_free(libc);
        capture_expect("free", libc);
        free(libc);
        return;
    }
    }
    REQUIRE(hk_usable_size(bad) == 0, "usable_size(%p) of a bad pointer is not 0", bad);
    if (rd8(r) & 1) {
        capture_begin();
        hk_free(bad);
        capture_expect("free", bad);
    } else {
        errno = 0;
        capture_begin();
        void *q = hk_realloc(bad, rd16(r));
        int e = errno;
        capture_expect("realloc", bad);
        REQUIRE(q == NULL && e == EINVAL, "realloc(%p) of a bad pointer: %p errno %d", bad,
                q, e);
    }
    if (i >= 0)
        check_pattern(&slots[i], "after misuse");
}

/* ---- refused requests -------------------------------------------------------- */

static uint64_t nmalloc_total(void) {
    static const char *const names[] = {"stats.tiny.nmalloc", "stats.mid.nmalloc",
                                        "stats.l25.nmalloc", "stats.large.nmalloc"};
    uint64_t sum = 0;
    for (unsigned k = 0; k < 4; k++) {
        uint64_t v = 0;
        size_t len = sizeof v;
        REQUIRE(hak_mallctl(names[k], &v, &len, NULL, 0) == 0, "hak_mallctl(%s)", names[k]);
        sum += v;
    }
    return sum;
}

/* Bad alignments and sizes no allocator can serve: NULL or an error code,
 * errno as POSIX says, no block taken, and live blocks untouched. */
static void op_refused(reader *r) {
    static const size_t bad_align[] = {0, 1, 2, 3, 4, 5, 12, 24, 48, 100, 4097, 65535,
                                       (size_t)3 << 20, SIZE_MAX, (SIZE_MAX >> 1) + 2};
    static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 4095, SIZE_MAX - 4096, SIZE_MAX / 2,
                                  (size_t)PTRDIFF_MAX + 1, (size_t)1 << 48};
    uint64_t before = nmalloc_total();
    uint8_t kind = rd8(r) % 8;
    size_t a = bad_align[rd8(r) % (sizeof bad_align / sizeof bad_align[0])];
    size_t h = huge[rd8(r) % (sizeof huge / sizeof huge[0])];
    size_t n = rd16(r);
    void *sentinel = &global_object, *out = sentinel, *q;
    int i = occupied_from(rd8(r));
    errno = 0;
    switch (kind) {
    case 0: { /* posix_memalign: below sizeof(void *) or not a power of two */
        bool valid = a >= sizeof(void *) && !(a & (a - 1));
        if (valid)
            a = 24;
        int rc = hk_posix_memalign(&out, a, n);
        REQUIRE(rc == EINVAL && out == sentinel, "posix_memalign(%zu, %zu) = %d", a, n, rc);
        break;
    }
    case 1: /* memalign / aligned_alloc: not a power of two */
        if (a && !(a & (a - 1)))
            a = 3 * a;
        q = hk_memalign(a, n);
        REQUIRE(!q && errno == EINVAL, "memalign(%zu, %zu) = %p errno %d", a, n, q, errno);
        break;
    case 2:
        q = hk_malloc(h);
        REQUIRE(!q && errno == ENOMEM, "malloc(%zu) = %p errno %d", h, q, errno);
        break;
    case 3: { /* calloc: overflowing product, or a huge one */
        size_t m = n | 2, c = h / 2 + 1;
        q = hk_calloc(c, m);
        REQUIRE(!q && errno == ENOMEM, "calloc(%zu, %zu) = %p errno %d", c, m, q, errno);
        break;
    }
    case 4: { /* realloc / reallocarray of a live block to a huge size */
        if (i < 0)
            return;
        if (n & 1)
            q = hk_realloc(slots[i].p, h);
        else
            q = hk_reallocarray(slots[i].p, h / 2 + 1, (n >> 1) | 2);
        REQUIRE(!q && errno == ENOMEM, "realloc(%p, huge) = %p errno %d", (void *)slots[i].p,
                q, errno);
        REQUIRE(usable_of(slots[i].p) >= slots[i].n, "realloc(huge) lost the block");
        break;
    }
    case 5: {
        int rc = hk_posix_memalign(&out, (size_t)64 << (n % 16), h);
        REQUIRE(rc == ENOMEM && out == sentinel, "posix_memalign(huge) = %d", rc);
        break;
    }
    case 6:
        q = hk_memalign((size_t)16 << (n % 16), h);
        REQUIRE(!q && errno == ENOMEM, "memalign(huge) = %p errno %d", q, errno);
        break;
    default:
        q = (n & 1) ? hk_pvalloc(h) : hk_valloc(h);
        REQUIRE(!q && errno == ENOMEM, "%svalloc(%zu) = %p errno %d", (n & 1) ? "p" : "", h,
                q, errno);
        break;
    }
    REQUIRE(nmalloc_total() == before, "a refused request took a block");
    if (i >= 0)
        check_pattern(&slots[i], "after a refused request");
}

/* ---- threads ------------------------------------------------------------------ */

typedef struct {
    void *blocks[16];
    size_t sizes[16];
    unsigned n;
} thread_job;

static void *thread_free(void *arg) {
    thread_job *j = arg;
    for (unsigned k = 0; k < j->n; k++)
        hk_free(j->blocks[k]);
    return NULL;
}

static void *thread_alloc(void *arg) {
    thread_job *j = arg;
    for (unsigned k = 0; k < j->n; k++)
        j->blocks[k] = hk_malloc(j->sizes[k]);
    return NULL; /* the thread exits: its heap is handed back */
}

static void run_thread(void *(*fn)(void *), thread_job *j) {
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, fn, j) == 0, "pthread_create");
    pthread_join(t, NULL);
}

/* Free up to 16 live blocks from another thread (remote frees). */
static void op_remote_free(reader *r) {
    thread_job j = {.n = 0};
    unsigned want = 1 + rd8(r) % 16;
    for (unsigned k = 0; k < want; k++) {
        int i = occupied_from(rd8(r));
        if (i < 0)
            break;
        check_pattern(&slots[i], "remote free");
        j.blocks[j.n++] = slots[i].p;
        live_bytes -= slots[i].n;
        slots[i].p = NULL;
    }
    if (j.n)
        run_thread(thread_free, &j);
}

/* A thread allocates up to 16 blocks and exits; they join the table. */
static void op_thread_alloc(reader *r) {
    thread_job j = {.n = 1 + rd8(r) % 16};
    unsigned first = rd8(r);
    size_t pending = 0;
    for (unsigned k = 0; k < j.n; k++) {
        release((first + k) % NSLOTS);
        j.sizes[k] = pick_size(r);
        live_bytes += j.sizes[k]; /* counted against the cap until adopted */
        pending += j.sizes[k];
    }
    live_bytes -= pending;
    run_thread(thread_alloc, &j);
    for (unsigned k = 0; k < j.n; k++) {
        REQUIRE(j.blocks[k], "malloc(%zu) in a thread failed", j.sizes[k]);
        adopt((first + k) % NSLOTS, j.blocks[k], j.sizes[k], 16, false, "thread malloc");
    }
}

/* ---- the operations --------------------------------------------------------------- */

enum {
    OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_REALLOC_ZERO, OP_REALLOC_NULL, OP_REALLOCARRAY,
    OP_POSIX_MEMALIGN, OP_MEMALIGN, OP_VALLOC, OP_PVALLOC, OP_FREE, OP_USABLE, OP_BURST,
    OP_FREE_RUN, OP_REFUSED, OP_MISUSE, OP_REMOTE_FREE, OP_THREAD_ALLOC, OP_COUNT
};

/* Realloc of slot i to m bytes: the preserved prefix is checked against
 * the old block's pattern, then the new block gets its own. */
static void do_realloc(unsigned i, size_t m, bool array, reader *r) {
    slot *s = &slots[i];
    check_pattern(s, "realloc");
    unsigned char *old = s->p;
    size_t n = s->n;
    uint64_t seed = s->seed;
    void *q;
    if (array) {
        size_t k = 1 + rd8(r) % 8; /* m = k * (m / k) bytes, as k elements */
        if (m < k)
            k = 1;
        m -= m % k;
        q = hk_reallocarray(old, k, m / k);
    } else {
        q = hk_realloc(old, m);
    }
    REQUIRE(q, "realloc(%p, %zu) failed", (void *)old, m);
    s->p = NULL; /* out of the table for the overlap check */
    live_bytes -= n;
    size_t keep = n < m ? n : m;
    size_t bad = visit(q, (uintptr_t)old, n, keep, seed, V_CHECK, FULL_MAX);
    REQUIRE(bad == SIZE_MAX, "realloc(%p, %zu -> %zu) = %p: byte %zu not preserved",
            (void *)old, n, m, q, bad);
    adopt(i, q, m, 16, false, "realloc");
}

static const char *const op_names[OP_COUNT] = {
    "malloc", "calloc", "realloc", "realloc_zero", "realloc_null", "reallocarray",
    "posix_memalign", "memalign", "valloc", "pvalloc", "free", "usable", "burst",
    "free_run", "refused", "misuse", "remote_free", "thread_alloc"};
static bool trace; /* HK_FUZZ_TRACE=1: one line per operation on stderr */

static void step(reader *r) {
    uint8_t op = rd8(r) % OP_COUNT;
    unsigned i = rd8(r);
    void *q = NULL;
    if (trace)
        fprintf(stderr, "op %s slot %u (live %zu bytes)\n", op_names[op], i, live_bytes);
    switch (op) {
    case OP_MALLOC: {
        release(i);
        size_t n = pick_size(r);
        q = hk_malloc(n);
        REQUIRE(q, "malloc(%zu) failed", n);
        adopt(i, q, n, 16, false, "malloc");
        break;
    }
    case OP_CALLOC: {
        release(i);
        size_t n = pick_size(r), k = 1 + rd8(r) % 16;
        n -= n % k; /* k elements of n / k bytes */
        q = hk_calloc(k, n / k);
        REQUIRE(q, "calloc(%zu, %zu) failed", k, n / k);
        adopt(i, q, n, 16, true, "calloc");
        break;
    }
    case OP_REALLOC:
    case OP_REALLOCARRAY: {
        int j = occupied_from(i);
        if (j < 0)
            break;
        size_t n = slots[j].n, m;
        switch (rd8(r) % 4) {
        case 0: m = n + rd16(r); break;                 /* grow a little */
        case 1: m = n - (n ? rd32(r) % n : 0); break;   /* shrink */
        case 2: m = n; break;                           /* same size */
        default: m = pick_size(r); break;               /* anything */
        }
        if (live_bytes - n + m > LIVE_CAP)
            m = n;
        if (m == 0 && op == OP_REALLOCARRAY)
            m = 1;
        if (m == 0) /* realloc(p, 0) frees: its own operation */
            m = 1;
        do_realloc((unsigned)j, m, op == OP_REALLOCARRAY, r);
        break;
    }
    case OP_REALLOC_ZERO: { /* hk_realloc(p, 0): frees p, returns NULL */
        int j = occupied_from(i);
        if (j < 0)
            break;
        check_pattern(&slots[j], "realloc(p, 0)");
        q = hk_realloc(slots[j].p, 0);
        REQUIRE(q == NULL, "realloc(%p, 0) = %p, expected NULL", (void *)slots[j].p, q);
        just_freed = slots[j].p;
        live_bytes -= slots[j].n;
        slots[j].p = NULL;
        return; /* keep just_freed */
    }
    case OP_REALLOC_NULL: {
        release(i);
        size_t n = pick_size(r);
        q = hk_realloc(NULL, n);
        REQUIRE(q, "realloc(NULL, %zu) failed", n);
        adopt(i, q, n, 16, false, "realloc(NULL)");
        break;
    }
    case OP_POSIX_MEMALIGN: {
        release(i);
        size_t a = pick_align(r), n = pick_size(r);
        if (a < sizeof(void *))
            a = sizeof(void *);
        int rc = hk_posix_memalign(&q, a, n);
        REQUIRE(rc == 0 && q, "posix_memalign(%zu, %zu) = %d", a, n, rc);
        adopt(i, q, n, a < 16 ? 16 : a, false, "posix_memalign");
        break;
    }
    case OP_MEMALIGN: { /* memalign, and aligned_alloc (n a multiple of a) */
        release(i);
        size_t a = pick_align(r), n = pick_size(r);
        if (rd8(r) & 1)
            n -= n % a;
        q = hk_memalign(a, n);
        REQUIRE(q, "memalign(%zu, %zu) failed", a, n);
        adopt(i, q, n, a < 16 ? 16 : a, false, "memalign");
        break;
    }
    case OP_VALLOC: {
        release(i);
        size_t n = pick_size(r);
        q = hk_valloc(n);
        REQUIRE(q, "valloc(%zu) failed", n);
        adopt(i, q, n, PAGE, false, "valloc");
        break;
    }
    case OP_PVALLOC: {
        release(i);
        size_t n = pick_size(r);
        q = hk_pvalloc(n);
        REQUIRE(q, "pvalloc(%zu) failed", n);
        size_t rounded = n ? (n + PAGE - 1) & ~(size_t)(PAGE - 1) : PAGE;
        REQUIRE(hk_usable_size(q) >= rounded, "pvalloc(%zu): usable %zu < %zu", n,
                hk_usable_size(q), rounded);
        adopt(i, q, rounded, PAGE, false, "pvalloc");
        break;
    }
    case OP_FREE: {
        int j = occupied_from(i);
        if (j >= 0)
            release((unsigned)j);
        if (rd8(r) == 0)
            hk_free(NULL);
        return;
    }
    case OP_USABLE: {
        int j = occupied_from(i);
        if (j < 0)
            break;
        size_t u = usable_of(slots[j].p);
        REQUIRE(u >= slots[j].n, "usable_size(%p) = %zu < %zu", (void *)slots[j].p, u,
                slots[j].n);
        check_pattern(&slots[j], "usable_size");
        break;
    }
    case OP_BURST: { /* one size, many blocks: fills slabs and runs */
        unsigned k = 1 + rd8(r) % 64;
        size_t n = pick_size(r);
        for (unsigned b = 0; b < k; b++) {
            unsigned j = (i + b) % NSLOTS;
            release(j);
            size_t m = live_bytes + n > LIVE_CAP ? n % (MID_MAX + 1) : n;
            q = hk_malloc(m);
            REQUIRE(q, "malloc(%zu) failed", m);
            adopt(j, q, m, 16, false, "malloc");
        }
        break;
    }
    case OP_FREE_RUN: { /* many frees: empties slabs and runs */
        unsigned k = 1 + rd8(r) % 128, step_by = 1 + rd8(r) % 3;
        for (unsigned b = 0; b < k; b++)
            release((i + b * step_by) % NSLOTS);
        break;
    }
    case OP_REFUSED:
        op_refused(r);
        break;
    case OP_MISUSE:
        op_misuse(r);
        break;
    case OP_REMOTE_FREE:
        op_remote_free(r);
        break;
    default:
        op_thread_alloc(r);
        break;
    }
    just_freed = NULL;
}

/* ---- libFuzzer entry points ------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    const char *e = getenv("HAKMEM_ON_ERROR");
    if (!e || strcmp(e, "warn") != 0) {
        /* Options are read once, before main: start again with warn, so a
         * misuse report returns instead of aborting. */
        setenv("HAKMEM_ON_ERROR", "warn", 1);
        execv("/proc/self/exe", *argv);
        perror("fuzz_malloc: execv /proc/self/exe");
        abort();
    }
    uint64_t on_error = 0;
    size_t len = sizeof on_error;
    REQUIRE(hak_mallctl("opt.on_error", &on_error, &len, NULL, 0) == 0 && on_error == 1,
            "HAKMEM_ON_ERROR=warn did not take effect");
    no_capture = getenv("HK_FUZZ_NO_CAPTURE") != NULL;
    trace = getenv("HK_FUZZ_TRACE") != NULL;
    if (!no_capture) {
        capture_fd = memfd_create("fuzz_malloc_stderr", MFD_CLOEXEC);
        saved_stderr = fcntl(2, F_DUPFD_CLOEXEC, 3);
        REQUIRE(capture_fd >= 0 && saved_stderr >= 0, "memfd_create / dup failed");
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    reader r = {data, size, 0};
    for (unsigned ops = 0; r.i < r.n && ops < MAX_OPS; ops++)
        step(&r);
    release_all();
    REQUIRE(live_bytes == 0, "live bytes %zu after freeing everything", live_bytes);
    return 0;
}
