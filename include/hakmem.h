/* hakmem.h - the one public header of HAKMEM.
 *
 * HAKMEM is a malloc built around one shared page and span cache, the
 * PageArena.  The same PageArena is offered to jemalloc as extent hooks, so
 * jemalloc arenas made through mallctl draw on the same hot and warm caches.
 *
 * libhakmem_hooks (-lhakmem_hooks): PageArena + jemalloc extent hooks.
 * libhakmem       (LD_PRELOAD):     the above + Tiny/Mid/L25 pools + the
 *                                    whole malloc and C++ new/delete surface.
 * libhakmem_je    (LD_PRELOAD):     jemalloc itself, serving every malloc,
 *                                    free, new, delete and mallctl call, with
 *                                    every arena on the PageArena hooks; it
 *                                    exports jemalloc's API and the functions
 *                                    below.
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

/* Create a jemalloc arena with these options.  Returns 0, or
 *   EINVAL  a NULL argument, an unknown flag, range_base/range_size or
 *           HAK_ARENA_RANGE_LOW without HAK_ARENA_RANGE, an empty,
 *           misaligned or oversized window or one past the address space,
 *           RANGE_LOW with a range_base or a window too large for it, a
 *           decay below -1, a retain_grow_limit below 4 KiB;
 *   EEXIST  something is already mapped in the requested window;
 *   ENOMEM  the window or the arena cannot be had;
 *   others  jemalloc's error.
 * On failure nothing is left behind and *arena_ind is not written.  With no
 * kind flag, the arena is an ordinary one (the hak_arena_create hooks) with
 * the given options. */
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

/* mallctl-style control and statistics, jemalloc's conventions.
 *
 * Names:
 *   "opt.<option>"     read: uint64_t, the value in use (read-only).
 *       opt.page_arena.enable, .hot_size, .warm_64k, .warm_128k, .warm_2m,
 *       .decay_ms, .odd_cap_mb, .thp      (HAKMEM_PAGE_ARENA_*)
 *       opt.mode      0 pools, 1 jemalloc (HAKMEM_MODE)
 *       opt.on_error  0 abort, 1 warn     (HAKMEM_ON_ERROR)
 *       opt.guard     0 or 1              (HAKMEM_GUARD)
 *       opt.stats     0, 1, 2 json        (HAKMEM_STATS)
 *     hak_stats_print prints opt.mode, opt.on_error and opt.stats as those
 *     words, as the environment variables spell them.
 *   "stats.<family>.<name>"  read: uint64_t (read-only), summed at the call:
 *       stats.page_arena.*  hot.hits, hot.misses, hot.bytes, hot.tls_bytes,
 *                           warm.hits, warm.misses, warm.bytes, odd.hits,
 *                           odd.bytes, cold.maps, cold.unmaps, purged,
 *                           decayed, madvise, bytes_cached, bytes_out,
 *                           meta_bytes, pagemap_bytes
 *       stats.hooks.*       alloc_calls, dalloc_calls, forwarded_calls,
 *                           bytes_active
 *     libhakmem only (ENOENT in libhakmem_hooks):
 *       stats.tiny.*, stats.mid.*, stats.l25.*
 *                           allocated, active, nmalloc, nfree, slabs
 *       stats.large.*       nmalloc, nfree: blocks sent to jemalloc (pools
 *                           mode: above 2 MiB and alignments the pools
 *                           cannot serve; jemalloc mode: every block)
 *       stats.guard.*       nmalloc, nfree, bytes (HAKMEM_GUARD=1)
 *   "page_arena.purge"  trigger: return every cached span to the OS.
 *   "page_arena.decay"  trigger: run decay now.
 *                       Both take no argument: oldp, oldlenp, newp NULL and
 *                       newlen 0.
 *   "arena.create"      read: unsigned, a new jemalloc arena on the
 *                       PageArena hooks (as hak_arena_create); newp NULL.
 *   Arena kinds (hak_arena_create_with):
 *     stats.arena_kinds.{nodump,huge,range}.*
 *                           arenas, mapped, cached, active, hits, misses,
 *                           returned, advise_failed (an arena counts under
 *                           each of its kinds)
 *     stats.arena_kinds.huge.thp_mode  0 none or never, 1 madvise, 2 always
 *     stats.arena_kinds.tcaches        private thread caches alive
 *     "arena_kinds.purge", "arena_kinds.nodump.purge",
 *     "arena_kinds.huge.purge"  trigger (no argument): the no-dump/huge
 *                           caches give every range back, reset.
 *     "arena.<i>.kind"          read: unsigned, the HAK_ARENA_* flags the
 *                               arena was made with;
 *     "arena.<i>.mallocx_flags" read: int, as hak_arena_flags;
 *     "arena.<i>.window_base", "arena.<i>.window_size"
 *                               read: uint64_t, a range arena's window.
 *     ENOENT for an index HAKMEM did not make (window_*: not a range
 *     arena); EPERM with newp; EINVAL for a wrong or missing *oldlenp.
 *
 * For "opt." and "stats." names, with oldp or oldlenp NULL the name is only
 * checked; otherwise *oldlenp must be sizeof(uint64_t).
 *
 * Returns 0 or an errno value:
 *   ENOENT  an unknown name;
 *   EPERM   newp given for a read-only name ("opt.", "stats.");
 *   EINVAL  name NULL, a wrong *oldlenp, or an argument a trigger or
 *           "arena.create" does not take;
 *   others  from "arena.create": what hak_arena_create returns (ENOMEM,
 *           or jemalloc's error, e.g. EAGAIN). */
int hak_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp,
                size_t newlen);

/* Print the version, every option and every statistic, one "name: value"
 * line each, between "___ Begin hakmem statistics ___" and
 * "___ End hakmem statistics ___"; or
 * JSON when opts contains 'J'.  write_cb may be NULL (stderr).
 * With HAKMEM_STATS=1 (or json) libhakmem prints the same at exit, to the
 * file stderr was when the library started (the dump appears even when the
 * program closed its stderr). */
void hak_stats_print(void (*write_cb)(void *, const char *), void *cbopaque,
                     const char *opts);

#ifdef __cplusplus
}
#endif
#endif
