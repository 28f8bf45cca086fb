/* hk_large.h - the registry of live blocks the pools-mode front sent to
 * jemalloc (defined in hk_large.c), so free() can tell a block start from an
 * interior pointer or a second free before it asks jemalloc anything. */
#ifndef HK_LARGE_H
#define HK_LARGE_H

#include <stdbool.h>

typedef enum { HK_LARGE_LIVE, HK_LARGE_FREED, HK_LARGE_UNKNOWN } hk_large_state;

/* Record a new block; false when the table cannot grow (out of memory). */
bool hk_large_add(const void *p);
/* Look up p; with `take`, a live entry becomes freed. */
hk_large_state hk_large_find(const void *p, bool take);

#endif
