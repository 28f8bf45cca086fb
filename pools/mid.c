/* mid.c - owns the Mid pool's "Pool TLS Arena": each heap carves its Mid runs
 * from its own chunk, taken from the PageArena in sizes growing 1, 2, 4, 8 MiB.
 * A run cached in the PageArena (an emptied run of any heap) is reused before
 * the chunk is carved.  Emptied runs go back to the PageArena one by one
 * (heap.c); the uncarved tail of a chunk goes back when the heap is abandoned
 * or moves to a new chunk. */
#include "pools/heap.h"

#define MID_CHUNK_MAX ((size_t)8 << 20)

void mid_chunk_release(pool_heap *h) {
    if (h->chunk && h->chunk_end > h->chunk)
        pa_free(h->chunk, (size_t)(h->chunk_end - h->chunk), 0);
    h->chunk = h->chunk_end = NULL;
}

void *mid_run_take(pool_heap *h, unsigned c, pa_desc *owner, bool *zero) {
    size_t run = pool_classes[c].run_bytes;
    void *p = pa_alloc(run, PA_PAGE, owner, zero, PA_F_CACHED_ONLY);
    if (p)
        return p;
    if ((size_t)(h->chunk_end - h->chunk) < run) {
        size_t size = h->chunk_next;
        bool z;
        char *chunk = pa_alloc(size, PA_PAGE, NULL, &z, 0);
        if (!chunk)
            return NULL;
        mid_chunk_release(h);
        h->chunk = chunk;
        h->chunk_end = chunk + size;
        if (size < MID_CHUNK_MAX)
            h->chunk_next = size * 2;
    }
    p = h->chunk;
    h->chunk += run;
    pa_pagemap_set(p, run, owner); /* the chunk's leaves exist: cannot fail */
    *zero = false;
    return p;
}
