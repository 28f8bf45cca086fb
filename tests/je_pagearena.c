/* je_pagearena.c - owns the tests of libhakmem_je.so (jemalloc + PageArena),
 * run with LD_PRELOAD=libhakmem_je.so; the program links only libc, so every
 * allocator function it reaches is the preloaded one (found with dlsym):
 *  surface      malloc, the C++ operators, mallocx, mallctl ... all resolve
 *               into the library that holds hak_mallctl, named libhakmem_je;
 *               they are jemalloc's (mallctl "version", thread.allocated
 *               counts malloc and operator new); no HAKMEM pools;
 *  arenas64     64 threads alive at once, each having allocated every small
 *               size class, large sizes and (one in eight) a huge block:
 *               every initialised arena, the huge one among them, and each
 *               arena a thread or block is in, has the PageArena's hooks;
 *               again after threads came and went;
 *  alloc_calls  new extents come from the PageArena: stats.hooks.alloc_calls
 *               grows with a batch of large blocks; freed and purged, they go
 *               back to it, and the next batch is served from its caches
 *               (under retain:true, MALLOC_CONF: alloc_calls grows);
 *  create       hak_arena_create; arenas.create without hooks starts on the
 *               PageArena's; hak_arena_attach on an arena made with
 *               jemalloc's default hooks that holds blocks: those are freed
 *               through the forwarded hooks, new ones come from the PageArena;
 *  fork         children forked while two threads allocate: each allocates
 *               small, large and huge blocks, in a new thread too, and exits
 *               cleanly;
 *  bgthread     the PageArena's background thread is not running in a
 *               single-threaded program after it allocated; it runs once
 *               the program has created a thread (argument `on`), or still
 *               not with HAKMEM_BACKGROUND=0 (argument `off`).
 * Usage: je_pagearena CASE.  Work is bounded by counts. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "page_pattern.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

typedef int (*ctl_fn)(const char *, void *, size_t *, void *, size_t);
static ctl_fn je_ctl, hk_ctl;
static void *(*je_mallocx)(size_t, int);
static void (*je_dallocx)(void *, int);
static size_t (*je_nallocx)(size_t, int);
static void *(*hk_hooks)(void);
static int (*hk_create)(unsigned *);
static int (*hk_attach)(unsigned);

#define MALLOCX_ARENA(a) ((int)(((unsigned)(a) + 1) << 20))
#define MALLOCX_TCACHE_NONE (1 << 8)

static void *need(const char *name) {
    void *f = dlsym(RTLD_DEFAULT, name);
    if (!f) {
        fprintf(stderr, "je_pagearena: %s not found: run with LD_PRELOAD=libhakmem_je.so\n", name);
        exit(1);
    }
    return f;
}

static void setup(void) {
    *(void **)&je_ctl = need("mallctl");
    *(void **)&hk_ctl = need("hak_mallctl");
    *(void **)&je_mallocx = need("mallocx");
    *(void **)&je_dallocx = need("dallocx");
    *(void **)&je_nallocx = need("nallocx");
    *(void **)&hk_hooks = need("hak_extent_hooks");
    *(void **)&hk_create = need("hak_arena_create");
    *(void **)&hk_attach = need("hak_arena_attach");
}

static uint64_t hstat(const char *name) {
    uint64_t v = 0;
    size_t sz = sizeof v;
    if (hk_ctl(name, &v, &sz, NULL, 0) != 0) {
        fprintf(stderr, "je_pagearena: hak_mallctl(%s) failed\n", name);
        exit(1);
    }
    return v;
}

static unsigned ctl_u(const char *name) {
    unsigned v = 0;
    size_t sz = sizeof v;
    CHECK(je_ctl(name, &v, &sz, NULL, 0) == 0);
    return v;
}

static size_t ctl_z(const char *name) {
    size_t v = 0, sz = sizeof v;
    CHECK(je_ctl(name, &v, &sz, NULL, 0) == 0);
    return v;
}

static uint64_t ctl_u64(const char *name) {
    uint64_t v = 0;
    size_t sz = sizeof v;
    CHECK(je_ctl(name, &v, &sz, NULL, 0) == 0);
    return v;
}

static void *arena_hooks(unsigned ind, int *err) {
    char name[64];
    snprintf(name, sizeof name, "arena.%u.extent_hooks", ind);
    void *h = NULL;
    size_t sz = sizeof h;
    *err = je_ctl(name, &h, &sz, NULL, 0);
    return h;
}

static bool arena_initialized(unsigned ind) {
    char name[64];
    snprintf(name, sizeof name, "arena.%u.initialized", ind);
    bool v = false;
    size_t sz = sizeof v;
    CHECK(je_ctl(name, &v, &sz, NULL, 0) == 0);
    return v;
}

static void refresh(void) {
    uint64_t e = 1;
    CHECK(je_ctl("epoch", NULL, NULL, &e, sizeof e) == 0);
}

static unsigned arena_of(void *p) {
    unsigned ind = 0;
    size_t sz = sizeof ind;
    CHECK(je_ctl("arenas.lookup", &ind, &sz, &p, sizeof p) == 0);
    return ind;
}

/* First and last byte only: blocks whose pages need not all be resident. */
static void mark(void *p, size_t n, unsigned seed) {
    unsigned char *c = p;
    c[0] = (unsigned char)seed;
    c[n - 1] = (unsigned char)(seed ^ 0x5a);
}

