/* pa_meta.h - metadata memory (defined in pa_meta.c): small zeroed blocks for
 * descriptors and per-thread state, from pages the PageArena maps itself, so
 * that no metadata ever comes from malloc. */
#ifndef PA_META_H
#define PA_META_H

#include <stddef.h>
#include <stdint.h>

/* size <= 16 KiB; returns zeroed, 64-byte aligned memory or NULL. */
void *pa_meta_alloc(size_t size);
void pa_meta_free(void *p, size_t size);
void pa_meta_fork_child(void);
extern _Atomic uint64_t pa_meta_bytes;

#endif
