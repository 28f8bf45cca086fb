/* hk_ctl.c - owns introspection: the one statistics table (names, meaning,
 * where each value comes from), hak_mallctl over it and over the options
 * table, hak_stats_print (text and JSON from the same table), and in
 * libhakmem the HAKMEM_STATS dump at exit.
 * Built twice: with HK_WITH_POOLS for libhakmem, without for libhakmem_hooks. */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "arena/options.h"
#include "arena/page_arena.h"
#include "hakmem.h"
#include "hooks/hk_extent.h"
#include "hooks/hk_kinds.h"
#if HK_WITH_POOLS
#include "hooks/hk_guard.h"
#include "hooks/hk_jemalloc.h"
#include "pools/heap.h"
#endif

#define HK_EXPORT __attribute__((visibility("default")))

/* Everything the table reads, gathered once per query. */
typedef struct hk_snapshot {
    pa_stats pa;
    uint64_t madvise;
    hk_hook_stats hooks;
    hk_kinds_stats kinds;
#if HK_WITH_POOLS
    pool_stats pool[POOL_COUNT];
    uint64_t large_nmalloc, large_nfree;
    uint64_t guard_nmalloc, guard_nfree, guard_bytes;
#endif
} hk_snapshot;

static void snapshot(hk_snapshot *s) {
    pa_stats_get(&s->pa);
    s->madvise = atomic_load_explicit(&pa_os_nmadvise, memory_order_relaxed);
    hk_hook_stats_get(&s->hooks);
    hk_kinds_stats_get(&s->kinds);
#if HK_WITH_POOLS
    pool_stats_get(s->pool);
    hk_je_stats(&s->large_nmalloc, &s->large_nfree);
    hk_guard_stats(&s->guard_nmalloc, &s->guard_nfree, &s->guard_bytes);
#endif
}

typedef struct { const char *name; size_t off; const char *doc; } hk_stat;
#define PA(f) offsetof(hk_snapshot, pa.f)
#define HK(f) offsetof(hk_snapshot, hooks.f)
#define POOL(p, f) offsetof(hk_snapshot, pool[p].f)
#define KIND(i, f) offsetof(hk_snapshot, kinds.k[i].f)
#define KIND_ROWS(i, name)                                                                     \
    {"stats.arena_kinds." name ".arenas", KIND(i, arenas), "live arenas of the kind"},         \
    {"stats.arena_kinds." name ".mapped", KIND(i, mapped), "bytes the kind holds"},            \
    {"stats.arena_kinds." name ".cached", KIND(i, cached), "bytes in its cache or free in its windows"}, \
    {"stats.arena_kinds." name ".active", KIND(i, active), "bytes its arenas hold"},           \
    {"stats.arena_kinds." name ".hits", KIND(i, hits), "extents served from its cache or window"}, \
    {"stats.arena_kinds." name ".misses", KIND(i, misses), "requests needing a new span (window: refused)"}, \
    {"stats.arena_kinds." name ".returned", KIND(i, returned), "bytes reset and given back to the shared caches"}, \
    {"stats.arena_kinds." name ".advise_failed", KIND(i, advise_failed), "madvise calls the kernel refused"}

