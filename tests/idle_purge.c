/* idle_purge.c - tests that freed memory goes back to the OS while the
 * process is quiet (the background threads, arena/pa_background.c): about
 * 250 MiB of mixed blocks (16 B-2 KiB, 16-256 KiB, one in 500 of 2-3 MiB),
 * every page touched, all freed; then a quiet process: a bounded number of
 * 100 ms polls of the resident set, with one 64 B malloc/free pair every
 * fifth poll (two a second).  Run with a 1 s decay (the PageArena's and, in
 * the jemalloc configurations, jemalloc's dirty_decay_ms).
 *
 *   drop  within 60 polls (the decay time + 5 s) the resident set falls to
 *         within 32 MiB of where it was before the blocks, and the
 *         PageArena's shared tiers hold at most 1 MiB
 *   held  with HAKMEM_BACKGROUND=0: no thread runs, no pass was made, and
 *         after the same polls the PageArena still caches freed memory (what
 *         `drop` checks is the thread's doing, not the workload's)
 *   fork  after a drop the thread runs; a fork child has none until its
 *         first allocation slow path, which starts it again; the child's own
 *         freed memory then drops too, and the child exits cleanly
 *
 * Sanitizer builds keep shadow pages of touched memory: there only the
 * PageArena's cached bytes are checked, not the resident set.
 * Built three ways: in process, for LD_PRELOAD=libhakmem.so, and for
 * libhakmem_je.so (HK_JE_PRELOAD; drop and held).  libhakmem_je.so starts
 * its background thread with the program's first thread (hooks/hk_je.c),
 * so there the blocks are allocated and freed on a second thread, as in a
 * server; tests/je_pagearena.c `bgthread` checks a single-threaded program
 * runs without it.
 * Usage: idle_purge drop|held|fork */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>

#include "pool_test.h"

#define MiB ((size_t)1 << 20)
#define NBLOCKS 13000
#define POLLS 60
#define POLL_MS 100
#define PAIR_EVERY 5       /* polls between two idle malloc/free pairs */
#define SLACK (32 * MiB)   /* what may stay resident after the drop */
#define CACHED_MAX MiB     /* what the shared tiers may still hold */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RSS_CHECKED 0
#else
#define RSS_CHECKED 1
#endif

static void *blocks[NBLOCKS];

/* Resident bytes, without an allocation (no stdio). */
static size_t rss(void) {
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    CHECKM(fd >= 0, "open /proc/self/statm");
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    CHECKM(n > 0, "read /proc/self/statm");
    buf[n] = '\0';
    const char *s = strchr(buf, ' ');
    CHECKM(s != NULL, "statm format");
    size_t pages = 0;
    for (s++; *s >= '0' && *s <= '9'; s++)
        pages = pages * 10 + (size_t)(*s - '0');
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}

static uint64_t shared_cached(void) {
    return t_stat("stats.page_arena.bytes_cached") - t_stat("stats.page_arena.hot.tls_bytes");
}

static void pause_ms(long ms) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Allocate, touch and free about 250 MiB; returns the bytes asked for. */
static size_t churn(uint64_t seed) {
    size_t total = 0;
    for (unsigned i = 0; i < NBLOCKS; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t r = seed >> 33;
        size_t n = i % 500 == 499 ? 2 * MiB + r % MiB
                   : r % 10 == 0  ? 16384 + r % (256 * 1024 - 16384)
                                  : 16 + r % (2048 - 16);
        unsigned char *p = T_malloc(n);
        CHECKM(p != NULL, "malloc(%zu)", n);
        for (size_t o = 0; o < n; o += 4096)
            p[o] = (unsigned char)i;
        p[n - 1] = 1;
        blocks[i] = p;
        total += n;
    }
    for (unsigned i = 0; i < NBLOCKS; i++)
        T_free(blocks[i]);
    return total;
}

#if HK_JE_PRELOAD
struct churn_job {
    uint64_t seed;
    size_t total;
};

static void *churn_thread(void *arg) {
    struct churn_job *j = arg;
    j->total = churn(j->seed);
    return NULL;
}

/* churn on a thread of its own, joined before the quiet phase. */
static size_t churn_run(uint64_t seed) {
    struct churn_job j = {seed, 0};
    pthread_t t;
    CHECKM(pthread_create(&t, NULL, churn_thread, &j) == 0, "pthread_create");
    CHECKM(pthread_join(t, NULL) == 0, "pthread_join");
    return j.total;
}
#else
static size_t churn_run(uint64_t seed) { return churn(seed); }
#endif

/* One poll of the quiet process: every PAIR_EVERY-th, a malloc/free pair. */
static void idle_poll(unsigned i) {
    if (i % PAIR_EVERY == 0) {
        unsigned char *volatile p = T_malloc(64);
        CHECKM(p != NULL, "malloc(64)");
        p[0] = 1;
        T_free(p);
    }
    pause_ms(POLL_MS);
}

