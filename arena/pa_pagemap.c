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

/* Bulk entry loops, unrolled: a large span has thousands of pages.  Each
 * entry is still written and read as one aligned word, relaxed: a block's
 * address reaches another thread only through the program's own
 * synchronization (or the pools' atomics), which orders these stores
 * before it; no fence is needed, and none would pair with a reader. */
static void fill(pm_entry *e, size_t n, const pa_desc *d) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        atomic_store_explicit(&e[i], d, memory_order_relaxed);
        atomic_store_explicit(&e[i + 1], d, memory_order_relaxed);
        atomic_store_explicit(&e[i + 2], d, memory_order_relaxed);
        atomic_store_explicit(&e[i + 3], d, memory_order_relaxed);
    }
    for (; i < n; i++)
        atomic_store_explicit(&e[i], d, memory_order_relaxed);
}

/* Entries e[0..n) from `expect` to `to`; the count switched before a
 * mismatch (n when all matched). */
static size_t swap_run(pm_entry *e, size_t n, const pa_desc *expect, const pa_desc *to) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const pa_desc *a = atomic_load_explicit(&e[i], memory_order_relaxed),
                      *b = atomic_load_explicit(&e[i + 1], memory_order_relaxed),
                      *c = atomic_load_explicit(&e[i + 2], memory_order_relaxed),
                      *d = atomic_load_explicit(&e[i + 3], memory_order_relaxed);
        if ((a != expect) | (b != expect) | (c != expect) | (d != expect))
            break; /* the scalar loop finds which */
        atomic_store_explicit(&e[i], to, memory_order_relaxed);
        atomic_store_explicit(&e[i + 1], to, memory_order_relaxed);
        atomic_store_explicit(&e[i + 2], to, memory_order_relaxed);
        atomic_store_explicit(&e[i + 3], to, memory_order_relaxed);
    }
    for (; i < n; i++) {
        if (atomic_load_explicit(&e[i], memory_order_relaxed) != expect)
            return i;
        atomic_store_explicit(&e[i], to, memory_order_relaxed);
    }
    return n;
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
        if (leaf) {
            size_t i = (x >> 12) & ((1u << PM_LEAF_BITS) - 1), n = (stop - x) >> 12;
            fill(leaf + i, n, d);
        }
        x = stop;
    }
    return true;
}

bool pa_pagemap_swap(void *p, size_t size, const pa_desc *expect, const pa_desc *to) {
    uintptr_t start = (uintptr_t)p, x = start, end = x + size;
    if (end >> PM_VA_BITS || end < x)
        return false;
    while (x < end) {
        uintptr_t leaf_end = (x | ((1ul << (12 + PM_LEAF_BITS)) - 1)) + 1;
        uintptr_t stop = end < leaf_end ? end : leaf_end;
        pm_entry *leaf = leaf_for(x, false);
        size_t n = (stop - x) >> 12, done = 0;
        if (leaf)
            done = swap_run(leaf + ((x >> 12) & ((1u << PM_LEAF_BITS) - 1)), n, expect, to);
        if (done < n) { /* put back what was switched: [start, x + done pages) */
            pa_pagemap_set(p, (x - start) + (done << 12), expect);
            return false;
        }
        x = stop;
    }
    return true;
}
