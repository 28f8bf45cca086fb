/* malloc_probe.c - owns the program the install test runs to see whether
 * HAKMEM serves malloc: under the installed hakmem-run (LD_PRELOAD), and
 * linked with libhakmem.so through find_package(hakmem).  It is built with
 * no HAKMEM header or library of its own; it finds hak_mallctl at run time
 * (dlsym), allocates one 64-byte block and prints two lines:
 *
 *     malloc: <the file that provides malloc (dladdr)>
 *     tiny.nmalloc: grew
 *
 * The second line only when hak_mallctl exists and the Tiny pool counted the
 * block; otherwise one line on stderr and exit status 1. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef int (*mallctl_fn)(const char *, void *, size_t *, void *, size_t);

static int tiny_nmalloc(mallctl_fn fn, uint64_t *v) {
    size_t len = sizeof *v;
    return fn("stats.tiny.nmalloc", v, &len, NULL, 0);
}

int main(void) {
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    printf("malloc: %s\n", m && dladdr(m, &info) && info.dli_fname ? info.dli_fname : "?");
    mallctl_fn fn;
    *(void **)&fn = dlsym(RTLD_DEFAULT, "hak_mallctl");
    if (!fn) {
        fprintf(stderr, "malloc_probe: hak_mallctl not found: HAKMEM is not loaded\n");
        return 1;
    }
    uint64_t before = 0, after = 0;
    if (tiny_nmalloc(fn, &before) != 0) {
        fprintf(stderr, "malloc_probe: stats.tiny.nmalloc refused\n");
        return 1;
    }
    void *volatile p = malloc(64);
    tiny_nmalloc(fn, &after);
    free(p);
    if (!p || after <= before) {
        fprintf(stderr, "malloc_probe: malloc(64) was not counted by the Tiny pool\n");
        return 1;
    }
    printf("tiny.nmalloc: grew\n");
    return 0;
}
