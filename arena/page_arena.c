/* page_arena.c - owns the PageArena's tiers and policies: the hot stack and
 * its per-thread caches, the warm buckets, the odd-range set, cold mapping,
 * overflow, decay, zero tracking, the handed-out/cached state of every page
 * (through the page map), fork and thread-exit handling, and the counters.
 *
 * Locking: one leaf lock guards the shared tiers.  Under it the code only
 * moves entries; every system call (munmap of purged spans, page-map leaf
 * mapping) happens after it is released. */
#define _GNU_SOURCE
#include "arena/page_arena.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "arena/options.h"
#include "arena/pa_background.h"
#include "arena/pa_meta.h"

#define SZ_64K ((size_t)64 << 10)
#define SZ_128K ((size_t)128 << 10)
#define SZ_2M ((size_t)2 << 20)
#define TLS_HOT 16     /* pages in each thread's hot cache */
#define ODD_MAX 4096   /* entries in the odd-range set */
#define VICTIMS 32     /* spans released per pass outside the lock */
#define ODD_SHARE 4    /* odd-cap slack: bytes_out / ODD_SHARE ... */
#define ODD_MIN_CAP ((size_t)32 << 20) /* ... and at least this */
#define ODD_BIG_SPANS 4 /* keep room for this many of the largest recent frees */
#define EXTEND_MIN_SHARE 4 /* a range grown for a request holds >= 1/4 of it */
#define COLD_CHUNK SZ_2M /* cold requests below this carve a chunk this size */
#define BG_WANT_BYTES ((size_t)4 << 20) /* dirty bytes cached: ask for the thread */
#define BG_WANT_OUT ((size_t)16 << 20)  /* bytes handed out: ask for it too */

typedef struct { uintptr_t addr; uint64_t t; bool zero; } pa_span;
typedef struct {
    pa_span *v;
    uint32_t cap, bot, n; /* ring: bottom = oldest, top = newest (LIFO end) */
    size_t span;
} pa_ring;
typedef struct { uintptr_t addr; size_t len; uint64_t t; bool zero; } pa_range;
typedef struct { uintptr_t addr; size_t len; } pa_victim;
typedef struct { pa_victim v[VICTIMS]; unsigned n; } pa_victims;

enum { R_HOT, R_64K, R_128K, R_2M, R_COUNT };

static struct {
    pa_lock_t lock;
    pa_ring ring[R_COUNT];
    pa_range *odd;
    uint32_t odd_n;
    size_t odd_bytes, odd_cap, odd_big; /* odd_big: largest recent free */
    size_t odd_dirty; /* bytes of odd ranges not known zero (may be resident) */
    uint64_t decay_ms, last_decay, last_fade, last_peak_fade;
    bool enabled, thp;
    bool background; /* HAKMEM_BACKGROUND: the thread may be asked for */
    bool bg_idle;    /* the thread sleeps until woken: the tiers were empty */
    /* counters, under the lock */
    uint64_t hot_hits, hot_misses, warm_hits, warm_misses, odd_hits,
        purged_spans, decayed_spans, odd_extends;
} g;

static _Atomic uint64_t tls_bytes, tls_hits, bytes_out, cold_maps, cold_unmaps;
/* The recent high-water mark of bytes_out: raised as clients take spans,
 * faded toward bytes_out by each finished decay pass. */
static _Atomic uint64_t out_peak;
static atomic_int init_state; /* 0 new, 1 registering, 2 ready */
static pthread_key_t tls_key;

static __thread struct {
    uint32_t n;
    bool registered;
    uintptr_t v[TLS_HOT];
} pa_tls __attribute__((tls_model("initial-exec")));

static void count_add(_Atomic uint64_t *c, int64_t d) {
    atomic_fetch_add_explicit(c, (uint64_t)d, memory_order_relaxed);
}

/* ---- rings (hot and warm tiers) ---------------------------------------- */

static pa_ring *ring_for(size_t size, uintptr_t addr_or_align) {
    switch (size) {
    case PA_PAGE: return &g.ring[R_HOT];
    case SZ_64K: return &g.ring[R_64K];
    case SZ_128K: return &g.ring[R_128K];
    case SZ_2M: /* on free: only 2 MiB-aligned spans; on alloc: any align */
        return (addr_or_align & (SZ_2M - 1)) == 0 || addr_or_align <= SZ_2M
                   ? &g.ring[R_2M] : NULL;
    default: return NULL;
    }
}

static size_t ring_bytes(const pa_ring *r) { return (size_t)r->n * r->span; }

/* ---- the background thread's view ------------------------------------- */

enum { BG_WAKE = 1, BG_WANT = 2 };

/* After caching something, under the lock: wake the thread if it sleeps on
 * empty tiers; ask for it once the dirty bytes cached are worth a thread. */
static unsigned bg_note_locked(void) {
    if (PA_UNLIKELY(g.bg_idle)) {
        g.bg_idle = false;
        return BG_WAKE;
    }
    if (PA_LIKELY(!g.background) ||
        atomic_load_explicit(&pa_bg_state, memory_order_relaxed) != PA_BG_OFF)
        return 0;
    size_t dirty = g.odd_dirty;
    for (unsigned k = 0; k < R_COUNT; k++)
        dirty += ring_bytes(&g.ring[k]);
    return dirty > BG_WANT_BYTES ? BG_WANT : 0;
}