static bool marked(const void *p, size_t n, unsigned seed) {
    const unsigned char *c = p;
    return c[0] == (unsigned char)seed && c[n - 1] == (unsigned char)(seed ^ 0x5a);
}

/* ---- surface ------------------------------------------------------------------ */

static const char *const surface_names[] = {
    "malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign",
    "valloc", "malloc_usable_size", "mallocx", "rallocx", "xallocx", "sallocx", "dallocx",
    "sdallocx", "nallocx", "mallctl", "mallctlnametomib", "mallctlbymib",
    "malloc_stats_print", "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
    "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t", "_ZnwmSt11align_val_tRKSt9nothrow_t",
    "_ZnamSt11align_val_tRKSt9nothrow_t", "_ZdlPv", "_ZdaPv", "_ZdlPvRKSt9nothrow_t",
    "_ZdaPvRKSt9nothrow_t", "_ZdlPvm", "_ZdaPvm", "_ZdlPvSt11align_val_t",
    "_ZdaPvSt11align_val_t", "_ZdlPvSt11align_val_tRKSt9nothrow_t",
    "_ZdaPvSt11align_val_tRKSt9nothrow_t", "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",
    "hak_extent_hooks", "hak_arena_create", "hak_arena_attach", "hak_stats_print"};

static void case_surface(void) {
    Dl_info ref, info;
    CHECK(dladdr((void *)hk_ctl, &ref) && ref.dli_fname);
    const char *base = strrchr(ref.dli_fname, '/');
    base = base ? base + 1 : ref.dli_fname;
    if (strncmp(base, "libhakmem_je.so", 15) != 0) {
        fprintf(stderr, "hak_mallctl is in %s, not libhakmem_je.so\n", ref.dli_fname);
        exit(1);
    }
    for (size_t i = 0; i < sizeof surface_names / sizeof surface_names[0]; i++) {
        void *f = need(surface_names[i]);
        CHECK(dladdr(f, &info) && info.dli_fbase == ref.dli_fbase);
    }
    const char *version = NULL;
    size_t sz = sizeof version;
    CHECK(je_ctl("version", &version, &sz, NULL, 0) == 0);
    CHECK(strncmp(version, "5.3.0", 5) == 0);
    /* malloc and operator new are jemalloc's: its per-thread counters move */
    uint64_t before = ctl_u64("thread.allocated");
    void *p = malloc(100000);
    CHECK(p != NULL);
    CHECK(ctl_u64("thread.allocated") >= before + 100000);
    uint64_t freed = ctl_u64("thread.deallocated");
    free(p);
    CHECK(ctl_u64("thread.deallocated") >= freed + 100000);
    void *(*op_new)(size_t);
    void (*op_delete)(void *);
    *(void **)&op_new = need("_Znwm");
    *(void **)&op_delete = need("_ZdlPv");
    before = ctl_u64("thread.allocated");
    void *q = op_new(5000);
    CHECK(q != NULL && ctl_u64("thread.allocated") >= before + 5000);
    op_delete(q);
    /* HAKMEM's pools are not in this library */
    uint64_t v;
    sz = sizeof v;
    CHECK(hk_ctl("stats.tiny.nmalloc", &v, &sz, NULL, 0) == ENOENT);
    printf("surface: %zu symbols in %s, jemalloc %s\n",
           sizeof surface_names / sizeof surface_names[0], ref.dli_fname, version);
}

