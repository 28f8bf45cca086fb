/* arena_test.c - unit tests of the PageArena (arena/): LIFO reuse, capacities,
 * overflow and decay releasing memory (mincore), 2 MiB alignment, sub-range
 * return, zero tracking, the page map, bad input, refused mmap, cold 2 MiB
 * chunks (zero and dirty ranges kept apart, only dirty bytes capped), THP
 * advice on chunks, folding the 2 MiB ring into the odd set, the odd cap
 * following the clients' recent peak, and growing a cached range into free
 * address space for a large request.
 * Usage: arena_test <case>; each case runs in its own process (CTest). */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "arena/page_arena.h"
#include "check.h"

#define K64 ((size_t)64 << 10)
#define M2 ((size_t)2 << 20)

static pa_stats st(void) {
    pa_stats s;
    pa_stats_get(&s);
    return s;
}

/* Resident pages of a range; -1 when (part of) it is not mapped at all. */
static long resident(void *p, size_t len) {
    unsigned char vec[1024];
    size_t pages = len / PA_PAGE;
    CHECK(pages <= sizeof vec);
    if (mincore(p, len, vec) != 0)
        return errno == ENOMEM ? -1 : -2;
    long n = 0;
    for (size_t i = 0; i < pages; i++)
        n += vec[i] & 1;
    return n;
}

static void *alloc(size_t size, size_t align, bool *zero) {
    bool z;
    void *p = pa_alloc(size, align, NULL, zero ? zero : &z, 0);
    CHECK(p != NULL);
    CHECK(((uintptr_t)p & (PA_PAGE - 1)) == 0);
    return p;
}

static void case_lifo(void) {
    void *a = alloc(K64, 0, NULL), *b = alloc(K64, 0, NULL), *c = alloc(K64, 0, NULL);
    CHECK(pa_free(a, K64, 0) == 0);
    CHECK(pa_free(b, K64, 0) == 0);
    CHECK(pa_free(c, K64, 0) == 0);
    uint64_t hits = st().warm_hits;
    CHECK(alloc(K64, 0, NULL) == c);
    CHECK(alloc(K64, 0, NULL) == b);
    CHECK(alloc(K64, 0, NULL) == a);
    CHECK(st().warm_hits == hits + 3);
    /* hot pages: the per-thread cache, then the shared stack, both LIFO */
    void *pg[40];
    for (int i = 0; i < 40; i++)
        pg[i] = alloc(PA_PAGE, 0, NULL);
    for (int i = 0; i < 40; i++)
        CHECK(pa_free(pg[i], PA_PAGE, 0) == 0);
    CHECK(alloc(PA_PAGE, 0, NULL) == pg[39]);
    CHECK(alloc(PA_PAGE, 0, NULL) == pg[38]);
    CHECK(st().hot_hits >= 2);
}

/* Run with HAKMEM_PAGE_ARENA_WARM_64K=4 and HAKMEM_PAGE_ARENA_HOT_SIZE=8. */
static void case_capacity(void) {
    void *s[12];
    for (int i = 0; i < 12; i++) {
        s[i] = alloc(K64, 0, NULL);
        memset(s[i], 0xab, K64);
    }
    for (int i = 0; i < 12; i++) {
        CHECK(pa_free(s[i], K64, 0) == 0);
        CHECK(st().warm_bytes <= 4 * K64);
    }
    CHECK(st().warm_bytes == 4 * K64);
    CHECK(st().purged_spans == 8);
    /* the 8 oldest were purged: their memory is gone (unmapped) */
    for (int i = 0; i < 8; i++)
        CHECK(resident(s[i], K64) == -1);
    for (int i = 8; i < 12; i++)
        CHECK(resident(s[i], K64) == 16);
    void *pg[64];
    for (int i = 0; i < 64; i++)
        pg[i] = alloc(PA_PAGE, 0, NULL);
    for (int i = 0; i < 64; i++)
        CHECK(pa_free(pg[i], PA_PAGE, 0) == 0);
    /* 16 in this thread's cache, at most 8 in the shared stack */
    CHECK(st().hot_bytes <= 8 * PA_PAGE);
    CHECK(st().tls_bytes <= 16 * PA_PAGE);
}

