/* hk_malloc.c - owns the slow paths of the combined library's malloc front:
 * routing by size (pools, or a jemalloc arena on the PageArena hooks above
 * 2 MiB or for alignments the pools cannot serve), HAKMEM_MODE=jemalloc
 * (every size to hooked arenas, each thread bound to one), free and
 * realloc owner lookup through the page map, the bad-input policy
 * (docs/DESIGN.md, Bad input), guarded blocks when HAKMEM_GUARD=1
 * (hk_guard.c), thread exit, and HAKMEM_STATS at exit.
 *
 * jemalloc is reached through mallocx/dallocx/rallocx/sallocx/xallocx/mallctl,
 * and in jemalloc mode, once the thread is bound to a hooked arena, through
 * jemalloc's own malloc and free (their fast paths; mallocx has none),
 * never asked about a pointer it does not own, and never entered twice on a
 * thread: a malloc arriving from inside jemalloc is served by the pools. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena/options.h"
#include "hakmem.h"
#include "hooks/hk_extent.h"
#include "hooks/hk_front.h"
#include "hooks/hk_guard.h"
#include "hooks/hk_large.h"

#define HK_JE_ARENAS_MAX 64

static _Atomic unsigned large_arena;      /* 0: not made yet (index + 1) */
static _Atomic unsigned je_arenas[HK_JE_ARENAS_MAX];
static _Atomic unsigned je_next;
/* jemalloc's own malloc and free (ours shadow them): found in its object. */
typedef void *(*hk_malloc_fn)(size_t);
typedef void (*hk_free_fn)(void *);
static _Atomic(hk_malloc_fn) je_plain_malloc; /* set last, read first */
static _Atomic(hk_free_fn) je_plain_free;

/* Counts of blocks sent to jemalloc: per thread, written by that thread only
 * (no atomic read-modify-write on the path), summed on demand over a list of
 * live threads plus what exited threads left. */
typedef struct hk_counter {
    _Atomic uint64_t nmalloc, nfree;
    struct hk_counter *next, *prev;
    bool linked;
} hk_counter;
static __thread hk_counter hk_cnt __attribute__((tls_model("initial-exec")));
static hk_counter *cnt_list;
static pa_lock_t cnt_lock;
static uint64_t cnt_retired_nmalloc, cnt_retired_nfree;
static pthread_key_t cnt_key;
static pthread_once_t cnt_once = PTHREAD_ONCE_INIT;

static void cnt_unlink(void *unused) {
    pa_lock(&cnt_lock);
    cnt_retired_nmalloc += atomic_load_explicit(&hk_cnt.nmalloc, memory_order_relaxed);
    cnt_retired_nfree += atomic_load_explicit(&hk_cnt.nfree, memory_order_relaxed);
    if (hk_cnt.prev)
        hk_cnt.prev->next = hk_cnt.next;
    else
        cnt_list = hk_cnt.next;
    if (hk_cnt.next)
        hk_cnt.next->prev = hk_cnt.prev;
    pa_unlock(&cnt_lock);
    hk_cnt = (hk_counter){.linked = true}; /* counted; never relinked */
}

static void cnt_fork_child(void) {
    if (pa_lock_reset(&cnt_lock)) { /* half-updated: keep only this thread */
        cnt_list = hk_cnt.linked ? &hk_cnt : NULL;
        hk_cnt.next = hk_cnt.prev = NULL;
    }
}

static void cnt_init(void) {
    pthread_key_create(&cnt_key, cnt_unlink);
    pthread_atfork(NULL, NULL, cnt_fork_child);
}

/* Put this thread's counters on the list (first jemalloc use). */
static void cnt_link(void) {
    pthread_once(&cnt_once, cnt_init);
    pa_lock(&cnt_lock);
    hk_cnt.linked = true;
    hk_cnt.prev = NULL;
    hk_cnt.next = cnt_list;
    if (cnt_list)
        cnt_list->prev = &hk_cnt;
    cnt_list = &hk_cnt;
    pa_unlock(&cnt_lock);
    pthread_setspecific(cnt_key, &hk_cnt);
}

