/* hk_extent.c - owns the nine jemalloc extent hooks over the PageArena and
 * the public hak_extent_hooks / hak_arena_create / hak_arena_attach.
 *
 * Hooks run under jemalloc's locks: nothing here calls malloc, free or
 * mallctl, and the PageArena lock they take is a leaf lock.  Ranges an arena
 * mapped before hak_arena_attach are recognised through the page map (they
 * are not ours) and forwarded to the arena's previous hooks.
 *
 * With jemalloc's opt.retain on, every alloc result gets a descriptor of its
 * own (a "mapping"), and dalloc takes back only a whole mapping; a part of
 * one is declined (jemalloc keeps it, purged, and hands it to destroy when
 * the arena goes).  jemalloc assumes, with retain, that the range below an
 * extent that does not start a mapping belongs to the same arena; giving
 * that range to the PageArena, and from there to another arena, let jemalloc
 * merge extents of two arenas (seen as crashes in dallocx and extents lost
 * at destroy, tests/hooks_test.c `threads`).  With retain off (libhakmem's
 * setting) jemalloc checks the arena itself, and every page maps to the one
 * shared descriptor hk_je_desc. */
#define _GNU_SOURCE
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "arena/pa_background.h"
#include "arena/pa_meta.h"
#include "arena/page_arena.h"
#include "hakmem.h"
#include "hooks/hk_extent.h"

#define HK_ARENA_LIMIT 4096 /* jemalloc's MALLOCX_ARENA_LIMIT */
#define HK_EXPORT __attribute__((visibility("default")))
#define HK_RETAIN_GROW_LIMIT ((size_t)2 << 20)
#define HK_ZERO_BY_MEMSET ((size_t)64 << 10) /* forced purges up to this: memset */

const pa_desc hk_je_desc = {NULL, PA_KIND_JE};
static _Atomic(extent_hooks_t *) prev_hooks[HK_ARENA_LIMIT];
static _Atomic uint64_t n_alloc, n_dalloc, n_forward, bytes_active;
/* Arenas the hooks have given an extent to, by index (statistics only). */
static _Atomic uint64_t served[HK_ARENA_LIMIT / 64];
static atomic_bool je_retain = true; /* jemalloc's opt.retain, read at install */

/* One alloc result under retain: its pages map to hdr. */
typedef struct hk_je_map {
    pa_desc hdr;           /* kind PA_KIND_JE */
    char *base;
    size_t size;
    _Atomic size_t live;   /* bytes not yet handed back */
} hk_je_map;

static hk_je_map *map_of(const pa_desc *d) {
    return d == &hk_je_desc ? NULL : (hk_je_map *)d;
}

/* size bytes of the mapping behind d went back to the PageArena. */
static void map_release(const pa_desc *d, size_t size) {
    hk_je_map *m = map_of(d);
    if (m && atomic_fetch_sub(&m->live, size) == size)
        pa_meta_free(m, sizeof *m);
}

/* Read jemalloc's opt.retain (outside any hook: mallctl is not allowed there). */
static void read_retain(void) {
    bool retain = true;
    size_t sz = sizeof retain;
    if (mallctl("opt.retain", &retain, &sz, NULL, 0) == 0)
        atomic_store(&je_retain, retain);
}

static void add(_Atomic uint64_t *c, int64_t d) {
    atomic_fetch_add_explicit(c, (uint64_t)d, memory_order_relaxed);
}

static bool ours(void *addr) {
    const pa_desc *d = pa_pagemap_get(addr);
    return d && d->kind == PA_KIND_JE;
}

static extent_hooks_t *prev_for(unsigned ind) {
    if (ind >= HK_ARENA_LIMIT)
        return NULL;
    add(&n_forward, 1);
    return atomic_load_explicit(&prev_hooks[ind], memory_order_acquire);
}

/* With opt.retain on, jemalloc asks for a page-size class; a large extent
 * needs less (its size class plus one cache-oblivious pad page), and jemalloc
 * keeps the rest as "retained" address space that it never gives back and
 * rarely reuses.
 * When the span comes dirty from our caches, purge the part above the next
 * smaller size class, so that tail does not stay resident. */
