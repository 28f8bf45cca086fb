/* heap.c - owns the pools' engine: per-thread heaps, slab descriptors and
 * their lists, refill, remote (cross-thread) frees, heap abandonment at thread
 * exit and adoption or collection afterwards, fork handling and pool
 * statistics.
 *
 * Invariants
 * - A slab's owner heap never changes; heaps are never freed, only handed
 *   from an exited thread to a new one (adoption).
 * - h->list[c] holds the heap's slabs of class c, other than h->cur[c], that
 *   have free blocks.  A slab with no free block is `full` and on no list
 *   until a free gives it one.
 * - slab->remote bit 0 is set by the remote free that finds it clear; that
 *   thread then lists the slab on the owner's notify stack.  Only the drain
 *   that pops the slab clears it.  So a slab whose remote word is 0 is on no
 *   stack and no other thread is about to touch it: only then may it be freed.
 *
 * Locks: abandon_lock guards the abandoned-heap list and the collection of an
 * abandoned heap; the PageArena and metadata locks nest inside it. */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>

#include "arena/options.h"
#include "arena/pa_meta.h"
#include "pools/heap.h"

pool_slab pool_empty_slab; /* free == NULL, bump == end: always refills */
/* The heap of a thread that has none: every class empty, owner of nothing. */
pool_heap pool_empty_heap = {.cur = {[0 ... POOL_NCLASS - 1] = &pool_empty_slab}};
__thread pool_heap *pool_tl_heap __attribute__((tls_model("initial-exec"))) = &pool_empty_heap;
_Atomic uint64_t pool_allocated[POOL_COUNT], pool_nslabs[POOL_COUNT];

static _Atomic uint64_t nfree_heapless[POOL_NCLASS];
static _Atomic(pool_heap *) all_heaps;
static pool_heap *abandoned;
static pa_lock_t abandon_lock;
static pthread_key_t heap_key;
static atomic_int init_state; /* 0 new, 1 registering, 2 ready */
static uintptr_t link_secret; /* the process's secret; each slab's key mixes it */

/* The remote word: the head block (below 2^47, as every pointer the page map
 * knows), bit 0 the listed bit, bits 48-63 the number of blocks on the list
 * (at most a slab's capacity, 4096, since a block is freed once before the
 * owner drains it). */
#define REMOTE_LISTED ((uintptr_t)1)
#define REMOTE_COUNT_SHIFT 48
#define REMOTE_COUNT ((uintptr_t)1 << REMOTE_COUNT_SHIFT)
#define REMOTE_HEAD_MASK (REMOTE_COUNT - 1)
_Static_assert(PM_VA_BITS < REMOTE_COUNT_SHIFT, "remote count above the pointer bits");

static inline uintptr_t *remote_head(uintptr_t r) {
    return (uintptr_t *)(r & REMOTE_HEAD_MASK & ~REMOTE_LISTED);
}

static void count_add(_Atomic uint64_t *c, int64_t d) {
    atomic_fetch_add_explicit(c, (uint64_t)d, memory_order_relaxed);
}

/* ---- lists ---------------------------------------------------------------- */

/* Slabs join at the tail and refills take the head: a slab that just got a
 * block back waits behind older ones, which have had time to collect more
 * free blocks, so a refill does not keep landing on a slab with one. */
static void list_push(pool_heap *h, pool_slab *s) {
    unsigned c = s->cls;
    s->next = NULL;
    s->prev = h->list_tail[c];
    if (s->prev)
        s->prev->next = s;
    else
        h->list[c] = s;
    h->list_tail[c] = s;
}

static void list_remove(pool_heap *h, pool_slab *s) {
    unsigned c = s->cls;
    if (s->prev)
        s->prev->next = s->next;
    else if (h->list[c] == s)
        h->list[c] = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else if (h->list_tail[c] == s)
        h->list_tail[c] = s->prev;
    s->next = s->prev = NULL;
}

/* ---- invariants (debug builds) --------------------------------------------- */

