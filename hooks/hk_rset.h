/* hk_rset.h - a set of free page ranges (defined in hk_rset.c), used by the
 * arena kinds for an address window's free space and for a kind's private
 * cache: address-ordered, coalescing, best fit, with a "known zero" flag and
 * a last-use time per range.  Entries live in memory mapped from the OS
 * (never malloc).  No lock of its own: the owner holds a leaf lock around
 * every call, and no call makes a system call except init and fini. */
#ifndef HK_RSET_H
#define HK_RSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hk_range {
    uintptr_t addr;
    size_t len;
    uint64_t t;   /* when it was last put back (pa_os_now_ms) */
    bool zero;    /* reads as zero and holds no pages */
} hk_range;

typedef struct hk_rset {
    hk_range *v;       /* sorted by addr, disjoint */
    uint32_t n, cap;
    bool mix_zero;     /* merge a zero range with a dirty neighbour (the
                        * result is dirty); otherwise they stay apart */
    size_t bytes;      /* sum of len */
    size_t dirty;      /* sum of len of ranges not known zero */
} hk_rset;

/* Map room for cap entries.  With mix_zero, a set that never holds more
 * than P pages needs at most P/2 + 1 entries (two free ranges are always
 * separated by a used page).  False when the OS refused. */
bool hk_rset_init(hk_rset *s, uint32_t cap, bool mix_zero);
void hk_rset_fini(hk_rset *s);

/* Put [a, a+len) back, merging with its neighbours.  False when a new
 * entry is needed and the set is full (nothing changed). */
bool hk_rset_insert(hk_rset *s, uintptr_t a, size_t len, bool zero, uint64_t now);
/* The smallest range holding size bytes at an align-aligned start; that
 * part is carved out (the pieces left stay).  0 when none fits, or when
 * the carve needs an entry the full set does not have. */
uintptr_t hk_rset_take(hk_rset *s, size_t size, size_t align, bool *zero);
/* Exactly [a, a+size) if the set holds all of it, else false. */
bool hk_rset_take_at(hk_rset *s, uintptr_t a, size_t size, bool *zero);
/* Remove and return the oldest range (dirty ones first when dirty_only),
 * or, when it is longer than max, its last max bytes.  Only whole,
 * aligned granules leave (a power of two >= 4 KiB): the pieces of a range
 * outside its aligned core stay.  False if no range has a granule to give. */
bool hk_rset_pop_oldest(hk_rset *s, bool dirty_only, size_t max, size_t granule,
                        hk_range *out);
/* The same for a range put back at or before `before`. */
bool hk_rset_pop_older(hk_rset *s, uint64_t before, size_t granule, hk_range *out);

#endif