/* ---- arenas64 ------------------------------------------------------------------ */

#define A_THREADS 64
#define A_SMALL_MAX (14 * KiB)  /* jemalloc's largest small class */
#define A_ROUNDS 4              /* threads that come and go, after */
#define A_ROUND_THREADS 16

static pthread_barrier_t a_allocated, a_checked;
static size_t a_huge;           /* opt.oversize_threshold */
static unsigned a_arena[A_THREADS];
static unsigned a_block_arena[A_THREADS][3];

static void *a_worker(void *arg) {
    unsigned id = (unsigned)(uintptr_t)arg;
    enum { MAXB = 128 };
    void *blk[MAXB];
    size_t len[MAXB];
    unsigned n = 0;
    /* every small size class, then large ones */
    for (size_t s = 8; s <= A_SMALL_MAX && n < MAXB; s = je_nallocx(s + 1, 0), n++) {
        len[n] = s;
        blk[n] = malloc(s);
        CHECK(blk[n] != NULL);
        memset(blk[n], (int)id, s);
    }
    for (size_t s = 16 * KiB; s <= 4 * MiB && n < MAXB; s *= 2, n++) {
        len[n] = s + id * 4096;
        blk[n] = malloc(len[n]);
        CHECK(blk[n] != NULL);
        mark(blk[n], len[n], id);
    }
    void *huge = NULL;
    if (id % 8 == 0) {
        huge = malloc(a_huge + id * 4096);
        CHECK(huge != NULL);
        mark(huge, a_huge + id * 4096, id);
    }
    size_t sz = sizeof a_arena[id];
    CHECK(je_ctl("thread.arena", &a_arena[id], &sz, NULL, 0) == 0);
    a_block_arena[id][0] = arena_of(blk[0]);
    a_block_arena[id][1] = arena_of(blk[n - 1]);
    a_block_arena[id][2] = huge ? arena_of(huge) : a_block_arena[id][1];
    pthread_barrier_wait(&a_allocated); /* all 64 alive, each has allocated */
    pthread_barrier_wait(&a_checked);
    for (unsigned i = 0; i < n; i++) {
        if (len[i] <= A_SMALL_MAX) {
            unsigned char *c = blk[i];
            CHECK(c[0] == (unsigned char)id && c[len[i] - 1] == (unsigned char)id);
        } else {
            CHECK(marked(blk[i], len[i], id));
        }
        free(blk[i]);
    }
    if (huge) {
        CHECK(marked(huge, a_huge + id * 4096, id));
        free(huge);
    }
    return NULL;
}

/* Every initialised arena has the PageArena's hooks; returns how many. */
static unsigned check_all_arenas(unsigned *hooked_auto) {
    refresh();
    void *ours = hk_hooks();
    unsigned total = ctl_u("arenas.narenas"), nauto = ctl_u("opt.narenas"), n = 0;
    *hooked_auto = 0;
    for (unsigned i = 0; i < total; i++) {
        if (!arena_initialized(i))
            continue;
        int err;
        void *h = arena_hooks(i, &err);
        if (err || h != ours) {
            fprintf(stderr, "arena %u: extent_hooks %p (error %d), the PageArena's are %p\n", i,
                    h, err, ours);
            exit(1);
        }
        n++;
        if (i < nauto)
            ++*hooked_auto;
    }
    return n;
}

static void *a_churn(void *arg) {
    unsigned id = (unsigned)(uintptr_t)arg;
    void *keep[32];
    for (unsigned i = 0; i < 32; i++) {
        size_t s = (i % 4 == 3) ? 64 * KiB * (i + 1) : 16u << (i % 10);
        keep[i] = malloc(s);
        CHECK(keep[i] != NULL);
        memset(keep[i], (int)(id + i), s < 4096 ? s : 4096);
    }
    for (unsigned i = 0; i < 32; i++)
        free(keep[i]);
    return NULL;
}