#define HK_TAIL_PURGE_MIN ((size_t)1 << 20)
static void purge_tail(void *p, size_t size) {
    unsigned lg = 63u - (unsigned)__builtin_clzl(size);
    size_t tail = size == ((size_t)1 << lg) ? size >> 3 : (size_t)1 << (lg - 2);
    pa_os_purge((char *)p + size - tail, tail);
}

static void note_arena(unsigned ind) {
    if (ind >= HK_ARENA_LIMIT)
        return;
    uint64_t bit = (uint64_t)1 << (ind % 64);
    if (!(atomic_load_explicit(&served[ind / 64], memory_order_relaxed) & bit))
        atomic_fetch_or_explicit(&served[ind / 64], bit, memory_order_relaxed);
}

static void *hk_alloc(extent_hooks_t *h, void *new_addr, size_t size,
                      size_t alignment, bool *zero, bool *commit, unsigned ind) {
    add(&n_alloc, 1);
    note_arena(ind);
    bool z = false;
    hk_je_map *m = NULL;
    if (atomic_load_explicit(&je_retain, memory_order_relaxed)) {
        m = pa_meta_alloc(sizeof *m);
        if (!m)
            return NULL;
        m->hdr = (pa_desc){NULL, PA_KIND_JE};
    }
    const pa_desc *owner = m ? &m->hdr : &hk_je_desc;
    void *p = new_addr ? pa_alloc_at(new_addr, size, owner, &z)
                       : pa_alloc(size, alignment, owner, &z, PA_F_NOTLS);
    if (!p) {
        if (m)
            pa_meta_free(m, sizeof *m);
        return NULL; /* jemalloc reports ENOMEM; nothing is lost */
    }
    if (m) {
        m->base = p;
        m->size = size;
        atomic_init(&m->live, size);
    }
    if (*zero && !z)
        memset(p, 0, size);
    else {
        *zero = z;
        if (!z && size >= HK_TAIL_PURGE_MIN && atomic_load_explicit(&je_retain, memory_order_relaxed))
            purge_tail(p, size);
    }
    *commit = true;
    add(&bytes_active, (int64_t)size);
    return p;
}

/* Is this a thread that runs jemalloc's decay in the background: one of
 * jemalloc's own (opt.background_thread; jemalloc names them
 * "jemalloc_bg_thd" before their first decay pass) or the PageArena's
 * ("hakmem-bg", which runs it in libhakmem_je.so)?  Read once per thread
 * (prctl: a system call, no malloc). */
static __thread signed char on_je_bg_thread __attribute__((tls_model("initial-exec")));
static bool je_bg_thread(void) {
    if (PA_UNLIKELY(!on_je_bg_thread)) {
        char name[16] = {0};
        prctl(PR_GET_NAME, name, 0, 0, 0);
        on_je_bg_thread =
            strcmp(name, "jemalloc_bg_thd") == 0 || strcmp(name, "hakmem-bg") == 0 ? 1 : -1;
    }
    return on_je_bg_thread > 0;
}

static bool hk_dalloc(extent_hooks_t *h, void *addr, size_t size,
                      bool committed, unsigned ind) {
    add(&n_dalloc, 1);
    if (!ours(addr)) {
        extent_hooks_t *prev = prev_for(ind);
        return prev && prev->dalloc ? prev->dalloc(prev, addr, size, committed, ind)
                                    : true;
    }
    const pa_desc *d = pa_pagemap_get(addr);
    hk_je_map *m = map_of(d);
    if (m && (m->base != (char *)addr || m->size != size))
        return true; /* retain: part of a mapping stays with its arena */
    /* Decay on a background thread (jemalloc's own, or the PageArena's
     * running jemalloc's decay in libhakmem_je.so) hands back only extents
     * that sat dirty for about the arena's decay time: caching them for the
     * PageArena's own decay time on top would hold idle memory twice as
     * long. */
    unsigned flags = PA_F_NOTLS | (je_bg_thread() ? PA_F_UNMAP : 0);
    if (pa_free(addr, size, flags) != 0)
        return true; /* not a range we handed out whole: jemalloc keeps it */
    map_release(d, size);
    add(&bytes_active, -(int64_t)size);
    return false;
}

