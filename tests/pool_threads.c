/* pool_threads.c - owns the multi-threaded tests of the pools and the malloc
 * front (docs/DESIGN.md: The pools, Fork and thread exit): `prodcons` (4
 * threads, cross-thread frees of 16 B - 256 KiB blocks, contents checked by
 * the freeing thread), `churn` (10,000 short-lived threads, blocks freed
 * after their thread exited: abandoned-heap collection; memory and RSS stay
 * bounded) and `fork` (20 forks, each while two threads are in the middle of
 * a counted batch of allocations and frees; the child allocates, frees and
 * checks blocks from before the fork).
 *
 * Built twice like api_conformance.c (pool_test.h): -DHK_INPROCESS calls the
 * hk_* front in process; otherwise the libc names under LD_PRELOAD.
 * Usage: pool_threads prodcons|churn|fork */
#include "pool_test.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/wait.h>

/* ---- prodcons -------------------------------------------------------------------- */

#define PC_THREADS 4
#define PC_BLOCKS 40000 /* per thread; a multiple of 4 */
#define PC_QCAP 256

static t_queue pc_q[PC_THREADS];

static void *pc_thread(void *arg) {
    unsigned me = (unsigned)(uintptr_t)arg;
    t_queue *next = &pc_q[(me + 1) % PC_THREADS], *mine = &pc_q[me];
    uint64_t rs = 0x9e3779b97f4a7c15ull * (me + 1);
    size_t produced = 0, received = 0;
    const size_t expected = PC_BLOCKS - PC_BLOCKS / 4; /* every 4th stays local */
    void *pending = NULL;
    while (produced < PC_BLOCKS || pending || received < expected) {
        bool progress = false;
        if (!pending && produced < PC_BLOCKS) {
            size_t n = pick_size(&rs, 256 * KiB);
            void *p;
            unsigned how = (unsigned)(t_rand(&rs) % 8);
            if (how == 0) {
                p = T_calloc(1, n);
                CHECKM(p != NULL && t_is_zero(p, n), "calloc(1, %zu)", n);
                block_fill(p, n);
            } else if (how == 1) {
                p = NULL;
                CHECK(T_posix_memalign(&p, 64, n) == 0 && t_aligned(p, 64));
                block_fill(p, n);
            } else {
                p = block_new(n);
            }
            if (produced % 4 == 3)
                block_free(p, "prodcons local free");
            else
                pending = p;
            produced++;
            progress = true;
        }
        if (pending && t_queue_push(next, pending)) {
            pending = NULL;
            progress = true;
        }
        void *got[16];
        size_t k = t_queue_pop(mine, got, 16);
        for (size_t i = 0; i < k; i++) {
            void *p = got[i];
            size_t n = block_check(p, "prodcons consumer");
            if (t_rand(&rs) % 8 == 0) {
                /* realloc a foreign block: copy, then a cross-thread free */
                size_t m = pick_size(&rs, 256 * KiB);
                uint64_t seed = block_seed(p, n); /* the old address's pattern */
                void *q = T_realloc(p, m);
                CHECKM(q != NULL, "realloc(%zu -> %zu)", n, m);
                size_t keep = (n < m ? n : m) - 8, dense = keep < 2040 ? keep : 2040;
                CHECKM(t_verify((char *)q + 8, dense, seed) == dense,
                       "realloc(%zu -> %zu) lost the contents", n, m);
                block_fill(q, m);
                p = q;
            }
            block_free(p, "prodcons consumer");
        }
        received += k;
        if (k)
            progress = true;
        if (!progress)
            sched_yield();
    }
    return NULL;
}

static void run_prodcons(void) {
    for (unsigned i = 0; i < PC_THREADS; i++)
        t_queue_init(&pc_q[i], PC_QCAP);
    const uint64_t alloc_start = t_pool_allocated();
    for (int round = 0; round < 3; round++) {
        uint64_t m0 = pools_nmalloc(), f0 = pools_nfree();
        pthread_t th[PC_THREADS];
        for (unsigned i = 0; i < PC_THREADS; i++)
            CHECK(pthread_create(&th[i], NULL, pc_thread, (void *)(uintptr_t)i) == 0);
        for (unsigned i = 0; i < PC_THREADS; i++)
            CHECK(pthread_join(th[i], NULL) == 0);
        for (unsigned i = 0; i < PC_THREADS; i++)
            CHECK(pc_q[i].head == pc_q[i].tail);
        uint64_t m1 = pools_nmalloc(), f1 = pools_nfree(), alloc = t_pool_allocated();
#ifdef HK_INPROCESS
        /* Only this test allocates through HAKMEM in process: every block
         * allocated was freed, and the statistics say so. */
        CHECKM(m1 - m0 == f1 - f0, "round %d: %llu mallocs but %llu frees", round,
               (unsigned long long)(m1 - m0), (unsigned long long)(f1 - f0));
#else
        (void)f0, (void)f1; /* the process's own mallocs run through the pools too */
#endif
        CHECK(m1 - m0 >= (uint64_t)PC_THREADS * PC_BLOCKS);
        /* Every block was freed and the threads are gone: their slabs came
         * back, including those emptied by frees after the owner exited
         * (abandoned heaps are collected). */
        CHECKM(alloc <= alloc_start + 8 * MiB,
               "round %d: pools hold %llu bytes after all blocks were freed, %llu before",
               round, (unsigned long long)alloc, (unsigned long long)alloc_start);
        printf("prodcons round %d: %llu mallocs, pools hold %llu KiB, rss %zu KiB\n",
               round, (unsigned long long)(m1 - m0), (unsigned long long)(alloc >> 10),
               t_rss() >> 10);
    }
}

