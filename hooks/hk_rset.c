/* hk_rset.c - owns the free-range set of the arena kinds (see hk_rset.h):
 * binary search by address, coalescing on insert, best-fit carving, and
 * oldest-first removal for caps and decay.  Every operation is at most one
 * linear pass over the entries plus one memmove. */
#include "hooks/hk_rset.h"

#include <string.h>

#include "arena/pa_os.h"

static size_t rset_bytes(uint32_t cap) {
    return ((size_t)cap * sizeof(hk_range) + PA_PAGE - 1) & ~(PA_PAGE - 1);
}

bool hk_rset_init(hk_rset *s, uint32_t cap, bool mix_zero) {
    memset(s, 0, sizeof *s);
    if (cap == 0)
        cap = 1;
    s->v = pa_os_map(rset_bytes(cap), PA_PAGE);
    if (!s->v)
        return false;
    s->cap = cap;
    s->mix_zero = mix_zero;
    return true;
}

void hk_rset_fini(hk_rset *s) {
    if (s->v)
        pa_os_unmap(s->v, rset_bytes(s->cap));
    memset(s, 0, sizeof *s);
}

static size_t dirty_of(const hk_range *e) { return e->zero ? 0 : e->len; }

static uint32_t search(const hk_rset *s, uintptr_t a) { /* first index with addr > a */
    uint32_t lo = 0, hi = s->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (s->v[mid].addr <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void remove_at(hk_rset *s, uint32_t i) {
    s->bytes -= s->v[i].len;
    s->dirty -= dirty_of(&s->v[i]);
    memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(hk_range));
    s->n--;
}

static bool joins(const hk_rset *s, const hk_range *e, bool zero) {
    return s->mix_zero || e->zero == zero;
}

bool hk_rset_insert(hk_rset *s, uintptr_t a, size_t len, bool zero, uint64_t now) {
    uint32_t i = search(s, a);
    bool prev = i > 0 && s->v[i - 1].addr + s->v[i - 1].len == a && joins(s, &s->v[i - 1], zero);
    bool next = i < s->n && a + len == s->v[i].addr && joins(s, &s->v[i], zero);
    if (prev || next) {
        hk_range *e = prev ? &s->v[i - 1] : &s->v[i];
        s->dirty -= dirty_of(e);
        if (prev) {
            e->len += len;
        } else {
            e->addr = a;
            e->len += len;
        }
        e->zero = e->zero && zero;
        e->t = now;
        s->bytes += len;
        if (prev && next) { /* the gap is filled: absorb the next entry */
            hk_range *nx = &s->v[i];
            bool z = e->zero && nx->zero;
            size_t l = nx->len;
            remove_at(s, i);
            e->len += l;
            e->zero = z;
            s->bytes += l;
        }
        s->dirty += dirty_of(e);
        return true;
    }
    if (s->n == s->cap)
        return false;
    memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(hk_range));
    s->v[i] = (hk_range){a, len, now, zero};
    s->n++;
    s->bytes += len;
    s->dirty += dirty_of(&s->v[i]);
    return true;
}

/* Cut [start, start+size) out of entry i.  False (nothing changed) when
 * both a head and a tail are left and the set has no room for the tail. */
static bool carve(hk_rset *s, uint32_t i, uintptr_t start, size_t size) {
    hk_range *e = &s->v[i];
    uintptr_t end = start + size, e_end = e->addr + e->len;
    size_t head = start - e->addr, tail = e_end - end;
    if (head && tail) {
        if (s->n == s->cap)
            return false;
        memmove(&s->v[i + 2], &s->v[i + 1], (s->n - i - 1) * sizeof(hk_range));
        s->v[i + 1] = (hk_range){end, tail, e->t, e->zero};
        s->n++;
        e->len = head;
    } else if (head) {
        e->len = head;
    } else if (tail) {
        e->addr = end;
        e->len = tail;
    } else {
        remove_at(s, i);
        return true;
    }
    s->bytes -= size;
    if (!s->v[i].zero)
        s->dirty -= size;
    return true;
}

uintptr_t hk_rset_take(hk_rset *s, size_t size, size_t align, bool *zero) {
    if (align < PA_PAGE)
        align = PA_PAGE;
    uint32_t best = UINT32_MAX;
    size_t best_len = SIZE_MAX;
    uintptr_t best_start = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        const hk_range *e = &s->v[i];
        if (e->len < size || e->len >= best_len)
            continue;
        uintptr_t start = (e->addr + align - 1) & ~(uintptr_t)(align - 1);
        if (start >= e->addr && start - e->addr <= e->len - size) {
            best = i;
            best_len = e->len;
            best_start = start;
            if (e->len == size)
                break;
        }
    }
    if (best == UINT32_MAX)
        return 0;
    bool z = s->v[best].zero;
    if (!carve(s, best, best_start, size))
        return 0;
    *zero = z;
    return best_start;
}

bool hk_rset_take_at(hk_rset *s, uintptr_t a, size_t size, bool *zero) {
    uint32_t i = search(s, a);
    if (i == 0)
        return false;
    const hk_range *e = &s->v[i - 1];
    if (a < e->addr || a + size > e->addr + e->len)
        return false;
    bool z = e->zero;
    if (!carve(s, i - 1, a, size))
        return false;
    *zero = z;
    return true;
}

/* Cut the aligned core of entry i (its last max bytes of it, when max is
 * set) into out.  False when the entry has no whole granule, or no room
 * for the piece left on each side. */
static bool pop_core(hk_rset *s, uint32_t i, size_t max, size_t granule, hk_range *out) {
    const hk_range *e = &s->v[i];
    uintptr_t lo = (e->addr + granule - 1) & ~(uintptr_t)(granule - 1);
    uintptr_t hi = (e->addr + e->len) & ~(uintptr_t)(granule - 1);
    if (hi <= lo || lo < e->addr)
        return false;
    if (max) {
        size_t take = (max + granule - 1) & ~(granule - 1);
        if (take < hi - lo)
            lo = hi - take;
    }
    hk_range r = {lo, hi - lo, e->t, e->zero};
    if (!carve(s, i, lo, hi - lo))
        return false;
    *out = r;
    return true;
}

bool hk_rset_pop_oldest(hk_rset *s, bool dirty_only, size_t max, size_t granule,
                        hk_range *out) {
    if (granule < PA_PAGE)
        granule = PA_PAGE;
    uint32_t old = UINT32_MAX;
    for (uint32_t i = 0; i < s->n; i++) {
        const hk_range *e = &s->v[i];
        if ((dirty_only && e->zero) || (old != UINT32_MAX && e->t >= s->v[old].t))
            continue;
        uintptr_t lo = (e->addr + granule - 1) & ~(uintptr_t)(granule - 1);
        if (lo >= e->addr && lo + granule <= e->addr + e->len)
            old = i;
    }
    return old != UINT32_MAX && pop_core(s, old, max, granule, out);
}

bool hk_rset_pop_older(hk_rset *s, uint64_t before, size_t granule, hk_range *out) {
    if (granule < PA_PAGE)
        granule = PA_PAGE;
    for (uint32_t i = 0; i < s->n; i++)
        if (s->v[i].t <= before && pop_core(s, i, 0, granule, out))
            return true;
    return false;
}