/* After a cold mapping: a process holding this much will cache some of it
 * once it frees, and a safe point to create the thread (a malloc slow path)
 * may not come after that (a quiet process allocates from its caches). */
static void bg_note_cold(size_t size) {
    if (g.background &&
        atomic_load_explicit(&bytes_out, memory_order_relaxed) + size > BG_WANT_OUT)
        pa_background_want();
}

/* The same, after the lock is released. */
static void bg_after(unsigned note) {
    if (PA_UNLIKELY(note & BG_WAKE))
        pa_background_wake();
    if (PA_UNLIKELY(note & BG_WANT))
        pa_background_want();
}

/* Pop the newest span if it satisfies `align`. */
static bool ring_pop(pa_ring *r, size_t align, pa_span *out) {
    if (!r->n)
        return false;
    uint32_t top = (r->bot + r->n - 1) % r->cap;
    if (r->v[top].addr & (align - 1))
        return false;
    *out = r->v[top];
    r->n--;
    return true;
}

/* Push a span; when full, the oldest is evicted into `vic`.  False if the
 * tier has no capacity at all (the span itself becomes a victim). */
static bool ring_push(pa_ring *r, pa_span s, pa_victims *vic) {
    if (r->cap == 0)
        return false;
    if (r->n == r->cap) {
        if (vic->n == VICTIMS)
            return false;
        vic->v[vic->n++] = (pa_victim){r->v[r->bot].addr, r->span};
        r->bot = (r->bot + 1) % r->cap;
        r->n--;
        g.purged_spans++;
    }
    r->v[(r->bot + r->n) % r->cap] = s;
    r->n++;
    return true;
}

/* ---- odd ranges: address-ordered, coalescing, best fit ----------------- */