/* ---- churn ------------------------------------------------------------------------ */

#define CH_THREADS 10000
#define CH_BATCH 4
#define CH_PER 8   /* blocks per thread */
#define CH_HAND 4  /* of which handed to the main thread */
#define CH_RING 64 /* main keeps this many across batches */

typedef struct {
    unsigned id;
    void *hand[CH_HAND];
} ch_slot;

static void *ch_thread(void *arg) {
    ch_slot *s = arg;
    uint64_t rs = 0x2545f4914f6cdd1dull ^ ((uint64_t)s->id * 0x9e3779b97f4a7c15ull);
    void *b[CH_PER];
    for (int i = 0; i < CH_PER; i++) {
        size_t n = pick_size(&rs, 300 * KiB);
        if (s->id % 97 == 0 && i == 0)
            n = 3 * MiB; /* now and then one for the jemalloc arena */
        b[i] = block_new(n);
    }
    for (int i = 0; i < CH_PER - CH_HAND; i++)
        block_free(b[i], "churn own free");
    for (int i = 0; i < CH_HAND; i++)
        s->hand[i] = b[CH_PER - CH_HAND + i];
    return NULL;
}

static void run_churn(void) {
    static void *ring[CH_RING];
    size_t ring_pos = 0;
    const uint64_t alloc_start = t_pool_allocated();
    uint64_t peak_alloc = 0;
    for (unsigned base = 0; base < CH_THREADS; base += CH_BATCH) {
        pthread_t th[CH_BATCH];
        ch_slot slot[CH_BATCH];
        for (unsigned i = 0; i < CH_BATCH; i++) {
            slot[i].id = base + i;
            CHECKM(pthread_create(&th[i], NULL, ch_thread, &slot[i]) == 0, "thread %u",
                   base + i);
        }
        for (unsigned i = 0; i < CH_BATCH; i++)
            CHECK(pthread_join(th[i], NULL) == 0);
        /* The threads are gone: free half their blocks now, keep half for
         * later (by then their heap may have been adopted by a new thread). */
        for (unsigned i = 0; i < CH_BATCH; i++)
            for (int k = 0; k < CH_HAND; k++) {
                void *p = slot[i].hand[k];
                if (k % 2 == 0) {
                    block_free(p, "churn main free");
                    continue;
                }
                if (ring[ring_pos])
                    block_free(ring[ring_pos], "churn late free");
                ring[ring_pos] = p;
                ring_pos = (ring_pos + 1) % CH_RING;
            }
        if ((base / CH_BATCH) % 250 == 0) {
            uint64_t a = t_pool_allocated();
            if (a > peak_alloc)
                peak_alloc = a;
            CHECKM(a < 64 * MiB, "after %u threads the pools hold %llu bytes", base,
                   (unsigned long long)a);
        }
    }
    for (int i = 0; i < CH_RING; i++)
        if (ring[i])
            block_free(ring[i], "churn final free");
    uint64_t alloc = t_pool_allocated();
    size_t rss = t_rss();
    printf("churn: %d threads, pools hold %llu KiB (peak sampled %llu KiB), rss %zu KiB\n",
           CH_THREADS, (unsigned long long)(alloc >> 10), (unsigned long long)(peak_alloc >> 10),
           rss >> 10);
    CHECKM(alloc < 64 * MiB, "pools hold %llu bytes after %d threads",
           (unsigned long long)alloc, CH_THREADS);
    /* Everything was freed: the abandoned heaps gave their slabs back. */
    CHECKM(alloc <= alloc_start + 8 * MiB,
           "pools hold %llu bytes after every block was freed, %llu at the start",
           (unsigned long long)alloc, (unsigned long long)alloc_start);
    CHECKM(rss < 200 * MiB, "rss %zu bytes after %d threads", rss, CH_THREADS);
}

/* ---- fork ------------------------------------------------------------------------- */

#define FK_FORKS 20
#define FK_SHARED 64
#define FK_OPS 200u      /* per worker per fork */
#define FK_LIVE 50u      /* operations into the batch at the fork */
#define FK_CHILD_STEPS 600

static t_batch fk_batch = T_BATCH_INIT;
/* Blocks the workers publish; the child takes them over. */
static _Atomic(void *) fk_shared[FK_SHARED];

