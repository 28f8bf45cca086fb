/* hk_kinds.c - owns the arena kinds: hak_arena_create_with, hak_arena_flags
 * and hak_arena_destroy; one extent hook table per special arena (its
 * options are found from the extent_hooks_t * jemalloc passes); the
 * per-kind caches of no-dump and huge-page spans drawn from the PageArena;
 * the address windows of range arenas; private thread caches; and the
 * per-kind statistics and controls.
 *
 * Where extents come from:
 *   - a range arena (HAK_ARENA_RANGE, any other kind too): its own window,
 *     reserved at creation and advised as a whole (MADV_DONTDUMP,
 *     MADV_HUGEPAGE).  Its pages never leave it; when it is full the alloc
 *     hook returns NULL.  The window is unmapped when the arena is destroyed.
 *   - a no-dump and/or huge arena without a window: the cache of its class
 *     (nodump, huge, nodump+huge), shared by every arena of that class.  A
 *     miss takes a span (2 MiB, 2 MiB-aligned for huge; larger requests
 *     their size) from the PageArena, advises it once and carves extents
 *     from it.  Ranges leave the class only reset: MADV_DODUMP for no-dump,
 *     a fresh mapping (no pages, no flags) for huge.  The cache keeps at
 *     most a quarter of what the class's arenas hold (at least 32 MiB) of
 *     dirty ranges, and gives back ranges idle for the PageArena's decay
 *     time.
 *   - an arena with no kind flag: the ordinary hooks (hk_extent.c).
 *
 * With jemalloc's opt.retain on, an extent of a class arena that leaves
 * the arena must be a whole alloc result (the reason is in hk_extent.c):
 * each alloc result gets a descriptor of its own, and dalloc declines a
 * part of one.  A window belongs to one arena, so there any part may go
 * back to it.
 *
 * Hooks run under jemalloc's locks: nothing here calls malloc or mallctl
 * from a hook.  The class, window and thread-cache locks are leaf locks:
 * under them only entries move; spans are taken from and given back to the
 * PageArena, and madvise/mmap run, after they are released.  In a fork
 * child a lock found held drops what it guarded (leaked, never handed out
 * twice); a window's free set is rebuilt from the page map instead. */
#define _GNU_SOURCE
#include "hooks/hk_kinds.h"

#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "arena/options.h"
#include "arena/pa_meta.h"
#include "arena/page_arena.h"
#include "hakmem.h"
#include "hooks/hk_rset.h"

#define HK_EXPORT __attribute__((visibility("default")))
#define HK_ARENA_LIMIT 4096 /* jemalloc's MALLOCX_ARENA_LIMIT */
#define HK_KIND_MASK (HAK_ARENA_NODUMP | HAK_ARENA_HUGE | HAK_ARENA_RANGE)
#define HK_ALL_FLAGS 0xffu
#define HK_SPAN ((size_t)2 << 20)             /* a class takes spans of this size */
#define HK_CLASS_MIN_CAP ((size_t)32 << 20)   /* dirty bytes a class cache may keep */
#define HK_CLASS_ENTRIES 8192
#define HK_CLASS_RANGES 1024 /* a class cache keeps at most this many ranges */
#define HK_WINDOW_MAX ((size_t)1 << 40)
#define HK_LOW_LIMIT ((uintptr_t)1 << 32)
#define HK_LOW_FLOOR ((uintptr_t)16 << 20)
#define HK_VICTIMS 16
#define HK_ZERO_BY_MEMSET ((size_t)64 << 10)
#define HK_RETAIN_GROW_LIMIT ((size_t)2 << 20)
#define HK_TC_SLOTS 16

enum { ST_ARENAS, ST_MAPPED, ST_CACHED, ST_ACTIVE, ST_HITS, ST_MISSES, ST_RETURNED,
       ST_ADVISE_FAILED, ST_COUNT };
static _Atomic uint64_t kst[HK_KIND_COUNT][ST_COUNT];
static _Atomic uint64_t thp_mode, n_tcaches;

/* Add d to statistic st of every kind in `kinds` (HAK_ARENA_* bits). */
static void kadd(unsigned kinds, unsigned st, int64_t d) {
    for (unsigned k = 0; k < HK_KIND_COUNT; k++)
        if (kinds & (1u << k))
            atomic_fetch_add_explicit(&kst[k][st], (uint64_t)d, memory_order_relaxed);
}

/* ---- classes: shared caches of no-dump / huge spans -------------------- */

typedef struct hk_class {
    pa_lock_t lock;
    hk_rset set;        /* ranges of spans taken from the PageArena, advised */
    pa_desc desc;       /* page-map word of those ranges: {class, RAW} */
    unsigned kinds;     /* HAK_ARENA_NODUMP and/or HAK_ARENA_HUGE */
    size_t align;       /* of the spans, and the granule that may leave: 2 MiB
                         * for huge (a part of a span given back would split
                         * its huge-page VMA), a page otherwise */
    size_t active;      /* bytes handed to arenas (under lock) */
    uint64_t last_decay;
    bool ready;
} hk_class;

static hk_class classes[3]; /* index: (kinds & 3) - 1 */
static pthread_once_t class_once[3] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};

