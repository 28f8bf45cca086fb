/* front_routing.c - owns the in-process tests of the malloc front's routing
 * and bad-input policy (hooks/hk_malloc.c; docs/DESIGN.md: The malloc front,
 * Bad input), through the hk_* functions of hooks/hk_malloc.h (ctest label
 * `inprocess`):
 *
 *   routing  every size goes to the pool its class table says (Tiny <= 1 KiB,
 *            Mid <= 64 KiB, L25 <= 2 MiB) or above 2 MiB to the jemalloc
 *            arena, counted in that pool's statistics; aligned requests the
 *            pools cannot serve go to jemalloc; realloc within a class keeps
 *            the block; usable size of non-blocks is 0.
 *   misuse   free / realloc of pointers HAKMEM does not own and double frees,
 *            each in a child: one exact stderr line, then SIGABRT.
 *   misuse_warn  the same under HAKMEM_ON_ERROR=warn: the line, the call
 *            returns (realloc: NULL, EINVAL) and the allocator carries on.
 *   guard    under HAKMEM_GUARD=1: every block above 64 KiB (malloc, calloc,
 *            realloc, aligned) is guarded: counted in stats.guard.*, usable
 *            up to the upper guard page, whose first byte faults (checked
 *            in a child), as does the page below a page-multiple block;
 *            Tiny/Mid blocks stay in the pools. */
#include "pool_test.h"

#include <signal.h>
#include <sys/wait.h>

/* ---- routing --------------------------------------------------------------------- */

static const char *const pool_stat[] = {"stats.tiny.nmalloc", "stats.mid.nmalloc",
                                        "stats.l25.nmalloc"};

/* Allocate with `how`, check the nmalloc counter of `where` (0..2 a pool,
 * 3 the jemalloc arena) moved by one and no other did. */
static void *expect_route(void *(*how)(size_t, size_t), size_t n, size_t align, int where) {
    uint64_t before[4], after[4];
    for (int k = 0; k < 3; k++)
        before[k] = t_stat(pool_stat[k]);
    before[3] = t_stat("stats.large.nmalloc");
    void *p = how(n, align);
    for (int k = 0; k < 3; k++)
        after[k] = t_stat(pool_stat[k]);
    after[3] = t_stat("stats.large.nmalloc");
    CHECKM(p != NULL, "size %zu align %zu", n, align);
    CHECKM(t_aligned(p, align), "size %zu align %zu: %p", n, align, p);
    for (int k = 0; k < 4; k++)
        CHECKM(after[k] - before[k] == (k == where),
               "size %zu align %zu: counter %d moved by %llu, expected route %d", n, align, k,
               (unsigned long long)(after[k] - before[k]), where);
    return p;
}

static void *by_malloc(size_t n, size_t align) {
    (void)align;
    return hk_malloc(n);
}
static void *by_calloc(size_t n, size_t align) {
    (void)align;
    return hk_calloc(1, n);
}
static void *by_memalign(size_t n, size_t align) { return hk_memalign(align, n); }

static void free_route(void *p, int where) {
    const char *name[] = {"stats.tiny.nfree", "stats.mid.nfree", "stats.l25.nfree",
                          "stats.large.nfree"};
    uint64_t f0 = t_stat(name[where]);
    hk_free(p);
    CHECKM(t_stat(name[where]) == f0 + 1, "free of a block of route %d not counted there", where);
}

