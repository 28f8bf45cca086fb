/* hk_extent.h - jemalloc extent hooks over the PageArena (defined in
 * hk_extent.c): the hook table, arena creation and attachment, counters. */
#ifndef HK_EXTENT_H
#define HK_EXTENT_H

#include <stdint.h>

#include "arena/pa_pagemap.h"

/* Every page a jemalloc arena holds through our hooks maps to a descriptor
 * of kind PA_KIND_JE: this one, or with opt.retain on one per alloc result. */
extern const pa_desc hk_je_desc;

typedef struct hk_hook_stats {
    uint64_t alloc_calls, dalloc_calls, forwarded_calls, bytes_active;
    uint64_t arenas; /* distinct arenas the hooks have given an extent to */
} hk_hook_stats;
void hk_hook_stats_get(hk_hook_stats *out);

/* hak_arena_attach without starting the PageArena's background thread
 * (libhakmem_je.so starts it when the program starts a thread: hk_je.c). */
int hk_arena_attach_hooks(unsigned arena_ind);

#endif
