/* page_arena.h - the PageArena (defined in page_arena.c): hands out
 * page-aligned spans and takes back any page-aligned sub-range of them, from
 * any thread.  Tiers: hot 4 KiB pages (per-thread cache + shared LIFO), warm
 * 64 KiB / 128 KiB / 2 MiB buckets (LIFO, 2 MiB spans 2 MiB-aligned), odd
 * ranges (address-ordered, coalescing, best fit), cold mmap.  Never calls
 * malloc; its lock is a leaf lock. */
#ifndef PAGE_ARENA_H
#define PAGE_ARENA_H

#include "arena/pa_pagemap.h"

/* Flags for pa_alloc / pa_free. */
#define PA_F_NOTLS 1u       /* skip the per-thread hot cache (jemalloc hooks) */
#define PA_F_CACHED_ONLY 2u /* a cache hit or NULL: never map fresh memory */
#define PA_F_ZERO 4u        /* pa_free: the range reads zero and holds no pages */
#define PA_F_UNMAP 8u       /* pa_free: give the range to the OS, never cache it */

/* Initialise on first use (idempotent, malloc-free).  False if the OS refused
 * the arena's own tables. */
bool pa_init(void);

/* A span of `size` bytes (a page multiple) aligned to `align` (a power of two;
 * at least 4 KiB is used).  Every page maps to `owner` (NULL: a plain client).
 * *zero is set to whether the span is known to read as zero.  NULL when the OS
 * refuses memory; the arena stays usable. */
void *pa_alloc(size_t size, size_t align, const pa_desc *owner, bool *zero,
               unsigned flags);
/* Exactly [addr, addr+size) if that range is cached, else NULL. */
void *pa_alloc_at(void *addr, size_t size, const pa_desc *owner, bool *zero);
/* Take back a page-aligned sub-range of what pa_alloc handed out.  Every page
 * of it must map to the same descriptor.  Returns 0, or EINVAL and changes
 * nothing. */
int pa_free(void *p, size_t size, unsigned flags);
/* Give the range's pages back to the OS but keep it handed out. */
void pa_purge_range(void *p, size_t size);

/* Return every cached span to the OS. */
void pa_purge_all(void);
/* Run decay now (also runs by itself: on the background thread, or on the
 * arena's slow paths while that thread does not run). */
void pa_decay_now(void);
/* Hand this thread's hot pages to the shared stack (thread exit). */
void pa_thread_flush(void);

/* The odd-range set's cap on dirty bytes (page_arena.c) for `out` bytes
 * handed out, a recent high-water mark `peak` of them, the largest recent
 * free `big`, and the configured maximum `cap_max`. */
size_t pa_odd_cap_for(size_t out, size_t peak, size_t big, size_t cap_max);

typedef struct pa_stats {
    uint64_t hot_hits, hot_misses, warm_hits, warm_misses, odd_hits, odd_extends,
        cold_maps, cold_unmaps, purged_spans, decayed_spans,
        hot_bytes, warm_bytes, odd_bytes, tls_bytes, bytes_cached,
        bytes_out, meta_bytes, pagemap_bytes,
        bg_passes, bg_running; /* the background thread (pa_background.h) */
} pa_stats;
void pa_stats_get(pa_stats *out);

#endif
