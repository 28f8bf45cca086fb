/* heap.h - the pools' shared engine (defined in heap.c): slab descriptors,
 * per-thread heaps, and the inlined malloc/free fast paths of the Tiny, Mid
 * and L25 pools.  Run sources are in tiny.c, mid.c and l25.c.
 *
 * A slab (Tiny 64 KiB slab, Mid run, L25 run or span) is carved into blocks
 * of one class.  Its descriptor lives out of band (pa_meta) and is reached
 * through the page map.  The owning heap's thread allocates and frees with no
 * lock and no atomic; other threads push frees onto the slab's atomic remote
 * list and list the slab on the heap's notify stack, and the owner drains.
 *
 * Hardening (HAKMEM_HARDEN, on unless built with -DHAKMEM_HARDEN=0, which
 * only the bench's cost measurement does): free-list links, local and
 * remote, are stored XORed with the slab's secret key, and a link is
 * range-checked before it is followed: a use-after-free write cannot steer
 * an allocation outside its slab, and without the key cannot steer it at
 * all.  A bad link is reported as "corrupted free list", naming the block
 * that was written after its free.
 *
 * Always on (docs/DESIGN.md, Bad input): every free block (carved or freed)
 * carries the freed mark in word 1, so freeing a free block is a "double
 * free", and a free is taken only at an exact block boundary below the carve
 * pointer ("invalid pointer"). */
#ifndef POOL_HEAP_H
#define POOL_HEAP_H

#include "arena/page_arena.h"
#include "pools/classes.h"

struct pool_heap;

#ifndef HAKMEM_HARDEN
#define HAKMEM_HARDEN 1
#endif

typedef struct pool_slab {
    pa_desc hdr;              /* hdr.owner: the heap, for the slab's life */
    void *free;               /* owner's free list (decoded head) */
    uintptr_t key;            /* link key: stored link = next ^ key */
    char *start;              /* blocks are [start, end) */
    uintptr_t last_off;       /* offset of the last block + 1: a link is
                               * good when link - start < last_off */
    uint32_t used;            /* blocks out, as the owner knows it */
    uint32_t capacity;
    uint32_t block_size;
    uint16_t cls;
    bool full;                /* off the heap's class list */
    bool corrupt;             /* a bad link was cut: blocks leaked (debug checks) */
    char *end;
    _Atomic(char *) bump;     /* [bump, end) uncarved; read by freeing threads */
    uint64_t div_c;           /* ceil(2^64 / block_size): divisibility test */
    size_t span_bytes;
    struct pool_slab *next, *prev; /* the heap's list of slabs with free blocks */
    /* Remote frees: a block list; bit 0 set = listed on the heap's notify
     * stack (or about to be), cleared only by the drain that pops it; bits
     * 48-63 the number of blocks on the list (heap.c, REMOTE_COUNT). */
    _Atomic uintptr_t remote;
    struct pool_slab *notify_next;
} pool_slab;

typedef struct pool_heap {
    pool_slab *cur[POOL_NCLASS];   /* never NULL: &pool_empty_slab when none */
    pool_slab *list[POOL_NCLASS];  /* other slabs with free blocks (FIFO) */
    pool_slab *list_tail[POOL_NCLASS];
    pool_slab *spare[POOL_NCLASS]; /* Tiny/Mid: one emptied slab kept back */
    _Atomic uint64_t nmalloc[POOL_NCLASS], nfree[POOL_NCLASS];
    _Atomic(pool_slab *) notify;   /* slabs with remote frees */
    char *chunk, *chunk_end;       /* Mid: the current chunk's uncarved tail */
    size_t chunk_next;             /* Mid: next chunk size, 1 -> 8 MiB */
    atomic_int state;              /* HEAP_ACTIVE / HEAP_ABANDONED */
    bool closing;                  /* its thread is leaving: keep nothing back */
    struct pool_heap *all_next;    /* every heap, for statistics */
    struct pool_heap *abandoned_next;
} pool_heap;

enum { HEAP_ACTIVE, HEAP_ABANDONED };

extern pool_slab pool_empty_slab;
extern pool_heap pool_empty_heap;
extern __thread pool_heap *pool_tl_heap __attribute__((tls_model("initial-exec")));

#define POOL_FREED_MARK ((uintptr_t)0x9e3779b97f4a7c15ull)

/* Free-list links as stored in a free block's first word. */
#if HAKMEM_HARDEN
static inline uintptr_t pool_link_enc(const pool_slab *s, const void *next) {
    return (uintptr_t)next ^ s->key;
}
static inline void *pool_link_dec(const pool_slab *s, uintptr_t w) {
    return (void *)(w ^ s->key);
}
/* False for NULL and for anything that is not inside the slab's blocks. */
static inline bool pool_link_ok(const pool_slab *s, const void *p) {
    return (uintptr_t)p - (uintptr_t)s->start < s->last_off;
}
#else
static inline uintptr_t pool_link_enc(const pool_slab *s, const void *next) {
    return (uintptr_t)next;
}
static inline void *pool_link_dec(const pool_slab *s, uintptr_t w) { return (void *)w; }
static inline bool pool_link_ok(const pool_slab *s, const void *p) { return p != NULL; }
#endif