static void class_init(unsigned i) {
    hk_class *c = &classes[i];
    c->kinds = i + 1;
    c->align = (c->kinds & HAK_ARENA_HUGE) ? HK_SPAN : PA_PAGE;
    c->desc = (pa_desc){c, PA_KIND_RAW};
    c->last_decay = pa_os_now_ms();
    /* Huge: the free parts of a span merge whatever their zero state, so
     * that a wholly free span is one entry and can leave. */
    c->ready = hk_rset_init(&c->set, HK_CLASS_ENTRIES, (c->kinds & HAK_ARENA_HUGE) != 0);
}
static void class_init0(void) { class_init(0); }
static void class_init1(void) { class_init(1); }
static void class_init2(void) { class_init(2); }

static hk_class *class_get(unsigned kinds) {
    static void (*const init[3])(void) = {class_init0, class_init1, class_init2};
    unsigned i = (kinds & (HAK_ARENA_NODUMP | HAK_ARENA_HUGE)) - 1;
    pthread_once(&class_once[i], init[i]);
    return classes[i].ready ? &classes[i] : NULL;
}

/* Advise a span entering a class (or a window).  A refused MADV_DONTDUMP
 * is an error (the range would be dumped); a refused MADV_HUGEPAGE (a
 * kernel without THP) is only counted. */
static bool advise(unsigned kinds, void *p, size_t n) {
    if ((kinds & HAK_ARENA_NODUMP) && !pa_os_dontdump(p, n, true)) {
        kadd(kinds, ST_ADVISE_FAILED, 1);
        return false;
    }
    if ((kinds & HAK_ARENA_HUGE) && !pa_os_hugepage(p, n))
        kadd(kinds, ST_ADVISE_FAILED, 1);
    return true;
}

/* Give [p, p+n) (its pages map to c->desc) back to the PageArena, reset:
 * a huge range is replaced by a fresh mapping (which also drops no-dump);
 * a no-dump range gets MADV_DODUMP.  Where the kernel refuses, the range
 * goes back to the OS instead of the shared caches. */
static void class_release(hk_class *c, uintptr_t p, size_t n, bool zero) {
    unsigned flags = PA_F_NOTLS;
    if (c->kinds & HAK_ARENA_HUGE) {
        if (pa_os_remap((void *)p, n))
            flags |= PA_F_ZERO;
        else
            flags |= PA_F_UNMAP;
    } else if (!pa_os_dontdump((void *)p, n, false)) {
        flags |= PA_F_UNMAP;
    } else if (zero) {
        flags |= PA_F_ZERO;
    }
    if (flags & PA_F_UNMAP)
        kadd(c->kinds, ST_ADVISE_FAILED, 1);
    if (pa_free((void *)p, n, flags) == 0) {
        kadd(c->kinds, ST_MAPPED, -(int64_t)n);
        kadd(c->kinds, ST_RETURNED, (int64_t)n);
    }
}

typedef struct { hk_range v[HK_VICTIMS]; unsigned n; } hk_victims;

/* Under c->lock: what the caps and decay send back.  Besides the bytes,
 * the number of ranges is capped: jemalloc asks for a size class plus a
 * pad page, so best-fit carving leaves small pieces that only its
 * neighbours' return can merge; kept, they would lengthen every search
 * (seen with dirty_decay_ms 0 in the block-cache bench). */
static void class_trim_locked(hk_class *c, uint64_t now, hk_victims *vic) {
    while (c->set.n > HK_CLASS_RANGES && vic->n < HK_VICTIMS &&
           hk_rset_pop_oldest(&c->set, false, 0, c->align, &vic->v[vic->n]))
        vic->n++;
    size_t cap = c->active / 4 > HK_CLASS_MIN_CAP ? c->active / 4 : HK_CLASS_MIN_CAP;
    while (c->set.dirty > cap && vic->n < HK_VICTIMS) {
        size_t excess = (c->set.dirty - cap + PA_PAGE - 1) & ~(PA_PAGE - 1);
        if (!hk_rset_pop_oldest(&c->set, true, excess, c->align, &vic->v[vic->n]))
            break;
        vic->n++;
    }
    uint64_t decay = hak_opt(OPT_PA_DECAY_MS);
    uint64_t period = decay / 4 ? decay / 4 : 1;
    if (!decay || now - c->last_decay < period)
        return;
    while (vic->n < HK_VICTIMS &&
           hk_rset_pop_older(&c->set, now - decay, c->align, &vic->v[vic->n]))
        vic->n++;
    if (vic->n < HK_VICTIMS)
        c->last_decay = now;
}

static void class_release_all(hk_class *c, hk_victims *vic) {
    for (unsigned i = 0; i < vic->n; i++) {
        kadd(c->kinds, ST_CACHED, -(int64_t)vic->v[i].len);
        class_release(c, vic->v[i].addr, vic->v[i].len, vic->v[i].zero);
    }
    vic->n = 0;
}