/* The owner's view of a slab: every block is handed out (used, remote frees
 * not yet drained included), on the local free list (marked, at a block
 * start) or not carved yet. */
static void slab_check(const pool_slab *s) {
    if (!HAKMEM_DEBUG || s == &pool_empty_slab)
        return;
    PA_ASSERT(s->hdr.kind == PA_KIND_SLAB && s->used <= s->capacity);
    PA_ASSERT(pa_pagemap_get(s->start) == &s->hdr);
    uint32_t n = 0;
    for (const uintptr_t *p = s->free; p; p = pool_link_dec(s, p[0])) {
        PA_ASSERT(pool_link_ok(s, p) && pool_block_ok(s, p));
        PA_ASSERT(p[1] == (POOL_FREED_MARK ^ (uintptr_t)p));
        PA_ASSERT(++n <= s->capacity);
    }
    size_t uncarved = (size_t)(s->end - atomic_load_explicit(&((pool_slab *)s)->bump,
                                                              memory_order_relaxed)) /
                      s->block_size;
    PA_ASSERT(s->corrupt || s->used + n + uncarved == s->capacity);
}

/* The heap's list of class c: doubly linked, tail right, no full slab, not
 * the current one, all of class c and owned by h. */
static void list_check(const pool_heap *h, unsigned c) {
    if (!HAKMEM_DEBUG)
        return;
    const pool_slab *prev = NULL;
    for (const pool_slab *s = h->list[c]; s; prev = s, s = s->next) {
        PA_ASSERT(s->prev == prev && s->cls == c && s->hdr.owner == h);
        PA_ASSERT(!s->full && s != h->cur[c] && s != h->spare[c]);
    }
    PA_ASSERT(h->list_tail[c] == prev);
}

/* ---- slabs ---------------------------------------------------------------- */

static pool_slab *slab_new(pool_heap *h, unsigned c) {
    pool_slab *s = pa_meta_alloc(sizeof *s);
    if (!s)
        return NULL;
    const pool_class *k = &pool_classes[c];
    s->hdr = (pa_desc){h, PA_KIND_SLAB};
    s->cls = (uint16_t)c;
    s->block_size = k->size;
    s->capacity = k->run_bytes / k->size;
    s->div_c = pool_div_c(k->size);
    s->span_bytes = k->run_bytes;
    s->last_off = (uintptr_t)(s->capacity - 1) * k->size + 1;
    uint64_t z = link_secret + (uintptr_t)s; /* splitmix64 finaliser */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    s->key = (uintptr_t)(z ^ (z >> 31));
    bool zero;
    void *mem = k->pool == POOL_TINY  ? tiny_slab_take(h, c, &s->hdr, &zero)
                : k->pool == POOL_MID ? mid_run_take(h, c, &s->hdr, &zero)
                                      : l25_run_take(h, c, &s->hdr, &zero);
    if (!mem) {
        pa_meta_free(s, sizeof *s);
        return NULL;
    }
    s->start = mem;
    atomic_store_explicit(&s->bump, s->start, memory_order_relaxed);
    s->end = s->start + (size_t)s->capacity * k->size;
    count_add(&pool_allocated[k->pool], (int64_t)k->run_bytes);
    count_add(&pool_nslabs[k->pool], 1);
    return s;
}

/* Give an empty slab back to the PageArena.  The slab is on no list. */
static void slab_release(pool_slab *s) {
    unsigned pool = pool_classes[s->cls].pool;
    pa_free(s->start, s->span_bytes, 0);
    count_add(&pool_allocated[pool], -(int64_t)s->span_bytes);
    count_add(&pool_nslabs[pool], -1);
    pa_meta_free(s, sizeof *s);
}

/* An empty current Tiny/Mid slab stays: no thrash on alloc/free of one
 * block.  L25 runs go back to the PageArena, which shares them with every
 * class and thread (and with jemalloc). */
