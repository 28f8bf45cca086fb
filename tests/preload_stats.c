/* preload_stats.c - owns the helper program of the HAKMEM_STATS tests
 * (preload_stats.sh), run with LD_PRELOAD=libhakmem.so.  It allocates a
 * known amount: 1000 blocks of 100 bytes (the Tiny pool) and one of 3 MiB
 * (the jemalloc route), frees them, and then, by its argument:
 *
 *   work    exits with stderr open;
 *   fclose  writes "preload_stats: closing stderr" on stderr, fclose(stderr);
 *   close   the same with close(2);
 *
 * then checks that fd 2 is closed (write fails with EBADF), prints
 * "stderr closed" on stdout and exits 0.  The dump at exit must still reach
 * the file stderr was. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { NSMALL = 1000, SMALL = 100, LARGE = 3 << 20 };

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "preload_stats: malloc(%zu) failed\n", n);
        exit(1);
    }
    memset(p, 0xa5, n);
    return p;
}

int main(int argc, char **argv) {
    const char *c = argc == 2 ? argv[1] : "";
    bool by_fclose = strcmp(c, "fclose") == 0, by_close = strcmp(c, "close") == 0;
    if (!by_fclose && !by_close && strcmp(c, "work") != 0) {
        fprintf(stderr, "usage: preload_stats work|fclose|close\n");
        return 2;
    }
    static void *small[NSMALL];
    for (unsigned i = 0; i < NSMALL; i++)
        small[i] = xmalloc(SMALL);
    void *large = xmalloc(LARGE);
    for (unsigned i = 0; i < NSMALL; i++)
        free(small[i]);
    free(large);
    if (!by_fclose && !by_close)
        return 0;
    fputs("preload_stats: closing stderr\n", stderr);
    fflush(stderr);
    if (by_fclose ? fclose(stderr) != 0 : close(2) != 0) {
        printf("closing stderr failed: %s\n", strerror(errno));
        return 1;
    }
    errno = 0;
    if (write(2, "x", 1) != -1 || errno != EBADF) {
        printf("fd 2 is still open after closing it\n");
        return 1;
    }
    printf("stderr closed\n");
    return 0;
}