/* An extent for a class arena: from the class cache, else a new span. */
static uintptr_t class_take(hk_class *c, void *new_addr, size_t size, size_t align, bool *zero) {
    uintptr_t a = 0;
    pa_lock(&c->lock);
    if (new_addr)
        a = hk_rset_take_at(&c->set, (uintptr_t)new_addr, size, zero) ? (uintptr_t)new_addr : 0;
    else
        a = hk_rset_take(&c->set, size, align, zero);
    if (a)
        c->active += size;
    pa_unlock(&c->lock);
    if (a) {
        kadd(c->kinds, ST_HITS, 1);
        kadd(c->kinds, ST_CACHED, -(int64_t)size);
        return a;
    }
    kadd(c->kinds, ST_MISSES, 1);
    if (new_addr)
        return 0; /* growing in place: only from the cache */
    /* A huge class takes whole 2 MiB granules.  A no-dump class carves
     * small extents from a 2 MiB span (one madvise for many), and takes a
     * large one exactly: a 1 MiB extent carved from 2 MiB would leave a
     * remainder too small for the next one, and such remainders pile up
     * untouched while every large request takes a new span. */
    size_t al = align > c->align ? align : c->align;
    size_t span = (c->kinds & HAK_ARENA_HUGE) ? (size + HK_SPAN - 1) & ~(HK_SPAN - 1)
                  : size < HK_SPAN / 8         ? HK_SPAN
                                                : size;
    bool z = false;
    void *p = pa_alloc(span, al, &c->desc, &z, PA_F_NOTLS);
    if (!p)
        return 0;
    if (!advise(c->kinds, p, span)) {
        pa_os_dontdump(p, span, false);
        pa_free(p, span, PA_F_NOTLS);
        return 0;
    }
    kadd(c->kinds, ST_MAPPED, (int64_t)span);
    hk_victims vic = {.n = 0};
    pa_lock(&c->lock);
    c->active += size;
    bool kept = span == size ||
                hk_rset_insert(&c->set, (uintptr_t)p + size, span - size, z, pa_os_now_ms());
    pa_unlock(&c->lock);
    if (span > size) {
        kadd(c->kinds, ST_CACHED, (int64_t)(span - size));
        if (!kept) {
            vic.v[0] = (hk_range){(uintptr_t)p + size, span - size, 0, z};
            vic.n = 1;
            class_release_all(c, &vic);
        }
    }
    *zero = z;
    return (uintptr_t)p;
}

/* [a, a+n) comes back from an arena; its page-map words are c->desc. */
static void class_put(hk_class *c, uintptr_t a, size_t n) {
    hk_victims vic = {.n = 0};
    uint64_t now = pa_os_now_ms();
    pa_lock(&c->lock);
    c->active -= n;
    bool kept = hk_rset_insert(&c->set, a, n, false, now);
    class_trim_locked(c, now, &vic);
    pa_unlock(&c->lock);
    if (kept) {
        kadd(c->kinds, ST_CACHED, (int64_t)n);
    } else { /* no room in the set (8192 ranges): straight back, reset */
        class_release(c, a, n, false);
    }
    class_release_all(c, &vic);
}

/* ---- special arenas ------------------------------------------------------ */

typedef struct hk_tc hk_tc;

typedef struct hk_karena {
    extent_hooks_t hooks;  /* first: jemalloc hands &hooks back to each hook */
    pa_desc desc;          /* page-map word of its extents: {this, JE} */
    pa_desc wfree;         /* of free window pages: {this, RAW} */
    unsigned ind, flags;
    uint64_t serial;       /* tells a reused arena index apart */
    bool retain;           /* jemalloc's opt.retain at creation */
    hk_class *cls;         /* NODUMP/HUGE without a window */
    pa_lock_t wlock;       /* guards wset */
    hk_rset wset;          /* free pages of the window */
    uintptr_t wbase;
    size_t wsize;
    pa_lock_t tlock;       /* guards tcs */
    hk_tc *tcs;            /* private thread caches made for it */
} hk_karena;

/* With opt.retain, one alloc result of a class arena: its pages map to hdr. */
typedef struct hk_kmap {
    pa_desc hdr;           /* {arena, JE} */
    uintptr_t base;
    size_t size;
    _Atomic size_t live;   /* bytes not yet back */
} hk_kmap;

static _Atomic(hk_karena *) registry[HK_ARENA_LIMIT];
static _Atomic uint64_t next_serial = 1;

static unsigned kinds_of(const hk_karena *ka) { return ka->flags & HK_KIND_MASK; }

static hk_kmap *kmap_of(const hk_karena *ka, const pa_desc *d) {
    return d && d != &ka->desc && d->kind == PA_KIND_JE && d->owner == ka ? (hk_kmap *)d : NULL;
}

static uintptr_t window_take(hk_karena *ka, void *new_addr, size_t size, size_t align, bool *zero) {
    uintptr_t a;
    pa_lock(&ka->wlock);
    if (new_addr)
        a = hk_rset_take_at(&ka->wset, (uintptr_t)new_addr, size, zero) ? (uintptr_t)new_addr : 0;
    else
        a = hk_rset_take(&ka->wset, size, align, zero);
    pa_unlock(&ka->wlock);
    kadd(kinds_of(ka), a ? ST_HITS : ST_MISSES, 1);
    if (a)
        kadd(kinds_of(ka), ST_CACHED, -(int64_t)size);
    return a;
}

static void window_put(hk_karena *ka, uintptr_t a, size_t n) {
    pa_lock(&ka->wlock);
    bool kept = hk_rset_insert(&ka->wset, a, n, false, 0);
    pa_unlock(&ka->wlock);
    PA_ASSERT(kept); /* the set has room for the worst case */
    if (kept)
        kadd(kinds_of(ka), ST_CACHED, (int64_t)n);
}