static const hk_stat stat_table[] = {
    {"stats.page_arena.hot.hits", PA(hot_hits), "4 KiB pages served from the hot tier"},
    {"stats.page_arena.hot.misses", PA(hot_misses), "4 KiB requests the hot stack could not serve"},
    {"stats.page_arena.hot.bytes", PA(hot_bytes), "bytes in the shared hot stack"},
    {"stats.page_arena.hot.tls_bytes", PA(tls_bytes), "bytes in per-thread hot caches"},
    {"stats.page_arena.warm.hits", PA(warm_hits), "64K/128K/2M spans served from the warm tier"},
    {"stats.page_arena.warm.misses", PA(warm_misses), "warm-size requests the warm tier could not serve"},
    {"stats.page_arena.warm.bytes", PA(warm_bytes), "bytes in the warm buckets"},
    {"stats.page_arena.odd.hits", PA(odd_hits), "requests served from cached odd-sized ranges"},
    {"stats.page_arena.odd.bytes", PA(odd_bytes), "bytes in the odd-range set"},
    {"stats.page_arena.odd.extends", PA(odd_extends), "large requests served by growing a cached range into free address space"},
    {"stats.page_arena.cold.maps", PA(cold_maps), "OS mappings made for spans"},
    {"stats.page_arena.cold.unmaps", PA(cold_unmaps), "cached spans returned to the OS"},
    {"stats.page_arena.purged", PA(purged_spans), "spans returned to the OS because a tier was full"},
    {"stats.page_arena.decayed", PA(decayed_spans), "spans returned to the OS by decay or purge"},
    {"stats.page_arena.madvise", offsetof(hk_snapshot, madvise), "madvise calls"},
    {"stats.page_arena.bytes_cached", PA(bytes_cached), "bytes cached in every tier"},
    {"stats.page_arena.bytes_out", PA(bytes_out), "bytes handed out to clients"},
    {"stats.page_arena.meta_bytes", PA(meta_bytes), "bytes of metadata pages"},
    {"stats.page_arena.pagemap_bytes", PA(pagemap_bytes), "bytes of page map leaves"},
    {"stats.page_arena.background.running", PA(bg_running), "1 while the background purge thread runs"},
    {"stats.page_arena.background.passes", PA(bg_passes), "decay passes of the background purge thread"},
    {"stats.hooks.alloc_calls", HK(alloc_calls), "extent alloc hook calls"},
    {"stats.hooks.dalloc_calls", HK(dalloc_calls), "extent dalloc/destroy hook calls"},
    {"stats.hooks.forwarded_calls", HK(forwarded_calls), "hook calls forwarded to an arena's previous hooks"},
    {"stats.hooks.bytes_active", HK(bytes_active), "bytes held by jemalloc arenas through the hooks"},
    {"stats.hooks.arenas", HK(arenas), "jemalloc arenas the hooks have given an extent to"},
    KIND_ROWS(HK_KIND_NODUMP, "nodump"),
    KIND_ROWS(HK_KIND_HUGE, "huge"),
    KIND_ROWS(HK_KIND_RANGE, "range"),
    {"stats.arena_kinds.huge.thp_mode", offsetof(hk_snapshot, kinds.thp_mode), "kernel THP mode: 0 none or never, 1 madvise, 2 always"},
    {"stats.arena_kinds.tcaches", offsetof(hk_snapshot, kinds.tcaches), "private thread caches alive"},
#if HK_WITH_POOLS
#define POOL_ROWS(p, name)                                                              \
    {"stats." name ".allocated", POOL(p, allocated), "bytes of slabs/runs held"},      \
    {"stats." name ".active", POOL(p, active), "bytes of blocks in use"},              \
    {"stats." name ".nmalloc", POOL(p, nmalloc), "blocks allocated"},                  \
    {"stats." name ".nfree", POOL(p, nfree), "blocks freed"},                          \
    {"stats." name ".slabs", POOL(p, slabs), "slabs/runs held"}
    POOL_ROWS(POOL_TINY, "tiny"),
    POOL_ROWS(POOL_MID, "mid"),
    POOL_ROWS(POOL_L25, "l25"),
    {"stats.large.nmalloc", offsetof(hk_snapshot, large_nmalloc), "pools mode: allocations sent to the hooked jemalloc arena"},
    {"stats.large.nfree", offsetof(hk_snapshot, large_nfree), "pools mode: frees sent to the hooked jemalloc arena"},
    {"stats.guard.nmalloc", offsetof(hk_snapshot, guard_nmalloc), "HAKMEM_GUARD=1: guarded blocks allocated"},
    {"stats.guard.nfree", offsetof(hk_snapshot, guard_nfree), "HAKMEM_GUARD=1: guarded blocks freed"},
    {"stats.guard.bytes", offsetof(hk_snapshot, guard_bytes), "HAKMEM_GUARD=1: bytes of guarded spans, guard pages included"},
#endif
};
#define N_STATS (sizeof stat_table / sizeof stat_table[0])

static uint64_t stat_value(const hk_snapshot *s, const hk_stat *e) {
    uint64_t v;
    memcpy(&v, (const char *)s + e->off, sizeof v);
    return v;
}

static int read_u64(uint64_t v, void *oldp, size_t *oldlenp) {
    if (oldp && oldlenp) {
        if (*oldlenp != sizeof(uint64_t))
            return EINVAL;
        memcpy(oldp, &v, sizeof v);
    }
    return 0;
}