/* Polls until the resident set is within SLACK of base and the shared tiers
 * hold at most CACHED_MAX; returns the polls taken, or POLLS + 1. */
static unsigned wait_drop(size_t base, size_t *last) {
    for (unsigned i = 0; i <= POLLS; i++) {
        *last = rss();
        if ((!RSS_CHECKED || *last <= base + SLACK) && shared_cached() <= CACHED_MAX)
            return i;
        if (i < POLLS)
            idle_poll(i);
    }
    return POLLS + 1;
}

static size_t warm_base(void) {
    T_free(T_malloc(64)); /* the allocator and this thread's heap are set up */
    return rss();
}

static void case_drop(void) {
    size_t base = warm_base();
    size_t total = churn_run(1);
    size_t after = rss(), last = 0;
    unsigned polls = wait_drop(base, &last);
    printf("drop: %zu MiB allocated; rss base %zu, after free %zu, after %u polls %zu MiB; "
           "cached %llu; passes %llu\n",
           total / MiB, base / MiB, after / MiB, polls, last / MiB,
           (unsigned long long)shared_cached(),
           (unsigned long long)t_stat("stats.page_arena.background.passes"));
    CHECKM(polls <= POLLS, "still resident after %u polls of %d ms: rss %zu MiB (base %zu), "
           "%llu bytes cached", POLLS, POLL_MS, last / MiB, base / MiB,
           (unsigned long long)shared_cached());
    CHECKM(t_stat("stats.page_arena.background.running") == 1, "no background thread");
}

static void case_held(void) {
    size_t base = warm_base();
    churn_run(1);
    for (unsigned i = 0; i < POLLS; i++)
        idle_poll(i);
    size_t last = rss();
    printf("held: rss base %zu, after %u polls %zu MiB, cached %llu\n", base / MiB, POLLS,
           last / MiB, (unsigned long long)shared_cached());
    CHECKM(t_stat("stats.page_arena.background.running") == 0, "a background thread runs");
    CHECKM(t_stat("stats.page_arena.background.passes") == 0, "background passes ran");
    CHECKM(shared_cached() > CACHED_MAX,
           "the shared tiers emptied without the background thread");
}

static void case_fork(void) {
    size_t base = warm_base();
    churn(1);
    size_t last = 0;
    CHECKM(wait_drop(base, &last) <= POLLS, "parent: no drop (rss %zu MiB)", last / MiB);
    CHECKM(t_stat("stats.page_arena.background.running") == 1, "parent: no thread");
    pid_t pid = fork();
    CHECKM(pid >= 0, "fork");
    if (pid == 0) {
        CHECKM(t_stat("stats.page_arena.background.running") == 0,
               "child: the parent's thread is reported running");
        size_t cbase = rss();
        churn(2); /* its slow paths start the child's own thread */
#if defined(__SANITIZE_THREAD__)
        /* No thread in a fork child under ThreadSanitizer (pa_background.c). */
        CHECKM(t_stat("stats.page_arena.background.running") == 0, "child: a thread under TSan");
        exit(0);
#endif
        CHECKM(t_stat("stats.page_arena.background.running") == 1, "child: not restarted");
        CHECKM(wait_drop(cbase, &last) <= POLLS, "child: no drop (rss %zu MiB, base %zu)",
               last / MiB, cbase / MiB);
        exit(0); /* atexit handlers and destructors run: the thread stops */
    }
    int st = 0;
    CHECKM(waitpid(pid, &st, 0) == pid, "waitpid");
    CHECKM(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed (status %d)", st);
    printf("fork: parent and child both dropped\n");
}

int main(int argc, char **argv) {
#if defined(HK_JE_PRELOAD)
    /* libhakmem_je.so: jemalloc's malloc and HAKMEM's statistics. */
    void *f = dlsym(RTLD_DEFAULT, "malloc");
    Dl_info info;
    CHECKM(f && dladdr(f, &info) && info.dli_fname && strstr(info.dli_fname, "libhakmem_je"),
           "malloc does not resolve into libhakmem_je.so (run with LD_PRELOAD)");
    CHECKM(dlsym(RTLD_DEFAULT, "hak_mallctl") != NULL, "hak_mallctl not found");
#elif !defined(HK_INPROCESS)
    t_require_hakmem();
#endif
    if (argc == 2 && strcmp(argv[1], "drop") == 0)
        case_drop();
    else if (argc == 2 && strcmp(argv[1], "held") == 0)
        case_held();
    else if (argc == 2 && strcmp(argv[1], "fork") == 0)
        case_fork();
    else {
        fprintf(stderr, "usage: idle_purge drop|held|fork\n");
        return 2;
    }
    return 0;
}
