/* arena_prog.c - owns the program the install test builds against an
 * installed HAKMEM (tests/install/run.sh), once through pkg-config and once
 * through find_package(hakmem) (tests/install/consumer/): it makes a jemalloc
 * arena on the PageArena with hak_arena_create, allocates 4 MiB from it with
 * mallocx, checks that jemalloc says the block belongs to that arena and
 * that the PageArena hooks served an extent (stats.hooks.alloc_calls and
 * stats.hooks.bytes_active through hak_mallctl), frees it and prints
 * "arena_prog: ok".  Any failure prints one line on stderr and exits 1. */
#include <hakmem.h>
#include <jemalloc/jemalloc.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int fail(const char *what, int err) {
    fprintf(stderr, "arena_prog: %s failed (%d)\n", what, err);
    return 1;
}

static uint64_t read_stat(const char *name, int *err) {
    uint64_t v = 0;
    size_t len = sizeof v;
    *err = hak_mallctl(name, &v, &len, NULL, 0);
    return v;
}

int main(void) {
    unsigned arena = 0;
    int err = hak_arena_create(&arena);
    if (err)
        return fail("hak_arena_create", err);
    const size_t n = (size_t)4 << 20;
    unsigned char *p = mallocx(n, MALLOCX_ARENA(arena) | MALLOCX_TCACHE_NONE);
    if (!p)
        return fail("mallocx", 0);
    memset(p, 0xA5, n);
    unsigned owner = ~0u;
    size_t sz = sizeof owner;
    err = mallctl("arenas.lookup", &owner, &sz, &p, sizeof p);
    if (err || owner != arena)
        return fail("arenas.lookup (block in the created arena)", err ? err : -1);
    uint64_t calls = read_stat("stats.hooks.alloc_calls", &err);
    if (err || calls == 0)
        return fail("stats.hooks.alloc_calls > 0", err ? err : -1);
    uint64_t active = read_stat("stats.hooks.bytes_active", &err);
    if (err || active < n)
        return fail("stats.hooks.bytes_active >= 4 MiB", err ? err : -1);
    if (p[0] != 0xA5 || p[n - 1] != 0xA5)
        return fail("block contents", -1);
    dallocx(p, MALLOCX_TCACHE_NONE);
    printf("arena_prog: ok\n");
    return 0;
}
