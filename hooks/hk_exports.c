/* hk_exports.c - owns the exported C allocation surface of libhakmem.so:
 * malloc, free, calloc, realloc, reallocarray, posix_memalign, aligned_alloc,
 * memalign, valloc, pvalloc, malloc_usable_size; the four hot C++ operators
 * (plain and array operator new, operator delete unsized and sized) under
 * their mangled names; and the entry points the other C++ operators
 * (hk_new.cc) use.  Each is the inlined fast path of hk_malloc.h with one
 * branch to a slow path. */
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

/* operator new(size_t), new[](size_t), delete(void *), delete[](void *) and
 * the sized deletes, defined here so that each is the fast path itself, with
 * no call into hk_new.cc.  A new that the slow path cannot serve goes on to
 * hk_cxx_new_retry (hk_new.cc): the new-handler loop, then std::bad_alloc,
 * unwound through this file (built with -fexceptions). */
void *hk_cxx_new_retry(size_t n);

static HK_NOINLINE void *cxx_new_slow(size_t n) {
    void *p = hk_malloc_slow(n);
    return PA_LIKELY(p != NULL) ? p : hk_cxx_new_retry(n);
}

static inline void *cxx_new(size_t n) {
    void *p = pool_malloc_fast(n);
    if (PA_UNLIKELY(!p))
        return cxx_new_slow(n);
    return p;
}

HK_EXPORT void *hk_op_new(size_t n) __asm__("_Znwm");
HK_EXPORT void *hk_op_new_array(size_t n) __asm__("_Znam");
HK_EXPORT void hk_op_delete(void *p) __asm__("_ZdlPv");
HK_EXPORT void hk_op_delete_array(void *p) __asm__("_ZdaPv");
HK_EXPORT void hk_op_delete_sized(void *p, size_t n) __asm__("_ZdlPvm");
HK_EXPORT void hk_op_delete_array_sized(void *p, size_t n) __asm__("_ZdaPvm");

void *hk_op_new(size_t n) { return cxx_new(n); }
void *hk_op_new_array(size_t n) { return cxx_new(n); }
void hk_op_delete(void *p) { hk_free_as(p, "operator delete"); }
void hk_op_delete_array(void *p) { hk_free_as(p, "operator delete"); }
void hk_op_delete_sized(void *p, size_t n) {
    (void)n; /* the page map knows the block: the size is not needed */
    hk_free_as(p, "operator delete");
}
void hk_op_delete_array_sized(void *p, size_t n) {
    (void)n;
    hk_free_as(p, "operator delete");
}

/* For the other C++ operators: NULL on failure, the caller decides what to
 * throw. */
void *hk_cxx_new(size_t n) { return hk_malloc(n); }
void *hk_cxx_new_aligned(size_t n, size_t align) { return hk_memalign(align, n); }
void hk_cxx_delete(void *p) { hk_free_as(p, "operator delete"); }