static void case_arenas64(void) {
    a_huge = ctl_z("opt.oversize_threshold");
    CHECK(a_huge >= 1 * MiB); /* jemalloc's default is 8 MiB */
    unsigned nauto = ctl_u("opt.narenas");
    CHECK(pthread_barrier_init(&a_allocated, NULL, A_THREADS + 1) == 0);
    CHECK(pthread_barrier_init(&a_checked, NULL, A_THREADS + 1) == 0);
    pthread_t th[A_THREADS];
    for (unsigned i = 0; i < A_THREADS; i++)
        CHECK(pthread_create(&th[i], NULL, a_worker, (void *)(uintptr_t)i) == 0);
    pthread_barrier_wait(&a_allocated);
    unsigned hooked_auto;
    unsigned n = check_all_arenas(&hooked_auto);
    /* 64 threads spread over the automatic arenas: all in use */
    unsigned want = nauto < A_THREADS ? nauto : A_THREADS;
    if (hooked_auto < want) {
        fprintf(stderr, "%u automatic arenas initialised, expected %u\n", hooked_auto, want);
        exit(1);
    }
    /* the huge arena (index opt.narenas) exists and is among them */
    CHECK(arena_initialized(nauto));
    CHECK(n == hooked_auto + 1);
    void *ours = hk_hooks();
    int err;
    for (unsigned i = 0; i < A_THREADS; i++) {
        CHECK(a_arena[i] < nauto);
        for (unsigned k = 0; k < 3; k++)
            CHECK(arena_hooks(a_block_arena[i][k], &err) == ours && err == 0);
        if (i % 8 == 0)
            CHECK(a_block_arena[i][2] == nauto); /* the huge block's arena */
    }
    pthread_barrier_wait(&a_checked);
    for (unsigned i = 0; i < A_THREADS; i++)
        CHECK(pthread_join(th[i], NULL) == 0);
    /* threads come and go */
    for (unsigned r = 0; r < A_ROUNDS; r++) {
        pthread_t t[A_ROUND_THREADS];
        for (unsigned i = 0; i < A_ROUND_THREADS; i++)
            CHECK(pthread_create(&t[i], NULL, a_churn, (void *)(uintptr_t)(r * 100 + i)) == 0);
        for (unsigned i = 0; i < A_ROUND_THREADS; i++)
            CHECK(pthread_join(t[i], NULL) == 0);
    }
    unsigned n2 = check_all_arenas(&hooked_auto);
    CHECK(n2 == n);
    printf("arenas64: %u arenas initialised (%u automatic, the huge arena %u), all on the "
           "PageArena hooks %p\n", n, hooked_auto, nauto, ours);
}

/* ---- alloc_calls ------------------------------------------------------------------ */

/* 24 MiB: below the PageArena's least cap on dirty odd-sized ranges
 * (32 MiB), so all of it stays cached once freed. */
#define B_BLOCKS 96
#define B_SIZE (256 * KiB)