static bool keep_empty(const pool_heap *h, const pool_slab *s) {
    return s == h->cur[s->cls] && pool_classes[s->cls].pool != POOL_L25;
}

/* An empty slab that is not kept: free it unless a remote free still has
 * it listed, in which case the notify drain will come back to it. */
static void slab_empty(pool_heap *h, pool_slab *s) {
    bool on_list = !s->full && s != h->cur[s->cls];
    if (s == h->cur[s->cls])
        h->cur[s->cls] = &pool_empty_slab;
    if (atomic_load(&s->remote) != 0) {
        if (!on_list) { /* keep it reachable until the drain */
            s->full = false;
            list_push(h, s);
        }
        return;
    }
    if (on_list)
        list_remove(h, s);
    if (!h->spare[s->cls] && pool_classes[s->cls].pool != POOL_L25 && !h->closing &&
        atomic_load_explicit(&h->state, memory_order_relaxed) == HEAP_ACTIVE) {
        s->full = false; /* hysteresis: the next refill of this class */
        h->spare[s->cls] = s;
        return;
    }
    slab_release(s);
}

/* Move the slab's remote frees onto its own list, keeping the listed bit.
 * The remote word carries the count of its blocks (REMOTE_COUNT), so a
 * slab with no local free block (a refill's case) takes the remote list
 * whole, without walking it: its links are then checked one by one as the
 * malloc fast path pops them, like local links.  Otherwise the list is
 * walked to its tail, each link checked before it is followed. */
static uint32_t slab_drain_remote(pool_slab *s, bool clear_listed) {
    uintptr_t r = atomic_load(&s->remote);
    if (!clear_listed) {
        if (r <= REMOTE_LISTED)
            return 0;
        while (!atomic_compare_exchange_weak(&s->remote, &r, r & REMOTE_LISTED))
            ;
    } else {
        r = atomic_exchange(&s->remote, 0);
    }
    uintptr_t *b = remote_head(r);
    if (!b)
        return 0;
    if (!s->free) {
        uint32_t n = (uint32_t)(r >> REMOTE_COUNT_SHIFT);
        s->free = b;
        s->used -= n;
        return n;
    }
    uint32_t n = 1;
    uintptr_t *tail = b;
    for (;;) {
        uintptr_t *next = pool_link_dec(s, tail[0]);
        if (!next)
            break;
        if (PA_UNLIKELY(!pool_link_ok(s, next) || !pool_block_ok(s, next))) {
            /* tail was written after its free: keep the list up to it, leak
             * the rest (it stays counted as used, so the slab stays too). */
            s->corrupt = true;
            hak_misuse("free", tail, "corrupted free list");
            break;
        }
        tail = next;
        n++;
    }
    tail[0] = pool_link_enc(s, s->free);
    s->free = b;
    s->used -= n;
    return n;
}

/* The current slab's head link is bad: find the block whose first word
 * produced it (written after its free, then handed out), report, and drop
 * the rest of the list (those blocks leak; nothing is handed out twice). */
static __attribute__((noinline, cold)) void slab_corrupt_slow(pool_slab *s) {
    uintptr_t stored = pool_link_enc(s, s->free);
    const char *culprit = s->free;
    char *bump = atomic_load_explicit(&s->bump, memory_order_relaxed);
    for (char *b = s->start; b < bump; b += s->block_size) {
        const uintptr_t *w = (const uintptr_t *)b;
        if (w[0] == stored && w[1] != (POOL_FREED_MARK ^ (uintptr_t)b)) {
            culprit = b;
            break;
        }
    }
    s->free = NULL;
    s->corrupt = true;
    hak_misuse("malloc", culprit, "corrupted free list");
}

