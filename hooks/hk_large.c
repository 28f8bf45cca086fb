/* hk_large.c - owns the registry of live jemalloc-routed blocks (pools mode:
 * sizes above 2 MiB and alignments the pools cannot serve).  An open-addressing
 * table of block addresses in memory mapped from the OS; a freed block leaves
 * a tombstone, so its second free is reported as a double free until the next
 * rehash.  Its lock is a leaf lock (no jemalloc call under it), taken around
 * fork so the child inherits a consistent table. */
#define _GNU_SOURCE
#include "hooks/hk_large.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "arena/pa_os.h"

#define TOMB 1u /* low bit of an entry: the block was freed */

static pa_lock_t lock;
static uintptr_t *tab;
static size_t cap, used; /* slots, slots taken (live + tombstones) */
static size_t live;
static atomic_int fork_registered;

static void before_fork(void) { pa_lock(&lock); }
static void after_fork(void) { pa_unlock(&lock); }

static size_t slot_of(uintptr_t key, size_t n) {
    return (size_t)(((key >> 4) * 0x9e3779b97f4a7c15ull) >> 20) & (n - 1);
}

/* Find key's slot (live or tombstone) or the empty slot where it belongs. */
static size_t probe(uintptr_t key) {
    size_t i = slot_of(key, cap);
    while (tab[i] && (tab[i] & ~(uintptr_t)TOMB) != key)
        i = (i + 1) & (cap - 1);
    return i;
}

/* Rebuild with room for twice the live entries, dropping tombstones. */
static bool grow(void) {
    size_t ncap = 1024;
    while (ncap < 4 * (live + 1))
        ncap *= 2;
    uintptr_t *ntab = pa_os_map(ncap * sizeof *ntab, PA_PAGE);
    if (!ntab)
        return false;
    for (size_t i = 0; i < cap; i++)
        if (tab[i] && !(tab[i] & TOMB)) {
            size_t j = slot_of(tab[i], ncap);
            while (ntab[j])
                j = (j + 1) & (ncap - 1);
            ntab[j] = tab[i];
        }
    uintptr_t *old = tab;
    size_t old_cap = cap;
    tab = ntab;
    cap = ncap;
    used = live;
    if (old)
        pa_os_unmap(old, old_cap * sizeof *old);
    return true;
}

bool hk_large_add(const void *p) {
    int expect = 0;
    if (atomic_compare_exchange_strong(&fork_registered, &expect, 1))
        pthread_atfork(before_fork, after_fork, after_fork);
    uintptr_t key = (uintptr_t)p;
    pa_lock(&lock);
    if ((used + 1) * 2 > cap && !grow()) {
        pa_unlock(&lock);
        return false;
    }
    size_t i = probe(key);
    if (!tab[i])
        used++;
    tab[i] = key; /* new, or reusing this address's tombstone */
    live++;
    pa_unlock(&lock);
    return true;
}

hk_large_state hk_large_find(const void *p, bool take) {
    uintptr_t key = (uintptr_t)p;
    hk_large_state st = HK_LARGE_UNKNOWN;
    pa_lock(&lock);
    if (cap) {
        size_t i = probe(key);
        if (tab[i] == key) {
            st = HK_LARGE_LIVE;
            if (take) {
                tab[i] |= TOMB;
                live--;
            }
        } else if (tab[i]) {
            st = HK_LARGE_FREED;
        }
    }
    pa_unlock(&lock);
    return st;
}
