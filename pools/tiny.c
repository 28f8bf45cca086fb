/* tiny.c - owns where Tiny slabs come from: one 64 KiB span from the
 * PageArena per slab (its warm 64 KiB bucket first), returned there when the
 * slab empties (heap.c). */
#include "pools/heap.h"

void *tiny_slab_take(pool_heap *h, unsigned c, pa_desc *owner, bool *zero) {
    return pa_alloc(pool_classes[c].run_bytes, PA_PAGE, owner, zero, 0);
}