/* Carve up to a page's worth of fresh blocks onto the free list. */
static bool slab_carve(pool_slab *s) {
    char *bump = atomic_load_explicit(&s->bump, memory_order_relaxed);
    size_t bs = s->block_size, left = (size_t)(s->end - bump) / bs;
    if (!left)
        return false;
    size_t n = bs >= PA_PAGE ? 1 : PA_PAGE / bs;
    if (n > left)
        n = left;
    char *p = bump;
    for (size_t i = 0; i + 1 < n; i++, p += bs) {
        uintptr_t *w = (uintptr_t *)p;
        w[0] = pool_link_enc(s, p + bs);
        w[1] = POOL_FREED_MARK ^ (uintptr_t)p; /* free: a free() of it is a double free */
    }
    ((uintptr_t *)p)[0] = pool_link_enc(s, s->free);
    ((uintptr_t *)p)[1] = POOL_FREED_MARK ^ (uintptr_t)p;
    s->free = bump;
    atomic_store_explicit(&s->bump, bump + n * bs, memory_order_relaxed);
    return true;
}

/* ---- the notify stack ------------------------------------------------------ */

static void drain_notify(pool_heap *h) {
    pool_slab *s = atomic_exchange(&h->notify, NULL);
    while (s) {
        pool_slab *next = s->notify_next; /* read before the slab is unlisted */
        uint32_t n = slab_drain_remote(s, true);
        slab_check(s);
        if (s->used == 0 && !keep_empty(h, s))
            slab_empty(h, s);
        else if (s->full && n) {
            s->full = false;
            list_push(h, s);
        }
        s = next;
    }
}

/* ---- heaps ----------------------------------------------------------------- */

/* Set when the thread's heap was given up at its exit: a free from a later
 * destructor does not take a heap again (nothing would give it back). */
static __thread bool tl_exited __attribute__((tls_model("initial-exec")));

static void heap_key_destructor(void *h) {
    tl_exited = true;
    pool_thread_exit();
}

