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

/* mallctl-style control and statistics, jemalloc conventions:
 * 0 or an errno value; ENOENT for an unknown name; EINVAL for a wrong
 * length.  Names: "stats.page_arena.*", "stats.hooks.*", "stats.tiny.*",
 * "stats.mid.*", "stats.l25.*" (uint64_t), "opt.page_arena.*" (uint64_t),
 * "page_arena.purge" (write-only trigger), "arena.create" (read: unsigned). */
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
