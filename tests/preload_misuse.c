/* preload_misuse.c - owns the helper program of the misuse and
 * malformed-environment tests (run by preload_driver under LD_PRELOAD).
 * Each misuse case prints the pointer it is about to misuse (printf "%p")
 * on stdout, misuses it, then checks the allocator still works and prints
 * "continued" (reached only with HAKMEM_ON_ERROR=warn).  `work` allocates
 * normally and prints the options HAKMEM ended up using.
 *
 * Usage: preload_misuse CASE */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define CHECK(c)                                                                  \
    do {                                                                          \
        if (!(c)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
            exit(1);                                                              \
        }                                                                         \
    } while (0)

/* Keep the compiler from seeing where a pointer came from. */
static void *launder(void *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}

static void announce(const void *p) {
    printf("%p\n", p);
    fflush(stdout);
}

static char global_buf[256];

static uint64_t opt(const char *name) {
    int (*ctl)(const char *, void *, size_t *, void *, size_t);
    void *sym = dlsym(RTLD_DEFAULT, "hak_mallctl");
    CHECK(sym != NULL);
    memcpy(&ctl, &sym, sizeof ctl);
    uint64_t v = 0;
    size_t len = sizeof v;
    CHECK(ctl(name, &v, &len, NULL, 0) == 0);
    return v;
}

/* The allocator is still usable: a few blocks in every pool and above. */
static void still_works(void) {
    static const size_t sizes[] = {1, 64, 1000, 5000, 100000, 3 << 20};
    void *p[6];
    for (int i = 0; i < 6; i++) {
        p[i] = malloc(sizes[i]);
        CHECK(p[i] != NULL);
        memset(p[i], i + 1, sizes[i]);
    }
    for (int i = 0; i < 6; i++) {
        CHECK(((unsigned char *)p[i])[sizes[i] - 1] == i + 1);
        free(p[i]);
    }
}

static void double_free(size_t n) {
    char *p = malloc(n);
    CHECK(p != NULL);
    memset(p, 1, n);
    announce(p);
    free(p);
    free(launder(p));
}

/* A write into a freed block's first word (use after free), then two
 * mallocs of its class: the first hands the block back, the second follows
 * the forged link -- and must refuse it, naming the written block. */
static void uaf_write(size_t n) {
    char *keep = malloc(n), *p = malloc(n); /* keep: the slab stays */
    CHECK(keep && p);
    free(p);
    CHECK(malloc(n) == p); /* p's slab is the current one of its class */
    free(p);
    memcpy(p, &(uint64_t){0x4141414141414141ull}, 8);
    CHECK(malloc(n) == p);
    announce(p);
    char *q = malloc(n); /* warn mode: a good block from elsewhere */
    CHECK(q != NULL && q != p);
    memset(q, 'q', n);
    free(q);
    free(p);
    free(keep);
}

/* A block carved but never handed out is free: freeing it is refused. */
static void free_carved(void) {
    char *p = malloc(700);
    CHECK(p != NULL);
    char *next = p + malloc_usable_size(p); /* the next block of the slab */
    announce(next);
    free(launder(next));
    free(p);
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    CHECK(dlsym(RTLD_DEFAULT, "hak_mallctl") != NULL); /* HAKMEM is preloaded */
    const char *c = argv[1];
    /* Live blocks around the misuse, checked afterwards. */
    char *a = malloc(100), *b = malloc(100);
    CHECK(a && b);
    memset(a, 'a', 100);
    memset(b, 'b', 100);

    if (strcmp(c, "free_stack") == 0) {
        char buf[64];
        memset(buf, 0, sizeof buf);
        announce(buf);
        free(launder(buf));
    } else if (strcmp(c, "free_global") == 0) {
        announce(global_buf);
        free(launder(global_buf));
    } else if (strcmp(c, "free_mmap") == 0) {
        void *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(m != MAP_FAILED);
        announce(m);
        free(launder(m));
    } else if (strcmp(c, "free_interior") == 0) {
        char *p = malloc(100);
        CHECK(p != NULL);
        announce(p + 16);
        free(launder(p + 16));
    } else if (strcmp(c, "free_interior_mid") == 0) {
        char *p = malloc(5000);
        CHECK(p != NULL);
        announce(p + 2048);
        free(launder(p + 2048));
    } else if (strcmp(c, "free_interior_l25") == 0) {
        char *p = malloc(100000);
        CHECK(p != NULL);
        announce(p + 4096);
        free(launder(p + 4096));
    } else if (strcmp(c, "free_interior_large") == 0) {
        char *p = malloc(3 << 20);
        CHECK(p != NULL);
        announce(p + 16);
        free(launder(p + 16));
    } else if (strcmp(c, "double_free") == 0) {
        double_free(100);
    } else if (strcmp(c, "double_free_mid") == 0) {
        double_free(5000);
    } else if (strcmp(c, "double_free_l25") == 0) {
        double_free(100000);
    } else if (strcmp(c, "double_free_large") == 0) {
        double_free(3 << 20);
    } else if (strcmp(c, "uaf_write") == 0) {
        uaf_write(100);
    } else if (strcmp(c, "uaf_write_mid") == 0) {
        uaf_write(5000);
    } else if (strcmp(c, "uaf_write_l25") == 0) {
        uaf_write(100000);
    } else if (strcmp(c, "guard_overflow") == 0) { /* run with HAKMEM_GUARD=1 */
        char *p = malloc(100000);
        CHECK(p != NULL);
        memset(p, 1, malloc_usable_size(p));
        *(volatile char *)launder(p + malloc_usable_size(p)) = 1; /* SIGSEGV */
    } else if (strcmp(c, "free_carved") == 0) {
        free_carved();
    } else if (strcmp(c, "realloc_stack") == 0) {
        char buf[64];
        memset(buf, 0, sizeof buf);
        announce(buf);
        errno = 0;
        void *r = realloc(launder(buf), 200);
        CHECK(r == NULL); /* warn mode: the call fails */
    } else if (strcmp(c, "realloc_interior") == 0) {
        char *p = malloc(100);
        CHECK(p != NULL);
        announce(p + 16);
        void *r = realloc(launder(p + 16), 200);
        CHECK(r == NULL);
        CHECK(malloc_usable_size(p) >= 100); /* the real block is untouched */
        free(p);
    } else if (strcmp(c, "realloc_interior_l25") == 0) {
        char *p = malloc(100000);
        CHECK(p != NULL);
        announce(p + 4096);
        void *r = realloc(launder(p + 4096), 200000);
        CHECK(r == NULL);
        CHECK(malloc_usable_size(p) >= 100000);
        free(p);
    } else if (strcmp(c, "realloc_freed") == 0) {
        char *p = malloc(100);
        CHECK(p != NULL);
        announce(p);
        free(p);
        void *r = realloc(launder(p), 200);
        CHECK(r == NULL);
    } else if (strcmp(c, "work") == 0) {
        still_works();
        printf("ok hot_size=%llu mode=%llu\n", (unsigned long long)opt("opt.page_arena.hot_size"),
               (unsigned long long)opt("opt.mode"));
        free(a);
        free(b);
        return 0;
    } else {
        fprintf(stderr, "unknown case %s\n", c);
        return 2;
    }
    /* Only with HAKMEM_ON_ERROR=warn: nothing else was disturbed. */
    for (int i = 0; i < 100; i++)
        CHECK(a[i] == 'a' && b[i] == 'b');
    still_works();
    free(a);
    free(b);
    printf("continued\n");
    return 0;
}
