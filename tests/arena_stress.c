/* arena_stress.c - multi-threaded PageArena stress and fork: threads take
 * spans of every tier, write a pattern on every page, pass some to other
 * threads, verify and give them back, so an overlap between two live spans is
 * caught; `fork` forks repeatedly while those threads run.
 * Usage: arena_stress <stress|fork> */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena/page_arena.h"
#include "check.h"

#define THREADS 4
#define SLOTS 64

static const size_t sizes[] = {4096, 4096, 12288, 65536, 65536, 131072, 307200, 2u << 20};
static _Atomic(uintptr_t) exchange[SLOTS]; /* spans handed between threads */
static atomic_bool stop;
static int iterations = 20000;

static uint64_t rng(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Every page of the span carries the span's address and length. */
static void fill(char *p, size_t len) {
    for (size_t off = 0; off < len; off += PA_PAGE) {
        uintptr_t *w = (uintptr_t *)(p + off);
        w[0] = (uintptr_t)p;
        w[1] = len;
        w[2] = off;
    }
}

static void verify(char *p, size_t len) {
    for (size_t off = 0; off < len; off += PA_PAGE) {
        uintptr_t *w = (uintptr_t *)(p + off);
        CHECK(w[0] == (uintptr_t)p && w[1] == len && w[2] == off);
    }
}

static void give_back(char *p, size_t len) {
    verify(p, len);
    memset(p, 0xee, 3 * sizeof(uintptr_t));
    CHECK(pa_free(p, len, 0) == 0);
}

static void *worker(void *arg) {
    uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    char *mine[16] = {0};
    size_t mine_len[16] = {0};
    for (int i = 0; (iterations < 0 ? !atomic_load(&stop) : i < iterations); i++) {
        uint64_t r = rng(&seed);
        unsigned k = r % 16;
        if (mine[k]) {
            if (r & 0x100) { /* hand it to another thread */
                unsigned x = (r >> 16) % SLOTS;
                uintptr_t old = atomic_exchange(&exchange[x], (uintptr_t)mine[k]);
                if (old) /* its length is in its first page */
                    give_back((char *)old, ((uintptr_t *)old)[1]);
            } else {
                give_back(mine[k], mine_len[k]);
            }
            mine[k] = NULL;
            continue;
        }
        size_t len = sizes[(r >> 8) % (sizeof sizes / sizeof sizes[0])];
        bool z;
        char *p = pa_alloc(len, len == (2u << 20) ? len : 0, NULL, &z, 0);
        CHECK(p != NULL);
        if (z)
            CHECK(((uintptr_t *)p)[0] == 0 && p[len - 1] == 0);
        fill(p, len);
        mine[k] = p;
        mine_len[k] = len;
    }
    for (unsigned k = 0; k < 16; k++)
        if (mine[k])
            give_back(mine[k], mine_len[k]);
    return NULL;
}

static void drain(void) {
    for (unsigned x = 0; x < SLOTS; x++) {
        uintptr_t p = atomic_exchange(&exchange[x], 0);
        if (p)
            give_back((char *)p, ((uintptr_t *)p)[1]);
    }
}

static void case_stress(void) {
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, worker, (void *)(i + 1)) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    drain();
    pa_stats s;
    pa_stats_get(&s);
    CHECK(s.bytes_out == 0);
    CHECK(s.hot_hits + s.warm_hits + s.odd_hits > 1000); /* caches were used */
}

static void case_fork(void) {
    iterations = -1;
    pthread_t t[2];
    for (uintptr_t i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, worker, (void *)(i + 7)) == 0);
    for (int n = 0; n < 50; n++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            alarm(10); /* a deadlock kills the child and fails the test */
            for (int i = 0; i < 200; i++) {
                bool z;
                size_t len = sizes[i % (sizeof sizes / sizeof sizes[0])];
                char *p = pa_alloc(len, 0, NULL, &z, 0);
                if (!p)
                    _exit(3);
                fill(p, len);
                verify(p, len);
                if (pa_free(p, len, 0) != 0)
                    _exit(4);
            }
            _exit(0);
        }
        int status;
        CHECK(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fprintf(stderr, "child %d: %s %d\n", n, WIFEXITED(status) ? "exit" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        usleep(1000);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    drain();
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    if (strcmp(argv[1], "stress") == 0)
        case_stress();
    else if (strcmp(argv[1], "fork") == 0)
        case_fork();
    else
        return 2;
    printf("arena_stress %s: ok\n", argv[1]);
    return 0;
}
