/* api_conformance.c - owns the API conformance test of the malloc family
 * (docs/DESIGN.md: The malloc front, Bad input): malloc, free, calloc,
 * realloc, reallocarray, posix_memalign, aligned_alloc, memalign, valloc,
 * pvalloc and malloc_usable_size, at size 0, 1, the first and last size of
 * every pool class (pools/classes.c) and sizes above 2 MiB; alignments
 * 8 B .. 1 MiB; realloc across the Tiny/Mid, Mid/L25 and L25/jemalloc
 * boundaries; calloc zeroing on reused memory; usable sizes; overflow and bad
 * alignments.
 *
 * One source, two programs (see pool_test.h): with -DHK_INPROCESS it calls
 * the hk_* front in process (ctest label `inprocess`, sanitizer builds);
 * without, the libc names under LD_PRELOAD=libhakmem.so. */
#include "pool_test.h"

#include <stdalign.h>
#include <stddef.h>

/* ---- the size list ----------------------------------------------------------- */

/* HAKMEM_MODE=jemalloc: every size goes to hooked jemalloc arenas, so the
 * pool-specific checks (usable size == class size, pool counters) are off. */
static int je_mode;

static size_t sizes[4 * POOL_NCLASS + 16];
static size_t nsizes;

static void add_size(size_t n) {
    for (size_t i = 0; i < nsizes; i++)
        if (sizes[i] == n)
            return;
    CHECK(nsizes < sizeof sizes / sizeof sizes[0]);
    sizes[nsizes++] = n;
}

static void build_sizes(void) {
    add_size(0);
    add_size(1);
    for (unsigned c = 0; c < POOL_NCLASS; c++) {
        add_size(c ? pool_classes[c - 1].size + 1 : 1);
        add_size(pool_classes[c].size);
    }
    CHECK(pool_classes[POOL_NCLASS - 1].size == L25_MAX);
    add_size(L25_MAX + 1);
    add_size(3 * MiB);
    add_size(20 * MiB);
    CHECK(nsizes == 2 + 2 * POOL_NCLASS + 2); /* 0, 1..16 share 1; 3 above */
}

/* Pool class a pool size falls in, by the table (not by the library). */
static unsigned class_of(size_t n) {
    unsigned c = 0;
    while (pool_classes[c].size < n)
        c++;
    return c;
}

/* usable >= n, the block is writable to its usable size and reads back. */
static void check_block(void *p, size_t n, size_t align, const char *fn) {
    CHECKM(p != NULL, "%s(%zu) returned NULL", fn, n);
    /* The pools align every block to 16 like glibc; jemalloc aligns blocks
     * of up to 8 bytes to 8 only (enough for any object that fits). */
    if (je_mode && align == alignof(max_align_t) && n < align)
        align = 8;
    CHECKM(t_aligned(p, align), "%s(%zu) = %p not aligned to %zu", fn, n, p, align);
    size_t u = T_usable(p);
    CHECKM(u >= n, "%s(%zu): usable size %zu", fn, n, u);
    if (!je_mode && n && n <= L25_MAX && align <= 4096) {
        /* The pools serve it: the usable size is a class size, and for an
         * unaligned request exactly the class of n. */
        size_t cls = pool_classes[class_of(u)].size;
        CHECKM(cls == u, "%s(%zu): usable size %zu is no class size", fn, n, u);
        if (align <= alignof(max_align_t))
            CHECKM(u == pool_classes[class_of(n)].size, "%s(%zu): usable %zu, class size %u",
                   fn, n, u, pool_classes[class_of(n)].size);
    }
    uint64_t seed = (uintptr_t)p ^ n;
    t_fill(p, u, seed);
    CHECKM(t_verify(p, u, seed) == u, "%s(%zu): pattern lost", fn, n);
}

/* ---- every function at every size ------------------------------------------------ */