static void case_alloc_calls(void) {
    bool retain = true;
    size_t sz = sizeof retain;
    CHECK(je_ctl("opt.retain", &retain, &sz, NULL, 0) == 0);
    static void *b[B_BLOCKS];
    uint64_t calls = hstat("stats.hooks.alloc_calls");
    uint64_t out = hstat("stats.page_arena.bytes_out");
    for (unsigned i = 0; i < B_BLOCKS; i++) {
        b[i] = malloc(B_SIZE);
        CHECK(b[i] != NULL);
        page_fill(b[i], B_SIZE, i);
    }
    uint64_t calls1 = hstat("stats.hooks.alloc_calls");
    uint64_t out1 = hstat("stats.page_arena.bytes_out");
    printf("alloc_calls: retain %d: %u blocks of %zu KiB: alloc_calls %llu -> %llu, "
           "bytes_out %llu -> %llu\n", retain, B_BLOCKS, B_SIZE >> 10,
           (unsigned long long)calls, (unsigned long long)calls1, (unsigned long long)out,
           (unsigned long long)out1);
    CHECK(out1 >= out + (uint64_t)B_BLOCKS * B_SIZE / 2);
    if (retain) { /* jemalloc grows its retained space a few MiB at a time */
        CHECK(calls1 > calls);
        for (unsigned i = 0; i < B_BLOCKS; i++)
            free(b[i]);
        return;
    }
    /* without retain, one extent per large block (a few may come from
     * jemalloc's own dirty cache) */
    CHECK(calls1 >= calls + B_BLOCKS * 3 / 4);
    /* freed and purged, the extents go back to the PageArena (jemalloc
     * merges neighbours first: fewer calls than blocks; its decay may hand
     * some back while they are freed) ... */
    uint64_t dalloc = hstat("stats.hooks.dalloc_calls");
    uint64_t active = hstat("stats.hooks.bytes_active");
    for (unsigned i = 0; i < B_BLOCKS; i++) {
        CHECK(page_intact(b[i], B_SIZE, i));
        free(b[i]);
    }
    CHECK(je_ctl("arena.4096.purge", NULL, NULL, NULL, 0) == 0); /* every arena */
    CHECK(hstat("stats.hooks.dalloc_calls") > dalloc);
    CHECK(hstat("stats.hooks.bytes_active") + (uint64_t)B_BLOCKS * B_SIZE * 3 / 4 <= active);
    CHECK(hstat("stats.page_arena.bytes_cached") >= (uint64_t)B_BLOCKS * B_SIZE / 2);
    /* ... and the next batch is served from its caches, no new mapping */
    uint64_t maps = hstat("stats.page_arena.cold.maps");
    uint64_t hits = hstat("stats.page_arena.warm.hits") + hstat("stats.page_arena.odd.hits");
    for (unsigned i = 0; i < B_BLOCKS; i++) {
        b[i] = malloc(B_SIZE);
        CHECK(b[i] != NULL);
        page_fill(b[i], B_SIZE, i + 7);
    }
    uint64_t hits1 = hstat("stats.page_arena.warm.hits") + hstat("stats.page_arena.odd.hits");
    printf("alloc_calls: second batch: %llu PageArena cache hits, %llu new mappings\n",
           (unsigned long long)(hits1 - hits),
           (unsigned long long)(hstat("stats.page_arena.cold.maps") - maps));
    CHECK(hits1 >= hits + B_BLOCKS / 2);
    CHECK(hstat("stats.page_arena.cold.maps") <= maps + 2);
    for (unsigned i = 0; i < B_BLOCKS; i++) {
        CHECK(page_intact(b[i], B_SIZE, i + 7));
        free(b[i]);
    }
}

/* ---- create ------------------------------------------------------------------ */

static void case_create(void) {
    void *ours = hk_hooks();
    int err;
    /* hak_arena_create */
    unsigned ind;
    CHECK(hk_create(&ind) == 0);
    CHECK(arena_hooks(ind, &err) == ours && err == 0);
    uint64_t calls = hstat("stats.hooks.alloc_calls");
    void *p = je_mallocx(3 * MiB, MALLOCX_ARENA(ind) | MALLOCX_TCACHE_NONE);
    CHECK(p != NULL && arena_of(p) == ind);
    page_fill(p, 3 * MiB, 1);
    CHECK(hstat("stats.hooks.alloc_calls") > calls);
    je_dallocx(p, MALLOCX_TCACHE_NONE);
    /* arenas.create without hooks: jemalloc's default configuration, which
     * holds the PageArena's hooks */
    unsigned plain;
    size_t sz = sizeof plain;
    CHECK(je_ctl("arenas.create", &plain, &sz, NULL, 0) == 0);
    CHECK(arena_hooks(plain, &err) == ours && err == 0);
    /* jemalloc's own default hooks: what an automatic arena not made yet
     * reports (this program has one thread: the last one is not made) */
    unsigned last = ctl_u("opt.narenas") - 1;
    refresh();
    CHECK(last > 0 && !arena_initialized(last));
    void *dflt = arena_hooks(last, &err);
    CHECK(err == 0 && dflt != NULL && dflt != ours);
    unsigned foreign;
    sz = sizeof foreign;
    CHECK(je_ctl("arenas.create", &foreign, &sz, &dflt, sizeof dflt) == 0);
    CHECK(arena_hooks(foreign, &err) == dflt);
    calls = hstat("stats.hooks.alloc_calls");
    enum { NF = 16 };
    void *old[NF];
    for (unsigned i = 0; i < NF; i++) {
        old[i] = je_mallocx(512 * KiB, MALLOCX_ARENA(foreign) | MALLOCX_TCACHE_NONE);
        CHECK(old[i] != NULL);
        page_fill(old[i], 512 * KiB, i);
    }
    /* not from the hooks: 16 blocks would be 16 alloc calls (jemalloc's
     * global metadata, on the hooks since arena 0 is, may take one) */
    CHECK(hstat("stats.hooks.alloc_calls") < calls + NF / 2);
    uint64_t arenas = hstat("stats.hooks.arenas");
    CHECK(hk_attach(foreign) == 0);
    CHECK(arena_hooks(foreign, &err) == ours);
    CHECK(hk_attach(foreign) == 0); /* again: no change */
    CHECK(arena_hooks(foreign, &err) == ours);
    CHECK(hstat("stats.hooks.arenas") == arenas);
    void *fresh[NF];
    for (unsigned i = 0; i < NF; i++) {
        fresh[i] = je_mallocx(5 * MiB, MALLOCX_ARENA(foreign) | MALLOCX_TCACHE_NONE);
        CHECK(fresh[i] != NULL);
        page_fill(fresh[i], 5 * MiB, i + 50);
    }
    CHECK(hstat("stats.hooks.alloc_calls") > calls);
    CHECK(hstat("stats.hooks.arenas") == arenas + 1); /* this one drew on them */
    /* the blocks of before are jemalloc's mappings: freed and purged, every
     * hook call about them goes to the default hooks */
    uint64_t fwd = hstat("stats.hooks.forwarded_calls");
    for (unsigned i = 0; i < NF; i++) {
        CHECK(page_intact(old[i], 512 * KiB, i));
        je_dallocx(old[i], MALLOCX_TCACHE_NONE);
        CHECK(page_intact(fresh[i], 5 * MiB, i + 50));
        je_dallocx(fresh[i], MALLOCX_TCACHE_NONE);
    }
    char name[64];
    snprintf(name, sizeof name, "arena.%u.purge", foreign);
    CHECK(je_ctl(name, NULL, NULL, NULL, 0) == 0);
    CHECK(hstat("stats.hooks.forwarded_calls") > fwd);
    snprintf(name, sizeof name, "arena.%u.destroy", foreign);
    CHECK(je_ctl(name, NULL, NULL, NULL, 0) == 0);
    CHECK(hk_attach(5000) == EINVAL);
    printf("create: arenas %u (hak_arena_create), %u (arenas.create), %u (attached with "
           "%d blocks mapped before)\n", ind, plain, foreign, NF);
}