static __thread struct {
    int in_je;         /* inside a jemalloc call on this thread */
    bool chosen;       /* flags below are set */
    int alloc_flags;   /* mallocx flags of this thread */
    int free_flags;    /* dallocx flags of this thread */
} hk_tl __attribute__((tls_model("initial-exec")));

/* ---- bad input ------------------------------------------------------------- */

static void report_kind(const char *fn, const void *p, pool_ptr_kind k) {
    hak_misuse(fn, p, k == POOL_PTR_DOUBLE ? "double free" : "invalid pointer");
}

/* ---- jemalloc route -------------------------------------------------------- */

static bool jemalloc_mode(void) {
    static atomic_int mode; /* 0 unknown, 1 pools, 2 jemalloc: read once */
    int m = atomic_load_explicit(&mode, memory_order_relaxed);
    if (PA_UNLIKELY(!m)) {
        hak_options_init();
        m = hak_opt(OPT_MODE) == MODE_JEMALLOC ? 2 : 1;
        atomic_store_explicit(&mode, m, memory_order_relaxed);
    }
    return m == 2;
}

static unsigned make_arena(_Atomic unsigned *slot) {
    unsigned ind = atomic_load(slot);
    if (ind)
        return ind - 1;
    if (hak_arena_create(&ind) != 0)
        return UINT32_MAX;
    if (slot == &large_arena) {
        /* Freed large blocks go straight back to the PageArena, the one
         * cache the pools share, instead of a second dirty cache here. */
        char name[64];
        ssize_t ms = 0;
        snprintf(name, sizeof name, "arena.%u.dirty_decay_ms", ind);
        mallctl(name, NULL, NULL, &ms, sizeof ms);
    }
    unsigned expect = 0;
    if (!atomic_compare_exchange_strong(slot, &expect, ind + 1))
        return expect - 1; /* another thread made one first; ours stays idle */
    return ind;
}

/* Choose this thread's jemalloc flags once.  Pools mode: the one hooked
 * large arena, no thread cache (sizes above 2 MiB never use it).  jemalloc
 * mode: bind the thread (thread.arena) to one of as many hooked arenas as
 * jemalloc has automatic ones, and keep jemalloc's own thread cache and fast
 * paths (flags 0); the binding comes before this thread's first allocation,
 * so its cache only ever holds blocks of that arena. */
static void je_choose(void) {
    hk_tl.in_je++;
    hk_tl.alloc_flags = 0;
    hk_tl.free_flags = MALLOCX_TCACHE_NONE;
    if (!jemalloc_mode()) {
        unsigned a = make_arena(&large_arena);
        if (a != UINT32_MAX)
            hk_tl.alloc_flags = MALLOCX_ARENA(a) | MALLOCX_TCACHE_NONE;
    } else {
        /* jemalloc keeps its own metadata in arena 0 (each new thread's
         * cache among it): that arena draws on the PageArena too. */
        static atomic_bool arena0_attached;
        if (!atomic_exchange(&arena0_attached, true))
            hak_arena_attach(0);
        unsigned n = 0;
        size_t sz = sizeof n;
        if (mallctl("opt.narenas", &n, &sz, NULL, 0) != 0 || n == 0)
            n = 4;
        if (n > HK_JE_ARENAS_MAX)
            n = HK_JE_ARENAS_MAX;
        unsigned a = make_arena(&je_arenas[atomic_fetch_add(&je_next, 1) % n]);
        if (a != UINT32_MAX) {
            if (mallctl("thread.arena", NULL, NULL, &a, sizeof a) == 0)
                hk_tl.free_flags = 0;
            else
                hk_tl.alloc_flags = MALLOCX_ARENA(a) | MALLOCX_TCACHE_NONE;
        }
    }
    hk_tl.chosen = true;
    hk_tl.in_je--;
    /* After in_je: these may call malloc, which then goes to jemalloc too. */
    if (!hk_cnt.linked)
        cnt_link();
    /* jemalloc's own malloc would bypass the guarded path: not with GUARD. */
    if (jemalloc_mode() && !hak_opt(OPT_GUARD) && !atomic_load(&je_plain_malloc)) {
        void *lib = dlopen("libjemalloc.so.2", RTLD_NOW | RTLD_NOLOAD);
        void *m = lib ? dlsym(lib, "malloc") : NULL, *f = lib ? dlsym(lib, "free") : NULL;
        if (m && f && m != (void *)malloc) {
            atomic_store_explicit(&je_plain_free, (hk_free_fn)f, memory_order_relaxed);
            atomic_store_explicit(&je_plain_malloc, (hk_malloc_fn)m, memory_order_release);
        }
    }
}

