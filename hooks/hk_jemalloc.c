/* hk_jemalloc.c - owns the jemalloc route of the combined library:
 * HAKMEM_MODE, the hooked arenas (the large arena of pools mode, the
 * per-thread arenas of jemalloc mode and arena 0 in that mode), each
 * thread's binding and mallocx/dallocx flags, every call into jemalloc
 * (mallocx/dallocx/rallocx/sallocx/xallocx/mallctl, and jemalloc's own malloc
 * and free once a thread is bound in jemalloc mode), the registry checks of
 * pools mode (hk_large.c), the counters of blocks sent to jemalloc, and
 * jemalloc's options in this library (malloc_conf).
 *
 * jemalloc is never asked about a pointer it does not own, and never entered
 * twice on a thread (hk_je_tl.in_je). */
#define _GNU_SOURCE
#include "hooks/hk_jemalloc.h"

#include <dlfcn.h>
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "arena/options.h"
#include "hakmem.h"
#include "hooks/hk_large.h"

#define HK_JE_ARENAS_MAX 64

__thread hk_je_thread hk_je_tl __attribute__((tls_model("initial-exec")));
_Atomic(hk_je_malloc_fn) hk_je_plain_malloc;
_Atomic(hk_je_free_fn) hk_je_plain_free;
atomic_int hk_je_mode_state;

static _Atomic unsigned large_arena; /* 0: not made yet (index + 1) */
static _Atomic unsigned je_arenas[HK_JE_ARENAS_MAX];
static _Atomic unsigned je_next;

bool hk_je_mode_slow(void) {
    hak_options_init();
    int m = hak_opt(OPT_MODE) == MODE_JEMALLOC ? 2 : 1;
    atomic_store_explicit(&hk_je_mode_state, m, memory_order_relaxed);
    return m == 2;
}

/* ---- counters -------------------------------------------------------------- */

/* Per thread, written by that thread only (no atomic read-modify-write on
 * the path), summed on demand over the list of live threads plus what
 * exited threads left. */
static hk_je_thread *cnt_list;
static pa_lock_t cnt_lock;
static uint64_t cnt_retired_nmalloc, cnt_retired_nfree;
static pthread_key_t cnt_key;
static pthread_once_t cnt_once = PTHREAD_ONCE_INIT;

static void cnt_unlink(void *unused) {
    hk_je_thread *t = &hk_je_tl;
    pa_lock(&cnt_lock);
    cnt_retired_nmalloc += atomic_load_explicit(&t->nmalloc, memory_order_relaxed);
    cnt_retired_nfree += atomic_load_explicit(&t->nfree, memory_order_relaxed);
    if (t->prev)
        t->prev->next = t->next;
    else
        cnt_list = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pa_unlock(&cnt_lock);
    /* Counted; never relinked. */
    atomic_store_explicit(&t->nmalloc, 0, memory_order_relaxed);
    atomic_store_explicit(&t->nfree, 0, memory_order_relaxed);
    t->next = t->prev = NULL;
}

static void cnt_fork_child(void) {
    if (pa_lock_reset(&cnt_lock)) { /* half-updated: keep only this thread */
        cnt_list = hk_je_tl.linked ? &hk_je_tl : NULL;
        hk_je_tl.next = hk_je_tl.prev = NULL;
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
    hk_je_tl.linked = true;
    hk_je_tl.prev = NULL;
    hk_je_tl.next = cnt_list;
    if (cnt_list)
        cnt_list->prev = &hk_je_tl;
    cnt_list = &hk_je_tl;
    pa_unlock(&cnt_lock);
    pthread_setspecific(cnt_key, &hk_je_tl);
}

void hk_je_stats(uint64_t *nmalloc, uint64_t *nfree) {
    pa_lock(&cnt_lock);
    *nmalloc = cnt_retired_nmalloc;
    *nfree = cnt_retired_nfree;
    for (hk_je_thread *c = cnt_list; c; c = c->next) {
        *nmalloc += atomic_load_explicit(&c->nmalloc, memory_order_relaxed);
        *nfree += atomic_load_explicit(&c->nfree, memory_order_relaxed);
    }
    pa_unlock(&cnt_lock);
}

/* ---- arenas and the thread's binding ---------------------------------------- */

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

void hk_je_background_on(void) {
    bool on = true;
    /* Outside in_je: jemalloc creates its threads with its reentrancy
     * guard raised and expects pthread_create's allocations to come back
     * to it, which they do in this mode. */
    mallctl("background_thread", NULL, NULL, &on, sizeof on);
}

/* Choose this thread's jemalloc flags once.  Pools mode: the one hooked
 * large arena, no thread cache (sizes above 2 MiB never use it).  jemalloc
 * mode: bind the thread (thread.arena) to one of as many hooked arenas as
 * jemalloc has automatic ones, and keep jemalloc's own thread cache and fast
 * paths (flags 0); the binding comes before this thread's first allocation,
 * so its cache only ever holds blocks of that arena. */
static void je_choose(void) {
    hk_je_tl.in_je++;
    hk_je_tl.alloc_flags = 0;
    hk_je_tl.free_flags = MALLOCX_TCACHE_NONE;
    if (!hk_je_mode()) {
        unsigned a = make_arena(&large_arena);
        if (a != UINT32_MAX)
            hk_je_tl.alloc_flags = MALLOCX_ARENA(a) | MALLOCX_TCACHE_NONE;
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
                hk_je_tl.free_flags = 0;
            else
                hk_je_tl.alloc_flags = MALLOCX_ARENA(a) | MALLOCX_TCACHE_NONE;
        }
    }
    hk_je_tl.chosen = true;
    hk_je_tl.in_je--;
    /* After in_je: these may call malloc, which then goes to jemalloc too. */
    if (!hk_je_tl.linked)
        cnt_link();
    /* jemalloc's own malloc would bypass the guarded path: not with GUARD. */
    if (hk_je_mode() && !hak_opt(OPT_GUARD) && !atomic_load(&hk_je_plain_malloc)) {
        void *lib = dlopen("libjemalloc.so.2", RTLD_NOW | RTLD_NOLOAD);
        void *m = lib ? dlsym(lib, "malloc") : NULL, *f = lib ? dlsym(lib, "free") : NULL;
        if (m && f && m != (void *)malloc) {
            atomic_store_explicit(&hk_je_plain_free, (hk_je_free_fn)f, memory_order_relaxed);
            atomic_store_explicit(&hk_je_plain_malloc, (hk_je_malloc_fn)m, memory_order_release);
        }
    }
}