static void test_routing(void) {
    for (unsigned c = 0; c < POOL_NCLASS; c++) {
        size_t lo = c ? pool_classes[c - 1].size + 1 : 1, hi = pool_classes[c].size;
        int where = pool_classes[c].pool;
        CHECKM(where == (hi <= 1024 ? 0 : hi <= 65536 ? 1 : 2), "class %u (%zu) in pool %d", c, hi,
               where);
        size_t ns[] = {lo, hi};
        for (int k = 0; k < 2; k++) {
            void *p = expect_route(by_malloc, ns[k], 16, where);
            CHECKM(hk_usable_size(p) == hi, "malloc(%zu): usable %zu, class size %zu", ns[k],
                   hk_usable_size(p), hi);
            free_route(p, where);
            p = expect_route(by_calloc, ns[k], 16, where);
            free_route(p, where);
        }
    }
    void *p = expect_route(by_malloc, 0, 16, 0);
    CHECK(hk_usable_size(p) == pool_classes[0].size);
    free_route(p, 0);
    static const size_t big[] = {L25_MAX + 1, 3 * MiB, 20 * MiB};
    for (int k = 0; k < 3; k++) {
        /* Above 2 MiB a block starts on a page (no cache-line offset). */
        p = expect_route(by_malloc, big[k], 16, 3);
        CHECK(hk_usable_size(p) >= big[k]);
        CHECKM((uintptr_t)p % 4096 == 0, "malloc(%zu) = %p, not on a page", big[k], p);
        free_route(p, 3);
        p = expect_route(by_calloc, big[k], 16, 3);
        CHECKM((uintptr_t)p % 4096 == 0, "calloc(%zu) = %p, not on a page", big[k], p);
        free_route(p, 3);
    }
    /* Alignments up to a page stay in the pools (a class that is a multiple
     * of the alignment); above that, and above 2 MiB, jemalloc. */
    for (size_t al = 32; al <= 4096; al *= 2) {
        p = expect_route(by_memalign, 100, al, al <= 1024 ? 0 : 1);
        free_route(p, al <= 1024 ? 0 : 1);
        p = expect_route(by_memalign, 100000, al, 2);
        free_route(p, 2);
    }
    for (size_t al = 8192; al <= MiB; al *= 2) {
        p = expect_route(by_memalign, 100, al, 3);
        free_route(p, 3);
    }
    p = expect_route(by_memalign, 3 * MiB, 64, 3);
    free_route(p, 3);
}

static void test_realloc_routes(void) {
    /* Within a class the block stays put. */
    for (unsigned c = 1; c < POOL_NCLASS; c++) {
        size_t lo = pool_classes[c - 1].size + 1, hi = pool_classes[c].size;
        char *p = hk_malloc(lo);
        CHECK(p != NULL);
        t_fill(p, lo, c);
        CHECKM(hk_realloc(p, hi) == p, "realloc(%zu -> %zu) moved within a class", lo, hi);
        CHECKM(hk_realloc(p, lo) == p, "realloc(%zu -> %zu) moved within a class", hi, lo);
        CHECK(t_verify(p, lo, c) == lo);
        hk_free(p);
    }
    /* Across pools the block moves, and the old one is freed in its pool. */
    uint64_t tf = t_stat("stats.tiny.nfree"), mm = t_stat("stats.mid.nmalloc");
    void *p = hk_malloc(1000);
    CHECK(p != NULL);
    void *q = hk_realloc(p, 1025);
    CHECK(q != NULL && q != p);
    CHECK(t_stat("stats.tiny.nfree") == tf + 1 && t_stat("stats.mid.nmalloc") == mm + 1);
    uint64_t lm = t_stat("stats.large.nmalloc");
    q = hk_realloc(q, 3 * MiB);
    CHECK(q != NULL && t_stat("stats.large.nmalloc") == lm + 1);
    /* jemalloc to jemalloc: in place, or at most one new block */
    t_fill(q, 3 * MiB, 3);
    uint64_t lf0 = t_stat("stats.large.nfree");
    q = hk_realloc(q, 20 * MiB);
    CHECK(q != NULL && hk_usable_size(q) >= 20 * MiB && t_verify(q, 3 * MiB, 3) == 3 * MiB);
    CHECKM((uintptr_t)q % 4096 == 0, "realloc(20 MiB) = %p, not on a page", q);
    CHECK(t_stat("stats.large.nmalloc") - lm - 1 == t_stat("stats.large.nfree") - lf0);
    CHECK(t_stat("stats.large.nmalloc") <= lm + 2);
    uint64_t lf = t_stat("stats.large.nfree"), l25 = t_stat("stats.l25.nmalloc");
    q = hk_realloc(q, L25_MAX);
    CHECK(q != NULL && t_stat("stats.large.nfree") == lf + 1 && t_stat("stats.l25.nmalloc") == l25 + 1);
    /* realloc(p, 0) frees (glibc behaviour) */
    uint64_t f = t_stat("stats.l25.nfree");
    CHECK(hk_realloc(q, 0) == NULL);
    CHECK(t_stat("stats.l25.nfree") == f + 1);
}