/* Run with HAKMEM_PAGE_ARENA_DECAY_MS=50. */
static void case_decay(void) {
    void *w = alloc(K64, 0, NULL), *odd = alloc(5 * K64, 0, NULL);
    memset(w, 1, K64);
    memset(odd, 1, 5 * K64);
    size_t cached = st().bytes_cached; /* the untouched rest of the cold chunk */
    CHECK(pa_free(w, K64, 0) == 0);
    CHECK(pa_free(odd, 5 * K64, 0) == 0);
    CHECK(resident(w, K64) == 16);
    CHECK(st().bytes_cached == cached + 6 * K64);
    usleep(200 * 1000);
    /* any slow-path operation runs decay; so does pa_decay_now */
    void *other = alloc(3 * PA_PAGE, 0, NULL);
    CHECK(pa_free(other, 3 * PA_PAGE, 0) == 0);
    CHECK(resident(w, K64) == -1);
    CHECK(resident(odd, 5 * K64) == -1);
    CHECK(st().decayed_spans >= 2);
    usleep(200 * 1000);
    pa_decay_now();
    CHECK(st().bytes_cached == 0);
}

static void case_align(void) {
    for (int i = 0; i < 4; i++) {
        void *p = alloc(M2, M2, NULL);
        CHECK(((uintptr_t)p & (M2 - 1)) == 0);
        memset(p, i, M2);
        CHECK(pa_free(p, M2, 0) == 0);
        void *q = alloc(M2, M2, NULL);
        CHECK(q == p); /* warm hit, still aligned */
        CHECK(pa_free(q, M2, 0) == 0);
    }
    /* other alignments from the odd set and from cold */
    void *big = alloc((size_t)8 << 20, (size_t)1 << 20, NULL);
    CHECK(((uintptr_t)big & (((size_t)1 << 20) - 1)) == 0);
    CHECK(pa_free(big, (size_t)8 << 20, 0) == 0);
    void *a = alloc((size_t)3 << 20, M2, NULL);
    CHECK(((uintptr_t)a & (M2 - 1)) == 0);
    CHECK(st().odd_hits >= 1);
    /* one page with an alignment: not from the per-thread hot cache unless
     * it fits (found by fuzz_arena) */
    void *pages[8];
    for (int i = 0; i < 8; i++)
        pages[i] = alloc(PA_PAGE, 0, NULL);
    for (int i = 0; i < 8; i++)
        CHECK(pa_free(pages[i], PA_PAGE, 0) == 0);
    for (size_t al = (size_t)8 << 10; al <= M2; al <<= 1) {
        void *p = alloc(PA_PAGE, al, NULL);
        CHECK(((uintptr_t)p & (al - 1)) == 0);
        CHECK(pa_free(p, PA_PAGE, PA_F_NOTLS) == 0);
    }
}

static void case_subrange(void) {
    size_t len = (size_t)1 << 20;
    char *p = alloc(len, 0, NULL);
    memset(p, 7, len);
    /* give back the middle 256 KiB, then single pages at both ends */
    CHECK(pa_free(p + 256 * 1024, 256 * 1024, 0) == 0);
    CHECK(pa_pagemap_get(p + 256 * 1024) == &pa_desc_cached);
    CHECK(pa_pagemap_get(p) == &pa_desc_raw);
    CHECK(pa_pagemap_get(p + 512 * 1024) == &pa_desc_raw);
    CHECK(pa_free(p, PA_PAGE, PA_F_NOTLS) == 0);
    CHECK(pa_free(p + len - PA_PAGE, PA_PAGE, PA_F_NOTLS) == 0);
    /* the rest still belongs to the client and keeps its bytes */
    CHECK(p[PA_PAGE] == 7 && p[len - PA_PAGE - 1] == 7);
    /* the middle range is reused exactly (odd hit) */
    uint64_t odd = st().odd_hits;
    void *q = alloc(256 * 1024, 0, NULL);
    CHECK(q == p + 256 * 1024);
    CHECK(st().odd_hits == odd + 1);
    /* a range crossing a returned page is refused */
    CHECK(pa_free(p, 2 * PA_PAGE, 0) == EINVAL);
    CHECK(p[PA_PAGE] == 7);
    /* the remaining pieces go back; neighbours coalesce */
    CHECK(pa_free(p + PA_PAGE, 256 * 1024 - PA_PAGE, 0) == 0);
    CHECK(pa_free(q, 256 * 1024, 0) == 0);
    CHECK(pa_free(p + 512 * 1024, 512 * 1024 - PA_PAGE, 0) == 0);
    CHECK(alloc(len - 2 * PA_PAGE, 0, NULL) == p + PA_PAGE);
}