static void *fk_worker(void *arg) {
    uint64_t rs = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    void *slots[64] = {0};
    for (unsigned done = 0; t_batch_wait(&fk_batch, done); done++)
        for (unsigned op = 0; op < FK_OPS; op++) {
            if (op == FK_LIVE)
                t_batch_live(&fk_batch);
            uint64_t r = t_rand(&rs);
            unsigned i = (unsigned)(r % 64);
            if (slots[i]) {
                block_free(slots[i], "fork worker");
                slots[i] = NULL;
            } else {
                size_t n = (r >> 32) % 256 == 0 ? 3 * MiB : pick_size(&rs, 512 * KiB);
                slots[i] = block_new(n);
            }
            if (r % 16 == 0) { /* publish one */
                void *p = block_new(pick_size(&rs, 200 * KiB));
                void *old = atomic_exchange(&fk_shared[(r >> 8) % FK_SHARED], p);
                if (old)
                    block_free(old, "fork worker (shared)");
            }
        }
    for (int i = 0; i < 64; i++)
        if (slots[i])
            block_free(slots[i], "fork worker exit");
    return NULL;
}

static void fk_child(void **pre, int npre) {
    alarm(60); /* a deadlock in the allocator after fork ends here */
    for (int i = 0; i < npre; i++)
        block_free(pre[i], "fork child (main's pre-fork block)");
    int taken = 0;
    for (int i = 0; i < FK_SHARED; i++) {
        void *p = atomic_exchange(&fk_shared[i], NULL);
        if (p) {
            block_free(p, "fork child (worker's pre-fork block)");
            taken++;
        }
    }
    uint64_t rs = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;
    void *slots[128] = {0};
    for (int step = 0; step < FK_CHILD_STEPS; step++) {
        uint64_t r = t_rand(&rs);
        unsigned i = (unsigned)(r % 128);
        if (slots[i]) {
            size_t n = block_check(slots[i], "fork child");
            if (r % 5 == 0) {
                size_t m = pick_size(&rs, 1 * MiB);
                uint64_t seed = block_seed(slots[i], n);
                void *q = T_realloc(slots[i], m);
                CHECK(q != NULL);
                size_t keep = (n < m ? n : m) - 8, dense = keep < 2040 ? keep : 2040;
                CHECK(t_verify((char *)q + 8, dense, seed) == dense);
                block_fill(q, m);
                slots[i] = q;
            } else {
                T_free(slots[i]);
                slots[i] = NULL;
            }
        } else if (r % 7 == 0) {
            size_t n = pick_size(&rs, 256 * KiB);
            void *p = T_calloc(n, 1);
            CHECK(p != NULL && t_is_zero(p, n));
            block_fill(p, n);
            slots[i] = p;
        } else {
            slots[i] = block_new(r % 200 == 0 ? 3 * MiB : pick_size(&rs, 512 * KiB));
        }
    }
    for (int i = 0; i < 128; i++)
        if (slots[i])
            block_free(slots[i], "fork child exit");
    (void)taken;
    _exit(0);
}

static void run_fork(void) {
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&th[i], NULL, fk_worker, (void *)(uintptr_t)(i + 1)) == 0);
    static const size_t pre_sizes[] = {16, 100, 1000, 1024, 1025, 5000, 65536, 65537,
                                       200000, MiB, L25_MAX, L25_MAX + 1, 3 * MiB};
    enum { NPRE = sizeof pre_sizes / sizeof pre_sizes[0] };
    for (int f = 0; f < FK_FORKS; f++) {
        void *pre[NPRE];
        for (int i = 0; i < NPRE; i++)
            pre[i] = block_new(pre_sizes[i]);
        fflush(stdout);
        t_batch_open(&fk_batch, (unsigned)f + 1, 2); /* fork with both workers inside it */
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0)
            fk_child(pre, NPRE);
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECKM(WIFEXITED(status) && WEXITSTATUS(status) == 0,
               "fork %d: child %s %d%s", f, WIFEXITED(status) ? "exited with" : "killed by signal",
               WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
               WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? " (deadlock guard)" : "");
        for (int i = 0; i < NPRE; i++) /* the parent's copies are untouched */
            block_free(pre[i], "fork parent");
    }
    t_batch_stop(&fk_batch);
    for (int i = 0; i < 2; i++)
        CHECK(pthread_join(th[i], NULL) == 0);
    for (int i = 0; i < FK_SHARED; i++) {
        void *p = atomic_exchange(&fk_shared[i], NULL);
        if (p)
            block_free(p, "fork parent (shared)");
    }
    printf("fork: %d children exited cleanly\n", FK_FORKS);
}

int main(int argc, char **argv) {
    t_require_hakmem();
    CHECKM(argc == 2, "usage: %s prodcons|churn|fork", argv[0]);
    if (strcmp(argv[1], "prodcons") == 0)
        run_prodcons();
    else if (strcmp(argv[1], "churn") == 0)
        run_churn();
    else if (strcmp(argv[1], "fork") == 0)
        run_fork();
    else
        CHECKM(0, "unknown test %s", argv[1]);
    printf("pool_threads %s (%s): all checks passed\n", argv[1], T_VARIANT);
    return 0;
}