HK_EXPORT int hak_mallctl(const char *name, void *oldp, size_t *oldlenp,
                          void *newp, size_t newlen) {
    if (!name)
        return EINVAL;
    pa_init();
    if (strncmp(name, "opt.", 4) == 0) {
        for (unsigned i = 0; i < OPT_COUNT; i++)
            if (strcmp(name + 4, hak_options[i].name) == 0)
                return newp ? EPERM : read_u64(hak_opt((enum hak_opt_id)i), oldp, oldlenp);
        return ENOENT;
    }
    if (strncmp(name, "stats.", 6) == 0) {
        for (unsigned i = 0; i < N_STATS; i++)
            if (strcmp(name, stat_table[i].name) == 0) {
                if (newp)
                    return EPERM;
                hk_snapshot s;
                snapshot(&s);
                return read_u64(stat_value(&s, &stat_table[i]), oldp, oldlenp);
            }
        return ENOENT;
    }
    if (strcmp(name, "page_arena.purge") == 0 || strcmp(name, "page_arena.decay") == 0) {
        if (oldp || oldlenp || newp || newlen)
            return EINVAL;
        if (name[11] == 'p')
            pa_purge_all();
        else
            pa_decay_now();
        return 0;
    }
    if (strcmp(name, "arena.create") == 0) {
        if (!oldp || !oldlenp || *oldlenp != sizeof(unsigned) || newp)
            return EINVAL;
        return hak_arena_create(oldp);
    }
    return hk_kinds_ctl(name, oldp, oldlenp, newp, newlen); /* arena_kinds.*, arena.<i>.* */
}

/* ---- printing -------------------------------------------------------------- */

typedef struct {
    void (*cb)(void *, const char *);
    void *opaque;
} printer;

static void out(printer *p, pa_msg *m) {
    m->buf[m->n] = '\0';
    p->cb(p->opaque, m->buf);
    m->n = 0;
}

/* The one writer to a descriptor: opaque points at it (NULL: stderr). */
static void write_fd(void *opaque, const char *s) {
    pa_os_write(opaque ? *(const int *)opaque : 2, s, strlen(s));
}

/* One row: the value v, or the word when there is one (a JSON string). */
static void print_row(printer *pr, bool json, bool first, const char *name, uint64_t v,
                      const char *word) {
    pa_msg m = {.n = 0};
    if (json) {
        pa_msg_str(&m, first ? "\n    \"" : ",\n    \"");
        pa_msg_str(&m, name);
        pa_msg_str(&m, "\": ");
    } else {
        pa_msg_str(&m, name);
        pa_msg_str(&m, ": ");
    }
    if (!word)
        pa_msg_u64(&m, v);
    else if (json) {
        pa_msg_str(&m, "\"");
        pa_msg_str(&m, word);
        pa_msg_str(&m, "\"");
    } else
        pa_msg_str(&m, word);
    if (!json)
        pa_msg_str(&m, "\n");
    out(pr, &m);
}

static void print_all(printer pr, bool json) {
    pa_init();
    hk_snapshot s;
    snapshot(&s);
    pr.cb(pr.opaque, json ? "{\"hakmem\": {\n  \"version\": \"" HAKMEM_VERSION "\",\n  \"opt\": {"
                          : "___ Begin hakmem statistics ___\nversion: " HAKMEM_VERSION "\n");
    for (unsigned i = 0; i < OPT_COUNT; i++) {
        const hak_option *o = &hak_options[i];
        char name[64] = "opt.";
        strncat(name, o->name, sizeof name - 5);
        uint64_t v = hak_opt((enum hak_opt_id)i);
        /* An option spelled in words prints as the word the table accepts. */
        print_row(&pr, json, i == 0, json ? o->name : name, v, o->words ? o->words[v] : NULL);
    }
    pr.cb(pr.opaque, json ? "\n  },\n  \"stats\": {" : "");
    for (unsigned i = 0; i < N_STATS; i++)
        print_row(&pr, json, i == 0, json ? stat_table[i].name + 6 : stat_table[i].name,
                  stat_value(&s, &stat_table[i]), NULL);
    pr.cb(pr.opaque, json ? "\n  }\n}}\n" : "___ End hakmem statistics ___\n");
}

HK_EXPORT void hak_stats_print(void (*write_cb)(void *, const char *), void *cbopaque,
                               const char *opts) {
    printer pr = write_cb ? (printer){write_cb, cbopaque} : (printer){write_fd, NULL};
    print_all(pr, opts && strchr(opts, 'J'));
}

#if HK_WITH_POOLS
/* HAKMEM_STATS: every statistic, at exit, on the file stderr was when the
 * library started: through a duplicate kept from then, so the dump still
 * appears when the program closed its stderr (as ls does). */
static pa_os_fd stats_fd = {-1, 0, 0};

__attribute__((constructor)) static void stats_keep_stderr(void) {
    hak_options_init();
    if (hak_opt(OPT_STATS) != STATS_OFF)
        stats_fd = pa_os_fd_keep(2);
}

__attribute__((destructor)) static void stats_at_exit(void) {
    uint64_t s = hak_opt(OPT_STATS);
    if (s == STATS_OFF)
        return;
    /* Kept and intact, or (none could be kept) stderr as it is now. */
    int fd = pa_os_fd_intact(&stats_fd) ? stats_fd.fd : 2;
    print_all((printer){write_fd, &fd}, s == STATS_JSON);
}
#endif
