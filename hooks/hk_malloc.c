/* hk_malloc.c - owns the slow paths of the combined library's malloc front:
 * routing by size (pools, or a jemalloc arena on the PageArena hooks above
 * 2 MiB or for alignments the pools cannot serve), HAKMEM_MODE=jemalloc
 * (every size to hooked arenas with per-thread private tcaches), free and
 * realloc owner lookup through the page map, the bad-input policy
 * (DESIGN.md §8), thread exit, and HAKMEM_STATS at exit.
 *
 * jemalloc is reached only through mallocx/dallocx/rallocx/sallocx/mallctl,
 * never asked about a pointer it does not own, and never entered twice on a
 * thread: a malloc arriving from inside jemalloc is served by the pools. */
#define _GNU_SOURCE
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena/options.h"
#include "hakmem.h"
#include "hooks/hk_extent.h"
#include "hooks/hk_front.h"
#include "hooks/hk_large.h"

#define HK_JE_ARENAS 8

static _Atomic unsigned large_arena;      /* 0: not made yet (index + 1) */
static _Atomic unsigned je_arenas[HK_JE_ARENAS];
static _Atomic unsigned je_next;
static pthread_key_t je_key;
static atomic_int je_key_state;
static _Atomic uint64_t large_nmalloc, large_nfree;

static __thread struct {
    int in_je;      /* inside a jemalloc call on this thread */
    int flags;      /* MALLOCX_ARENA | MALLOCX_TCACHE, 0 = not chosen */
    unsigned tcache;
    bool has_tcache;
} hk_tl __attribute__((tls_model("initial-exec")));

/* ---- bad input ------------------------------------------------------------- */

static void report(const char *fn, const void *p, const char *fault) {
    pa_msg m = {.n = 0};
    pa_msg_str(&m, "hakmem: ");
    pa_msg_str(&m, fn);
    pa_msg_str(&m, "(");
    pa_msg_ptr(&m, p);
    pa_msg_str(&m, "): ");
    pa_msg_str(&m, fault);
    pa_msg_emit(&m);
    if (hak_opt(OPT_ON_ERROR) != ON_ERROR_WARN)
        abort();
}

static void report_kind(const char *fn, const void *p, pool_ptr_kind k) {
    report(fn, p, k == POOL_PTR_DOUBLE ? "double free" : "invalid pointer");
}

/* ---- jemalloc route -------------------------------------------------------- */

static bool jemalloc_mode(void) {
    hak_options_init();
    return hak_opt(OPT_MODE) == MODE_JEMALLOC;
}

static unsigned make_arena(_Atomic unsigned *slot) {
    unsigned ind = atomic_load(slot);
    if (ind)
        return ind - 1;
    if (hak_arena_create(&ind) != 0)
        return UINT32_MAX;
    unsigned expect = 0;
    if (!atomic_compare_exchange_strong(slot, &expect, ind + 1))
        return expect - 1; /* another thread made one first; ours stays idle */
    return ind;
}

static void je_thread_exit(void *unused) {
    if (hk_tl.has_tcache) {
        hk_tl.in_je++;
        mallctl("tcache.destroy", NULL, NULL, &hk_tl.tcache, sizeof hk_tl.tcache);
        hk_tl.in_je--;
        hk_tl.has_tcache = false;
    }
    hk_tl.flags = 0;
}

/* This thread's mallocx flags: the large arena without a tcache, or in
 * jemalloc mode one of HK_JE_ARENAS hooked arenas with a private tcache. */
static int je_flags(void) {
    if (PA_LIKELY(hk_tl.flags))
        return hk_tl.flags;
    hk_tl.in_je++;
    int flags = 0;
    if (!jemalloc_mode()) {
        unsigned a = make_arena(&large_arena);
        if (a != UINT32_MAX)
            flags = MALLOCX_ARENA(a) | MALLOCX_TCACHE_NONE;
    } else {
        unsigned i = atomic_fetch_add(&je_next, 1) % HK_JE_ARENAS;
        unsigned a = make_arena(&je_arenas[i]);
        size_t sz = sizeof hk_tl.tcache;
        if (a != UINT32_MAX) {
            flags = MALLOCX_ARENA(a) | MALLOCX_TCACHE_NONE;
            int expect = 0;
            if (atomic_compare_exchange_strong(&je_key_state, &expect, 1))
                pthread_key_create(&je_key, je_thread_exit);
            if (mallctl("tcache.create", &hk_tl.tcache, &sz, NULL, 0) == 0) {
                hk_tl.has_tcache = true;
                flags = MALLOCX_ARENA(a) | MALLOCX_TCACHE(hk_tl.tcache);
            }
        }
    }
    hk_tl.flags = flags;
    hk_tl.in_je--;
    if (hk_tl.has_tcache) /* after in_je: setspecific may call malloc */
        pthread_setspecific(je_key, (void *)1);
    return flags;
}

static int je_free_flags(void) {
    return hk_tl.has_tcache ? MALLOCX_TCACHE(hk_tl.tcache) : MALLOCX_TCACHE_NONE;
}

static void *je_alloc(size_t n, size_t align, bool zero) {
    if (n > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    int flags = je_flags();
    if (!flags) {
        errno = ENOMEM;
        return NULL;
    }
    if (align > 16)
        flags |= MALLOCX_ALIGN(align);
    if (zero)
        flags |= MALLOCX_ZERO;
    hk_tl.in_je++;
    void *p = mallocx(n ? n : 1, flags);
    if (p && !jemalloc_mode() && !hk_large_add(p)) {
        dallocx(p, je_free_flags()); /* cannot track it: refuse, lose nothing */
        p = NULL;
    }
    hk_tl.in_je--;
    if (!p)
        errno = ENOMEM;
    else
        atomic_fetch_add_explicit(&large_nmalloc, 1, memory_order_relaxed);
    return p;
}

/* Is p a block jemalloc may be asked about?  In pools mode every block sent
 * to jemalloc is registered; in jemalloc mode there is no registry (speed),
 * and the page map's word is taken. */
static hk_large_state je_lookup(const void *p, bool take) {
    return jemalloc_mode() ? HK_LARGE_LIVE : hk_large_find(p, take);
}

static void je_free(void *p) {
    hk_tl.in_je++;
    dallocx(p, je_free_flags());
    hk_tl.in_je--;
    atomic_fetch_add_explicit(&large_nfree, 1, memory_order_relaxed);
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

void *hk_malloc_slow(size_t n) {
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

void hk_free_slow(void *p, const char *fn) {
    if (!p)
        return;
    const pa_desc *d = pa_pagemap_get(p);
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
            report(fn, p, st == HK_LARGE_FREED ? "double free" : "invalid pointer");
        return;
    }
    /* A page the PageArena took back was freed before. */
    report(fn, p, d && d->kind == PA_KIND_CACHED ? "double free" : "invalid pointer");
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
            report("realloc", p, st == HK_LARGE_FREED ? "double free" : "invalid pointer");
            errno = EINVAL;
            return NULL;
        }
        old = je_size(p);
        if (n && n <= PTRDIFF_MAX && to_jemalloc(n)) {
            int flags = je_flags();
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
    } else {
        report("realloc", p, d && d->kind == PA_KIND_CACHED ? "double free" : "invalid pointer");
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
        if (sz)
            return hk_malloc(sz);
    }
    return je_alloc(n, align, false);
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
    *nmalloc = atomic_load_explicit(&large_nmalloc, memory_order_relaxed);
    *nfree = atomic_load_explicit(&large_nfree, memory_order_relaxed);
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
