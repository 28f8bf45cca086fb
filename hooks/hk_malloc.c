/* hk_malloc.c - owns the slow paths of the combined library's malloc front:
 * routing by size and alignment (the pools up to 2 MiB, guarded blocks when
 * HAKMEM_GUARD=1 (hk_guard.c), the jemalloc route above 2 MiB, for
 * alignments the pools cannot serve and in HAKMEM_MODE=jemalloc
 * (hk_jemalloc.c)); the owner of a pointer, found once by free, realloc and
 * malloc_usable_size; the bad-input policy (options.h, hak_misuse; docs/DESIGN.md,
 * Bad input); and the front's start-up. */
#define _GNU_SOURCE
#include "hooks/hk_malloc.h"

#include <errno.h>
#include <string.h>

#include "arena/options.h"
#include "arena/pa_background.h"
#include "hooks/hk_guard.h"
#include "hooks/hk_jemalloc.h"

/* ---- the owner of a pointer ------------------------------------------------ */

typedef enum { OWNER_POOL, OWNER_JE, OWNER_GUARD, OWNER_NONE } owner_kind;

/* What the page map says about a pointer, and with a check, what its owner
 * says: whether p starts a live block there, and its usable size. */
typedef struct owner {
    owner_kind kind;
    size_t size;        /* checked: usable bytes at p */
    const char *fault;  /* OWNER_NONE: "invalid pointer" or "double free" */
} owner;

static const char *pool_fault(pool_ptr_kind k) {
    if (k == POOL_PTR_OK)
        return NULL;
    return k == POOL_PTR_DOUBLE ? "double free" : "invalid pointer";
}

/* The owner of p, whose page maps to d.  With `check` (realloc, usable
 * size), a pointer its owner does not know as a live block's start is
 * OWNER_NONE with the fault.  Without (free), each owner checks in the same
 * step as it frees: pool_free_slow, hk_je_free, hk_guard_free. */
static owner owner_of(const void *p, const pa_desc *d, bool check) {
    owner o = {OWNER_NONE, 0, "invalid pointer"};
    switch (d ? d->kind : 0) {
    case PA_KIND_SLAB:
        o.kind = OWNER_POOL;
        if (check) {
            o.fault = pool_fault(pool_check(p));
            if (o.fault)
                o.kind = OWNER_NONE;
            else
                o.size = pool_usable_size(p);
        }
        break;
    case PA_KIND_JE:
        o.kind = OWNER_JE;
        if (check) {
            o.fault = hk_je_check(p);
            if (o.fault)
                o.kind = OWNER_NONE;
            else
                o.size = hk_je_size(p);
        }
        break;
    case PA_KIND_GUARD:
        o.kind = OWNER_GUARD;
        if (check) {
            o.size = hk_guard_usable(p, d);
            if (!o.size)
                o.kind = OWNER_NONE;
        }
        break;
    case PA_KIND_CACHED: /* a page the PageArena took back was freed before */
        o.fault = "double free";
        break;
    default: /* not ours, or a plain PageArena client's */
        break;
    }
    return o;
}

/* ---- malloc family --------------------------------------------------------- */

/* A block the pools do not serve: guarded (HAKMEM_GUARD=1, above 64 KiB) or
 * jemalloc's. */
static void *outside_pools(size_t n, size_t align, bool zero) {
    if (hk_guard_wants(n))
        return hk_guard_alloc(n, align, zero);
    return hk_je_alloc(n, align, zero);
}

/* The one safe point to create the PageArena's background thread
 * (pa_background.h): an allocation's slow path, outside jemalloc, no lock
 * held.  pthread_create allocates (its calloc comes back here, and finds the
 * thread already starting).  Never on a free path: glibc frees a thread's
 * TLS under its stack-cache lock, which pthread_create takes. */
static inline void bg_poll(void) {
    if (!hk_je_tl.in_je)
        pa_background_poll();
}

static HK_NOINLINE void *malloc_routed(size_t n);

