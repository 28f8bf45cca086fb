/* hakmem.h - the one public header of HAKMEM.
 *
 * HAKMEM is a malloc built around one shared page and span cache, the
 * PageArena.  The same PageArena is offered to jemalloc as extent hooks, so
 * jemalloc arenas made through mallctl draw on the same hot and warm caches.
 *
 * libhakmem_hooks (-lhakmem_hooks): PageArena + jemalloc extent hooks.
 * libhakmem       (LD_PRELOAD):     the above + Tiny/Mid/L25 pools + the
 *                                    whole malloc and C++ new/delete surface.
 */
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HAKMEM_VERSION "0.1.0"

/* jemalloc's hook table type; include <jemalloc/jemalloc.h> to use it. */
struct extent_hooks_s;

/* The static extent hooks over the PageArena, for programs that call
 * mallctl("arenas.create" / "arena.<i>.extent_hooks") themselves. */
struct extent_hooks_s *hak_extent_hooks(void);

/* arenas.create with the PageArena hooks.  Returns 0 or an errno value. */
int hak_arena_create(unsigned *arena_ind);

/* Install the PageArena hooks on an existing arena (arena 0 included).
 * Ranges that arena mapped before are forwarded to its previous hooks.
 * Returns 0 or an errno value. */
int hak_arena_attach(unsigned arena_ind);

/* ---- arena kinds ----------------------------------------------------------
 * Arenas with options, for what extent-hook users build by hand: arenas
 * kept out of core dumps, on transparent huge pages, or inside a reserved
 * address window.  Their extents still come from (and go back to) the one
 * PageArena, reset first where their kind requires it; each special arena
 * has a hook table of its own and keeps its jemalloc metadata out of its
 * special memory.  Flags for hak_arena_opts.flags: */
#define HAK_ARENA_NODUMP 0x01u      /* every extent MADV_DONTDUMP (out of core dumps) */
#define HAK_ARENA_HUGE 0x02u        /* extents from 2 MiB-aligned MADV_HUGEPAGE spans */
#define HAK_ARENA_RANGE 0x04u       /* every extent inside [range_base, range_base + range_size) */
#define HAK_ARENA_RANGE_LOW 0x08u   /* with RANGE and range_base NULL: a window below 4 GiB */
#define HAK_ARENA_TCACHE 0x10u      /* hak_arena_flags gives each thread a private tcache */
#define HAK_ARENA_DIRTY_DECAY 0x20u /* dirty_decay_ms is set */
#define HAK_ARENA_MUZZY_DECAY 0x40u /* muzzy_decay_ms is set */
#define HAK_ARENA_GROW_LIMIT 0x80u  /* retain_grow_limit is set (default 2 MiB) */

typedef struct hak_arena_opts {
    unsigned flags;           /* HAK_ARENA_* */
    void *range_base;         /* RANGE: page-aligned start (2 MiB with HUGE); NULL: anywhere */
    size_t range_size;        /* RANGE: a page multiple, at most 1 TiB */
    long dirty_decay_ms;      /* DIRTY_DECAY: arena.<i>.dirty_decay_ms (-1: never purge) */
    long muzzy_decay_ms;      /* MUZZY_DECAY: arena.<i>.muzzy_decay_ms (-1: never purge) */
    size_t retain_grow_limit; /* GROW_LIMIT: arena.<i>.retain_grow_limit (>= 4 KiB) */
} hak_arena_opts;

/* Create a jemalloc arena with these options.  Returns 0, or EINVAL for a
 * NULL argument, an unknown flag, range fields without HAK_ARENA_RANGE, a
 * misaligned, empty or oversized window or a decay below -1; EEXIST when
 * something is already mapped in the requested window; ENOMEM when the
 * window or the arena cannot be had; or jemalloc's error.  Nothing is left
 * behind on failure.  With no kind flag, the arena is an ordinary one (the
 * hak_arena_create hooks) with the given options. */
int hak_arena_create_with(unsigned *arena_ind, const hak_arena_opts *opts);

/* The mallocx/dallocx flags for arena_ind on the calling thread:
 * MALLOCX_ARENA(arena_ind) and, for an arena made with HAK_ARENA_TCACHE,
 * MALLOCX_TCACHE of this thread's private cache for it (made on the first
 * call; destroyed when the thread exits or the arena is destroyed),
 * otherwise MALLOCX_TCACHE_NONE.  Free that arena's blocks with the same
 * flags: a block freed through the default thread cache can be handed out
 * by an ordinary malloc.  Returns 0, or EINVAL. */
int hak_arena_flags(unsigned arena_ind, int *mallocx_flags);

/* Destroy an arena (any arena created through mallctl or HAKMEM): its
 * private thread caches first, then arena.<i>.destroy, then its window.
 * No thread may use the arena during or after the call.  0 or an errno. */
int hak_arena_destroy(unsigned arena_ind);

/* mallctl-style control and statistics, jemalloc conventions:
 * 0 or an errno value; ENOENT for an unknown name; EINVAL for a wrong
 * length.  Names: "stats.page_arena.*", "stats.hooks.*", "stats.tiny.*",
 * "stats.mid.*", "stats.l25.*", "stats.arena_kinds.{nodump,huge,range}.*"
 * (uint64_t), "opt.page_arena.*" (uint64_t), "page_arena.purge" and
 * "arena_kinds[.nodump|.huge].purge" (write-only triggers), "arena.create"
 * (read: unsigned), "arena.<i>.kind" (read: unsigned HAK_ARENA_* flags),
 * "arena.<i>.mallocx_flags" (read: int, as hak_arena_flags),
 * "arena.<i>.window_base", "arena.<i>.window_size" (read: uint64_t). */
int hak_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp,
                size_t newlen);

/* Print every statistic: text, or JSON when opts contains 'J'.
 * write_cb may be NULL (stderr). */
void hak_stats_print(void (*write_cb)(void *, const char *), void *cbopaque,
                     const char *opts);

#ifdef __cplusplus
}
#endif
#endif