static void test_usable_of_non_blocks(void) {
    char stack[64];
    char *p = hk_malloc(100);
    CHECK(p != NULL);
    CHECK(hk_usable_size(opaque_ptr(stack)) == 0);
    CHECK(hk_usable_size(p + 16) == 0);
    CHECK(hk_usable_size(p) == 112);
    hk_free(p);
    CHECK(hk_usable_size(opaque_ptr(p)) == 0); /* freed: no longer a block */
    char *m = hk_malloc(5000);
    CHECK(m != NULL && hk_usable_size(m + 1024) == 0);
    hk_free(m);
}

/* ---- misuse --------------------------------------------------------------------------- */

typedef enum {
    FREE_STACK, FREE_INTERIOR, FREE_FOREIGN, FREE_INTERIOR_SPAN, FREE_INTERIOR_LARGE,
    DOUBLE_FREE, DOUBLE_FREE_L25, DOUBLE_FREE_SPAN, DOUBLE_FREE_LARGE,
    REALLOC_INTERIOR, REALLOC_INTERIOR_LARGE, REALLOC_FREED, REALLOC_FREED_LARGE, NCASES
} misuse_case;
static const char *const case_line[NCASES] = {
    [FREE_STACK] = "free(%s): invalid pointer",
    [FREE_INTERIOR] = "free(%s): invalid pointer",
    [FREE_FOREIGN] = "free(%s): invalid pointer",
    [FREE_INTERIOR_SPAN] = "free(%s): invalid pointer",
    [FREE_INTERIOR_LARGE] = "free(%s): invalid pointer",
    [DOUBLE_FREE] = "free(%s): double free",
    [DOUBLE_FREE_L25] = "free(%s): double free",
    [DOUBLE_FREE_SPAN] = "free(%s): double free",
    [DOUBLE_FREE_LARGE] = "free(%s): double free",
    [REALLOC_INTERIOR] = "realloc(%s): invalid pointer",
    [REALLOC_INTERIOR_LARGE] = "realloc(%s): invalid pointer",
    [REALLOC_FREED] = "realloc(%s): double free",
    [REALLOC_FREED_LARGE] = "realloc(%s): double free",
};

/* Do the misuse, writing the pointer to `announce` (printf "%p") just
 * before; returns it.  Returns at all only with HAKMEM_ON_ERROR=warn. */
static void *misuse(misuse_case c, FILE *announce) {
    static char not_heap[64];
    char stack[64];
    char *p = NULL, *keep = NULL;
    void *bad;
    switch (c) {
    case FREE_STACK:
        bad = opaque_ptr(stack);
        break;
    case FREE_INTERIOR:
        keep = p = hk_malloc(100);
        bad = opaque_ptr(p + 16);
        break;
    case FREE_FOREIGN: /* a block of the system allocator, or a global */
        keep = malloc(100);
        bad = opaque_ptr(keep ? (void *)keep : (void *)not_heap);
        break;
    case FREE_INTERIOR_SPAN: /* an L25 block that has a span of its own */
        keep = p = hk_malloc(MiB);
        bad = opaque_ptr(p + 4096);
        break;
    case FREE_INTERIOR_LARGE:
        keep = p = hk_malloc(3 * MiB);
        bad = opaque_ptr(p + 16);
        break;
    case DOUBLE_FREE:
    case DOUBLE_FREE_L25:
    case DOUBLE_FREE_SPAN:
    case DOUBLE_FREE_LARGE:
    case REALLOC_FREED:
    case REALLOC_FREED_LARGE:
        p = hk_malloc(c == DOUBLE_FREE_L25 ? 100000 : c == DOUBLE_FREE_SPAN ? MiB
                      : c == DOUBLE_FREE_LARGE || c == REALLOC_FREED_LARGE ? 3 * MiB : 100);
        bad = opaque_ptr(p);
        hk_free(p);
        break;
    case REALLOC_INTERIOR:
        keep = p = hk_malloc(5000);
        bad = opaque_ptr(p + 64);
        break;
    case REALLOC_INTERIOR_LARGE:
        keep = p = hk_malloc(5 * MiB);
        bad = opaque_ptr(p + 4096);
        break;
    default:
        CHECK(0);
    }
    CHECK(bad != NULL);
    fprintf(announce, "%p\n", bad);
    fflush(announce);
    if (c == REALLOC_INTERIOR || c == REALLOC_FREED || c == REALLOC_INTERIOR_LARGE ||
        c == REALLOC_FREED_LARGE) {
        errno = 0;
        void *r = hk_realloc(bad, 10);
        CHECKM(r == NULL && errno == EINVAL, "realloc of a bad pointer = %p, errno %d", r, errno);
    } else {
        hk_free(bad);
    }
    if (c == FREE_FOREIGN)
        free(keep);
    else if (keep)
        hk_free(keep); /* the real block is still fine */
    return bad;
}