static void *kind_alloc(extent_hooks_t *h, void *new_addr, size_t size, size_t alignment,
                        bool *zero, bool *commit, unsigned ind) {
    hk_karena *ka = (hk_karena *)h;
    if (!size || (size & (PA_PAGE - 1)) || ((uintptr_t)new_addr & (PA_PAGE - 1)))
        return NULL;
    hk_kmap *m = NULL;
    if (ka->retain && ka->cls) {
        m = pa_meta_alloc(sizeof *m);
        if (!m)
            return NULL;
    }
    bool z = false;
    uintptr_t a = ka->cls ? class_take(ka->cls, new_addr, size, alignment, &z)
                          : window_take(ka, new_addr, size, alignment, &z);
    if (!a) {
        pa_meta_free(m, sizeof *m);
        return NULL; /* jemalloc reports ENOMEM; a full window stays full */
    }
    const pa_desc *owner = &ka->desc;
    if (m) {
        m->hdr = (pa_desc){ka, PA_KIND_JE};
        m->base = a;
        m->size = size;
        atomic_init(&m->live, size);
        owner = &m->hdr;
    }
    /* The leaves exist: the class's span or the window was set before. */
    pa_pagemap_set((void *)a, size, owner);
    if (*zero && !z)
        memset((void *)a, 0, size);
    else
        *zero = z;
    *commit = true;
    kadd(kinds_of(ka), ST_ACTIVE, (int64_t)size);
    return (void *)a;
}

/* [addr, addr+size) leaves the arena.  Under retain, a class arena lets
 * only whole alloc results go unless the arena is being destroyed.  False
 * when declined (jemalloc keeps the range). */
static bool give_back(hk_karena *ka, void *addr, size_t size, bool destroying) {
    uintptr_t a = (uintptr_t)addr, end = a + size;
    if (!size || (a & (PA_PAGE - 1)) || (size & (PA_PAGE - 1)))
        return false;
    if (!ka->cls) {
        if (!pa_pagemap_swap(addr, size, &ka->desc, &ka->wfree))
            return false;
        window_put(ka, a, size);
        kadd(kinds_of(ka), ST_ACTIVE, -(int64_t)size);
        return true;
    }
    if (!destroying) {
        const pa_desc *d = pa_pagemap_get(addr);
        hk_kmap *m = kmap_of(ka, d);
        if (m && (m->base != a || m->size != size))
            return false;
    }
    /* One alloc result at a time (retain), or the whole range (retain off). */
    while (a < end) {
        const pa_desc *d = pa_pagemap_get((void *)a);
        hk_kmap *m = kmap_of(ka, d);
        if (!m && d != &ka->desc)
            return false; /* not this arena's: jemalloc keeps it */
        size_t piece = m && m->base + m->size < end ? m->base + m->size - a : end - a;
        if (!pa_pagemap_swap((void *)a, piece, d, &ka->cls->desc))
            return false;
        class_put(ka->cls, a, piece);
        kadd(kinds_of(ka), ST_ACTIVE, -(int64_t)piece);
        if (m && atomic_fetch_sub(&m->live, piece) == piece)
            pa_meta_free(m, sizeof *m);
        a += piece;
    }
    return true;
}

static bool kind_dalloc(extent_hooks_t *h, void *addr, size_t size, bool committed,
                        unsigned ind) {
    return !give_back((hk_karena *)h, addr, size, false);
}

static void kind_destroy(extent_hooks_t *h, void *addr, size_t size, bool committed,
                         unsigned ind) {
    give_back((hk_karena *)h, addr, size, true);
}

/* Always committed; decommit is declined, so jemalloc purges instead. */
static bool kind_commit(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len,
                        unsigned ind) {
    return false;
}

static bool kind_decommit(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len,
                          unsigned ind) {
    return true;
}

/* Purges keep the pages in place (and in the window): only their contents go. */
static bool kind_purge_lazy(extent_hooks_t *h, void *addr, size_t size, size_t off,
                            size_t len, unsigned ind) {
    pa_os_purge_lazy((char *)addr + off, len);
    return false;
}

static bool kind_purge_forced(extent_hooks_t *h, void *addr, size_t size, size_t off,
                              size_t len, unsigned ind) {
    hk_karena *ka = (hk_karena *)h;
    /* As the ordinary hooks: a small forced purge zeroes a recycled extent
     * jemalloc is about to hand out; writing is cheaper than faulting. */
    if (len <= HK_ZERO_BY_MEMSET && !ka->retain)
        memset((char *)addr + off, 0, len);
    else
        pa_os_purge((char *)addr + off, len);
    return false;
}

static bool kind_split(extent_hooks_t *h, void *addr, size_t size, size_t size_a,
                       size_t size_b, bool committed, unsigned ind) {
    return false;
}

/* Every extent of the arena is its own, so any two may merge (jemalloc's
 * head rule keeps two alloc results apart under retain). */
static bool kind_merge(extent_hooks_t *h, void *addr_a, size_t size_a, void *addr_b,
                       size_t size_b, bool committed, unsigned ind) {
    return false;
}

static const extent_hooks_t kind_hooks = {
    kind_alloc, kind_dalloc, kind_destroy, kind_commit, kind_decommit,
    kind_purge_lazy, kind_purge_forced, kind_split, kind_merge,
};

/* ---- private thread caches ---------------------------------------------- */

/* One explicit tcache of one thread for one arena.  Two references: the
 * thread's slot and the arena's list; whichever side first marks it dead
 * destroys the jemalloc tcache, the last reference frees the node. */
struct hk_tc {
    unsigned tc;
    _Atomic int live;
    _Atomic int refs;
    hk_tc *next;           /* the arena's list */
};

/* A thread's caches: blocks of slots in pa_meta memory behind a pthread
 * key (no static TLS), chained; a block is added when every slot holds a
 * live cache, so a cache lives until its thread exits or its arena is
 * destroyed, however many arenas the thread uses. */
