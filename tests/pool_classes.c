/* pool_classes.c - checks the pools' size-class table and its lookup tables:
 * every size maps to the smallest class that holds it, the waste columns
 * match the sizes and runs, about four classes per doubling, runs hold whole
 * blocks, and pool boundaries fall at 1 KiB, 64 KiB and 2 MiB; and the
 * free path's block-boundary test (pool_block_ok) at every offset of every
 * class's run, carved part and beyond. */
#include "check.h"
#include "pools/heap.h"

int main(void) {
    uint32_t prev = 0;
    for (unsigned c = 0; c < POOL_NCLASS; c++) {
        const pool_class *k = &pool_classes[c];
        CHECK(k->size > prev && k->size % 16 == 0);
        CHECK(k->run_bytes % 4096 == 0 && k->run_bytes >= k->size);
        CHECK(k->worst_waste == (uint64_t)(k->size - prev - 1) * 1000 / k->size);
        uint32_t tail = k->run_bytes - k->run_bytes / k->size * k->size;
        CHECK(k->tail_waste == (uint64_t)tail * 1000 / k->run_bytes);
        uint32_t limit = k->pool == POOL_TINY ? TINY_MAX : k->pool == POOL_MID ? MID_MAX : L25_MAX;
        CHECK(k->size <= limit);
        if (k->pool == POOL_TINY)
            CHECK(k->run_bytes == 65536);
        prev = k->size;
    }
    CHECK(pool_classes[POOL_NCLASS - 1].size == L25_MAX);
    /* about four classes per doubling from 64 B up */
    for (uint32_t lo = 64; lo < L25_MAX; lo *= 2) {
        unsigned n = 0;
        for (unsigned c = 0; c < POOL_NCLASS; c++)
            n += pool_classes[c].size > lo && pool_classes[c].size <= 2 * lo;
        CHECK(n >= 2 && n <= 4);
    }
    /* the lookup tables: the smallest class that fits, in the right pool */
    for (size_t n = 0; n <= L25_MAX; n++) {
        unsigned c = pool_class_of(n);
        CHECK(c < POOL_NCLASS && pool_classes[c].size >= (n ? n : 1));
        CHECK(c == 0 || pool_classes[c - 1].size < n);
    }
    /* pool_block_ok: exactly the block starts below the carve pointer */
    for (unsigned c = 0; c < POOL_NCLASS; c++) {
        const pool_class *k = &pool_classes[c];
        pool_slab s = {.block_size = k->size, .div_c = pool_div_c(k->size)};
        s.start = (char *)(uintptr_t)0x7f0000000000ull;
        uint32_t carved = (k->run_bytes / k->size) * k->size;
        carved -= carved > k->size ? k->size : 0; /* leave the last block uncarved */
        atomic_init(&s.bump, s.start + carved);
        for (uint32_t off = 0; off < k->run_bytes; off++)
            CHECK(pool_block_ok(&s, s.start + off) == (off < carved && off % k->size == 0));
        CHECK(!pool_block_ok(&s, s.start - k->size)); /* below the slab */
    }
    printf("pool_classes: ok (%u classes)\n", POOL_NCLASS);
    return 0;
}