static char *read_all(FILE *f) {
    static char buf[4096];
    fflush(f);
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    return buf;
}

static void expected_line(char *out, size_t cap, misuse_case c, const void *p) {
    char ptr[32], body[96];
    snprintf(ptr, sizeof ptr, "%p", p);
    snprintf(body, sizeof body, case_line[c], ptr);
    snprintf(out, cap, "hakmem: %s\n", body);
}

/* Default policy: in a child, one exact line on stderr and death by SIGABRT. */
static void test_misuse_abort(void) {
    CHECKM(t_stat("opt.on_error") == 0, "run without HAKMEM_ON_ERROR");
    for (int c = 0; c < NCASES; c++) {
        FILE *err = tmpfile(), *ptrf = tmpfile();
        CHECK(err && ptrf);
        fflush(NULL);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            dup2(fileno(err), 2);
            alarm(10);
            misuse((misuse_case)c, ptrf);
            _exit(3); /* not reached with the default policy */
        }
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        void *bad = NULL;
        CHECKM(sscanf(read_all(ptrf), "%p", &bad) == 1, "case %d: child recorded no pointer", c);
        char want[160];
        expected_line(want, sizeof want, (misuse_case)c, bad);
        const char *got = read_all(err);
        CHECKM(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
               "case %d: child status %#x, expected SIGABRT (stderr: %s)", c, status, got);
        CHECKM(strcmp(got, want) == 0, "case %d: stderr '%s', expected '%s'", c, got, want);
        fclose(err);
        fclose(ptrf);
    }
}

/* HAKMEM_ON_ERROR=warn: the same line, the call returns, all else works. */
static void test_misuse_warn(void) {
    CHECKM(t_stat("opt.on_error") == 1, "run with HAKMEM_ON_ERROR=warn");
    char *live = hk_malloc(300);
    CHECK(live != NULL);
    t_fill(live, 300, 42);
    for (int c = 0; c < NCASES; c++) {
        FILE *err = tmpfile(), *ptrf = tmpfile();
        CHECK(err && ptrf);
        fflush(stderr);
        int saved = dup(2);
        CHECK(saved >= 0 && dup2(fileno(err), 2) == 2);
        void *bad = misuse((misuse_case)c, ptrf);
        fflush(stderr);
        CHECK(dup2(saved, 2) == 2);
        close(saved);
        char want[160];
        expected_line(want, sizeof want, (misuse_case)c, bad);
        const char *got = read_all(err);
        CHECKM(strcmp(got, want) == 0, "case %d: stderr '%s', expected '%s'", c, got, want);
        fclose(err);
        fclose(ptrf);
    }
    CHECK(t_verify(live, 300, 42) == 300);
    hk_free(live);
    void *p = hk_malloc(100);
    CHECK(p != NULL && hk_usable_size(p) == 112);
    hk_free(p);
}

/* ---- guard pages (HAKMEM_GUARD=1) ------------------------------------------------ */

/* True when touching *p kills a child with SIGSEGV. */
static int faults_at(volatile const char *p) {
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL); /* not a sanitizer's report: the signal */
        char c = *p;
        (void)c;
        _exit(0);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV;
}