typedef struct hk_tc_thread {
    hk_tc *tc[HK_TC_SLOTS];
    unsigned ind[HK_TC_SLOTS];
    uint64_t serial[HK_TC_SLOTS];
    struct hk_tc_thread *next;
} hk_tc_thread;
static pthread_key_t tc_key;
static pthread_once_t tc_key_once = PTHREAD_ONCE_INIT;
static atomic_bool tc_key_ready;

static void tc_drop(hk_tc *t) {
    int one = 1;
    if (atomic_compare_exchange_strong(&t->live, &one, 0)) {
        unsigned tc = t->tc;
        mallctl("tcache.destroy", NULL, NULL, &tc, sizeof tc);
        atomic_fetch_sub_explicit(&n_tcaches, 1, memory_order_relaxed);
    }
    if (atomic_fetch_sub(&t->refs, 1) == 1)
        pa_meta_free(t, sizeof *t);
}

static void tc_thread_exit(void *arg) {
    for (hk_tc_thread *me = arg, *next; me; me = next) {
        for (unsigned i = 0; i < HK_TC_SLOTS; i++)
            if (me->tc[i])
                tc_drop(me->tc[i]);
        next = me->next;
        pa_meta_free(me, sizeof *me);
    }
}

static void tc_key_init(void) {
    if (pthread_key_create(&tc_key, tc_thread_exit) == 0)
        atomic_store(&tc_key_ready, true);
}

/* Drop nodes of exited threads from the arena's list, then link t. */
static void tc_link(hk_karena *ka, hk_tc *t) {
    hk_tc *dead = NULL;
    pa_lock(&ka->tlock);
    for (hk_tc **pp = &ka->tcs; *pp;) {
        hk_tc *x = *pp;
        if (!atomic_load(&x->live)) {
            *pp = x->next;
            x->next = dead;
            dead = x;
        } else {
            pp = &x->next;
        }
    }
    t->next = ka->tcs;
    ka->tcs = t;
    pa_unlock(&ka->tlock);
    while (dead) {
        hk_tc *x = dead;
        dead = x->next;
        tc_drop(x);
    }
}

static __attribute__((noinline)) int tc_make_slow(hk_karena *ka, unsigned *out) {
    pthread_once(&tc_key_once, tc_key_init);
    if (!atomic_load(&tc_key_ready))
        return EAGAIN;
    hk_tc_thread *me = pthread_getspecific(tc_key);
    if (!me) {
        me = pa_meta_alloc(sizeof *me);
        if (!me)
            return ENOMEM;
        if (pthread_setspecific(tc_key, me) != 0) {
            pa_meta_free(me, sizeof *me);
            return ENOMEM;
        }
    }
    /* A slot first (an empty one, or one whose arena is gone), so that
     * nothing is undone after tcache.create. */
    hk_tc_thread *blk = NULL, *last = me;
    unsigned slot = 0;
    for (hk_tc_thread *b = me; b && !blk; b = b->next) {
        for (unsigned i = 0; i < HK_TC_SLOTS && !blk; i++)
            if (!b->tc[i] || !atomic_load(&b->tc[i]->live)) {
                blk = b;
                slot = i;
            }
        last = b;
    }
    if (!blk) {
        if (!(blk = pa_meta_alloc(sizeof *blk)))
            return ENOMEM;
        last->next = blk; /* only this thread reads its chain */
        slot = 0;
    }
    hk_tc *t = pa_meta_alloc(sizeof *t);
    if (!t)
        return ENOMEM;
    unsigned tc;
    size_t sz = sizeof tc;
    int err = mallctl("tcache.create", &tc, &sz, NULL, 0);
    if (err) {
        pa_meta_free(t, sizeof *t);
        return err;
    }
    atomic_fetch_add_explicit(&n_tcaches, 1, memory_order_relaxed);
    t->tc = tc;
    atomic_init(&t->live, 1);
    atomic_init(&t->refs, 2);
    tc_link(ka, t);
    if (blk->tc[slot])
        tc_drop(blk->tc[slot]); /* the stale one: the thread's reference */
    blk->tc[slot] = t;
    blk->ind[slot] = ka->ind;
    blk->serial[slot] = ka->serial;
    *out = tc;
    return 0;
}

HK_EXPORT int hak_arena_flags(unsigned arena_ind, int *mallocx_flags) {
    if (arena_ind >= HK_ARENA_LIMIT || !mallocx_flags)
        return EINVAL;
    hk_karena *ka = atomic_load_explicit(&registry[arena_ind], memory_order_acquire);
    if (!ka || !(ka->flags & HAK_ARENA_TCACHE)) {
        *mallocx_flags = MALLOCX_ARENA(arena_ind) | MALLOCX_TCACHE_NONE;
        return 0;
    }
    hk_tc_thread *me = atomic_load_explicit(&tc_key_ready, memory_order_acquire)
                           ? pthread_getspecific(tc_key) : NULL;
    for (; me; me = me->next)
        for (unsigned i = 0; i < HK_TC_SLOTS; i++) {
            hk_tc *t = me->tc[i];
            if (t && me->ind[i] == arena_ind && me->serial[i] == ka->serial &&
                atomic_load_explicit(&t->live, memory_order_relaxed)) {
                *mallocx_flags = MALLOCX_ARENA(arena_ind) | MALLOCX_TCACHE(t->tc);
                return 0;
            }
        }
    unsigned tc;
    if (tc_make_slow(ka, &tc) != 0) { /* no cache to be had: none at all */
        *mallocx_flags = MALLOCX_ARENA(arena_ind) | MALLOCX_TCACHE_NONE;
        return 0;
    }
    *mallocx_flags = MALLOCX_ARENA(arena_ind) | MALLOCX_TCACHE(tc);
    return 0;
}