static void test_sizes(void) {
    const size_t ma = alignof(max_align_t);
    for (size_t i = 0; i < nsizes; i++) {
        size_t n = sizes[i];
        void *p, *q;

        p = T_malloc(n);
        check_block(p, n, ma, "malloc");
        q = T_malloc(n); /* a second live block does not overlap the first */
        check_block(q, n, ma, "malloc");
        CHECKM((char *)q >= (char *)p + T_usable(p) || (char *)p >= (char *)q + T_usable(q),
               "malloc(%zu): %p and %p overlap", n, p, q);
        T_free(q);
        T_free(p);

        p = T_calloc(n, 1);
        CHECKM(p != NULL, "calloc(%zu, 1)", n);
        CHECKM(t_is_zero(p, n), "calloc(%zu, 1) not zero", n);
        check_block(p, n, ma, "calloc");
        T_free(p);
        if (n >= 8) {
            p = T_calloc(8, n / 8);
            CHECKM(p != NULL && t_is_zero(p, n / 8 * 8), "calloc(8, %zu)", n / 8);
            T_free(p);
        }

        p = T_realloc(NULL, n);
        check_block(p, n, ma, "realloc(NULL)");
        T_free(p);

        p = T_reallocarray(NULL, n, 1);
        check_block(p, n, ma, "reallocarray(NULL, n, 1)");
        T_free(p);
        if (n >= 4 && n % 4 == 0) {
            p = T_reallocarray(NULL, 4, n / 4);
            check_block(p, n, ma, "reallocarray(NULL, 4, n/4)");
            T_free(p);
        }

        static const size_t aligns[] = {8, 64, 4096};
        for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
            size_t al = aligns[a];
            p = (void *)1;
            CHECKM(T_posix_memalign(&p, al, n) == 0, "posix_memalign(%zu, %zu)", al, n);
            check_block(p, n, al, "posix_memalign");
            T_free(p);
            p = T_aligned_alloc(al, n);
            check_block(p, n, al, "aligned_alloc");
            T_free(p);
            p = T_memalign(al, n);
            check_block(p, n, al, "memalign");
            T_free(p);
        }

        p = T_valloc(n);
        check_block(p, n, 4096, "valloc");
        T_free(p);

        size_t rounded = (n + 4095) & ~(size_t)4095;
        p = T_pvalloc(n);
        check_block(p, rounded ? rounded : 4096, 4096, "pvalloc");
        T_free(p);
    }
    CHECK(T_usable(NULL) == 0);
    T_free(NULL); /* no-op */
}

/* ---- alignments 8 B .. 1 MiB ------------------------------------------------------ */

static void test_alignments(void) {
    for (size_t al = 8; al <= MiB; al *= 2) {
        const size_t ns[] = {0, 1, 100, al - 1, al, al + 1, 3 * al, 1000, 5000, 70000,
                             300 * KiB, L25_MAX - 1, L25_MAX, 3 * MiB};
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
            size_t n = ns[i];
            void *p = NULL, *keep[3];
            CHECKM(T_posix_memalign(&p, al, n) == 0, "posix_memalign(%zu, %zu)", al, n);
            check_block(p, n, al, "posix_memalign");
            keep[0] = p;
            p = T_aligned_alloc(al, n);
            check_block(p, n, al, "aligned_alloc");
            keep[1] = p;
            p = T_memalign(al, n);
            check_block(p, n, al, "memalign");
            keep[2] = p;
            for (int k = 0; k < 3; k++) /* still intact with the others live */
                CHECKM(t_verify(keep[k], T_usable(keep[k]), (uintptr_t)keep[k] ^ n) ==
                           T_usable(keep[k]),
                       "aligned block %d (align %zu, size %zu) overwritten", k, al, n);
            for (int k = 0; k < 3; k++)
                T_free(keep[k]);
        }
    }
}

/* ---- realloc across the pool boundaries -------------------------------------------- */

/* p holds the pattern `seed` over old bytes: realloc to n, check the prefix
 * survived, refill the whole new size. */
static void *realloc_step(void *p, size_t old, size_t n, uint64_t seed) {
    void *q = T_realloc(p, n);
    CHECKM(q != NULL, "realloc(%zu -> %zu)", old, n);
    CHECKM(T_usable(q) >= n, "realloc(%zu -> %zu): usable %zu", old, n, T_usable(q));
    size_t keep = old < n ? old : n;
    size_t bad = t_verify(q, keep, seed);
    CHECKM(bad == keep, "realloc(%zu -> %zu): content lost at byte %zu", old, n, bad);
    t_fill(q, n, seed);
    return q;
}

static void test_realloc_boundaries(void) {
    static const size_t bounds[] = {1024, 64 * 1024, 2 * 1024 * 1024};
    for (size_t b = 0; b < 3; b++) {
        size_t B = bounds[b];
        const size_t around[] = {B / 2, B - 1, B, B + 1, B + 4096, 2 * B};
        for (size_t i = 0; i < 6; i++)
            for (size_t j = 0; j < 6; j++) {
                if (i == j)
                    continue;
                size_t a = around[i], n = around[j];
                uint64_t seed = a * 7919 + n;
                void *p = T_malloc(a);
                CHECK(p != NULL);
                t_fill(p, a, seed);
                p = realloc_step(p, a, n, seed);
                T_free(p);
            }
    }
    /* One block up through every pool and back down. */
    static const size_t chain[] = {1, 100, 1024, 1025, 4096, 65536, 65537, 300000,
                                   L25_MAX, L25_MAX + 1, 3 << 20, 20 << 20, 3 << 20,
                                   L25_MAX + 1, L25_MAX, 300000, 65537, 65536, 4096,
                                   1025, 1024, 100, 1};
    uint64_t seed = 0x5eed;
    void *p = T_malloc(chain[0]);
    CHECK(p != NULL);
    t_fill(p, chain[0], seed);
    for (size_t i = 1; i < sizeof chain / sizeof chain[0]; i++)
        p = realloc_step(p, chain[i - 1], chain[i], seed);
    T_free(p);
    /* reallocarray keeps contents as well */
    p = T_malloc(1000);
    CHECK(p != NULL);
    t_fill(p, 1000, 99);
    p = T_reallocarray(p, 1000, 100);
    CHECK(p != NULL && t_verify(p, 1000, 99) == 1000);
    T_free(p);
}

