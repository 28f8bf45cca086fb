#!/usr/bin/env python3
"""make_seeds.py - owns the seed corpora of the libFuzzer harnesses:
writes tests/fuzz/corpus_malloc/ and tests/fuzz/corpus_arena/ (small binary
files, one operation stream each) so they can be regenerated exactly.

The byte encoding mirrors the readers of fuzz_malloc.c and fuzz_arena.c:
each operation is an opcode byte, a slot byte, then the operation's own
bytes.  Some operations read nothing more when no slot is occupied, so the
script keeps a small model of which slots (and, for the arena, which pages)
are live, to emit exactly the bytes the harness will read.  Together the
seeds reach every operation and every size class.

Usage: python3 tests/fuzz/make_seeds.py   (no arguments; rewrites both dirs)
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
NSLOTS = 256


def u16(v):
    return struct.pack("<H", v & 0xFFFF)


def u32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


# ---- fuzz_malloc ---------------------------------------------------------

M_OPS = ["malloc", "calloc", "realloc", "realloc_zero", "realloc_null", "reallocarray",
         "posix_memalign", "memalign", "valloc", "pvalloc", "free", "usable", "burst",
         "free_run", "refused", "misuse", "remote_free", "thread_alloc"]
TINY_MAX, MID_MAX, L25_MAX = 1024, 65536, 2 << 20


def size(kind, n=0):
    """The pick_size bytes for a size of the given kind."""
    if kind == "tiny":
        return bytes([0]) + u16(n)                       # n <= 1024
    if kind == "mid":
        return bytes([6]) + u16(n - TINY_MAX - 1)        # 1025 .. 65536
    if kind == "l25":
        return bytes([9]) + u32(n - MID_MAX - 1)         # 65537 .. 2 MiB
    if kind == "edge":                                   # n = class, +64: size, +128: size+1
        return bytes([12, n])
    if kind == "special":
        return bytes([14, n])
    if kind == "large":
        return bytes([15]) + u32(n - L25_MAX - 1)        # above 2 MiB
    raise ValueError(kind)


class MallocSeed:
    def __init__(self):
        self.b = bytearray()
        self.live = set()

    def occupied_from(self, i):
        for k in range(NSLOTS):
            j = (i + k) % NSLOTS
            if j in self.live:
                return j
        return None

    def op(self, name, slot, *parts):
        self.b += bytes([M_OPS.index(name), slot])
        for p in parts:
            self.b += p
        return self

    def alloc(self, name, slot, *parts):
        self.live.add(slot)
        return self.op(name, slot, *parts)

    def malloc(self, slot, sz):
        return self.alloc("malloc", slot, sz)

    def calloc(self, slot, sz, k=3):
        return self.alloc("calloc", slot, sz, bytes([k]))

    def realloc(self, slot, mode, arg=b"", array=False, k=2):
        """mode 0: grow by u16, 1: shrink by u32, 2: same, 3: any size."""
        assert self.occupied_from(slot) is not None
        tail = bytes([k]) if array else b""
        return self.op("reallocarray" if array else "realloc", slot, bytes([mode]), arg, tail)

    def realloc_zero(self, slot):
        self.live.discard(self.occupied_from(slot))
        return self.op("realloc_zero", slot)

    def free(self, slot, null_too=False):
        self.live.discard(self.occupied_from(slot))
        return self.op("free", slot, bytes([0 if null_too else 1]))

    def burst(self, slot, k, sz):
        for b in range(1 + k % 64):
            self.live.add((slot + b) % NSLOTS)
        return self.op("burst", slot, bytes([k]), sz)

    def free_run(self, slot, k, step):
        for b in range(1 + k % 128):
            self.live.discard((slot + b * (1 + step % 3)) % NSLOTS)
        return self.op("free_run", slot, bytes([k, step]))

    def remote_free(self, picks):
        self.b += bytes([M_OPS.index("remote_free"), 0, len(picks) - 1])
        for p in picks:
            j = self.occupied_from(p)
            assert j is not None
            self.live.discard(j)
            self.b += bytes([p])
        return self

    def thread_alloc(self, first, sizes):
        self.b += bytes([M_OPS.index("thread_alloc"), 0, len(sizes) - 1, first])
        for k, sz in enumerate(sizes):
            self.live.add((first + k) % NSLOTS)
            self.b += sz
        return self


def malloc_seeds():
    seeds = {}

    s = MallocSeed()  # every size class through malloc, then frees
    s.malloc(0, size("tiny", 0)).malloc(1, size("tiny", 17)).malloc(2, size("tiny", 1024))
    s.malloc(3, size("mid", 1025)).malloc(4, size("mid", 40000)).malloc(5, size("mid", 65536))
    s.malloc(6, size("l25", 65537)).malloc(7, size("l25", 300000)).malloc(8, size("l25", L25_MAX))
    s.malloc(9, size("large", L25_MAX + 1)).malloc(10, size("large", 5 << 20))
    s.op("usable", 4).free(0).free(5).free(9)
    seeds["classes"] = s

    s = MallocSeed()  # class edges: size - 1, size, size + 1 of several classes
    for k, c in enumerate([0, 19, 20, 43, 44, 52, 63]):
        s.malloc(k * 3, size("edge", c))
        s.malloc(k * 3 + 1, size("edge", 64 + c))
        s.malloc(k * 3 + 2, size("edge", 128 + c))
    for k in range(28):
        s.malloc(40 + k, size("special", k))
    seeds["edges"] = s

    s = MallocSeed()  # calloc in every class, zero checks
    s.calloc(0, size("tiny", 100)).calloc(1, size("mid", 5000), 7)
    s.calloc(2, size("l25", 1 << 20), 16).calloc(3, size("large", 3 << 20), 2)
    s.free(0).calloc(0, size("tiny", 64)).free(2).calloc(2, size("l25", 900000), 1)
    seeds["calloc"] = s

    s = MallocSeed()  # realloc: grow, shrink, same, any, across classes, to 0, from NULL
    s.malloc(0, size("tiny", 40)).realloc(0, 0, u16(3000))
    s.realloc(0, 3, size("l25", 500000)).realloc(0, 3, size("large", 6 << 20))
    s.realloc(0, 1, u32(5 << 20)).realloc(0, 2).realloc(0, 3, size("tiny", 8))
    s.alloc("realloc_null", 5, size("mid", 20000)).realloc(5, 0, u16(60000), array=True, k=3)
    s.realloc(5, 1, u32(12345), array=True, k=5)
    s.realloc_zero(5).realloc_zero(0)
    seeds["realloc"] = s

    s = MallocSeed()  # aligned allocations in every class
    for k, (a, sz) in enumerate([(4, size("tiny", 100)), (6, size("tiny", 1000)),
                                 (12, size("mid", 3000)), (15, size("mid", 60000)),
                                 (16, size("l25", 100000)), (18, size("l25", 1 << 20)),
                                 (19, size("large", 4 << 20)), (13, size("tiny", 0))]):
        s.alloc("posix_memalign", k, bytes([a]), sz)
        s.alloc("memalign", 10 + k, bytes([a]), sz, bytes([k & 1]))
    s.alloc("valloc", 30, size("tiny", 10)).alloc("valloc", 31, size("l25", 70000))
    s.alloc("pvalloc", 32, size("tiny", 0)).alloc("pvalloc", 33, size("mid", 5000))
    seeds["aligned"] = s

    s = MallocSeed()  # bursts that fill slabs and runs, then frees that empty them
    s.burst(0, 63, size("tiny", 48)).burst(64, 40, size("mid", 9000))
    s.burst(110, 8, size("l25", 200000)).free_run(0, 63, 0).free_run(64, 40, 1)
    s.burst(0, 63, size("tiny", 48)).free_run(0, 127, 2)
    seeds["burst"] = s

    s = MallocSeed()  # refused sizes and alignments (every kind), with a live block
    s.malloc(0, size("tiny", 200)).malloc(1, size("large", 3 << 20))
    for kind in range(8):
        s.op("refused", 0, bytes([kind, kind * 2, kind % 6]), u16(kind * 7 + 1), bytes([kind % 2]))
    seeds["refused"] = s

    s = MallocSeed()  # misuse: interior pointers, immediate double frees, foreign pointers
    s.malloc(0, size("tiny", 64)).malloc(1, size("mid", 4000)).malloc(2, size("large", 3 << 20))
    s.malloc(3, size("l25", 100000))
    s.op("misuse", 0, bytes([0, 0]), u32(5), bytes([1]))              # free(interior)
    s.op("misuse", 0, bytes([1, 2]), u32(4097), bytes([0]), u16(10))  # realloc(interior)
    s.free(1).op("misuse", 0, bytes([2, 0, 1]))                       # double free, mid
    s.free(2).op("misuse", 0, bytes([2, 0, 0]), u16(99))             # realloc(freed), large
    s.free(3).op("misuse", 0, bytes([2, 0, 1]))                       # double free, l25
    s.free(0).op("misuse", 0, bytes([2, 0, 1]))                       # double free, tiny
    s.op("misuse", 0, bytes([3, 0, 1])).op("misuse", 0, bytes([4, 0, 0]), u16(1))
    s.op("misuse", 0, bytes([5, 0]))                                  # a libc block
    seeds["misuse"] = s

    s = MallocSeed()  # threads: remote frees, blocks of a thread that exited
    s.burst(0, 15, size("tiny", 32)).malloc(20, size("mid", 2000)).malloc(21, size("large", 3 << 20))
    s.remote_free([0, 2, 4, 20, 21])
    s.thread_alloc(40, [size("tiny", 24), size("mid", 8000), size("l25", 150000),
                        size("large", 2200000)])
    s.remote_free([40, 41]).free(42).free(43)
    seeds["threads"] = s

    return seeds


# ---- fuzz_arena ----------------------------------------------------------

A_OPS = ["alloc", "alloc2", "alloc_at", "free", "free_part", "free_part2", "bad",
         "purge_range", "verify", "maint", "thread_free"]
ALIGNS = [0, 0, 0, 4096, 64 << 10, 64 << 10, 2 << 20, 2 << 20, 1, 2048, 8192, 128 << 10,
          1 << 20, 4 << 20]
FLAGS = [0, 0, 0, 1, 2, 3]  # PA_F_NOTLS = 1, PA_F_CACHED_ONLY = 2


def pages(kind, n=0):
    """The pick_pages bytes, and the page count."""
    if kind == "one":
        return bytes([0]), 1
    if kind == "64k":
        return bytes([3]), 16
    if kind == "128k":
        return bytes([4]), 32
    if kind == "2m":
        return bytes([5]), 512
    if kind == "small":
        return bytes([6, n - 1]), n                      # 1 .. 64
    if kind == "mid":
        return bytes([10]) + u16(n - 1), n               # 1 .. 512
    if kind == "big":
        return bytes([13]) + u16(n - 1), n               # 1 .. 2048
    raise ValueError(kind)


class ArenaSeed:
    def __init__(self):
        self.b = bytearray()
        self.spans = {}  # slot -> list of live flags per page

    def occupied_from(self, i):
        for k in range(NSLOTS):
            j = (i + k) % NSLOTS
            if j in self.spans:
                return j
        return None

    def live_run(self, slot, k):
        live = self.spans[slot]
        n = len(live)
        for t in range(n):
            j = (k + t) % n
            if live[j]:
                a, b = j, j + 1
                while a > 0 and live[a - 1]:
                    a -= 1
                while b < n and live[b]:
                    b += 1
                return a, b
        return None

    def raw(self, *parts):
        for p in parts:
            self.b += p
        return self

    def alloc(self, slot, pg, align=0, flags=0):
        enc, n = pg
        self.spans[slot] = [True] * n
        return self.raw(bytes([A_OPS.index("alloc"), slot]), enc,
                        bytes([ALIGNS.index(align), FLAGS.index(flags)]))

    def free(self, slot):
        self.spans.pop(self.occupied_from(slot))
        return self.raw(bytes([A_OPS.index("free"), slot]))

    def free_part(self, slot, run_at, k, mode, at=0, notls=False):
        """mode 0 front, 1 back, 2 middle, 3 whole run (k as the harness reads it)."""
        j = self.occupied_from(slot)
        lo, hi = self.live_run(j, run_at)
        length = hi - lo
        kk = 1 + k % length
        if mode == 0:
            first = lo
        elif mode == 1:
            first = hi - kk
        elif mode == 2:
            assert length >= 3
            kk = 1 + kk % (length - 2)
            first = lo + 1 + at % (length - 1 - kk)
        else:
            first, kk = lo, length
        for p in range(first, first + kk):
            self.spans[j][p] = False
        if not any(self.spans[j]):
            del self.spans[j]
        tail = u16(at) if mode == 2 else b""
        return self.raw(bytes([A_OPS.index("free_part"), slot]), u16(run_at), u16(k),
                        bytes([mode]), tail, bytes([1 if notls else 0]))


    def thread_free(self, picks):
        """Single pages freed in a thread: (slot byte, run_at, k) each, as read."""
        self.raw(bytes([A_OPS.index("thread_free"), 0, len(picks) - 1]))
        for slot, run_at, k in picks:
            j = self.occupied_from(slot)
            lo, hi = self.live_run(j, run_at)
            self.spans[j][lo + k % (hi - lo)] = False
            if not any(self.spans[j]):
                del self.spans[j]
            self.raw(bytes([slot]), u16(run_at), u16(k))
        return self


def arena_seeds():
    seeds = {}

    s = ArenaSeed()  # every tier: hot page, 64K, 128K, 2M (aligned), odd sizes
    s.alloc(0, pages("one")).alloc(1, pages("64k"), 64 << 10).alloc(2, pages("128k"))
    s.alloc(3, pages("2m"), 2 << 20).alloc(4, pages("small", 5)).alloc(5, pages("mid", 300))
    s.alloc(6, pages("big", 2048)).alloc(7, pages("big", 1500), 1 << 20)
    s.free(0).free(1).free(2).free(3).free(4)
    s.alloc(0, pages("one")).alloc(1, pages("64k"), 64 << 10).alloc(3, pages("2m"), 2 << 20)
    s.raw(bytes([A_OPS.index("verify"), 6]))
    seeds["tiers"] = s

    s = ArenaSeed()  # alignments and flags
    for k, (al, fl) in enumerate([(0, 0), (4096, 1), (64 << 10, 2), (2 << 20, 3), (1, 0),
                                  (2048, 1), (8192, 0), (128 << 10, 0), (1 << 20, 1),
                                  (4 << 20, 0)]):
        s.alloc(k, pages("small", 1 + k * 5), al, fl if fl != 2 and fl != 3 else 0)
    s.free(0).free(1)
    s.raw(bytes([A_OPS.index("alloc"), 20]), bytes([6, 0, ALIGNS.index(0), FLAGS.index(2)]))
    s.raw(bytes([A_OPS.index("alloc"), 21]), bytes([3, ALIGNS.index(0), FLAGS.index(3)]))
    seeds["align_flags"] = s

    s = ArenaSeed()  # sub-range frees: front, back, middle, whole run
    s.alloc(0, pages("mid", 64)).alloc(1, pages("2m"), 2 << 20).alloc(2, pages("big", 1024))
    s.free_part(0, 0, 3, 0).free_part(0, 10, 4, 1, notls=True).free_part(0, 20, 10, 2, at=7)
    s.free_part(1, 0, 0, 0).free_part(1, 0, 30, 2, at=100).free_part(1, 0, 0, 3)
    s.free_part(2, 500, 200, 2, at=300).free_part(2, 0, 50, 1)
    s.raw(bytes([A_OPS.index("verify"), 0]))
    seeds["subrange"] = s

    s = ArenaSeed()  # pa_alloc_at on freed ranges and on live pages; purge_range
    s.alloc(0, pages("mid", 40)).alloc(1, pages("mid", 20)).free_part(0, 0, 9, 2, at=3)
    s.raw(bytes([A_OPS.index("alloc_at"), 10, 1, 0, 0]), u16(3))       # freed[0]
    s.spans[10] = [True] * 4  # if the range is cached it comes back as slot 10
    s.raw(bytes([A_OPS.index("alloc_at"), 11, 0, 1]), u16(0), bytes([2]))  # live: refused
    s.raw(bytes([A_OPS.index("purge_range"), 1]), u16(0), u16(5), u16(2))
    s.raw(bytes([A_OPS.index("purge_range"), 0]), u16(0), u16(1), u16(0))
    seeds["alloc_at_purge"] = s

    s = ArenaSeed()  # bad input: every kind of refused pa_free and pa_alloc
    s.alloc(0, pages("small", 8)).alloc(1, pages("small", 3)).free_part(1, 0, 0, 3)
    bad = A_OPS.index("bad")
    s.raw(bytes([bad, 0, 0, 0]), u16(0), u16(100), bytes([0]))           # unaligned
    s.raw(bytes([bad, 0, 1, 0]), u16(0), bytes([0]), u16(5000), bytes([1]))  # not a multiple
    s.raw(bytes([bad, 0, 1, 0]), u16(0), bytes([1, 0]))                   # size 0
    s.raw(bytes([bad, 0, 2, 0]), u16(0), bytes([1, 0]))                   # NULL
    s.raw(bytes([bad, 0, 2, 0]), u16(0), bytes([0, 1]))                   # a global
    s.raw(bytes([bad, 0, 3, 0]), u16(0), bytes([0, 0]))                   # double free
    s.raw(bytes([bad, 0, 5, 0]), u16(0), bytes([1, 2, 0]))                # past the end
    s.raw(bytes([bad, 0, 5, 0]), u16(0), bytes([0, 1, 1]))                # before the start
    s.raw(bytes([bad, 0, 6, 0]), u16(0), bytes([1, 0]))                   # 1 TiB
    s.raw(bytes([bad, 0, 6, 0]), u16(0), bytes([0, 1]))                   # beyond 2^47
    for k in range(8):
        s.raw(bytes([bad, 0, 7, 0]), u16(0), bytes([1, k, 0]))            # refused sizes
    for k in range(4):
        s.raw(bytes([bad, 0, 8, 0]), u16(0), bytes([0, k, k, 1]))         # refused alignments
    seeds["bad_input"] = s

    s = ArenaSeed()  # maintenance and thread frees
    s.alloc(0, pages("small", 30)).alloc(1, pages("one")).alloc(2, pages("64k"))
    s.thread_free([(0, 0, 4), (0, 5, 4), (1, 0, 0), (2, 0, 15)])  # pages 4, 9; 1's; 15
    s.free(0).free(2)
    for k in range(8):
        s.raw(bytes([A_OPS.index("maint"), 0, k]))
    s.alloc(3, pages("2m"), 2 << 20).free(3).raw(bytes([A_OPS.index("maint"), 0, 0]))
    seeds["maint_threads"] = s

    return seeds


def write(dirname, seeds):
    path = os.path.join(HERE, dirname)
    os.makedirs(path, exist_ok=True)
    for f in os.listdir(path):
        os.remove(os.path.join(path, f))
    for name, seed in sorted(seeds.items()):
        with open(os.path.join(path, name), "wb") as f:
            f.write(bytes(seed.b))
    print(f"{dirname}: {len(seeds)} seeds")


if __name__ == "__main__":
    write("corpus_malloc", malloc_seeds())
    write("corpus_arena", arena_seeds())