static void case_zero(void) {
    bool z = false;
    char *p = alloc(K64, 0, &z);
    CHECK(z);
    for (size_t i = 0; i < K64; i++)
        CHECK(p[i] == 0);
    memset(p, 0x5a, K64);
    CHECK(pa_free(p, K64, 0) == 0);
    char *q = alloc(K64, 0, &z);
    CHECK(q == p);
    CHECK(!z); /* reused, dirty: must not claim zero */
    CHECK(q[100] == 0x5a);
    pa_purge_range(q, K64);
    CHECK(q[100] == 0);
}

static void case_bad_input(void) {
    char stack[2 * PA_PAGE];
    char *p = alloc(K64, 0, NULL);
    pa_stats before = st();
    CHECK(pa_free(stack, PA_PAGE, 0) == EINVAL);            /* never handed out */
    CHECK(pa_free(p + 100, PA_PAGE, 0) == EINVAL);          /* not page-aligned */
    CHECK(pa_free(p, 100, 0) == EINVAL);                    /* not a page multiple */
    CHECK(pa_free(p, K64 + PA_PAGE, 0) == EINVAL);          /* runs past the span */
    CHECK(pa_free(NULL, PA_PAGE, 0) == EINVAL);
    pa_stats after = st();
    CHECK(after.bytes_cached == before.bytes_cached);
    CHECK(after.bytes_out == before.bytes_out);
    CHECK(pa_free(p, K64, 0) == 0);
    CHECK(pa_free(p, K64, 0) == EINVAL);                    /* double free */
    CHECK(pa_alloc(100, 0, NULL, &(bool){0}, 0) == NULL);   /* not a page multiple */
    CHECK(pa_alloc(K64, 3 * PA_PAGE, NULL, &(bool){0}, 0) == NULL); /* bad alignment */
}

static void case_mmap_refused(void) {
    void *keep = alloc(K64, 0, NULL);
    struct rlimit rl = {(rlim_t)256 << 20, (rlim_t)256 << 20};
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
    bool z;
    CHECK(pa_alloc((size_t)1 << 30, 0, NULL, &z, 0) == NULL);
    CHECK(pa_alloc((size_t)512 << 20, M2, NULL, &z, 0) == NULL);
    /* still usable afterwards */
    CHECK(pa_free(keep, K64, 0) == 0);
    CHECK(alloc(K64, 0, NULL) == keep);
    CHECK(alloc(M2, M2, NULL) != NULL);
}

/* Run with HAKMEM_PAGE_ARENA_ODD_CAP_MB=1.  A cold request below 2 MiB maps
 * one 2 MiB chunk; the rest stays cached, known zero and not resident, and
 * serves the next requests without a map.  Dirty and zero ranges do not
 * merge, and only dirty bytes count against the cap. */