/* ---- fork ------------------------------------------------------------------ */

#define F_FORKS 24
#define F_OPS 300u
#define F_LIVE 60u

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned epoch;
    bool stop;
    _Atomic unsigned live;
} f_batch = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false, 0};

static uint64_t f_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t f_size(uint64_t r) {
    switch (r % 16) {
    case 0: return 256 * KiB + (r >> 8) % (2 * MiB);
    case 1: return 32 * KiB + (r >> 8) % (128 * KiB);
    default: return 8 + (r >> 8) % 4000;
    }
}

static void *f_worker(void *arg) {
    uint64_t rs = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    void *slot[64] = {0};
    for (unsigned done = 0;; done++) {
        pthread_mutex_lock(&f_batch.mu);
        while (f_batch.epoch == done && !f_batch.stop)
            pthread_cond_wait(&f_batch.cv, &f_batch.mu);
        bool go = f_batch.epoch != done;
        pthread_mutex_unlock(&f_batch.mu);
        if (!go)
            break;
        for (unsigned op = 0; op < F_OPS; op++) {
            if (op == F_LIVE)
                atomic_fetch_add(&f_batch.live, 1);
            uint64_t r = f_rand(&rs);
            unsigned i = (unsigned)(r % 64);
            if (slot[i]) {
                free(slot[i]);
                slot[i] = NULL;
            } else {
                size_t n = f_size(r >> 6);
                slot[i] = malloc(n);
                CHECK(slot[i] != NULL);
                memset(slot[i], 1, n < 256 ? n : 256);
            }
        }
    }
    for (int i = 0; i < 64; i++)
        free(slot[i]);
    return NULL;
}

static void *f_child_thread(void *arg) {
    void *p = malloc(100), *q = malloc(300 * KiB);
    CHECK(p && q);
    page_fill(q, 300 * KiB, 3);
    CHECK(page_intact(q, 300 * KiB, 3));
    free(p);
    free(q);
    return arg;
}