/* ---- creation and destruction ------------------------------------------- */

/* In a fork child whose window lock was held at the fork: the free set is
 * rebuilt from the page map, where every free page of the window maps to
 * ka->wfree.  A hook call the fork cut short (its thread does not exist
 * here) left its pages mapped either way; jemalloc in the child holds none
 * of them, so those reading free are free and the others are leaked. */
static void window_rebuild(hk_karena *ka) {
    hk_rset *s = &ka->wset;
    int64_t before = (int64_t)s->bytes;
    s->n = 0;
    s->bytes = s->dirty = 0;
    uintptr_t run = 0, end = ka->wbase + ka->wsize;
    for (uintptr_t a = ka->wbase; a <= end; a += PA_PAGE) {
        bool free_page = a < end && pa_pagemap_get((void *)a) == &ka->wfree;
        if (free_page && !run) {
            run = a;
        } else if (!free_page && run) {
            hk_rset_insert(s, run, a - run, false, 0); /* room: see window_make */
            run = 0;
        }
    }
    kadd(kinds_of(ka), ST_CACHED, (int64_t)s->bytes - before);
}

static void kinds_fork_child(void) {
    for (unsigned i = 0; i < 3; i++)
        if (pa_lock_reset(&classes[i].lock)) {
            classes[i].set.n = 0;
            classes[i].set.bytes = classes[i].set.dirty = 0;
        }
    for (unsigned i = 0; i < HK_ARENA_LIMIT; i++) {
        hk_karena *ka = atomic_load_explicit(&registry[i], memory_order_relaxed);
        if (!ka)
            continue;
        if (pa_lock_reset(&ka->wlock) && ka->wsize)
            window_rebuild(ka);
        if (pa_lock_reset(&ka->tlock))
            ka->tcs = NULL;
    }
}

static void kinds_atfork(void) { pthread_atfork(NULL, NULL, kinds_fork_child); }

static int arena_ctl_set(unsigned ind, const char *what, void *v, size_t len) {
    char name[64];
    snprintf(name, sizeof name, "arena.%u.%s", ind, what);
    return mallctl(name, NULL, NULL, v, len);
}

static int check_opts(const hak_arena_opts *o) {
    unsigned f = o->flags;
    if (f & ~HK_ALL_FLAGS)
        return EINVAL;
    if (!(f & HAK_ARENA_RANGE)) {
        if ((f & HAK_ARENA_RANGE_LOW) || o->range_base || o->range_size)
            return EINVAL;
    } else {
        uintptr_t b = (uintptr_t)o->range_base;
        size_t align = (f & HAK_ARENA_HUGE) ? HK_SPAN : PA_PAGE;
        if (!o->range_size || (o->range_size & (PA_PAGE - 1)) || o->range_size > HK_WINDOW_MAX ||
            (b & (align - 1)) || b + o->range_size < b ||
            b + o->range_size > ((uintptr_t)1 << PM_VA_BITS))
            return EINVAL;
        if ((f & HAK_ARENA_RANGE_LOW) && (b || o->range_size > HK_LOW_LIMIT - HK_LOW_FLOOR))
            return EINVAL;
    }
    if ((f & HAK_ARENA_DIRTY_DECAY) && o->dirty_decay_ms < -1)
        return EINVAL;
    if ((f & HAK_ARENA_MUZZY_DECAY) && o->muzzy_decay_ms < -1)
        return EINVAL;
    if ((f & HAK_ARENA_GROW_LIMIT) && o->retain_grow_limit < PA_PAGE)
        return EINVAL;
    return 0;
}

/* Reserve and prepare the window of a range arena. */
static int window_make(hk_karena *ka, const hak_arena_opts *o) {
    size_t size = o->range_size, align = (o->flags & HAK_ARENA_HUGE) ? HK_SPAN : PA_PAGE;
    int err = ENOMEM;
    void *w;
    if (o->range_base)
        w = pa_os_map_at(o->range_base, size, &err);
    else if (o->flags & HAK_ARENA_RANGE_LOW)
        w = pa_os_map_below(size, align, HK_LOW_FLOOR, HK_LOW_LIMIT);
    else
        w = pa_os_map(size, align);
    if (!w)
        return err;
    size_t pages = size / PA_PAGE;
    if (!advise(kinds_of(ka), w, size) ||
        !hk_rset_init(&ka->wset, (uint32_t)(pages / 2 + 2), true) ||
        !pa_pagemap_set(w, size, &ka->wfree)) {
        hk_rset_fini(&ka->wset);
        pa_os_unmap(w, size);
        return ENOMEM;
    }
    hk_rset_insert(&ka->wset, (uintptr_t)w, size, true, 0);
    ka->wbase = (uintptr_t)w;
    ka->wsize = size;
    return 0;
}

static void window_free(hk_karena *ka) {
    if (!ka->wsize)
        return;
    kadd(kinds_of(ka), ST_MAPPED, -(int64_t)ka->wsize);
    kadd(kinds_of(ka), ST_CACHED, -(int64_t)ka->wset.bytes);
    /* Whatever jemalloc did not hand back is gone with the arena. */
    kadd(kinds_of(ka), ST_ACTIVE, -(int64_t)(ka->wsize - ka->wset.bytes));
    pa_pagemap_set((void *)ka->wbase, ka->wsize, NULL);
    pa_os_unmap((void *)ka->wbase, ka->wsize);
    hk_rset_fini(&ka->wset);
    ka->wsize = 0;
}