void *hk_malloc_slow(size_t n) {
    bg_poll();
    if (hk_je_direct() && n <= L25_MAX)
        return hk_je_direct_malloc(n);
    return malloc_routed(n);
}

static void *malloc_routed(size_t n) {
    /* Guarded L25 sizes: the pools' L25 classes stay empty. */
    if (hk_guard_wants(n) || hk_je_wants(n))
        return outside_pools(n, 16, false);
    void *p = pool_malloc_slow(n);
    if (!p)
        errno = ENOMEM;
    else if (hk_je_nested())
        pool_thread_exit(); /* a malloc from inside jemalloc, served by the
                             * pools; leave the fast path off in this mode */
    return p;
}

static HK_NOINLINE void free_routed(void *p, const pa_desc *d, const char *fn);

void hk_free_slow(void *p, const pa_desc *d, const char *fn) {
    if (d && d->kind == PA_KIND_SLAB) { /* another thread's block, or a fault */
        const char *fault = pool_fault(pool_free_slow(p, d, !hk_je_mode()));
        if (PA_UNLIKELY(fault != NULL))
            hak_misuse(fn, p, fault);
        return;
    }
    if (d && d->kind == PA_KIND_JE && hk_je_direct()) {
        hk_je_direct_free(p);
        return;
    }
    free_routed(p, d, fn);
}

static void free_routed(void *p, const pa_desc *d, const char *fn) {
    if (!p)
        return;
    owner o = owner_of(p, d, false);
    const char *fault;
    switch (o.kind) {
    case OWNER_POOL:
        fault = pool_fault(pool_free_slow(p, d, !hk_je_mode()));
        break;
    case OWNER_JE:
        fault = hk_je_free(p);
        break;
    case OWNER_GUARD:
        fault = hk_guard_free(p, d);
        break;
    default:
        fault = o.fault;
        break;
    }
    if (fault)
        hak_misuse(fn, p, fault);
}

void *hk_calloc(size_t n, size_t m) {
    size_t total;
    if (__builtin_mul_overflow(n, m, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (hk_je_wants(total)) {
        bg_poll();
        return outside_pools(total, 0, true);
    }
    void *p = hk_malloc(total);
    if (p)
        memset(p, 0, total);
    return p;
}

size_t hk_usable_size(const void *p) {
    if (!p)
        return 0;
    owner o = owner_of(p, pa_pagemap_get(p), true);
    return o.kind == OWNER_NONE ? 0 : o.size;
}

void *hk_realloc(void *p, size_t n) {
    if (!p)
        return hk_malloc(n);
    owner o = owner_of(p, pa_pagemap_get(p), true);
    switch (o.kind) {
    case OWNER_NONE:
        hak_misuse("realloc", p, o.fault);
        errno = EINVAL;
        return NULL;
    case OWNER_POOL: /* same class: keep the block */
        if (n && n <= L25_MAX && !hk_je_wants(n) && pool_classes[pool_class_of(n)].size == o.size)
            return p;
        break;
    case OWNER_JE: {
        void *q;
        if (hk_je_resize(p, n, &q))
            return q;
        break;
    }
    case OWNER_GUARD:
        break;
    }
    if (n == 0) { /* glibc: free and return NULL */
        hk_free(p);
        return NULL;
    }
    void *q = hk_malloc(n);
    if (!q)
        return NULL; /* the old block is untouched */
    memcpy(q, p, o.size < n ? o.size : n);
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
    if (!hk_je_wants(n)) {
        size_t sz = pool_aligned_size(n, align);
        if (sz && hk_guard_wants(sz)) /* an L25 class: guarded, aligned */
            return hk_guard_alloc(n, align, false);
        if (sz)
            return hk_malloc(sz);
    }
    bg_poll();
    return outside_pools(n, align, false);
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

/* ---- start-up -------------------------------------------------------------- */

__attribute__((constructor)) static void hk_ctor(void) {
    hak_options_init(); /* malformed HAKMEM_* values are reported now */
    pa_init();
    if (hk_je_mode())
        pa_background_on_start(hk_je_background_on);
}
