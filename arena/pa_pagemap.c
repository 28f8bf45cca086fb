/* pa_pagemap.c - owns the page map: a two-level radix table over the 47-bit
 * address space (a root of 128 Ki slots, leaves of 256 Ki page entries mapped
 * on first use, 2 MiB each, 0.2% of the memory they describe).  Leaves are
 * installed with a compare-and-swap, so no lock is needed, and are never
 * freed. */
#include "arena/pa_pagemap.h"

const pa_desc pa_desc_cached = {NULL, PA_KIND_CACHED};
const pa_desc pa_desc_raw = {NULL, PA_KIND_RAW};

_Atomic(pm_entry *) pa_pagemap_root[1u << PM_ROOT_BITS];
_Atomic uint64_t pa_pagemap_bytes;

#define LEAF_BYTES ((size_t)sizeof(pm_entry) << PM_LEAF_BITS)

static pm_entry *leaf_for(uintptr_t a, bool create) {
    _Atomic(pm_entry *) *slot = &pa_pagemap_root[a >> (12 + PM_LEAF_BITS)];
    pm_entry *leaf = atomic_load_explicit(slot, memory_order_acquire);
    if (leaf || !create)
        return leaf;
    pm_entry *fresh = pa_os_map(LEAF_BYTES, PA_PAGE);
    if (!fresh)
        return NULL;
    if (atomic_compare_exchange_strong_explicit(slot, &leaf, fresh,
                                                memory_order_acq_rel,
                                                memory_order_acquire)) {
        atomic_fetch_add_explicit(&pa_pagemap_bytes, LEAF_BYTES, memory_order_relaxed);
        return fresh;
    }
    pa_os_unmap(fresh, LEAF_BYTES); /* another thread installed one */
    return leaf;
}

bool pa_pagemap_set(void *p, size_t size, const pa_desc *d) {
    uintptr_t a = (uintptr_t)p, end = a + size;
    if (end >> PM_VA_BITS)
        return d == NULL;
    /* Make sure every leaf exists first, so a failure changes nothing. */
    for (uintptr_t x = a; x < end; x = (x | ((1ul << (12 + PM_LEAF_BITS)) - 1)) + 1)
        if (!leaf_for(x, d != NULL) && d != NULL)
            return false;
    for (uintptr_t x = a; x < end;) {
        uintptr_t leaf_end = (x | ((1ul << (12 + PM_LEAF_BITS)) - 1)) + 1;
        uintptr_t stop = end < leaf_end ? end : leaf_end;
        pm_entry *leaf = leaf_for(x, false);
        if (leaf)
            for (uintptr_t i = (x >> 12) & ((1u << PM_LEAF_BITS) - 1); x < stop; x += PA_PAGE, i++)
                atomic_store_explicit(&leaf[i], d, memory_order_release);
        x = stop;
    }
    return true;
}

bool pa_pagemap_all_out(const void *p, size_t size) {
    uintptr_t a = (uintptr_t)p;
    for (size_t off = 0; off < size; off += PA_PAGE) {
        const pa_desc *d = pa_pagemap_get((const void *)(a + off));
        if (!d || d == &pa_desc_cached)
            return false;
    }
    return true;
}