static inline void pool_count(_Atomic uint64_t *c) {
    /* Written by the owner only: a plain load and store, no lock prefix. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Malloc fast path: the current slab's free list.  NULL means "take the
 * slow path" (no heap yet, empty list, or a size the pools do not serve). */
static inline void *pool_malloc_fast(size_t n) {
    unsigned c;
    if (PA_LIKELY(n <= TINY_MAX))
        c = pool_lut_tiny[(n + 15) >> 4];
    else if (n <= MID_MAX)
        c = pool_lut_mid[(n + 255) >> 8];
    else if (n <= L25_MAX)
        c = pool_lut_l25[(n + 16383) >> 14];
    else
        return NULL;
    pool_heap *h = pool_tl_heap; /* &pool_empty_heap until the first refill */
    pool_slab *s = h->cur[c];
    uintptr_t *p = s->free;
    if (PA_UNLIKELY(!pool_link_ok(s, p))) /* empty list, or a bad link */
        return NULL;
    s->free = pool_link_dec(s, p[0]);
    s->used++;
    p[1] = 0; /* clears the freed mark */
    pool_count(&h->nmalloc[c]);
    return p;
}

/* True when p is the start of a carved block of s.  An offset below 2^32
 * (slabs are at most 2 MiB) is a multiple of block_size exactly when
 * offset * ceil(2^64 / block_size) wraps to less than that constant
 * (Lemire, Kaser and Kurz, "Faster remainder by direct computation"). */
static inline uint64_t pool_div_c(uint32_t block_size) {
    return UINT64_MAX / block_size + 1;
}
static inline bool pool_block_ok(const pool_slab *s, const void *p) {
    uintptr_t off = (uintptr_t)p - (uintptr_t)s->start;
    uintptr_t carved = (uintptr_t)atomic_load_explicit(&((pool_slab *)s)->bump,
                                                       memory_order_relaxed) -
                       (uintptr_t)s->start;
    return off < carved && off * s->div_c < s->div_c;
}

void pool_free_local_slow(pool_heap *h, pool_slab *s);

/* Free fast path for the owning thread; d is p's page-map descriptor.
 * False: not ours to free here (no heap, another heap's or nobody's pointer,
 * interior pointer, double free) -- the caller's slow path sorts it out. */
static inline __attribute__((always_inline)) bool pool_free_fast(void *p, const pa_desc *d) {
    pool_slab *s = (pool_slab *)d;
    pool_heap *h = pool_tl_heap;
    uintptr_t *w = p;
    if (PA_UNLIKELY(!s || s->hdr.owner != h || !pool_block_ok(s, p) ||
                    w[1] == (POOL_FREED_MARK ^ (uintptr_t)p)))
        return false;
    w[0] = pool_link_enc(s, s->free);
    w[1] = POOL_FREED_MARK ^ (uintptr_t)p;
    s->free = p;
    unsigned c = s->cls;
    pool_count(&h->nfree[c]);
    uint32_t used = --s->used;
    if (PA_UNLIKELY(used == 0 || s->full)) {
        /* An emptied current Tiny/Mid slab stays as it is (see keep_empty
         * in heap.c): a malloc/free pair of one block needs no call. */
        if (used != 0 || s != h->cur[c] || s->block_size > MID_MAX)
            pool_free_local_slow(h, s);
    }
    return true;
}

/* ---- slow paths and lifecycle (heap.c) ---- */

/* Allocate a block of class c for this thread (refill, new slab).  NULL with
 * the OS refusing memory. */
void *pool_malloc_slow(size_t n);
/* What a pointer is, for free / realloc / usable size. */
typedef enum { POOL_PTR_NOT_POOL, POOL_PTR_OK, POOL_PTR_INVALID, POOL_PTR_DOUBLE } pool_ptr_kind;
pool_ptr_kind pool_check(const void *p);
/* Free p, whose page-map descriptor d is a slab's, from any thread.  Returns
 * POOL_PTR_OK, or the fault (nothing touched).  want_heap: a thread with no
 * heap takes one (not in jemalloc mode, not after its exit), so that its
 * frees are counted without a shared atomic. */
pool_ptr_kind pool_free_slow(void *p, const pa_desc *d, bool want_heap);
/* Usable size of a pool block (0 if p is not one). */
size_t pool_usable_size(const void *p);
/* Block size for an allocation of n bytes aligned to `align` (<= 4 KiB), or
 * 0 when the pools cannot serve it. */
size_t pool_aligned_size(size_t n, size_t align);

void pool_thread_exit(void);
void pool_fork_child(void);
bool pool_heap_ensure(void);

typedef struct pool_stats {
    uint64_t allocated, active, nmalloc, nfree, slabs;
} pool_stats;
void pool_stats_get(pool_stats out[POOL_COUNT]);

/* ---- run sources (tiny.c, mid.c, l25.c) ---- */
/* Take a run for class c; *zero tells whether it reads as zero. */
void *tiny_slab_take(pool_heap *h, unsigned c, pa_desc *owner, bool *zero);
void *mid_run_take(pool_heap *h, unsigned c, pa_desc *owner, bool *zero);
void *l25_run_take(pool_heap *h, unsigned c, pa_desc *owner, bool *zero);
/* Mid: hand the heap's unused chunk tail back to the PageArena. */
void mid_chunk_release(pool_heap *h);
/* Bytes of slabs held per pool (updated by heap.c). */
extern _Atomic uint64_t pool_allocated[POOL_COUNT], pool_nslabs[POOL_COUNT];

#endif