/* ---- calloc on dirty, reused memory ------------------------------------------------ */

static void test_calloc_reuse(void) {
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < nsizes; i++) {
            size_t n = sizes[i];
            void *p = T_malloc(n);
            CHECK(p != NULL);
            memset(p, 0xa5, T_usable(p));
            T_free(p);
            void *q = T_calloc(1, n);
            CHECKM(q != NULL && t_is_zero(q, n), "calloc(1, %zu) after a dirty free", n);
            memset(q, 0x5a, T_usable(q));
            T_free(q);
            q = T_calloc(n, 1);
            CHECKM(q != NULL && t_is_zero(q, n), "calloc(%zu, 1) after a dirty free", n);
            T_free(q);
        }
    /* Dirty pool spans handed back to the PageArena and then taken by the
     * jemalloc arena (and the other way round) must still read as zero. */
    for (int round = 0; round < 4; round++) {
        void *blocks[16];
        for (int k = 0; k < 16; k++) {
            size_t n = (k & 1) ? L25_MAX : 1536 * KiB + (size_t)k * 4096;
            blocks[k] = T_malloc(n);
            CHECK(blocks[k] != NULL);
            memset(blocks[k], 0xc3, n);
        }
        for (int k = 0; k < 16; k++)
            T_free(blocks[k]);
        for (int k = 0; k < 4; k++) {
            size_t n = (size_t)(3 + k) * MiB + (size_t)round * 4096;
            blocks[k] = T_calloc(n, 1);
            CHECKM(blocks[k] != NULL && t_is_zero(blocks[k], n), "calloc(%zu) not zero", n);
            memset(blocks[k], 0x3c, n);
        }
        for (int k = 0; k < 4; k++)
            T_free(blocks[k]);
        for (int k = 0; k < 8; k++) {
            size_t n = L25_MAX - (size_t)k * 200 * KiB;
            blocks[k] = T_calloc(1, n);
            CHECKM(blocks[k] != NULL && t_is_zero(blocks[k], n), "calloc(%zu) not zero", n);
        }
        for (int k = 0; k < 8; k++)
            T_free(blocks[k]);
    }
}

/* ---- overflow, ENOMEM, bad alignment ------------------------------------------------ */

#define EXPECT_ENOMEM(call, what)                                                 \
    do {                                                                          \
        errno = 0;                                                                \
        void *r_ = (call);                                                        \
        int e_ = errno;                                                           \
        CHECKM(r_ == NULL, "%s returned %p, expected NULL", what, r_);            \
        CHECKM(e_ == ENOMEM, "%s: errno %d, expected ENOMEM", what, e_);          \
    } while (0)

static void test_overflow(void) {
    const size_t max = opaque(SIZE_MAX), half = opaque(SIZE_MAX / 2);
    EXPECT_ENOMEM(T_calloc(half, 3), "calloc(SIZE_MAX/2, 3)");
    EXPECT_ENOMEM(T_calloc(3, half), "calloc(3, SIZE_MAX/2)");
    EXPECT_ENOMEM(T_calloc(max, 1), "calloc(SIZE_MAX, 1)");
    EXPECT_ENOMEM(T_reallocarray(NULL, half, 3), "reallocarray(NULL, SIZE_MAX/2, 3)");
    EXPECT_ENOMEM(T_malloc(max), "malloc(SIZE_MAX)");
    EXPECT_ENOMEM(T_malloc(max - 4096), "malloc(SIZE_MAX-4096)");
    EXPECT_ENOMEM(T_malloc(half + 1), "malloc(SIZE_MAX/2+1)");
    EXPECT_ENOMEM(T_aligned_alloc(64, max), "aligned_alloc(64, SIZE_MAX)");
    EXPECT_ENOMEM(T_memalign(MiB, max - 4096), "memalign(1 MiB, SIZE_MAX-4096)");
    EXPECT_ENOMEM(T_valloc(max), "valloc(SIZE_MAX)");
    EXPECT_ENOMEM(T_pvalloc(max), "pvalloc(SIZE_MAX)");
    EXPECT_ENOMEM(T_pvalloc(max - 100), "pvalloc(SIZE_MAX-100)");
    void *out = (void *)0x1234;
    CHECK(T_posix_memalign(&out, 64, max) == ENOMEM);
    CHECK(out == (void *)0x1234);

    /* realloc to an impossible size leaves the block as it was: one block in
     * each pool and one in the jemalloc arena. */
    static const size_t live[] = {100, 5000, 100000, 3 * MiB};
    for (size_t i = 0; i < 4; i++) {
        size_t n = live[i];
        void *p = T_malloc(n);
        CHECK(p != NULL);
        t_fill(p, n, n);
        EXPECT_ENOMEM(T_realloc(p, max), "realloc(p, SIZE_MAX)");
        EXPECT_ENOMEM(T_realloc(p, max - 4096), "realloc(p, SIZE_MAX-4096)");
        EXPECT_ENOMEM(T_reallocarray(p, half, 3), "reallocarray(p, SIZE_MAX/2, 3)");
        CHECKM(t_verify(p, n, n) == n, "realloc failure changed a %zu-byte block", n);
        CHECK(T_usable(p) >= n);
        p = realloc_step(p, n, n + 1, n); /* and it is still a live block */
        T_free(p);
    }
}