static void fork_child(void) {
    if (pa_lock_reset(&abandon_lock))
        abandoned = NULL; /* half-updated: leak those heaps in this child */
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static bool init_ok;

/* The link secret: random bits from the kernel (pa_os_random). */
static void secret_init(void) { link_secret = (uintptr_t)pa_os_random(); }

static void init_body(void) {
    if (!pa_init())
        return;
    secret_init();
    pthread_key_create(&heap_key, heap_key_destructor);
    init_ok = true;
}

static bool pool_init(void) {
    if (PA_LIKELY(atomic_load_explicit(&init_state, memory_order_acquire) != 0))
        return true;
    pthread_once(&init_once, init_body);
    if (!init_ok)
        return false;
    int expect = 0;
    if (atomic_compare_exchange_strong(&init_state, &expect, 1)) {
        pthread_atfork(NULL, NULL, fork_child); /* may call malloc: ready by now */
        atomic_store_explicit(&init_state, 2, memory_order_release);
    }
    return true;
}

__attribute__((constructor)) static void pool_ctor(void) { pool_init(); }

static pool_heap *heap_acquire(void) {
    pa_lock(&abandon_lock);
    pool_heap *h = abandoned;
    if (h) {
        abandoned = h->abandoned_next;
        h->closing = false;
        atomic_store(&h->state, HEAP_ACTIVE);
    }
    pa_unlock(&abandon_lock);
    if (h) {
        drain_notify(h);
        return h;
    }
    h = pa_meta_alloc(sizeof *h);
    if (!h)
        return NULL;
    for (unsigned c = 0; c < POOL_NCLASS; c++)
        h->cur[c] = &pool_empty_slab;
    h->chunk_next = (size_t)1 << 20;
    pool_heap *top = atomic_load(&all_heaps);
    do
        h->all_next = top;
    while (!atomic_compare_exchange_weak(&all_heaps, &top, h));
    return h;
}

bool pool_heap_ensure(void) {
    if (PA_LIKELY(pool_tl_heap != &pool_empty_heap))
        return true;
    if (!pool_init())
        return false;
    pool_heap *h = heap_acquire();
    if (!h)
        return false;
    pool_tl_heap = h; /* before setspecific, which may call malloc */
    pthread_setspecific(heap_key, h);
    return true;
}

/* Collect an abandoned heap: drain its remote frees as its owner would. */
static void heap_collect(pool_heap *h) {
    pa_lock(&abandon_lock);
    if (atomic_load(&h->state) == HEAP_ABANDONED)
        drain_notify(h);
    pa_unlock(&abandon_lock);
}

void pool_thread_exit(void) {
    pool_heap *h = pool_tl_heap;
    if (h == &pool_empty_heap)
        return;
    pool_tl_heap = &pool_empty_heap;
    drain_notify(h);
    h->closing = true; /* from here no slab is kept back */
    for (unsigned c = 0; c < POOL_NCLASS; c++) {
        if (h->spare[c]) {
            slab_release(h->spare[c]);
            h->spare[c] = NULL;
        }
        pool_slab *s = h->cur[c];
        h->cur[c] = &pool_empty_slab;
        if (s != &pool_empty_slab) {
            if (s->free || atomic_load_explicit(&s->bump, memory_order_relaxed) < s->end)
                list_push(h, s);
            else
                s->full = true;
            if (s->used == 0)
                slab_empty(h, s);
        }
        for (pool_slab *t = h->list[c], *next; t; t = next) {
            next = t->next;
            if (t->used == 0)
                slab_empty(h, t);
        }
    }
    mid_chunk_release(h);
    atomic_store(&h->state, HEAP_ABANDONED);
    pa_lock(&abandon_lock);
    h->abandoned_next = abandoned;
    abandoned = h;
    pa_unlock(&abandon_lock);
    heap_collect(h); /* frees that listed slabs while we were leaving */
}

void pool_fork_child(void) { fork_child(); }

/* ---- malloc / free slow paths ---------------------------------------------- */

/* Make h->cur[c] a slab with a free block; false when memory is refused. */
static bool refill(pool_heap *h, unsigned c) {
    pool_slab *s = h->cur[c];
    slab_check(s);
    list_check(h, c);
    if (s != &pool_empty_slab) {
        if (slab_drain_remote(s, false) || slab_carve(s))
            return true;
        s->full = true; /* exhausted: off every list until a free */
    }
    drain_notify(h);
    pool_slab *t = h->list[c];
    if (t) {
        list_remove(h, t);
        if (!t->free)
            slab_carve(t);
        h->cur[c] = t;
        return true;
    }
    t = h->spare[c];
    if (t) {
        h->spare[c] = NULL;
        if (!t->free)
            slab_carve(t);
        h->cur[c] = t;
        return true;
    }
    t = slab_new(h, c);
    if (!t) {
        h->cur[c] = &pool_empty_slab;
        if (s != &pool_empty_slab && s->full && s->used < s->capacity) {
            /* keep the old slab reachable */
            s->full = false;
            list_push(h, s);
        }
        return false;
    }
    slab_carve(t);
    h->cur[c] = t;
    slab_check(t);
    return true;
}

void *pool_malloc_slow(size_t n) {
    if (n > L25_MAX || !pool_heap_ensure())
        return NULL;
    pool_heap *h = pool_tl_heap;
    unsigned c = pool_class_of(n);
    pool_slab *s = h->cur[c];
    if (PA_UNLIKELY(s->free && !pool_link_ok(s, s->free)))
        slab_corrupt_slow(s);
    if (!s->free && !refill(h, c))
        return NULL;
    void *p = pool_malloc_fast(n);
    return p;
}

void pool_free_local_slow(pool_heap *h, pool_slab *s) {
    slab_check(s);
    if (s->full && s->used) {
        s->full = false;
        if (s != h->cur[s->cls])
            list_push(h, s);
        return;
    }
    if (s->used == 0 && !keep_empty(h, s))
        slab_empty(h, s);
}

pool_ptr_kind pool_check(const void *p) {
    const pool_slab *s = (const pool_slab *)pa_pagemap_get(p);
    if (!s || s->hdr.kind != PA_KIND_SLAB)
        return POOL_PTR_NOT_POOL;
    if (!pool_block_ok(s, p))
        return POOL_PTR_INVALID;
    if (((const uintptr_t *)p)[1] == (POOL_FREED_MARK ^ (uintptr_t)p))
        return POOL_PTR_DOUBLE;
    return POOL_PTR_OK;
}

pool_ptr_kind pool_free_slow(void *p, const pa_desc *d, bool want_heap) {
    pool_slab *s = (pool_slab *)d;
    if (!pool_block_ok(s, p))
        return POOL_PTR_INVALID;
    if (((const uintptr_t *)p)[1] == (POOL_FREED_MARK ^ (uintptr_t)p))
        return POOL_PTR_DOUBLE;
    pool_heap *me = pool_tl_heap, *owner = s->hdr.owner;
    if (me == &pool_empty_heap && want_heap && !tl_exited && pool_heap_ensure())
        me = pool_tl_heap; /* a thread that only frees: count in its own heap */
    if (owner == me) { /* only reached when the fast path was not inlined */
        pool_free_fast(p, &s->hdr);
        return POOL_PTR_OK;
    }
    unsigned cls = s->cls; /* after the push the owner may free the slab */
    uintptr_t *w = p;
    w[1] = POOL_FREED_MARK ^ (uintptr_t)p;
    uintptr_t old = atomic_load(&s->remote);
    do
        w[0] = pool_link_enc(s, remote_head(old));
    while (!atomic_compare_exchange_weak(
        &s->remote, &old,
        (uintptr_t)p | REMOTE_LISTED | ((old & ~REMOTE_HEAD_MASK) + REMOTE_COUNT)));
    if (me != &pool_empty_heap)
        pool_count(&me->nfree[cls]);
    else
        count_add(&nfree_heapless[cls], 1);
    if (!(old & 1)) { /* we set the listed bit: the slab stays until drained */
        pool_slab *top = atomic_load(&owner->notify);
        do
            s->notify_next = top;
        while (!atomic_compare_exchange_weak(&owner->notify, &top, s));
        if (atomic_load(&owner->state) == HEAP_ABANDONED)
            heap_collect(owner);
    }
    return POOL_PTR_OK;
}

size_t pool_usable_size(const void *p) {
    const pool_slab *s = (const pool_slab *)pa_pagemap_get(p);
    return s && s->hdr.kind == PA_KIND_SLAB ? s->block_size : 0;
}

size_t pool_aligned_size(size_t n, size_t align) {
    if (align > PA_PAGE || n > L25_MAX)
        return 0;
    if (!pool_init())
        return 0;
    for (unsigned c = pool_class_of(n ? n : 1); c < POOL_NCLASS; c++)
        if (pool_classes[c].size % align == 0)
            return pool_classes[c].size;
    return 0;
}

/* ---- statistics ------------------------------------------------------------ */

void pool_stats_get(pool_stats out[POOL_COUNT]) {
    memset(out, 0, sizeof(pool_stats) * POOL_COUNT);
    for (unsigned c = 0; c < POOL_NCLASS; c++) {
        uint64_t m = 0, f = atomic_load_explicit(&nfree_heapless[c], memory_order_relaxed);
        for (pool_heap *h = atomic_load(&all_heaps); h; h = h->all_next) {
            m += atomic_load_explicit(&h->nmalloc[c], memory_order_relaxed);
            f += atomic_load_explicit(&h->nfree[c], memory_order_relaxed);
        }
        pool_stats *o = &out[pool_classes[c].pool];
        o->nmalloc += m;
        o->nfree += f;
        if (m > f)
            o->active += (m - f) * pool_classes[c].size;
    }
    for (unsigned k = 0; k < POOL_COUNT; k++) {
        out[k].allocated = atomic_load_explicit(&pool_allocated[k], memory_order_relaxed);
        out[k].slabs = atomic_load_explicit(&pool_nslabs[k], memory_order_relaxed);
    }
}
