/* page_pattern.h - the block pattern of the hooks, arena-kinds and
 * libhakmem_je.so tests: one byte per page and the last byte, so a block of
 * any size is written and checked without touching every byte.  The page
 * bytes stop short of the last byte, which a block of 4096 k + 1 bytes would
 * otherwise share with one. */
#ifndef TEST_PAGE_PATTERN_H
#define TEST_PAGE_PATTERN_H

#include <stdbool.h>
#include <stddef.h>

#include "check.h"

static inline void page_fill(void *p, size_t n, unsigned seed) {
    unsigned char *c = p;
    for (size_t i = 0; i + 1 < n; i += 4096)
        c[i] = (unsigned char)(seed + i / 4096);
    c[n - 1] = (unsigned char)seed;
}

static inline bool page_intact(const void *p, size_t n, unsigned seed) {
    const unsigned char *c = p;
    for (size_t i = 0; i + 1 < n; i += 4096)
        if (c[i] != (unsigned char)(seed + i / 4096))
            return false;
    return c[n - 1] == (unsigned char)seed;
}

#define page_verify(p, n, seed) CHECK(page_intact((p), (n), (seed)))

#endif