static void test_bad_alignment(void) {
    static const size_t bad[] = {0, 1, 2, 3, 4, 24, 48, 4097};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t al = opaque(bad[i]);
        void *out = (void *)0x1234;
        int rc = T_posix_memalign(&out, al, 64);
        CHECKM(rc == EINVAL, "posix_memalign(align %zu) = %d, expected EINVAL", al, rc);
        CHECKM(out == (void *)0x1234, "posix_memalign(align %zu) wrote *memptr", al);
    }
    static const size_t bad2[] = {0, 24, 3, 48, 4097};
    for (size_t i = 0; i < sizeof bad2 / sizeof bad2[0]; i++) {
        size_t al = opaque(bad2[i]);
        errno = 0;
        void *p = T_aligned_alloc(al, 64);
        int e = errno;
        CHECKM(p == NULL && e == EINVAL, "aligned_alloc(%zu, 64) = %p errno %d", al, p, e);
        errno = 0;
        p = T_memalign(al, 64);
        e = errno;
        CHECKM(p == NULL && e == EINVAL, "memalign(%zu, 64) = %p errno %d", al, p, e);
    }
}

/* ---- the allocator stays usable ------------------------------------------------------ */

static void test_still_usable(void) {
    void *p[64];
    for (int i = 0; i < 64; i++) {
        size_t n = (size_t)1 << (i % 23);
        p[i] = T_malloc(n);
        CHECK(p[i] != NULL);
        t_fill(p[i], n, (uint64_t)i);
    }
    for (int i = 0; i < 64; i++) {
        size_t n = (size_t)1 << (i % 23);
        CHECK(t_verify(p[i], n, (uint64_t)i) == n);
        T_free(p[i]);
    }
}

/* Preload: the calls really reach HAKMEM's pools and jemalloc arena. */
static void test_served_by_hakmem(void) {
    uint64_t t0 = t_stat("stats.tiny.nmalloc"), m0 = t_stat("stats.mid.nmalloc"),
             l0 = t_stat("stats.l25.nmalloc"), g0 = t_stat("stats.large.nmalloc");
    void *a = T_malloc(opaque(40)), *b = T_malloc(opaque(3000)),
         *c = T_malloc(opaque(500000)), *d = T_malloc(opaque(5 * MiB));
    CHECK(a && b && c && d);
    if (je_mode) {
        CHECK(t_stat("stats.large.nmalloc") >= g0 + 4);
        CHECK(t_stat("stats.hooks.alloc_calls") > 0);
        T_free(d);
        T_free(c);
        T_free(b);
        T_free(a);
        return;
    }
    CHECK(t_stat("stats.tiny.nmalloc") > t0);
    CHECK(t_stat("stats.mid.nmalloc") > m0);
    CHECK(t_stat("stats.l25.nmalloc") > l0);
    CHECK(t_stat("stats.large.nmalloc") > g0);
    uint64_t gf = t_stat("stats.large.nfree");
    T_free(d);
    CHECK(t_stat("stats.large.nfree") == gf + 1);
    T_free(c);
    T_free(b);
    T_free(a);
}

int main(void) {
    t_require_hakmem();
    je_mode = t_stat("opt.mode") == 1;
    build_sizes();
    test_served_by_hakmem();
    test_sizes();
    test_alignments();
    test_realloc_boundaries();
    test_calloc_reuse();
    test_overflow();
    test_bad_alignment();
    test_still_usable();
    printf("api_conformance (%s%s): %zu sizes, all checks passed\n", T_VARIANT,
           je_mode ? ", HAKMEM_MODE=jemalloc" : "", nsizes);
    return 0;
}
