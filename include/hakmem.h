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