static void case_cold_chunk(void) {
    const size_t pg = PA_PAGE, rest = M2 - 16 * pg;
    uint64_t maps = st().cold_maps;
    bool z = false;
    char *a = alloc(5 * pg, 0, &z);
    CHECK(z && st().cold_maps == maps + 1);
    CHECK(st().odd_bytes == M2 - 5 * pg); /* over the 1 MiB cap, but zero */
    CHECK(resident(a + 5 * pg, M2 - 5 * pg) == 0);
    char *b = alloc(11 * pg, 0, &z);
    CHECK(z && b == a + 5 * pg && st().cold_maps == maps + 1);
    memset(a, 1, 5 * pg);
    memset(b, 2, 11 * pg);
    CHECK(pa_free(a, 5 * pg, 0) == 0);
    CHECK(pa_free(b, 11 * pg, 0) == 0);
    CHECK(st().odd_bytes == M2);
    /* the two dirty ranges merged; the zero rest did not join them */
    char *c = alloc(16 * pg, 0, &z);
    CHECK(c == a && !z && c[0] == 1 && c[5 * pg] == 2);
    char *d = alloc(rest, 0, &z);
    CHECK(d == a + 16 * pg && z && st().cold_maps == maps + 1);
    /* all dirty now: the cap trims the merged range to 1 MiB */
    memset(d, 3, rest);
    CHECK(pa_free(c, 16 * pg, 0) == 0);
    CHECK(pa_free(d, rest, 0) == 0);
    CHECK(st().odd_bytes == ((size_t)1 << 20));
    CHECK(resident(a, (size_t)1 << 20) == 256);
    CHECK(resident(a + M2 - pg, pg) == -1);
}

/* True when the mapping holding p has `flag` in its VmFlags (smaps). */
static bool vm_flag(const void *p, const char *flag) {
    FILE *f = fopen("/proc/self/smaps", "r");
    CHECK(f != NULL);
    char line[512];
    bool inside = false, found = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            char want[8];
            snprintf(want, sizeof want, " %s", flag);
            found = strstr(line, want) != NULL;
            break;
        }
    }
    fclose(f);
    return found;
}

/* Run with HAKMEM_PAGE_ARENA_THP=1: a cold chunk is 2 MiB-aligned and
 * advised for transparent huge pages. */
static void case_thp_chunk(void) {
    bool z = false;
    char *a = alloc(3 * PA_PAGE, 0, &z);
    CHECK(z && ((uintptr_t)a & (M2 - 1)) == 0);
    /* The advice exists only in a kernel built with THP. */
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0)
        CHECK(vm_flag(a, "hg"));
    char *b = alloc(M2 - 3 * PA_PAGE, 0, &z);
    CHECK(b == a + 3 * PA_PAGE && z);
}

/* Run with HAKMEM_PAGE_ARENA_WARM_2M=4: spans parked in the 2 MiB ring are
 * folded into the odd set when a request finds nothing there, so that with
 * their neighbours they serve a larger request without a fresh mapping. */
static void case_warm2m_fold(void) {
    char *a = alloc(2 * M2, M2, NULL);
    memset(a, 1, 2 * M2);
    CHECK(pa_free(a, M2, 0) == 0); /* both halves are 2 MiB-aligned: the ring */
    CHECK(pa_free(a + M2, M2, 0) == 0);
    CHECK(st().warm_bytes == 2 * M2);
    uint64_t maps = st().cold_maps;
    bool z = true;
    char *b = alloc(2 * M2, PA_PAGE, &z);
    CHECK(b == a && !z && b[0] == 1 && b[2 * M2 - 1] == 1);
    CHECK(st().cold_maps == maps && st().warm_bytes == 0);
}

#define M1 ((size_t)1 << 20)

/* The odd cap: the room clients freed below their recent peak, plus a
 * quarter of what they hold (at least 32 MiB), or four times the largest
 * recent free, the configured cap at most; and a heap that frees 64 MiB of
 * large spans keeps them all cached (a cap of a quarter of bytes out or
 * four times the largest range kept 32). */
static void case_odd_cap(void) {
    const size_t max = 256 * M1;
    CHECK(pa_odd_cap_for(0, 0, 0, max) == 32 * M1);
    CHECK(pa_odd_cap_for(400 * M1, 400 * M1, M1, max) == 100 * M1);
    CHECK(pa_odd_cap_for(300 * M1, 400 * M1, M1, max) == 175 * M1);
    CHECK(pa_odd_cap_for(300 * M1, 200 * M1, M1, max) == 75 * M1); /* a stale peak */
    CHECK(pa_odd_cap_for(300 * M1, 400 * M1, 50 * M1, max) == 200 * M1); /* 4 x big */
    CHECK(pa_odd_cap_for(300 * M1, 400 * M1, M1, 16 * M1) == 16 * M1);
    enum { N = 8 };
    char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = alloc(8 * M1, 0, NULL);
        memset(p[i], i + 1, 8 * M1);
    }
    uint64_t purged = st().purged_spans;
    for (int i = 0; i < N; i++)
        CHECK(pa_free(p[i], 8 * M1, 0) == 0);
    CHECK(st().purged_spans == purged);
    CHECK(st().odd_bytes == N * 8 * M1);
    for (int i = 0; i < N; i++)
        CHECK(resident(p[i], 4 * M1) == 1024 && p[i][8 * M1 - 1] == i + 1);
}

