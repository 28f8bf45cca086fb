/* hk_guard.h - guarded blocks (defined in hk_guard.c): with HAKMEM_GUARD=1
 * every block above 64 KiB (the L25 range, and what would go to jemalloc)
 * gets a span of its own from the PageArena, with a PROT_NONE page on each
 * side and the block ending where the upper guard page begins, so an
 * overflow past the block faults at once. */
#ifndef HK_GUARD_H
#define HK_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#include "arena/options.h"
#include "arena/pa_pagemap.h"
#include "pools/classes.h"

/* Should a block of n bytes be guarded? */
static inline bool hk_guard_wants(size_t n) {
    return PA_UNLIKELY(hak_opt(OPT_GUARD) != 0) && n > MID_MAX;
}
/* n bytes aligned to align (a power of two >= 16), zeroed if asked.  NULL
 * with errno ENOMEM when memory or the guard pages are refused. */
void *hk_guard_alloc(size_t n, size_t align, bool zero);
/* Free p, whose page maps to d (kind PA_KIND_GUARD).  NULL, or the fault to
 * report ("invalid pointer" for anything but the block's start). */
const char *hk_guard_free(void *p, const pa_desc *d);
/* Bytes usable at p (up to the upper guard page), or 0 if p is not the
 * block's start. */
size_t hk_guard_usable(const void *p, const pa_desc *d);
/* Statistics: blocks handed out, freed, and bytes of spans held. */
void hk_guard_stats(uint64_t *nmalloc, uint64_t *nfree, uint64_t *bytes);

#endif