static int je_flags(void) {
    if (PA_UNLIKELY(!hk_tl.chosen))
        je_choose();
    return hk_tl.alloc_flags;
}

static int je_free_flags(void) {
    if (PA_UNLIKELY(!hk_tl.chosen))
        je_choose();
    return hk_tl.free_flags;
}

/* Blocks above 2 MiB start on a page, as mimalloc's and tcmalloc's do:
 * jemalloc otherwise places each large block at a random cache-line offset
 * inside an extra page, and a loop that touches such a block page by page
 * ran 1.4x slower (large_blocks: 0.30-0.36 s against 0.19-0.26 s). */
static size_t big_align(size_t n, size_t align) {
    return n > L25_MAX && align < PA_PAGE ? PA_PAGE : align;
}

static void *je_alloc(size_t n, size_t align, bool zero) {
    if (n > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    if (hk_guard_wants(n))
        return hk_guard_alloc(n, align, zero);
    int flags = je_flags();
    if (!flags && !jemalloc_mode()) { /* no arena could be made */
        errno = ENOMEM;
        return NULL;
    }
    if (align > 16 || n > L25_MAX)
        flags |= MALLOCX_ALIGN(big_align(n, align));
    if (zero)
        flags |= MALLOCX_ZERO;
    hk_tl.in_je++;
    hk_malloc_fn plain = atomic_load_explicit(&je_plain_malloc, memory_order_acquire);
    void *p = !flags && plain ? plain(n) : mallocx(n ? n : 1, flags);
    hk_tl.in_je--;
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    if (jemalloc_mode()) { /* every size: no registry */
        pool_count(&hk_cnt.nmalloc);
        return p;
    }
    if (!hk_large_add(p)) { /* cannot track it: refuse, lose nothing */
        hk_tl.in_je++;
        dallocx(p, je_free_flags());
        hk_tl.in_je--;
        errno = ENOMEM;
        return NULL;
    }
    pool_count(&hk_cnt.nmalloc);
    return p;
}

/* Is p a block jemalloc may be asked about?  In pools mode every block sent
 * to jemalloc is registered; in jemalloc mode there is no registry (speed),
 * and the page map's word is taken. */
static hk_large_state je_lookup(const void *p, bool take) {
    return jemalloc_mode() ? HK_LARGE_LIVE : hk_large_find(p, take);
}

static void je_free(void *p) {
    int flags = je_free_flags();
    hk_tl.in_je++;
    hk_free_fn plain = atomic_load_explicit(&je_plain_free, memory_order_acquire);
    if (!flags && plain)
        plain(p);
    else
        dallocx(p, flags);
    hk_tl.in_je--;
    pool_count(&hk_cnt.nfree);
}

static size_t je_size(const void *p) {
    hk_tl.in_je++;
    size_t n = sallocx((void *)p, 0);
    hk_tl.in_je--;
    return n;
}

/* Should an allocation of n bytes go to jemalloc? */
static bool to_jemalloc(size_t n) {
    return n > L25_MAX || (hk_tl.in_je == 0 && jemalloc_mode());
}

/* ---- malloc family --------------------------------------------------------- */

/* jemalloc mode, thread bound: straight to jemalloc's own fast paths. */
static inline bool je_direct(void) {
    return hk_tl.chosen && !hk_tl.in_je && !hk_tl.alloc_flags &&
           atomic_load_explicit(&je_plain_malloc, memory_order_acquire);
}

static HK_NOINLINE void *malloc_routed(size_t n);

void *hk_malloc_slow(size_t n) {
    if (je_direct() && n <= L25_MAX) {
        hk_tl.in_je = 1;
        void *p = atomic_load_explicit(&je_plain_malloc, memory_order_relaxed)(n); /* sets errno */
        hk_tl.in_je = 0;
        pool_count(&hk_cnt.nmalloc);
        return p;
    }
    return malloc_routed(n);
}

static void *malloc_routed(size_t n) {
    if (hk_guard_wants(n)) /* L25 sizes: the pools' L25 classes stay empty */
        return hk_guard_alloc(n, 16, false);
    if (to_jemalloc(n))
        return je_alloc(n, 0, false);
    void *p = pool_malloc_slow(n);
    if (!p)
        errno = ENOMEM;
    else if (hk_tl.in_je && jemalloc_mode())
        pool_thread_exit(); /* a malloc from inside jemalloc, served by the
                             * pools; leave the fast path off in this mode */
    return p;
}

static HK_NOINLINE void free_routed(void *p, const pa_desc *d, const char *fn);

void hk_free_slow(void *p, const pa_desc *d, const char *fn) {
    if (d && d->kind == PA_KIND_JE && je_direct()) {
        hk_tl.in_je = 1;
        atomic_load_explicit(&je_plain_free, memory_order_relaxed)(p);
        hk_tl.in_je = 0;
        pool_count(&hk_cnt.nfree);
        return;
    }
    free_routed(p, d, fn);
}

static void free_routed(void *p, const pa_desc *d, const char *fn) {
    if (!p)
        return;
    if (d && d->kind == PA_KIND_SLAB) {
        pool_ptr_kind k = pool_free_slow(p);
        if (k != POOL_PTR_OK)
            report_kind(fn, p, k);
        return;
    }
    if (d && d->kind == PA_KIND_JE) {
        hk_large_state st = je_lookup(p, true);
        if (st == HK_LARGE_LIVE)
            je_free(p);
        else
            hak_misuse(fn, p, st == HK_LARGE_FREED ? "double free" : "invalid pointer");
        return;
    }
    if (d && d->kind == PA_KIND_GUARD) {
        const char *fault = hk_guard_free(p, d);
        if (fault)
            hak_misuse(fn, p, fault);
        return;
    }
    /* A page the PageArena took back was freed before. */
    hak_misuse(fn, p, d && d->kind == PA_KIND_CACHED ? "double free" : "invalid pointer");
}

void *hk_calloc(size_t n, size_t m) {
    size_t total;
    if (__builtin_mul_overflow(n, m, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (to_jemalloc(total))
        return je_alloc(total, 0, true);
    void *p = hk_malloc(total);
    if (p)
        memset(p, 0, total);
    return p;
}

size_t hk_usable_size(const void *p) {
    if (!p)
        return 0;
    const pa_desc *d = pa_pagemap_get(p);
    if (d && d->kind == PA_KIND_SLAB)
        return pool_check(p) == POOL_PTR_OK ? pool_usable_size(p) : 0;
    if (d && d->kind == PA_KIND_JE && je_lookup(p, false) == HK_LARGE_LIVE)
        return je_size(p);
    if (d && d->kind == PA_KIND_GUARD)
        return hk_guard_usable(p, d);
    return 0;
}

void *hk_realloc(void *p, size_t n) {
    if (!p)
        return hk_malloc(n);
    const pa_desc *d = pa_pagemap_get(p);
    size_t old;
    if (d && d->kind == PA_KIND_SLAB) {
        pool_ptr_kind k = pool_check(p);
        if (k != POOL_PTR_OK) {
            report_kind("realloc", p, k);
            errno = EINVAL;
            return NULL;
        }
        old = pool_usable_size(p);
        /* Same class: keep the block. */
        if (n && n <= L25_MAX && !to_jemalloc(n) &&
            pool_classes[pool_class_of(n)].size == old)
            return p;
    } else if (d && d->kind == PA_KIND_JE) {
        hk_large_state st = je_lookup(p, false);
        if (st != HK_LARGE_LIVE) {
            hak_misuse("realloc", p, st == HK_LARGE_FREED ? "double free" : "invalid pointer");
            errno = EINVAL;
            return NULL;
        }
        old = je_size(p);
        if (n && n <= PTRDIFF_MAX && to_jemalloc(n)) {
            int flags = je_flags();
            if (n > L25_MAX)
                flags |= MALLOCX_ALIGN(big_align(n, 0));
            hk_tl.in_je++;
            void *q = NULL;
            if (jemalloc_mode())
                q = rallocx(p, n, flags);
            else if (xallocx(p, n, 0, flags) >= n) /* in place: registry unchanged */
                q = p;
            hk_tl.in_je--;
            if (q || jemalloc_mode()) {
                if (!q)
                    errno = ENOMEM;
                return q;
            }
        }
    } else if (d && d->kind == PA_KIND_GUARD) {
        old = hk_guard_usable(p, d);
        if (!old) {
            hak_misuse("realloc", p, "invalid pointer");
            errno = EINVAL;
            return NULL;
        }
    } else {
        hak_misuse("realloc", p, d && d->kind == PA_KIND_CACHED ? "double free" : "invalid pointer");
        errno = EINVAL;
        return NULL;
    }
    if (n == 0) { /* glibc: free and return NULL */
        hk_free(p);
        return NULL;
    }
    void *q = hk_malloc(n);
    if (!q)
        return NULL; /* the old block is untouched */
    memcpy(q, p, old < n ? old : n);
    hk_free(p);
    return q;
}

void *hk_reallocarray(void *p, size_t n, size_t m) {
    size_t total;
    if (__builtin_mul_overflow(n, m, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return hk_realloc(p, total);
}

static void *aligned(size_t align, size_t n) {
    if (align <= 16)
        return hk_malloc(n);
    if (!to_jemalloc(n)) {
        size_t sz = pool_aligned_size(n, align);
        if (sz && hk_guard_wants(sz)) /* an L25 class: guarded, aligned */
            return hk_guard_alloc(n, align, false);
        if (sz)
            return hk_malloc(sz);
    }
    return je_alloc(n, align, false); /* guarded above 64 KiB */
}

int hk_posix_memalign(void **out, size_t align, size_t n) {
    if (align < sizeof(void *) || (align & (align - 1)))
        return EINVAL;
    int saved = errno;
    void *p = aligned(align, n);
    if (!p) {
        errno = saved;
        return ENOMEM;
    }
    *out = p;
    return 0;
}

void *hk_memalign(size_t align, size_t n) {
    if (align == 0 || (align & (align - 1))) {
        errno = EINVAL;
        return NULL;
    }
    return aligned(align, n);
}

void *hk_valloc(size_t n) { return hk_memalign(PA_PAGE, n); }

void *hk_pvalloc(size_t n) {
    size_t r = (n + PA_PAGE - 1) & ~(PA_PAGE - 1);
    if (r < n) {
        errno = ENOMEM;
        return NULL;
    }
    return hk_memalign(PA_PAGE, r ? r : PA_PAGE);
}

/* ---- statistics and lifecycle ---------------------------------------------- */

void hk_large_stats(uint64_t *nmalloc, uint64_t *nfree) {
    pa_lock(&cnt_lock);
    *nmalloc = cnt_retired_nmalloc;
    *nfree = cnt_retired_nfree;
    for (hk_counter *c = cnt_list; c; c = c->next) {
        *nmalloc += atomic_load_explicit(&c->nmalloc, memory_order_relaxed);
        *nfree += atomic_load_explicit(&c->nfree, memory_order_relaxed);
    }
    pa_unlock(&cnt_lock);
}

static void write_stderr(void *unused, const char *s) {
    ssize_t r = write(2, s, strlen(s));
    (void)r;
}

__attribute__((constructor)) static void hk_ctor(void) {
    hak_options_init(); /* malformed HAKMEM_* values are reported now */
    pa_init();
}

__attribute__((destructor)) static void hk_dtor(void) {
    uint64_t s = hak_opt(OPT_STATS);
    if (s != STATS_OFF)
        hak_stats_print(write_stderr, NULL, s == STATS_JSON ? "J" : "");
}


/* jemalloc's options in the combined library (MALLOC_CONF still applies on
 * top of them): retain off.  With retain on, jemalloc asks the hooks for
 * page-size classes (a large block's extent is one pad page over its class,
 * so the next class up) and keeps the difference as "retained" address space
 * that it never gives back; with it off, the hooks get exact extents, take
 * freed ones back into the PageArena, and hand them to the next request. */
__attribute__((visibility("default"))) const char *malloc_conf = "retain:false";
