/* pa_meta.c - owns metadata memory: power-of-two classes from 64 B to 16 KiB,
 * each a free list, carved from 256 KiB blocks mapped straight from the OS.
 * Metadata is reused, never returned to the OS. */
#include "arena/pa_meta.h"

#include <string.h>

#include "arena/pa_os.h"

#define META_MIN_SHIFT 6
#define META_NCLASS 9 /* 64 B .. 16 KiB */
#define META_BLOCK ((size_t)256 << 10)

static pa_lock_t meta_lock;
static void *meta_free[META_NCLASS];
static char *meta_bump, *meta_end;
_Atomic uint64_t pa_meta_bytes;

static unsigned meta_class(size_t size) {
    unsigned c = 0;
    while (((size_t)1 << (c + META_MIN_SHIFT)) < size)
        c++;
    return c;
}

void *pa_meta_alloc(size_t size) {
    unsigned c = meta_class(size);
    if (c >= META_NCLASS)
        return NULL;
    size_t bytes = (size_t)1 << (c + META_MIN_SHIFT);
    pa_lock(&meta_lock);
    void *p = meta_free[c];
    if (p) {
        meta_free[c] = *(void **)p;
        pa_unlock(&meta_lock);
        memset(p, 0, bytes);
        return p;
    }
    if ((size_t)(meta_end - meta_bump) < bytes) {
        pa_unlock(&meta_lock);
        char *blk = pa_os_map(META_BLOCK, PA_PAGE);
        if (!blk)
            return NULL;
        pa_lock(&meta_lock);
        if ((size_t)(meta_end - meta_bump) < bytes) {
            /* The tail of the old block is dropped: under 16 KiB. */
            meta_bump = blk;
            meta_end = blk + META_BLOCK;
            blk = NULL;
        }
        p = meta_bump;
        meta_bump += bytes;
        pa_unlock(&meta_lock);
        if (blk) /* another thread refilled first */
            pa_os_unmap(blk, META_BLOCK);
        else
            atomic_fetch_add_explicit(&pa_meta_bytes, META_BLOCK, memory_order_relaxed);
        return p;
    }
    p = meta_bump;
    meta_bump += bytes;
    pa_unlock(&meta_lock);
    return p; /* fresh pages are zero */
}

void pa_meta_free(void *p, size_t size) {
    if (!p)
        return;
    unsigned c = meta_class(size);
    pa_lock(&meta_lock);
    *(void **)p = meta_free[c];
    meta_free[c] = p;
    pa_unlock(&meta_lock);
}

void pa_meta_fork_child(void) {
    if (pa_lock_reset(&meta_lock)) {
        /* Another thread was mid-update: drop the lists (a leak, never a
         * corruption) and start a new block. */
        for (unsigned c = 0; c < META_NCLASS; c++)
            meta_free[c] = NULL;
        meta_bump = meta_end = NULL;
    }
}
