/* hk_guard.c - owns the guarded blocks of HAKMEM_GUARD=1: their spans (taken
 * from and returned to the PageArena), the guard pages' protection, the
 * descriptors the page map points at, and their counters.
 *
 * Layout of one block's span, page-aligned:
 *     [guard page][slack][block ........][guard page]
 * The block ends at the upper guard page (rounded down to its alignment), so
 * reading or writing past its usable size faults; an underflow faults once
 * it crosses the slack.  The descriptor comes from pa_meta (no malloc) and
 * leaves when the block is freed; from then on the page map says "cached",
 * which the front reports as a double free.  No lock: each block is owned by
 * whoever holds it, and the counters are atomic. */
#define _GNU_SOURCE
#include "hooks/hk_guard.h"

#include <errno.h>
#include <string.h>

#include "arena/pa_meta.h"
#include "arena/pa_os.h"
#include "arena/page_arena.h"

typedef struct hk_guard_desc {
    pa_desc hdr;  /* kind PA_KIND_GUARD */
    char *base;   /* the span: base .. base + span */
    size_t span;
    char *user;   /* the block; it ends at base + span - PA_PAGE */
} hk_guard_desc;

static _Atomic uint64_t g_nmalloc, g_nfree, g_bytes;

static bool protect(char *p, bool access) { return pa_os_protect(p, PA_PAGE, access); }

void *hk_guard_alloc(size_t n, size_t align, bool zero) {
    size_t body = (n + PA_PAGE - 1) & ~(PA_PAGE - 1), slack = align > PA_PAGE ? align : 0;
    if (n > PTRDIFF_MAX / 2 || body < n) {
        errno = ENOMEM;
        return NULL;
    }
    size_t span = body + slack + 2 * PA_PAGE;
    hk_guard_desc *d = pa_meta_alloc(sizeof *d);
    if (!d) {
        errno = ENOMEM;
        return NULL;
    }
    d->hdr = (pa_desc){NULL, PA_KIND_GUARD};
    bool fresh_zero;
    char *base = pa_alloc(span, 0, &d->hdr, &fresh_zero, 0);
    if (!base) {
        pa_meta_free(d, sizeof *d);
        errno = ENOMEM;
        return NULL;
    }
    char *hi = base + span - PA_PAGE;
    if (!protect(base, false) || !protect(hi, false)) {
        /* refused (e.g. too many mappings): undo and report ENOMEM */
        protect(base, true);
        protect(hi, true);
        pa_free(base, span, 0);
        pa_meta_free(d, sizeof *d);
        errno = ENOMEM;
        return NULL;
    }
    size_t a = align < 16 ? 16 : align;
    d->base = base;
    d->span = span;
    d->user = (char *)(((uintptr_t)hi - n) & ~(uintptr_t)(a - 1));
    if (zero && !fresh_zero)
        memset(d->user, 0, (size_t)(hi - d->user));
    atomic_fetch_add_explicit(&g_nmalloc, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_bytes, span, memory_order_relaxed);
    return d->user;
}

const char *hk_guard_free(void *p, const pa_desc *pd) {
    hk_guard_desc *d = (hk_guard_desc *)pd;
    if (!d->user)
        return "double free"; /* kept after a refused protection change, below */
    if (p != d->user)
        return "invalid pointer";
    size_t span = d->span;
    char *hi = d->base + span - PA_PAGE;
    if (protect(d->base, true) && protect(hi, true)) {
        pa_free(d->base, span, 0);
        pa_meta_free(d, sizeof *d);
    } else {
        /* The span cannot be made whole again: keep it, and its descriptor
         * to catch a second free, rather than cache a page that faults. */
        d->user = NULL;
    }
    atomic_fetch_add_explicit(&g_nfree, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&g_bytes, span, memory_order_relaxed);
    return NULL;
}

size_t hk_guard_usable(const void *p, const pa_desc *pd) {
    const hk_guard_desc *d = (const hk_guard_desc *)pd;
    return p == d->user ? (size_t)(d->base + d->span - PA_PAGE - d->user) : 0;
}

void hk_guard_stats(uint64_t *nmalloc, uint64_t *nfree, uint64_t *bytes) {
    *nmalloc = atomic_load_explicit(&g_nmalloc, memory_order_relaxed);
    *nfree = atomic_load_explicit(&g_nfree, memory_order_relaxed);
    *bytes = atomic_load_explicit(&g_bytes, memory_order_relaxed);
}
