/* l25.c - owns where L25 runs come from: classes up to 256 KiB are carved
 * from 2 MiB runs, 2 MiB-aligned (the PageArena's warm 2 MiB bucket); larger
 * classes take one span per block.  Both go back to the PageArena when
 * empty (heap.c). */
#include "pools/heap.h"

#define L25_RUN ((size_t)2 << 20)

void *l25_run_take(pool_heap *h, unsigned c, pa_desc *owner, bool *zero) {
    size_t run = pool_classes[c].run_bytes;
    return pa_alloc(run, run == L25_RUN ? L25_RUN : PA_PAGE, owner, zero, 0);
}