/* Destroy every private cache of the arena (taken off its list under the
 * lock, dropped outside it). */
static void karena_drop_tcaches(hk_karena *ka) {
    pa_lock(&ka->tlock);
    hk_tc *list = ka->tcs;
    ka->tcs = NULL;
    pa_unlock(&ka->tlock);
    while (list) {
        hk_tc *t = list;
        list = t->next;
        tc_drop(t);
    }
}

/* Forget a registry entry whose arena is gone (its tcaches are destroyed). */
static void karena_release(hk_karena *ka) {
    karena_drop_tcaches(ka);
    window_free(ka);
    if (kinds_of(ka))
        kadd(kinds_of(ka), ST_ARENAS, -1);
    pa_meta_free(ka, sizeof *ka);
}

HK_EXPORT int hak_arena_create_with(unsigned *arena_ind, const hak_arena_opts *opts) {
    if (!arena_ind || !opts)
        return EINVAL;
    int err = check_opts(opts);
    if (err)
        return err;
    if (!pa_init())
        return ENOMEM;
    bool retain = true;
    size_t sz = sizeof retain;
    mallctl("opt.retain", &retain, &sz, NULL, 0);
    static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
    pthread_once(&atfork_once, kinds_atfork);
    hk_karena *ka = pa_meta_alloc(sizeof *ka);
    if (!ka)
        return ENOMEM;
    ka->hooks = kind_hooks;
    ka->desc = (pa_desc){ka, PA_KIND_JE};
    ka->wfree = (pa_desc){ka, PA_KIND_RAW};
    ka->flags = opts->flags;
    ka->serial = atomic_fetch_add(&next_serial, 1);
    ka->retain = retain;
    unsigned kinds = kinds_of(ka), ind = 0;
    if ((kinds & HAK_ARENA_HUGE) && !atomic_load(&thp_mode))
        atomic_store(&thp_mode, pa_os_thp_mode());
    if (kinds & HAK_ARENA_RANGE)
        err = window_make(ka, opts);
    else if (kinds && !(ka->cls = class_get(kinds)))
        err = ENOMEM;
    if (err) {
        pa_meta_free(ka, sizeof *ka);
        return err;
    }
    if (kinds) {
        kadd(kinds, ST_MAPPED, (int64_t)ka->wsize);
        kadd(kinds, ST_CACHED, (int64_t)ka->wsize);
        /* jemalloc's own metadata (its base) from jemalloc's default
         * hooks, never from the special memory. */
        struct { extent_hooks_t *hooks; bool metadata_use_hooks; } cfg = {&ka->hooks, false};
        sz = sizeof ind;
        err = mallctl("experimental.arenas_create_ext", &ind, &sz, &cfg, sizeof cfg);
        if (err == ENOENT) { /* a jemalloc without it: metadata through the hooks */
            extent_hooks_t *h = &ka->hooks;
            err = mallctl("arenas.create", &ind, &sz, &h, sizeof h);
        }
    } else {
        err = hak_arena_create(&ind);
    }
    if (err) {
        window_free(ka);
        pa_meta_free(ka, sizeof *ka);
        return err;
    }
    ka->ind = ind;
    if (kinds)
        kadd(kinds, ST_ARENAS, 1);
    /* With retain, jemalloc grows an arena by at least this much.  A
     * window takes exact extents: a 2 MiB grow could fail in a window
     * that still has room for the extent asked for. */
    size_t limit = (opts->flags & HAK_ARENA_GROW_LIMIT) ? opts->retain_grow_limit
                   : (kinds & HAK_ARENA_RANGE)         ? PA_PAGE
                                                        : HK_RETAIN_GROW_LIMIT;
    /* A window is its arena's cache: by default jemalloc hands each freed
     * extent straight back (pages stay resident in the window).  jemalloc
     * eagerly merges freed large extents in its own dirty cache and does
     * not split one more than 64 times the request (lg_extent_max_active_fit),
     * so a window whose space sat there would refuse requests it has room
     * for. */
    bool window = (kinds & HAK_ARENA_RANGE) != 0;
    ssize_t dirty = (opts->flags & HAK_ARENA_DIRTY_DECAY) ? opts->dirty_decay_ms : 0;
    ssize_t muzzy = (opts->flags & HAK_ARENA_MUZZY_DECAY) ? opts->muzzy_decay_ms : 0;
    if (retain) /* the name exists only with retain on */
        err = arena_ctl_set(ind, "retain_grow_limit", &limit, sizeof limit);
    if (!err && (window || (opts->flags & HAK_ARENA_DIRTY_DECAY)))
        err = arena_ctl_set(ind, "dirty_decay_ms", &dirty, sizeof dirty);
    if (!err && (window || (opts->flags & HAK_ARENA_MUZZY_DECAY)))
        err = arena_ctl_set(ind, "muzzy_decay_ms", &muzzy, sizeof muzzy);
    if (err) {
        char name[64];
        snprintf(name, sizeof name, "arena.%u.destroy", ind);
        mallctl(name, NULL, NULL, NULL, 0);
        karena_release(ka);
        return err;
    }
    /* An index jemalloc reused after a direct arena.<i>.destroy: the old
     * entry's arena is gone. */
    hk_karena *stale = atomic_exchange_explicit(&registry[ind], ka, memory_order_acq_rel);
    if (stale)
        karena_release(stale);
    *arena_ind = ind;
    return 0;
}

