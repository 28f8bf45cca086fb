/* hk_kinds.h - arena kinds (defined in hk_kinds.c): no-dump, huge-page and
 * address-window arenas on the PageArena, their options, private thread
 * caches, statistics and controls. */
#ifndef HK_KINDS_H
#define HK_KINDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The kinds an arena can have; an arena counts under each of its kinds. */
enum hk_kind { HK_KIND_NODUMP, HK_KIND_HUGE, HK_KIND_RANGE, HK_KIND_COUNT };

typedef struct hk_kind_stats {
    uint64_t arenas;        /* live arenas of the kind */
    uint64_t mapped;        /* bytes the kind holds: its caches, its windows, its arenas' extents */
    uint64_t cached;        /* bytes in its private cache or free in its windows */
    uint64_t active;        /* bytes its arenas hold */
    uint64_t hits;          /* extent requests served from its cache or window */
    uint64_t misses;        /* requests that needed a new span (window: refused, full) */
    uint64_t returned;      /* bytes reset and given back to the shared caches */
    uint64_t advise_failed; /* madvise calls the kernel refused */
} hk_kind_stats;

typedef struct hk_kinds_stats {
    hk_kind_stats k[HK_KIND_COUNT];
    uint64_t thp_mode;      /* 0 none or never, 1 madvise, 2 always (read at the first huge arena) */
    uint64_t tcaches;       /* private thread caches alive */
} hk_kinds_stats;
void hk_kinds_stats_get(hk_kinds_stats *out);

/* hak_mallctl names "arena_kinds.*" and "arena.<i>.*" (hk_ctl.c sends
 * them here): 0, or an errno value with jemalloc's conventions. */
int hk_kinds_ctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

/* The arena whose extent (or cached or free window page) holds p, if it
 * was made by hak_arena_create_with with a kind: its index, else -1. */
int hk_kinds_arena_of(const void *p);

#endif