static void *guard_one(size_t n, size_t align, int how) {
    uint64_t m0 = t_stat("stats.guard.nmalloc"), l0 = t_stat("stats.l25.nmalloc"),
             j0 = t_stat("stats.large.nmalloc");
    void *p = NULL;
    if (how == 0)
        p = hk_malloc(n);
    else if (how == 1)
        p = hk_calloc(1, n);
    else
        CHECK(hk_posix_memalign(&p, align, n) == 0);
    CHECKM(p != NULL && t_aligned(p, align), "size %zu align %zu", n, align);
    CHECKM(t_stat("stats.guard.nmalloc") == m0 + 1, "size %zu: not guarded", n);
    CHECK(t_stat("stats.l25.nmalloc") == l0 && t_stat("stats.large.nmalloc") == j0);
    size_t u = hk_usable_size(p);
    CHECKM(u >= n && u < n + (align > 16 ? align : 16), "size %zu usable %zu", n, u);
    if (how == 1)
        CHECK(t_is_zero(p, n));
    t_fill(p, u, n); /* every usable byte is writable */
    CHECKM(faults_at((char *)p + u), "size %zu: no fault past the usable size", n);
    if (n % PA_PAGE == 0 && align <= PA_PAGE)
        CHECKM(faults_at((char *)p - 1), "size %zu: no fault below the block", n);
    CHECK(t_verify(p, u, n) == u);
    return p;
}

static void test_guard(void) {
    CHECKM(t_stat("opt.guard") == 1, "run with HAKMEM_GUARD=1");
    static const size_t sizes[] = {MID_MAX + 1, 100000, 256 * KiB, L25_MAX, 3 * MiB, 8 * MiB + 5};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int how = 0; how < 2; how++) {
            uint64_t f0 = t_stat("stats.guard.nfree");
            hk_free(guard_one(sizes[i], 16, how));
            CHECK(t_stat("stats.guard.nfree") == f0 + 1);
        }
        hk_free(guard_one(sizes[i], 64 * KiB, 2));
        hk_free(guard_one(sizes[i], 2 * MiB, 2));
    }
    /* An L25 size aligned within a page: the aligned-class branch. */
    hk_free(guard_one(70000, 4096, 2));
    /* realloc across the guard line and back keeps the contents */
    char *p = hk_malloc(1000);
    CHECK(p != NULL);
    t_fill(p, 1000, 7);
    uint64_t m0 = t_stat("stats.guard.nmalloc");
    p = hk_realloc(p, 200000);
    CHECK(p && t_stat("stats.guard.nmalloc") == m0 + 1 && t_verify(p, 1000, 7) == 1000);
    t_fill(p, 200000, 8);
    p = hk_realloc(p, 300000);
    CHECK(p && t_verify(p, 200000, 8) == 200000);
    p = hk_realloc(p, 5000);
    CHECK(p && t_verify(p, 5000, 8) == 5000);
    hk_free(p);
    /* small blocks stay in the pools */
    uint64_t t0 = t_stat("stats.tiny.nmalloc"), g0 = t_stat("stats.guard.nmalloc");
    hk_free(hk_malloc(100));
    hk_free(hk_malloc(MID_MAX));
    CHECK(t_stat("stats.tiny.nmalloc") == t0 + 1 && t_stat("stats.guard.nmalloc") == g0);
    CHECK(t_stat("stats.guard.nmalloc") == t_stat("stats.guard.nfree"));
    CHECK(t_stat("stats.guard.bytes") == 0);
}

int main(int argc, char **argv) {
    CHECKM(argc == 2, "usage: %s routing|misuse|misuse_warn|guard", argv[0]);
    if (strcmp(argv[1], "routing") == 0) {
        test_routing();
        test_realloc_routes();
        test_usable_of_non_blocks();
    } else if (strcmp(argv[1], "misuse") == 0) {
        test_misuse_abort();
    } else if (strcmp(argv[1], "misuse_warn") == 0) {
        test_misuse_warn();
    } else if (strcmp(argv[1], "guard") == 0) {
        test_guard();
    } else {
        CHECKM(0, "unknown test %s", argv[1]);
    }
    printf("front_routing %s: all checks passed\n", argv[1]);
    return 0;
}