HK_EXPORT int hak_arena_destroy(unsigned arena_ind) {
    if (arena_ind >= HK_ARENA_LIMIT)
        return EINVAL;
    hk_karena *ka = atomic_load_explicit(&registry[arena_ind], memory_order_acquire);
    if (ka) /* its private caches go first: arena.<i>.destroy requires it */
        karena_drop_tcaches(ka);
    char name[64];
    snprintf(name, sizeof name, "arena.%u.destroy", arena_ind);
    int err = mallctl(name, NULL, NULL, NULL, 0);
    if (err)
        return err;
    if (ka && atomic_compare_exchange_strong(&registry[arena_ind], &ka, NULL))
        karena_release(ka);
    return 0;
}

/* ---- statistics and control --------------------------------------------- */

void hk_kinds_stats_get(hk_kinds_stats *o) {
    for (unsigned k = 0; k < HK_KIND_COUNT; k++) {
        uint64_t *v = &o->k[k].arenas; /* the fields in ST_ order */
        for (unsigned s = 0; s < ST_COUNT; s++)
            v[s] = atomic_load_explicit(&kst[k][s], memory_order_relaxed);
    }
    o->thp_mode = atomic_load_explicit(&thp_mode, memory_order_relaxed);
    o->tcaches = atomic_load_explicit(&n_tcaches, memory_order_relaxed);
}
_Static_assert(sizeof(hk_kind_stats) == ST_COUNT * sizeof(uint64_t), "hk_kind_stats in ST_ order");

/* Every class cache gives all its ranges back to the shared caches. */
static void purge_classes(unsigned only) {
    for (unsigned i = 0; i < 3; i++) {
        hk_class *c = &classes[i];
        if (!c->ready || (only && !(c->kinds & only)))
            continue;
        hk_victims vic;
        do {
            vic.n = 0;
            pa_lock(&c->lock);
            while (vic.n < HK_VICTIMS &&
                   hk_rset_pop_oldest(&c->set, false, 0, c->align, &vic.v[vic.n]))
                vic.n++;
            pa_unlock(&c->lock);
            unsigned n = vic.n;
            class_release_all(c, &vic);
            if (n < HK_VICTIMS)
                break;
        } while (1);
    }
}

int hk_kinds_arena_of(const void *p) {
    const pa_desc *d = pa_pagemap_get(p);
    if (!d || (d->kind != PA_KIND_JE && d->kind != PA_KIND_RAW) || !d->owner)
        return -1;
    for (unsigned i = 0; i < HK_ARENA_LIMIT; i++) /* compare, never dereference */
        if ((void *)atomic_load_explicit(&registry[i], memory_order_acquire) == d->owner)
            return (int)i;
    return -1;
}

static int read_out(const void *v, size_t len, void *oldp, size_t *oldlenp) {
    if (!oldp || !oldlenp || *oldlenp != len)
        return EINVAL;
    memcpy(oldp, v, len);
    return 0;
}

int hk_kinds_ctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) {
    static const char *const kind_names[HK_KIND_COUNT] = {"nodump", "huge", "range"};
    if (strncmp(name, "arena_kinds.", 12) == 0) {
        const char *rest = name + 12;
        unsigned only = 0;
        for (unsigned k = 0; k < HK_KIND_COUNT; k++) {
            size_t l = strlen(kind_names[k]);
            if (strncmp(rest, kind_names[k], l) == 0 && rest[l] == '.') {
                only = 1u << k;
                rest += l + 1;
            }
        }
        if (strcmp(rest, "purge") != 0 || only == HAK_ARENA_RANGE)
            return ENOENT;
        if (oldp || oldlenp || newp || newlen)
            return EINVAL;
        purge_classes(only);
        return 0;
    }
    /* arena.<i>.kind | .window_base | .window_size | .mallocx_flags */
    if (strncmp(name, "arena.", 6) != 0 || name[6] < '0' || name[6] > '9')
        return ENOENT;
    unsigned ind = 0;
    const char *s = name + 6;
    for (; *s >= '0' && *s <= '9'; s++)
        if ((ind = ind * 10 + (unsigned)(*s - '0')) >= HK_ARENA_LIMIT)
            return ENOENT;
    if (strcmp(s, ".kind") == 0) {
        if (newp)
            return EPERM;
        hk_karena *ka = atomic_load_explicit(&registry[ind], memory_order_acquire);
        if (!ka)
            return ENOENT;
        unsigned f = ka->flags;
        return read_out(&f, sizeof f, oldp, oldlenp);
    }
    if (strcmp(s, ".window_base") == 0 || strcmp(s, ".window_size") == 0) {
        if (newp)
            return EPERM;
        hk_karena *ka = atomic_load_explicit(&registry[ind], memory_order_acquire);
        if (!ka || !ka->wsize)
            return ENOENT;
        uint64_t v = s[8] == 'b' ? (uint64_t)ka->wbase : (uint64_t)ka->wsize;
        return read_out(&v, sizeof v, oldp, oldlenp);
    }
    if (strcmp(s, ".mallocx_flags") == 0) {
        if (newp)
            return EPERM;
        int f;
        int err = hak_arena_flags(ind, &f);
        return err ? err : read_out(&f, sizeof f, oldp, oldlenp);
    }
    return ENOENT;
}