static uint32_t odd_search(uintptr_t a) { /* first index with addr > a */
    uint32_t lo = 0, hi = g.odd_n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (g.odd[mid].addr <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static size_t dirty_of(const pa_range *e) { return e->zero ? 0 : e->len; }

static void odd_remove(uint32_t i) {
    g.odd_bytes -= g.odd[i].len;
    g.odd_dirty -= dirty_of(&g.odd[i]);
    memmove(&g.odd[i], &g.odd[i + 1], (g.odd_n - i - 1) * sizeof(pa_range));
    g.odd_n--;
}

static bool odd_insert(uintptr_t a, size_t len, bool zero, uint64_t now) {
    uint32_t i = odd_search(a);
    /* Neighbours merge only when both are known zero or both are not, so
     * an untouched range never becomes dirty by merging. */
    bool prev = i > 0 && g.odd[i - 1].addr + g.odd[i - 1].len == a && g.odd[i - 1].zero == zero;
    bool next = i < g.odd_n && a + len == g.odd[i].addr && g.odd[i].zero == zero;
    if (prev) {
        pa_range *p = &g.odd[i - 1];
        g.odd_dirty -= dirty_of(p);
        p->len += len;
        p->t = now;
        g.odd_bytes += len;
        if (next) {
            p->len += g.odd[i].len;
            g.odd_bytes += g.odd[i].len;
            odd_remove(i);
        }
        g.odd_dirty += dirty_of(p);
        return true;
    }
    if (next) {
        pa_range *n = &g.odd[i];
        g.odd_dirty -= dirty_of(n);
        n->addr = a;
        n->len += len;
        n->t = now;
        g.odd_bytes += len;
        g.odd_dirty += dirty_of(n);
        return true;
    }
    if (g.odd_n == ODD_MAX)
        return false;
    memmove(&g.odd[i + 1], &g.odd[i], (g.odd_n - i) * sizeof(pa_range));
    g.odd[i] = (pa_range){a, len, now, zero};
    g.odd_n++;
    g.odd_bytes += len;
    g.odd_dirty += dirty_of(&g.odd[i]);
    return true;
}

/* Carve [start, start+size) out of entry i; the pieces left stay cached. */
static void odd_carve(uint32_t i, uintptr_t start, size_t size, pa_victims *vic) {
    pa_range e = g.odd[i];
    odd_remove(i);
    uintptr_t end = start + size, e_end = e.addr + e.len;
    if (start > e.addr && !odd_insert(e.addr, start - e.addr, e.zero, e.t) &&
        vic->n < VICTIMS)
        vic->v[vic->n++] = (pa_victim){e.addr, start - e.addr};
    if (e_end > end && !odd_insert(end, e_end - end, e.zero, e.t) && vic->n < VICTIMS)
        vic->v[vic->n++] = (pa_victim){end, e_end - end};
}

static uintptr_t odd_take(size_t size, size_t align, bool *zero, pa_victims *vic) {
    uint32_t best = UINT32_MAX;
    size_t best_len = SIZE_MAX;
    uintptr_t best_start = 0;
    for (uint32_t i = 0; i < g.odd_n; i++) {
        const pa_range *e = &g.odd[i];
        if (e->len < size || e->len >= best_len)
            continue;
        uintptr_t start = (e->addr + align - 1) & ~(uintptr_t)(align - 1);
        if (start + size <= e->addr + e->len) {
            best = i;
            best_len = e->len;
            best_start = start;
        }
    }
    if (best == UINT32_MAX)
        return 0;
    *zero = g.odd[best].zero;
    odd_carve(best, best_start, size, vic);
    return best_start;
}

/* Move the 2 MiB warm tier into the odd set, oldest first, where each span
 * coalesces with its neighbours (cached odd ranges and the other spans).  A
 * request the odd set cannot serve is about to map fresh pages while spans
 * parked here (the pools' L25 runs, 2 MiB blocks) could, merged with the
 * ranges beside them, hold it: vm_mixed mapped 4 MiB extents with 23 MB of
 * dirty 2 MiB spans idle in this ring.  Spans the set cannot take stay. */
static bool warm2m_fold_locked(void) {
    pa_ring *r = &g.ring[R_2M];
    uint32_t moved = 0;
    while (r->n) {
        const pa_span *s = &r->v[r->bot];
        if (!odd_insert(s->addr, r->span, s->zero, s->t))
            break;
        r->bot = (r->bot + 1) % r->cap;
        r->n--;
        moved++;
    }
    return moved != 0;
}

/* The odd-range cap for `out` bytes handed out and a recent high-water mark
 * `peak`: what clients gave back since the peak (peak - out), plus a slack
 * of a quarter of `out` (at least ODD_MIN_CAP), or room for a few of the
 * largest recent frees `big` if that is more; the configured bytes at
 * most.  Cached memory then fills the room clients freed below their own
 * recent peak, where it raises the resident set over that peak by the slack
 * at most, and a heap that churns large blocks (freeing 40 MiB, then taking
 * 40 MiB again) keeps them instead of unmapping them and faulting fresh
 * pages in (and, with threads, paying a TLB shootdown per munmap). */
size_t pa_odd_cap_for(size_t out, size_t peak, size_t big, size_t cap_max) {
    size_t slack = out / ODD_SHARE;
    if (slack < ODD_MIN_CAP)
        slack = ODD_MIN_CAP;
    size_t cap = (peak > out ? peak - out : 0) + slack;
    if (cap < ODD_BIG_SPANS * big)
        cap = ODD_BIG_SPANS * big;
    return cap < cap_max ? cap : cap_max;
}

static size_t odd_cap_now(void) {
    return pa_odd_cap_for((size_t)atomic_load_explicit(&bytes_out, memory_order_relaxed),
                          (size_t)atomic_load_explicit(&out_peak, memory_order_relaxed),
                          g.odd_big, g.odd_cap);
}

/* Clients took `size` more bytes: raise the high-water mark with them. */
static void out_add(size_t size) {
    uint64_t now = atomic_fetch_add_explicit(&bytes_out, size, memory_order_relaxed) + size;
    uint64_t peak = atomic_load_explicit(&out_peak, memory_order_relaxed);
    while (now > peak && !atomic_compare_exchange_weak_explicit(
                             &out_peak, &peak, now, memory_order_relaxed, memory_order_relaxed))
        ;
}

/* Evict dirty odd ranges while their bytes are over the cap, oldest first;
 * when the oldest holds more than the excess (coalesced ranges grow large),
 * only its tail goes, so the cache stays full up to the cap.  Ranges known
 * zero (the untouched rest of a cold chunk) are not resident and do not
 * count: trimming them would save no memory, only cost mmaps later. */
static void odd_enforce_cap(pa_victims *vic) {
    size_t cap = odd_cap_now();
    while (g.odd_dirty > cap && vic->n < VICTIMS) {
        uint32_t old = UINT32_MAX;
        for (uint32_t i = 0; i < g.odd_n; i++)
            if (!g.odd[i].zero && (old == UINT32_MAX || g.odd[i].t < g.odd[old].t))
                old = i;
        PA_ASSERT(old != UINT32_MAX); /* odd_dirty > 0: a dirty range exists */
        if (old == UINT32_MAX)
            break;
        pa_range *e = &g.odd[old];
        size_t cut = (g.odd_dirty - cap + PA_PAGE - 1) & ~(PA_PAGE - 1);
        g.purged_spans++;
        if (cut < e->len) {
            e->len -= cut;
            g.odd_bytes -= cut;
            g.odd_dirty -= cut;
            vic->v[vic->n++] = (pa_victim){e->addr + e->len, cut};
            break;
        }
        vic->v[vic->n++] = (pa_victim){e->addr, e->len};
        odd_remove(old);
    }
}

/* ---- invariants (debug builds) ---------------------------------------- */

/* Every cached span and range: page-aligned, mapping to the cached
 * descriptor; rings within capacity, 2 MiB spans 2 MiB-aligned; odd ranges
 * sorted, disjoint, coalesced unless one is known zero and the other not,
 * summing to odd_bytes (those not known zero: odd_dirty). */
static void check_locked(void) {
    if (!HAKMEM_DEBUG)
        return;
    for (unsigned k = 0; k < R_COUNT; k++) {
        const pa_ring *r = &g.ring[k];
        PA_ASSERT(r->n <= r->cap && (r->cap == 0 || r->bot < r->cap));
        for (uint32_t i = 0; i < r->n; i++) {
            uintptr_t a = r->v[(r->bot + i) % r->cap].addr;
            PA_ASSERT(a && !(a & (PA_PAGE - 1)));
            PA_ASSERT(k != R_2M || !(a & (SZ_2M - 1)));
            PA_ASSERT(pa_pagemap_get((void *)a) == &pa_desc_cached);
        }
    }
    size_t sum = 0, dirty = 0;
    for (uint32_t i = 0; i < g.odd_n; i++) {
        const pa_range *e = &g.odd[i];
        PA_ASSERT(e->len && !(e->len & (PA_PAGE - 1)) && !(e->addr & (PA_PAGE - 1)));
        PA_ASSERT(i == 0 || g.odd[i - 1].addr + g.odd[i - 1].len < e->addr ||
                  (g.odd[i - 1].addr + g.odd[i - 1].len == e->addr && g.odd[i - 1].zero != e->zero));
        PA_ASSERT(pa_pagemap_get((void *)e->addr) == &pa_desc_cached);
        PA_ASSERT(pa_pagemap_get((void *)(e->addr + e->len - PA_PAGE)) == &pa_desc_cached);
        sum += e->len;
        dirty += dirty_of(e);
    }
    PA_ASSERT(sum == g.odd_bytes && dirty == g.odd_dirty);
}

/* ---- decay ------------------------------------------------------------- */

static void decay_locked(uint64_t now, bool force, pa_victims *vic) {
    if (!g.decay_ms && !force)
        return;
    uint64_t period = g.decay_ms / 4 ? g.decay_ms / 4 : 1;
    if (!force && now - g.last_decay < period)
        return;
    for (unsigned k = 0; k < R_COUNT; k++) {
        pa_ring *r = &g.ring[k];
        while (r->n && vic->n < VICTIMS &&
               (force || r->v[r->bot].t + g.decay_ms <= now)) {
            vic->v[vic->n++] = (pa_victim){r->v[r->bot].addr, r->span};
            r->bot = (r->bot + 1) % r->cap;
            r->n--;
            g.decayed_spans++;
        }
    }
    for (uint32_t i = 0; i < g.odd_n && vic->n < VICTIMS;) {
        if (force || g.odd[i].t + g.decay_ms <= now) {
            vic->v[vic->n++] = (pa_victim){g.odd[i].addr, g.odd[i].len};
            odd_remove(i);
            g.decayed_spans++;
        } else {
            i++;
        }
    }
    if (vic->n < VICTIMS) {
        g.last_decay = now; /* finished; otherwise the next call goes on */
        /* Fades are paced by the clock, not by passes: the background
         * thread runs passes as often as spans fall due. */
        if (force || now - g.last_fade >= period) {
            g.last_fade = now;
            g.odd_big /= 2; /* the largest recent free fades out */
        }
        /* The high-water mark fades halfway toward what is out now, once
         * per decay time: fading it every pass shrank the cap of a busy
         * heap between two of its peaks (malloc_large faulted more). */
        uint64_t out = atomic_load_explicit(&bytes_out, memory_order_relaxed);
        uint64_t peak = atomic_load_explicit(&out_peak, memory_order_relaxed);
        if (peak > out && (force || now - g.last_peak_fade >= g.decay_ms)) {
            g.last_peak_fade = now;
            atomic_compare_exchange_strong_explicit(&out_peak, &peak, out + (peak - out) / 2,
                                                    memory_order_relaxed, memory_order_relaxed);
        } /* a client raising it meanwhile wins */
    }
}

/* Decay on an application thread's slow path: only while no background
 * thread does it (not asked for yet, disabled, failed, or a fork child). */
static void app_decay_locked(uint64_t now, pa_victims *vic) {
    if (!pa_background_running())
        decay_locked(now, false, vic);
}

/* Victims are out of every tier; give them back to the OS. */
static void release(pa_victims *vic) {
    for (unsigned i = 0; i < vic->n; i++) {
        pa_pagemap_set((void *)vic->v[i].addr, vic->v[i].len, NULL);
        pa_os_unmap((void *)vic->v[i].addr, vic->v[i].len);
        count_add(&cold_unmaps, 1);
    }
    vic->n = 0;
}

/* ---- lifecycle --------------------------------------------------------- */

static void tls_destructor(void *unused) { pa_thread_flush(); }

static void fork_child(void) {
    if (pa_lock_reset(&g.lock)) {
        /* A thread was inside the lock: its update may be half done.  Drop
         * the caches (their pages stay mapped and marked cached: leaked in
         * this child, never handed out twice). */
        for (unsigned k = 0; k < R_COUNT; k++)
            g.ring[k].n = 0;
        g.odd_n = 0;
        g.odd_bytes = 0;
        g.odd_dirty = 0;
    }
    g.bg_idle = false; /* no thread in the child */
    bool cached = g.odd_n != 0;
    for (unsigned k = 0; k < R_COUNT; k++)
        cached |= g.ring[k].n != 0;
    pa_background_fork_child(cached && g.background);
    pa_meta_fork_child();
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static bool init_ok;

/* Runs once (pthread_once restarts it in a child forked mid-way). */
static void init_body(void) {
    hak_options_init();
    g.enabled = hak_opt(OPT_PA_ENABLE) != 0;
    g.thp = hak_opt(OPT_PA_THP) != 0;
    g.decay_ms = hak_opt(OPT_PA_DECAY_MS);
    g.background = hak_opt(OPT_BACKGROUND) && g.decay_ms && g.enabled;
    g.odd_cap = (size_t)hak_opt(OPT_PA_ODD_CAP_MB) << 20;
    const uint64_t caps[R_COUNT] = {hak_opt(OPT_PA_HOT_SIZE), hak_opt(OPT_PA_WARM_64K),
                                    hak_opt(OPT_PA_WARM_128K), hak_opt(OPT_PA_WARM_2M)};
    const size_t spans[R_COUNT] = {PA_PAGE, SZ_64K, SZ_128K, SZ_2M};
    size_t slots = 0;
    for (unsigned k = 0; k < R_COUNT; k++)
        slots += caps[k];
    size_t bytes = slots * sizeof(pa_span) + ODD_MAX * sizeof(pa_range);
    bytes = (bytes + PA_PAGE - 1) & ~(PA_PAGE - 1);
    char *mem = pa_os_map(bytes, PA_PAGE);
    if (!mem)
        return;
    g.odd = (pa_range *)mem;
    pa_span *v = (pa_span *)(mem + ODD_MAX * sizeof(pa_range));
    for (unsigned k = 0; k < R_COUNT; k++) {
        g.ring[k] = (pa_ring){v, (uint32_t)caps[k], 0, 0, spans[k]};
        v += caps[k];
    }
    g.last_decay = g.last_fade = g.last_peak_fade = pa_os_now_ms();
    pthread_key_create(&tls_key, tls_destructor);
    init_ok = true;
}

static bool init_slow(void) {
    pthread_once(&init_once, init_body);
    if (!init_ok)
        return false;
    int expect = 0;
    if (atomic_compare_exchange_strong(&init_state, &expect, 1)) {
        /* After the once: pthread_atfork may call malloc, which may be ours
         * and come back here. */
        pthread_atfork(NULL, NULL, fork_child);
        atomic_store_explicit(&init_state, 2, memory_order_release);
    }
    return true;
}

bool pa_init(void) {
    if (PA_LIKELY(atomic_load_explicit(&init_state, memory_order_acquire) != 0))
        return true;
    return init_slow();
}

/* At load time, while the process is still single-threaded, so the fork
 * handler is in place before any thread can fork. */
__attribute__((constructor)) static void pa_ctor(void) { pa_init(); }

/* ---- alloc / free ------------------------------------------------------ */

static bool valid_request(size_t size, size_t align) {
    return size && !(size & (PA_PAGE - 1)) && !(align & (align - 1)) &&
           size <= ((size_t)1 << PM_VA_BITS);
}

static void *finish_alloc(uintptr_t a, size_t size, const pa_desc *owner,
                          bool z, bool *zero) {
    pa_pagemap_set((void *)a, size, owner); /* leaves exist: it was mapped */
    out_add(size);
    *zero = z;
    return (void *)a;
}

/* A cold request below COLD_CHUNK maps a whole chunk and keeps the rest in
 * the odd set (known zero, not yet touched), so that a client asking for
 * many small extents (jemalloc with retain off asks for each large block's
 * extent) costs one mmap per chunk instead of one mmap and one munmap per
 * extent (mid_large_mt under jemalloc + PageArena: 3,453 mmaps before). */
static __attribute__((noinline)) void *cold_chunk_slow(size_t size) {
    char *c = pa_os_map(COLD_CHUNK, g.thp ? SZ_2M : PA_PAGE);
    if (!c)
        return NULL; /* the caller maps exactly `size` instead */
    if (g.thp)
        pa_os_hugepage(c, COLD_CHUNK);
    if (!pa_pagemap_set(c, COLD_CHUNK, &pa_desc_cached)) {
        pa_os_unmap(c, COLD_CHUNK);
        return NULL;
    }
    count_add(&cold_maps, 1);
    bg_note_cold(size);
    pa_victims vic = {.n = 0};
    pa_lock(&g.lock);
    if (!odd_insert((uintptr_t)c + size, COLD_CHUNK - size, true, pa_os_now_ms()))
        vic.v[vic.n++] = (pa_victim){(uintptr_t)c + size, COLD_CHUNK - size};
    odd_enforce_cap(&vic);
    unsigned note = bg_note_locked();
    check_locked();
    pa_unlock(&g.lock);
    release(&vic);
    bg_after(note);
    return c;
}

/* A large request the odd set cannot hold: grow its largest cached range
 * that holds at least a quarter of it into the free address space beside
 * it (above, else below) by mapping only the difference, so that part
 * faults in instead of the whole request.  The range is taken out of the set
 * while the mappings are tried outside the lock, and put back when neither
 * side is free.  The cap trims ranges from their tails (the address space
 * above them becomes free), so after an eviction the next large miss
 * usually finds room here. */
static __attribute__((noinline)) void *odd_extend_slow(size_t size, const pa_desc *owner) {
    pa_victims vic = {.n = 0};
    pa_range e = {0, 0, 0, false};
    pa_lock(&g.lock);
    uint32_t best = UINT32_MAX;
    for (uint32_t i = 0; i < g.odd_n; i++) {
        const pa_range *r = &g.odd[i];
        if (r->len >= size / EXTEND_MIN_SHARE && r->len < size &&
            (best == UINT32_MAX || r->len > g.odd[best].len) &&
            (!pa_pagemap_get((void *)(r->addr + r->len)) ||
             (r->addr >= size - r->len && !pa_pagemap_get((void *)(r->addr - PA_PAGE)))))
            best = i;
    }
    if (best != UINT32_MAX) {
        e = g.odd[best];
        odd_remove(best);
    }
    check_locked();
    pa_unlock(&g.lock);
    if (!e.len)
        return NULL;
    size_t need = size - e.len;
    uintptr_t start = 0, ext = 0;
    int err;
    if (!pa_pagemap_get((void *)(e.addr + e.len)) &&
        pa_os_map_at((void *)(e.addr + e.len), need, &err))
        start = e.addr, ext = e.addr + e.len;
    else if (e.addr >= need && !pa_pagemap_get((void *)(e.addr - PA_PAGE)) &&
             pa_os_map_at((void *)(e.addr - need), need, &err))
        start = ext = e.addr - need;
    if (start && !pa_pagemap_set((void *)start, size, owner)) {
        pa_os_unmap((void *)ext, need);
        start = 0;
    }
    if (start) {
        count_add(&cold_maps, 1);
        if (g.thp)
            pa_os_hugepage((void *)ext, need);
        pa_lock(&g.lock);
        g.odd_hits++;
        g.odd_extends++;
        pa_unlock(&g.lock);
        out_add(size);
        return (void *)start;
    }
    pa_lock(&g.lock);
    if (!odd_insert(e.addr, e.len, e.zero, e.t))
        vic.v[vic.n++] = (pa_victim){e.addr, e.len};
    check_locked();
    pa_unlock(&g.lock);
    release(&vic);
    return NULL;
}

void *pa_alloc(size_t size, size_t align, const pa_desc *owner, bool *zero,
               unsigned flags) {
    if (align < PA_PAGE)
        align = PA_PAGE;
    if (!valid_request(size, align) || !pa_init())
        return NULL;
    if (!owner)
        owner = &pa_desc_raw;
    uintptr_t a = 0;
    bool z = false;
    if (g.enabled) {
        if (size == PA_PAGE && align == PA_PAGE && !(flags & PA_F_NOTLS) && pa_tls.n) {
            a = pa_tls.v[--pa_tls.n];
            count_add(&tls_bytes, -(int64_t)PA_PAGE);
            count_add(&tls_hits, 1);
            return finish_alloc(a, size, owner, false, zero);
        }
        pa_victims vic = {.n = 0};
        uint64_t now = pa_os_now_ms();
        pa_lock(&g.lock);
        pa_ring *r = ring_for(size, align);
        pa_span s;
        if (r && ring_pop(r, align, &s)) {
            a = s.addr;
            z = s.zero;
            *(r == &g.ring[R_HOT] ? &g.hot_hits : &g.warm_hits) += 1;
        } else {
            if (r)
                *(r == &g.ring[R_HOT] ? &g.hot_misses : &g.warm_misses) += 1;
            a = odd_take(size, align, &z, &vic);
            if (!a && !(flags & PA_F_CACHED_ONLY) && warm2m_fold_locked())
                a = odd_take(size, align, &z, &vic);
            if (a)
                g.odd_hits++;
        }
        app_decay_locked(now, &vic);
        check_locked();
        pa_unlock(&g.lock);
        release(&vic);
        if (a)
            return finish_alloc(a, size, owner, z, zero);
    }
    if (flags & PA_F_CACHED_ONLY)
        return NULL;
    if (g.enabled && size < COLD_CHUNK && align == PA_PAGE) {
        void *c = cold_chunk_slow(size);
        if (c) /* fresh: known zero */
            return finish_alloc((uintptr_t)c, size, owner, true, zero);
    }
    if (g.enabled && size >= COLD_CHUNK && align == PA_PAGE) {
        void *x = odd_extend_slow(size, owner);
        if (x) { /* part cached, part fresh */
            *zero = false;
            return x;
        }
    }
    void *p = pa_os_map(size, align);
    if (!p && g.enabled) {
        /* Refused (address-space limit, overcommit): what the caches hold
         * in other sizes would otherwise sit unused.  Give it back, retry. */
        pa_purge_all();
        p = pa_os_map(size, align);
    }
    if (!p)
        return NULL;
    if (!pa_pagemap_set(p, size, owner)) {
        pa_os_unmap(p, size);
        return NULL;
    }
    count_add(&cold_maps, 1);
    bg_note_cold(size);
    if (g.thp && size >= SZ_2M && !((uintptr_t)p & (SZ_2M - 1)))
        pa_os_hugepage(p, size);
    out_add(size);
    *zero = true;
    return p;
}

void *pa_alloc_at(void *addr, size_t size, const pa_desc *owner, bool *zero) {
    uintptr_t a = (uintptr_t)addr;
    if (!valid_request(size, PA_PAGE) || (a & (PA_PAGE - 1)) || !pa_init() || !g.enabled)
        return NULL;
    if (!owner)
        owner = &pa_desc_raw;
    pa_victims vic = {.n = 0};
    bool z = false, found = false;
    pa_lock(&g.lock);
    uint32_t i = odd_search(a);
    if (i > 0 && g.odd[i - 1].addr + g.odd[i - 1].len >= a + size) {
        z = g.odd[i - 1].zero;
        odd_carve(i - 1, a, size, &vic);
        g.odd_hits++;
        found = true;
    }
    check_locked();
    pa_unlock(&g.lock);
    release(&vic);
    return found ? finish_alloc(a, size, owner, z, zero) : NULL;
}

/* Claim [p, p+size) for the arena: every page must map to one handed-out
 * descriptor; the first page is switched with a compare-and-swap so that of
 * two racing frees only one wins. */
static bool claim(void *p, size_t size) {
    const pa_desc *d = pa_pagemap_get(p);
    if (!d || d == &pa_desc_cached)
        return false;
    uintptr_t a = (uintptr_t)p;
    pm_entry *leaf = atomic_load_explicit(&pa_pagemap_root[a >> (12 + PM_LEAF_BITS)],
                                          memory_order_acquire);
    if (!atomic_compare_exchange_strong(&leaf[(a >> 12) & ((1u << PM_LEAF_BITS) - 1)],
                                        &d, &pa_desc_cached))
        return false;
    /* The rest in one pass: each page must still be d; on a mismatch the
     * pages already switched, the first included, are put back. */
    if (size > PA_PAGE &&
        !pa_pagemap_swap((char *)p + PA_PAGE, size - PA_PAGE, d, &pa_desc_cached)) {
        atomic_store_explicit(&leaf[(a >> 12) & ((1u << PM_LEAF_BITS) - 1)], d,
                              memory_order_release);
        return false;
    }
    count_add(&bytes_out, -(int64_t)size);
    return true;
}

/* Move the older half of this thread's hot cache to the shared stack, oldest
 * first, so that the two together still hand pages out LIFO. */
static void tls_spill(void) {
    pa_victims vic = {.n = 0};
    uint64_t now = pa_os_now_ms();
    unsigned half = TLS_HOT / 2;
    pa_lock(&g.lock);
    for (unsigned i = 0; i < half; i++)
        if (!ring_push(&g.ring[R_HOT], (pa_span){pa_tls.v[i], now, false}, &vic) &&
            !odd_insert(pa_tls.v[i], PA_PAGE, false, now))
            vic.v[vic.n++] = (pa_victim){pa_tls.v[i], PA_PAGE};
    app_decay_locked(now, &vic);
    unsigned note = bg_note_locked();
    check_locked();
    pa_unlock(&g.lock);
    memmove(pa_tls.v, pa_tls.v + half, (TLS_HOT - half) * sizeof pa_tls.v[0]);
    pa_tls.n -= half;
    count_add(&tls_bytes, -(int64_t)(half * PA_PAGE));
    release(&vic);
    bg_after(note);
}

int pa_free(void *p, size_t size, unsigned flags) {
    uintptr_t a = (uintptr_t)p;
    if (!p || (a & (PA_PAGE - 1)) || !valid_request(size, PA_PAGE) || !pa_init())
        return EINVAL;
    if (!claim(p, size))
        return EINVAL;
    if (!g.enabled || (flags & PA_F_UNMAP)) {
        pa_victims vic = {.n = 1, .v = {{a, size}}};
        release(&vic);
        return 0;
    }
    if (size == PA_PAGE && !(flags & (PA_F_NOTLS | PA_F_ZERO))) {
        if (PA_UNLIKELY(!pa_tls.registered)) {
            pa_tls.registered = true; /* first: setspecific may call malloc */
            pthread_setspecific(tls_key, (void *)1);
        }
        if (pa_tls.n == TLS_HOT)
            tls_spill();
        pa_tls.v[pa_tls.n++] = a;
        count_add(&tls_bytes, (int64_t)PA_PAGE);
        return 0;
    }
    pa_victims vic = {.n = 0};
    uint64_t now = pa_os_now_ms();
    bool z = (flags & PA_F_ZERO) != 0;
    pa_span s = {a, now, z};
    pa_lock(&g.lock);
    if (size > g.odd_big)
        g.odd_big = size;
    pa_ring *r = ring_for(size, a);
    if (!(r && ring_push(r, s, &vic)) && !odd_insert(a, size, z, now))
        vic.v[vic.n++] = (pa_victim){a, size}; /* room was made for it above */
    odd_enforce_cap(&vic);
    app_decay_locked(now, &vic);
    unsigned note = bg_note_locked();
    check_locked();
    pa_unlock(&g.lock);
    release(&vic);
    bg_after(note);
    return 0;
}

void pa_purge_range(void *p, size_t size) { pa_os_purge(p, size); }

void pa_thread_flush(void) {
    if (!init_ok || !pa_tls.n)
        return;
    pa_victims vic = {.n = 0};
    uint64_t now = pa_os_now_ms();
    pa_lock(&g.lock);
    while (pa_tls.n) {
        uintptr_t a = pa_tls.v[--pa_tls.n];
        count_add(&tls_bytes, -(int64_t)PA_PAGE);
        if (!ring_push(&g.ring[R_HOT], (pa_span){a, now, false}, &vic) &&
            !odd_insert(a, PA_PAGE, false, now)) {
            if (vic.n == VICTIMS) {
                pa_tls.n++; /* keep it; flush again next time */
                break;
            }
            vic.v[vic.n++] = (pa_victim){a, PA_PAGE};
        }
    }
    odd_enforce_cap(&vic);
    unsigned note = bg_note_locked();
    check_locked();
    pa_unlock(&g.lock);
    release(&vic);
    bg_after(note);
}

static void purge_pass(bool force) {
    pa_victims vic;
    do {
        vic.n = 0;
        pa_lock(&g.lock);
        if (force)
            g.last_decay = 0;
        decay_locked(pa_os_now_ms(), force, &vic);
        check_locked();
        pa_unlock(&g.lock);
        unsigned n = vic.n;
        release(&vic);
        if (n < VICTIMS)
            break;
    } while (1);
}

void pa_purge_all(void) {
    if (!pa_init())
        return;
    pa_thread_flush();
    purge_pass(true);
}

void pa_decay_now(void) {
    if (!pa_init())
        return;
    pa_lock(&g.lock);
    g.last_decay = 0;
    check_locked();
    pa_unlock(&g.lock);
    purge_pass(false);
}

/* The oldest time stamp in the shared tiers (UINT64_MAX: they are empty).
 * Each ring's bottom is its oldest entry; odd ranges are scanned. */
static uint64_t oldest_locked(void) {
    uint64_t t = UINT64_MAX;
    for (unsigned k = 0; k < R_COUNT; k++)
        if (g.ring[k].n && g.ring[k].v[g.ring[k].bot].t < t)
            t = g.ring[k].v[g.ring[k].bot].t;
    for (uint32_t i = 0; i < g.odd_n; i++)
        if (g.odd[i].t < t)
            t = g.odd[i].t;
    return t;
}

uint64_t pa_background_pass(uint32_t *seq) {
    if (!init_ok)
        return UINT64_MAX;
    pa_victims vic;
    uint64_t wait = 0;
    for (bool more = true; more;) {
        vic.n = 0;
        uint64_t now = pa_os_now_ms();
        pa_lock(&g.lock);
        g.last_decay = 0; /* due now: the thread paces itself */
        decay_locked(now, false, &vic);
        more = vic.n == VICTIMS;
        if (!more) {
            uint64_t t = oldest_locked();
            if (t == UINT64_MAX) {
                g.bg_idle = true;
                *seq = atomic_load_explicit(&pa_bg_seq, memory_order_acquire);
                wait = UINT64_MAX;
            } else {
                /* Sleep until the oldest span falls due, but at least an
                 * eighth of the decay time, so that spans freed one by one
                 * go back in batches. */
                uint64_t due = t + g.decay_ms, min = g.decay_ms / 8 ? g.decay_ms / 8 : 1;
                wait = due > now + min ? due - now : min;
            }
        }
        check_locked();
        pa_unlock(&g.lock);
        release(&vic);
    }
    return wait;
}

void pa_stats_get(pa_stats *o) {
    memset(o, 0, sizeof *o);
    if (init_ok) {
        pa_lock(&g.lock);
        o->hot_hits = g.hot_hits;
        o->hot_misses = g.hot_misses;
        o->warm_hits = g.warm_hits;
        o->warm_misses = g.warm_misses;
        o->odd_hits = g.odd_hits;
        o->purged_spans = g.purged_spans;
        o->decayed_spans = g.decayed_spans;
        o->odd_extends = g.odd_extends;
        o->hot_bytes = ring_bytes(&g.ring[R_HOT]);
        o->warm_bytes = ring_bytes(&g.ring[R_64K]) + ring_bytes(&g.ring[R_128K]) +
                        ring_bytes(&g.ring[R_2M]);
        o->odd_bytes = g.odd_bytes;
        check_locked();
        pa_unlock(&g.lock);
    }
    o->hot_hits += atomic_load_explicit(&tls_hits, memory_order_relaxed);
    o->tls_bytes = atomic_load_explicit(&tls_bytes, memory_order_relaxed);
    o->cold_maps = atomic_load_explicit(&cold_maps, memory_order_relaxed);
    o->cold_unmaps = atomic_load_explicit(&cold_unmaps, memory_order_relaxed);
    o->bytes_cached = o->hot_bytes + o->warm_bytes + o->odd_bytes + o->tls_bytes;
    o->bytes_out = atomic_load_explicit(&bytes_out, memory_order_relaxed);
    o->meta_bytes = atomic_load_explicit(&pa_meta_bytes, memory_order_relaxed);
    o->pagemap_bytes = atomic_load_explicit(&pa_pagemap_bytes, memory_order_relaxed);
    o->bg_passes = atomic_load_explicit(&pa_bg_passes, memory_order_relaxed);
    o->bg_running = pa_background_running();
}