static void f_child(void *pre, size_t pre_n) {
    alarm(30); /* a deadlock after fork ends here */
    CHECK(page_intact(pre, pre_n, 9));
    free(pre);
    uint64_t rs = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull + 3;
    void *slot[64] = {0};
    size_t len[64];
    for (unsigned step = 0; step < 400; step++) {
        uint64_t r = f_rand(&rs);
        unsigned i = (unsigned)(r % 64);
        if (slot[i]) {
            CHECK(page_intact(slot[i], len[i], i));
            free(slot[i]);
            slot[i] = NULL;
        } else {
            len[i] = step == 17 ? 9 * MiB : f_size(r >> 6);
            slot[i] = malloc(len[i]);
            CHECK(slot[i] != NULL);
            page_fill(slot[i], len[i], i);
        }
    }
    pthread_t t;
    CHECK(pthread_create(&t, NULL, f_child_thread, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    for (int i = 0; i < 64; i++)
        free(slot[i]);
    _exit(0);
}

static void case_fork(void) {
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&th[i], NULL, f_worker, (void *)(uintptr_t)(i + 1)) == 0);
    for (unsigned f = 1; f <= F_FORKS; f++) {
        size_t pre_n = (f % 3 == 0) ? 9 * MiB : 200 * KiB;
        void *pre = malloc(pre_n);
        CHECK(pre != NULL);
        page_fill(pre, pre_n, 9);
        atomic_store(&f_batch.live, 0);
        pthread_mutex_lock(&f_batch.mu);
        f_batch.epoch = f;
        pthread_cond_broadcast(&f_batch.cv);
        pthread_mutex_unlock(&f_batch.mu);
        while (atomic_load(&f_batch.live) < 2)
            sched_yield();
        fflush(stdout);
        pid_t pid = fork(); /* both workers are inside their batch */
        CHECK(pid >= 0);
        if (pid == 0)
            f_child(pre, pre_n);
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "fork %u: child %s %d\n", f,
                    WIFEXITED(status) ? "exited with" : "killed by signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            exit(1);
        }
        CHECK(page_intact(pre, pre_n, 9));
        free(pre);
    }
    pthread_mutex_lock(&f_batch.mu);
    f_batch.stop = true;
    pthread_cond_broadcast(&f_batch.cv);
    pthread_mutex_unlock(&f_batch.mu);
    for (int i = 0; i < 2; i++)
        CHECK(pthread_join(th[i], NULL) == 0);
    printf("fork: %d children exited cleanly\n", F_FORKS);
}

static void *bg_idle(void *arg) { return arg; }

static void case_bgthread(bool want) {
    void *blocks[64];
    for (int i = 0; i < 64; i++) /* large blocks: extents from the hooks */
        blocks[i] = malloc((size_t)(i + 1) << 16);
    for (int i = 0; i < 64; i++)
        free(blocks[i]);
    uint64_t before = hstat("stats.page_arena.background.running");
    if (before != 0) {
        fprintf(stderr, "je_pagearena: background thread running before any pthread_create\n");
        exit(1);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, bg_idle, NULL) != 0 || pthread_join(t, NULL) != 0) {
        fprintf(stderr, "je_pagearena: pthread_create failed\n");
        exit(1);
    }
    uint64_t after = hstat("stats.page_arena.background.running");
    if (after != (want ? 1 : 0)) {
        fprintf(stderr, "je_pagearena: background.running %llu after pthread_create, want %d\n",
                (unsigned long long)after, want ? 1 : 0);
        exit(1);
    }
    printf("je_pagearena: background thread %s after the first pthread_create\n",
           want ? "started" : "not started");
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "bgthread") &&
        (!strcmp(argv[2], "on") || !strcmp(argv[2], "off"))) {
        setup();
        case_bgthread(!strcmp(argv[2], "on"));
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr,
                "usage: je_pagearena surface|arenas64|alloc_calls|create|fork|bgthread on|off\n");
        return 2;
    }
    setup();
    if (!strcmp(argv[1], "surface"))
        case_surface();
    else if (!strcmp(argv[1], "arenas64"))
        case_arenas64();
    else if (!strcmp(argv[1], "alloc_calls"))
        case_alloc_calls();
    else if (!strcmp(argv[1], "create"))
        case_create();
    else if (!strcmp(argv[1], "fork"))
        case_fork();
    else {
        fprintf(stderr, "je_pagearena: unknown case '%s'\n", argv[1]);
        return 2;
    }
    return 0;
}