static void hk_destroy(extent_hooks_t *h, void *addr, size_t size,
                       bool committed, unsigned ind) {
    if (!ours(addr)) {
        extent_hooks_t *prev = prev_for(ind);
        if (prev && prev->destroy)
            prev->destroy(prev, addr, size, committed, ind);
        return;
    }
    add(&n_dalloc, 1);
    const pa_desc *d = pa_pagemap_get(addr);
    if (pa_free(addr, size, PA_F_NOTLS) == 0) {
        map_release(d, size);
        add(&bytes_active, -(int64_t)size);
    }
}

/* Our memory is always committed; decommit is declined, so jemalloc purges
 * instead (as its default hooks do on Linux). */
static bool hk_commit(extent_hooks_t *h, void *addr, size_t size, size_t off,
                      size_t len, unsigned ind) {
    if (!ours(addr)) {
        extent_hooks_t *prev = prev_for(ind);
        return prev && prev->commit ? prev->commit(prev, addr, size, off, len, ind) : true;
    }
    return false;
}

static bool hk_decommit(extent_hooks_t *h, void *addr, size_t size, size_t off,
                        size_t len, unsigned ind) {
    if (!ours(addr)) {
        extent_hooks_t *prev = prev_for(ind);
        return prev && prev->decommit ? prev->decommit(prev, addr, size, off, len, ind)
                                       : true;
    }
    return true;
}

static bool hk_purge_lazy(extent_hooks_t *h, void *addr, size_t size,
                          size_t off, size_t len, unsigned ind) {
    if (!ours(addr)) {
        extent_hooks_t *prev = prev_for(ind);
        return prev && prev->purge_lazy
                   ? prev->purge_lazy(prev, addr, size, off, len, ind) : true;
    }
    pa_os_purge_lazy((char *)addr + off, len);
    return false;
}

static bool hk_purge_forced(extent_hooks_t *h, void *addr, size_t size,
                            size_t off, size_t len, unsigned ind) {
    if (!ours(addr)) {
        extent_hooks_t *prev = prev_for(ind);
        return prev && prev->purge_forced
                   ? prev->purge_forced(prev, addr, size, off, len, ind) : true;
    }
    /* Without retain (libhakmem) jemalloc takes every whole extent back
     * through dalloc, and a forced purge is how it zeroes a recycled extent
     * it hands out zeroed (a new thread's cache, calloc): for a small one,
     * writing zeros costs less than giving the pages back and faulting them
     * in again (larson_like under jemalloc + PageArena, 1000 threads). */
    if (len <= HK_ZERO_BY_MEMSET && !atomic_load_explicit(&je_retain, memory_order_relaxed))
        memset((char *)addr + off, 0, len);
    else
        pa_os_purge((char *)addr + off, len);
    return false;
}

/* The PageArena takes back any page-aligned sub-range: split always works. */
static bool hk_split(extent_hooks_t *h, void *addr, size_t size, size_t size_a,
                     size_t size_b, bool committed, unsigned ind) {
    if (!ours(addr)) {
        extent_hooks_t *prev = prev_for(ind);
        return prev && prev->split
                   ? prev->split(prev, addr, size, size_a, size_b, committed, ind) : true;
    }
    return false;
}

/* Two of our ranges may merge (page-granular ownership); a range of ours
 * never merges with a foreign one. */
static bool hk_merge(extent_hooks_t *h, void *addr_a, size_t size_a,
                     void *addr_b, size_t size_b, bool committed, unsigned ind) {
    bool a = ours(addr_a), b = ours(addr_b);
    if (a && b)
        return false;
    if (a || b)
        return true;
    extent_hooks_t *prev = prev_for(ind);
    return prev && prev->merge
               ? prev->merge(prev, addr_a, size_a, addr_b, size_b, committed, ind) : true;
}

