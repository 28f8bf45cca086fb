/* hk_malloc.h - the malloc front of the combined library (slow paths defined
 * in hk_malloc.c): the inlined fast paths every exported allocation function
 * uses, and the slow paths they branch to. */
#ifndef HK_MALLOC_H
#define HK_MALLOC_H

#include "pools/heap.h"

#define HK_NOINLINE __attribute__((noinline))

/* Slow paths: sizes the pools do not serve, jemalloc mode, refills, frees of
 * other threads' blocks, jemalloc blocks, NULL and bad pointers.  d is the
 * pointer's page-map descriptor; `fn` names the caller in an error line. */
HK_NOINLINE void *hk_malloc_slow(size_t n);
HK_NOINLINE void hk_free_slow(void *p, const pa_desc *d, const char *fn);

static inline void *hk_malloc(size_t n) {
    void *p = pool_malloc_fast(n);
    if (PA_UNLIKELY(!p))
        return hk_malloc_slow(n);
    return p;
}

/* Free p; `fn` names the caller in an error line ("free", "operator
 * delete"). */
static inline __attribute__((always_inline)) void hk_free_as(void *p, const char *fn) {
    const pa_desc *d = pa_pagemap_get(p); /* one lookup for both paths */
    if (PA_UNLIKELY(!pool_free_fast(p, d)))
        hk_free_slow(p, d, fn);
}

static inline void hk_free(void *p) { hk_free_as(p, "free"); }

void *hk_calloc(size_t n, size_t m);
void *hk_realloc(void *p, size_t n);
void *hk_reallocarray(void *p, size_t n, size_t m);
int hk_posix_memalign(void **out, size_t align, size_t n);
/* memalign / aligned_alloc: NULL with EINVAL for a bad alignment. */
void *hk_memalign(size_t align, size_t n);
void *hk_valloc(size_t n);
void *hk_pvalloc(size_t n);
size_t hk_usable_size(const void *p);

#endif