static int je_flags(void) {
    if (PA_UNLIKELY(!hk_je_tl.chosen))
        je_choose();
    return hk_je_tl.alloc_flags;
}

static int je_free_flags(void) {
    if (PA_UNLIKELY(!hk_je_tl.chosen))
        je_choose();
    return hk_je_tl.free_flags;
}

/* ---- blocks ---------------------------------------------------------------- */

/* Blocks above 2 MiB start on a page, as mimalloc's and tcmalloc's do:
 * jemalloc otherwise places each large block at a random cache-line offset
 * inside an extra page, and a loop that touches such a block page by page
 * ran 1.4x slower (large_blocks: 0.30-0.36 s against 0.19-0.26 s). */
static size_t big_align(size_t n, size_t align) {
    return n > L25_MAX && align < PA_PAGE ? PA_PAGE : align;
}

static void je_dalloc(void *p) {
    int flags = je_free_flags();
    hk_je_tl.in_je++;
    hk_je_free_fn plain = atomic_load_explicit(&hk_je_plain_free, memory_order_acquire);
    if (!flags && plain)
        plain(p);
    else
        dallocx(p, flags);
    hk_je_tl.in_je--;
}

void *hk_je_alloc(size_t n, size_t align, bool zero) {
    if (n > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    int flags = je_flags();
    if (!flags && !hk_je_mode()) { /* no arena could be made */
        errno = ENOMEM;
        return NULL;
    }
    if (align > 16 || n > L25_MAX)
        flags |= MALLOCX_ALIGN(big_align(n, align));
    if (zero)
        flags |= MALLOCX_ZERO;
    hk_je_tl.in_je++;
    hk_je_malloc_fn plain = atomic_load_explicit(&hk_je_plain_malloc, memory_order_acquire);
    void *p = !flags && plain ? plain(n) : mallocx(n ? n : 1, flags);
    hk_je_tl.in_je--;
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    /* jemalloc mode: every size, no registry. */
    if (!hk_je_mode() && !hk_large_add(p)) { /* cannot track it: refuse, lose nothing */
        je_dalloc(p);
        errno = ENOMEM;
        return NULL;
    }
    pool_count(&hk_je_tl.nmalloc);
    return p;
}

/* In pools mode every block sent to jemalloc is registered; in jemalloc mode
 * there is no registry (speed), and the page map's word is taken. */
static const char *je_lookup(const void *p, bool take) {
    hk_large_state st = hk_je_mode() ? HK_LARGE_LIVE : hk_large_find(p, take);
    if (st == HK_LARGE_LIVE)
        return NULL;
    return st == HK_LARGE_FREED ? "double free" : "invalid pointer";
}

const char *hk_je_check(const void *p) { return je_lookup(p, false); }

const char *hk_je_free(void *p) {
    const char *fault = je_lookup(p, true);
    if (fault)
        return fault;
    je_dalloc(p);
    pool_count(&hk_je_tl.nfree);
    return NULL;
}

size_t hk_je_size(const void *p) {
    hk_je_tl.in_je++;
    size_t n = sallocx((void *)p, 0);
    hk_je_tl.in_je--;
    return n;
}

bool hk_je_resize(void *p, size_t n, void **out) {
    if (!n || n > PTRDIFF_MAX || !hk_je_wants(n))
        return false;
    int flags = je_flags();
    if (n > L25_MAX)
        flags |= MALLOCX_ALIGN(big_align(n, 0));
    hk_je_tl.in_je++;
    void *q = NULL;
    if (hk_je_mode())
        q = rallocx(p, n, flags);
    else if (xallocx(p, n, 0, flags) >= n) /* in place: registry unchanged */
        q = p;
    hk_je_tl.in_je--;
    if (!q && !hk_je_mode())
        return false;
    if (!q)
        errno = ENOMEM;
    *out = q;
    return true;
}

/* jemalloc's options in the combined library (MALLOC_CONF still applies on
 * top of them): retain off.  With retain on, jemalloc asks the hooks for
 * page-size classes (a large block's extent is one pad page over its class,
 * so the next class up) and keeps the difference as "retained" address space
 * that it never gives back; with it off, the hooks get exact extents, take
 * freed ones back into the PageArena, and hand them to the next request. */
__attribute__((visibility("default"))) const char *malloc_conf = "retain:false";