static extent_hooks_t hk_hooks = {
    hk_alloc, hk_dalloc, hk_destroy, hk_commit, hk_decommit,
    hk_purge_lazy, hk_purge_forced, hk_split, hk_merge,
};

HK_EXPORT extent_hooks_t *hak_extent_hooks(void) { return &hk_hooks; }

HK_EXPORT int hak_arena_create(unsigned *arena_ind) {
    if (!arena_ind)
        return EINVAL;
    if (!pa_init())
        return ENOMEM;
    read_retain();
    extent_hooks_t *h = &hk_hooks;
    size_t sz = sizeof *arena_ind;
    int err = mallctl("arenas.create", arena_ind, &sz, &h, sizeof h);
    if (err)
        return err;
#if !HK_WITH_POOLS
    /* libhakmem_hooks: no malloc front polls for the PageArena's thread;
     * this call (not a hook) is the safe point to start it. */
    pa_background_start();
#endif
    /* jemalloc grows an arena geometrically (2 MiB up to hundreds of MiB)
     * and carves new extents from that never-touched reserve before asking
     * us again: every such extent faults in fresh pages while the resident
     * spans it gave back sit in our cache.  Bounding the growth makes it ask
     * the PageArena for about what it needs, which the caches then serve. */
    char name[64];
    snprintf(name, sizeof name, "arena.%u.retain_grow_limit", *arena_ind);
    size_t limit = HK_RETAIN_GROW_LIMIT;
    mallctl(name, NULL, NULL, &limit, sizeof limit);
    return 0;
}

static int read_hooks(const char *name, extent_hooks_t **out) {
    size_t sz = sizeof *out;
    return mallctl(name, out, &sz, NULL, 0);
}

int hk_arena_attach_hooks(unsigned arena_ind) {
    if (arena_ind >= HK_ARENA_LIMIT)
        return EINVAL;
    if (!pa_init())
        return ENOMEM;
    char name[64];
    snprintf(name, sizeof name, "arena.%u.extent_hooks", arena_ind);
    read_retain();
    extent_hooks_t *old = NULL, *h = &hk_hooks;
    int err = read_hooks(name, &old);
    if (err)
        return err;
    if (old == &hk_hooks)
        return 0;
    /* Writing the hooks of an automatic arena that does not exist yet
     * creates it with them; if a thread of the program creates it (with
     * jemalloc's default hooks) between jemalloc's check and its creation,
     * the write reports success and leaves that arena as it was.  The read
     * back sees it, and the second round replaces its hooks. */
    for (int round = 0; round < 2; round++) {
        /* The previous hooks first, so forwarding works from the moment
         * ours are installed. */
        atomic_store_explicit(&prev_hooks[arena_ind], old, memory_order_release);
        err = mallctl(name, NULL, NULL, &h, sizeof h);
        if (!err)
            err = read_hooks(name, &old);
        if (err)
            return err;
        if (old == &hk_hooks)
            return 0;
    }
    return EAGAIN;
}

HK_EXPORT int hak_arena_attach(unsigned arena_ind) {
    int err = hk_arena_attach_hooks(arena_ind);
#if !HK_WITH_POOLS
    if (!err)
        pa_background_start(); /* as in hak_arena_create */
#endif
    return err;
}

void hk_hook_stats_get(hk_hook_stats *o) {
    o->alloc_calls = atomic_load_explicit(&n_alloc, memory_order_relaxed);
    o->dalloc_calls = atomic_load_explicit(&n_dalloc, memory_order_relaxed);
    o->forwarded_calls = atomic_load_explicit(&n_forward, memory_order_relaxed);
    o->bytes_active = atomic_load_explicit(&bytes_active, memory_order_relaxed);
    o->arenas = 0;
    for (unsigned i = 0; i < HK_ARENA_LIMIT / 64; i++)
        o->arenas += (uint64_t)__builtin_popcountll(
            atomic_load_explicit(&served[i], memory_order_relaxed));
}
