/* hk_jemalloc.h - the jemalloc route of the combined library (defined in
 * hk_jemalloc.c): HAKMEM_MODE, the hooked arenas blocks are sent to, this
 * thread's binding and flags, the calls into jemalloc, and their counters.
 *
 * Pools mode: sizes above 2 MiB and alignments the pools cannot serve go to
 * one hooked large arena, and each block is registered (hk_large.c) so a bad
 * free is caught before jemalloc is asked.  jemalloc mode: every size goes
 * to one of several hooked arenas, each thread bound to one; there is no
 * registry, and once the thread is bound, jemalloc's own malloc and free
 * (their fast paths) take the blocks.
 *
 * Every call into jemalloc raises this thread's in_je: a malloc that arrives
 * from inside jemalloc is served by the pools, so jemalloc is never entered
 * twice on a thread. */
#ifndef HK_JEMALLOC_H
#define HK_JEMALLOC_H

#include "pools/heap.h"

/* This thread's route.  Written by this thread only; the counters are read
 * by the statistics from any thread (summed over a list of live threads
 * plus what exited threads left). */
typedef struct hk_je_thread {
    int in_je;          /* inside a jemalloc call on this thread */
    bool chosen;        /* the flags below are set */
    int alloc_flags;    /* mallocx flags of this thread */
    int free_flags;     /* dallocx flags of this thread */
    _Atomic uint64_t nmalloc, nfree; /* blocks sent to jemalloc, freed there */
    struct hk_je_thread *next, *prev; /* the list of counted threads */
    bool linked;        /* on the list (or counted and gone) */
} hk_je_thread;
extern PA_INTERNAL __thread hk_je_thread hk_je_tl __attribute__((tls_model("initial-exec")));

/* jemalloc's own malloc and free (ours shadow them), found in its object
 * the first time a thread is bound in jemalloc mode without HAKMEM_GUARD.
 * malloc is stored last and read first. */
typedef void *(*hk_je_malloc_fn)(size_t);
typedef void (*hk_je_free_fn)(void *);
extern PA_INTERNAL _Atomic(hk_je_malloc_fn) hk_je_plain_malloc;
extern PA_INTERNAL _Atomic(hk_je_free_fn) hk_je_plain_free;

/* HAKMEM_MODE, read once: 0 not yet, 1 pools, 2 jemalloc. */
extern PA_INTERNAL atomic_int hk_je_mode_state;
bool hk_je_mode_slow(void);
static inline bool hk_je_mode(void) {
    int m = atomic_load_explicit(&hk_je_mode_state, memory_order_relaxed);
    if (PA_UNLIKELY(!m))
        return hk_je_mode_slow();
    return m == 2;
}

/* Should an allocation of n bytes go to jemalloc?  Above 2 MiB always; in
 * jemalloc mode every size, unless it comes from inside jemalloc. */
static inline bool hk_je_wants(size_t n) {
    return n > L25_MAX || (hk_je_tl.in_je == 0 && hk_je_mode());
}

/* A malloc made from inside a jemalloc call in jemalloc mode (the pools
 * serve it). */
static inline bool hk_je_nested(void) { return hk_je_tl.in_je && hk_je_mode(); }

/* jemalloc mode, this thread bound to its arena: jemalloc's own malloc and
 * free take the block. */
static inline bool hk_je_direct(void) {
    return hk_je_tl.chosen && !hk_je_tl.in_je && !hk_je_tl.alloc_flags &&
           atomic_load_explicit(&hk_je_plain_malloc, memory_order_acquire);
}
static inline void *hk_je_direct_malloc(size_t n) {
    hk_je_tl.in_je = 1;
    void *p = atomic_load_explicit(&hk_je_plain_malloc, memory_order_relaxed)(n); /* sets errno */
    hk_je_tl.in_je = 0;
    pool_count(&hk_je_tl.nmalloc);
    return p;
}
static inline void hk_je_direct_free(void *p) {
    hk_je_tl.in_je = 1;
    atomic_load_explicit(&hk_je_plain_free, memory_order_relaxed)(p);
    hk_je_tl.in_je = 0;
    pool_count(&hk_je_tl.nfree);
}

/* n bytes from jemalloc, aligned to align (0 or a power of two), zeroed if
 * asked.  NULL with errno ENOMEM when jemalloc or the registry refuses. */
void *hk_je_alloc(size_t n, size_t align, bool zero);
/* Is p a live block jemalloc may be asked about?  NULL, or the fault to
 * report ("double free", "invalid pointer"). */
const char *hk_je_check(const void *p);
/* Free p (a page of a hooked extent): NULL, or the fault (nothing freed). */
const char *hk_je_free(void *p);
/* Usable bytes of a live block. */
size_t hk_je_size(const void *p);
/* realloc of a live block to n bytes inside jemalloc.  True when it is done:
 * *out is the block, or NULL with errno ENOMEM and p untouched.  False when
 * the caller must move it (n is not jemalloc's, or in pools mode the block
 * cannot grow in place: its registry entry stays). */
bool hk_je_resize(void *p, size_t n, void **out);

/* jemalloc mode: turn on jemalloc's own background threads, so that its
 * decay runs on time in a quiet process too and hands dirty extents back
 * through the hooks.  Run right after the PageArena's background thread
 * starts (pa_background_on_start), at that safe point. */
void hk_je_background_on(void);

/* Statistics: blocks sent to jemalloc and freed there, every thread. */
void hk_je_stats(uint64_t *nmalloc, uint64_t *nfree);

#endif
