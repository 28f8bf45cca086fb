/* hk_exports.c - owns the exported C allocation surface of libhakmem.so:
 * malloc, free, calloc, realloc, reallocarray, posix_memalign, aligned_alloc,
 * memalign, valloc, pvalloc, malloc_usable_size, and the entry points the
 * C++ operators (hk_new.cc) use.  Each is the inlined fast path of
 * hk_malloc.h with one branch to a slow path. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>

#include "hooks/hk_malloc.h"

#define HK_EXPORT __attribute__((visibility("default")))

HK_EXPORT void *malloc(size_t n) { return hk_malloc(n); }
HK_EXPORT void free(void *p) { hk_free(p); }
HK_EXPORT void *calloc(size_t n, size_t m) { return hk_calloc(n, m); }
HK_EXPORT void *realloc(void *p, size_t n) { return hk_realloc(p, n); }
HK_EXPORT void *reallocarray(void *p, size_t n, size_t m) { return hk_reallocarray(p, n, m); }
HK_EXPORT int posix_memalign(void **out, size_t align, size_t n) {
    return hk_posix_memalign(out, align, n);
}
HK_EXPORT void *aligned_alloc(size_t align, size_t n) { return hk_memalign(align, n); }
HK_EXPORT void *memalign(size_t align, size_t n) { return hk_memalign(align, n); }
HK_EXPORT void *valloc(size_t n) { return hk_valloc(n); }
HK_EXPORT void *pvalloc(size_t n) { return hk_pvalloc(n); }
HK_EXPORT size_t malloc_usable_size(void *p) { return hk_usable_size(p); }

/* For the C++ operators: NULL on failure, the caller decides what to throw. */
void *hk_cxx_new(size_t n) { return hk_malloc(n); }
void *hk_cxx_new_aligned(size_t n, size_t align) { return hk_memalign(align, n); }
void hk_cxx_delete(void *p) { hk_free_as(p, "operator delete"); }
