/* pa_pagemap.h - the page map (defined in pa_pagemap.c): O(1) owner lookup
 * for any address.  Every 4 KiB page the PageArena has handed out or caches
 * maps to a descriptor; every other page maps to NULL. */
#ifndef PA_PAGEMAP_H
#define PA_PAGEMAP_H

#include "arena/pa_os.h"

/* Who holds a page.  Pool descriptors begin with this header, so the malloc
 * front reads `owner` straight from whatever the page map returns. */
enum pa_kind {
    PA_KIND_CACHED = 1, /* in a PageArena cache: no one may free it */
    PA_KIND_RAW,        /* handed to a plain PageArena client */
    PA_KIND_JE,         /* an extent of a jemalloc arena on our hooks */
    PA_KIND_SLAB,       /* a Tiny/Mid/L25 slab or run */
    PA_KIND_GUARD,      /* one guarded block's span (HAKMEM_GUARD=1) */
};
typedef struct pa_desc {
    void *owner;        /* pools: the owning heap; NULL otherwise */
    unsigned kind;
} pa_desc;

extern const pa_desc pa_desc_cached, pa_desc_raw;

#define PM_VA_BITS 47
#define PM_LEAF_BITS 18                        /* 1 GiB per leaf */
#define PM_ROOT_BITS (PM_VA_BITS - 12 - PM_LEAF_BITS)

typedef _Atomic(const pa_desc *) pm_entry;
extern _Atomic(pm_entry *) pa_pagemap_root[1u << PM_ROOT_BITS];

static inline const pa_desc *pa_pagemap_get(const void *p) {
    uintptr_t a = (uintptr_t)p;
    if (PA_UNLIKELY(a >> PM_VA_BITS))
        return NULL;
    pm_entry *leaf = atomic_load_explicit(&pa_pagemap_root[a >> (12 + PM_LEAF_BITS)],
                                          memory_order_acquire);
    if (PA_UNLIKELY(!leaf))
        return NULL;
    return atomic_load_explicit(&leaf[(a >> 12) & ((1u << PM_LEAF_BITS) - 1)],
                                memory_order_relaxed);
}

/* Point every page of [p, p+size) at d.  Returns false only when a leaf
 * could not be mapped (d != NULL); nothing is changed then. */
bool pa_pagemap_set(void *p, size_t size, const pa_desc *d);
/* Switch every page of the range from `expect` to `to` in one pass.  If a
 * page maps elsewhere, the pages already switched go back to `expect` and the
 * result is false: nothing changed. */
bool pa_pagemap_swap(void *p, size_t size, const pa_desc *expect, const pa_desc *to);
/* Bytes of page map leaves mapped. */
extern _Atomic uint64_t pa_pagemap_bytes;

#endif