/* Run with HAKMEM_PAGE_ARENA_ODD_CAP_MB=8.  A freed 16 MiB span keeps its
 * first 8 MiB cached (the cap unmaps the tail); a 12 MiB request then grows
 * that range into the free address space above it, mapping only 4 MiB, and
 * keeps its contents.  With both sides taken the range stays cached and the
 * request maps fresh memory. */
static void case_odd_extend(void) {
    char *p = alloc(16 * M1, 0, NULL);
    memset(p, 7, 16 * M1);
    CHECK(pa_free(p, 16 * M1, 0) == 0);
    CHECK(st().odd_bytes == 8 * M1);
    CHECK(resident(p, PA_PAGE) == 1 && resident(p + 8 * M1, PA_PAGE) == -1);
    uint64_t ext = st().odd_extends;
    bool z = true;
    char *q = alloc(12 * M1, 0, &z);
    CHECK(q == p && !z && st().odd_extends == ext + 1 && st().odd_bytes == 0);
    CHECK(resident(q + 8 * M1, PA_PAGE) == 0); /* mapped, not yet touched */
    CHECK(q[0] == 7 && q[8 * M1 - 1] == 7 && q[8 * M1] == 0 && q[12 * M1 - 1] == 0);
    memset(q, 8, 12 * M1);
    CHECK(pa_free(q, 12 * M1, 0) == 0);
    CHECK(st().odd_bytes == 8 * M1); /* the cap cut the tail again */
    /* Take the pages just above and below the cached range. */
    void *above = mmap(p + 8 * M1, PA_PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
                       MAP_FIXED_NOREPLACE, -1, 0);
    CHECK(above == p + 8 * M1);
    void *below = mmap(p - PA_PAGE, PA_PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
                       MAP_FIXED_NOREPLACE, -1, 0);
    CHECK(below == p - PA_PAGE || (below == MAP_FAILED && errno == EEXIST));
    char *r = alloc(12 * M1, 0, &z);
    CHECK(r != p && z && st().odd_extends == ext + 1);
    CHECK(st().odd_bytes == 8 * M1 && p[0] == 8); /* still cached, untouched */
    CHECK(alloc(8 * M1, 0, &z) == p && !z);
}

/* HAKMEM_PAGE_ARENA_ENABLE=0: every request goes to the OS. */
static void case_disabled(void) {
    void *p = alloc(K64, 0, NULL);
    memset(p, 1, K64);
    uint64_t maps = st().cold_maps;
    CHECK(pa_free(p, K64, 0) == 0);
    CHECK(resident(p, K64) == -1);
    CHECK(st().bytes_cached == 0);
    alloc(K64, 0, NULL);
    CHECK(st().cold_maps == maps + 1);
}

int main(int argc, char **argv) {
    static const struct { const char *name; void (*fn)(void); } cases[] = {
        {"lifo", case_lifo}, {"capacity", case_capacity}, {"decay", case_decay},
        {"align", case_align}, {"subrange", case_subrange}, {"zero", case_zero},
        {"bad_input", case_bad_input}, {"mmap_refused", case_mmap_refused},
        {"disabled", case_disabled}, {"cold_chunk", case_cold_chunk},
        {"thp_chunk", case_thp_chunk}, {"warm2m_fold", case_warm2m_fold},
        {"odd_cap", case_odd_cap}, {"odd_extend", case_odd_extend},
    };
    CHECK(argc == 2);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (strcmp(argv[1], cases[i].name) == 0) {
            cases[i].fn();
            printf("arena_test %s: ok\n", argv[1]);
            return 0;
        }
    fprintf(stderr, "unknown case %s\n", argv[1]);
    return 2;
}
