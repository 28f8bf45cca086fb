/* bench_workloads.c - owns the bench_workloads program's table and the
 * workloads of HAKMEM's own shapes: tiny_hot, random_mixed, mid_large_mt,
 * vm_mixed, larson_like, prod_cons, large_blocks.  The table also lists the
 * workloads of bench_shapes.c and bench_larson.c (the shapes of well-known
 * public allocator benchmarks); the C++ ones are a program of their own,
 * bench_cxx, so that this one stays free of the C++ runtime.
 *
 * Linked with no allocator (only -pthread -ldl), so that LD_PRELOAD alone
 * decides which malloc runs.  The command line and the RESULT line are
 * bench_main.c's.  Exports nothing.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_workloads.h"

/* ---- tiny_hot: batches of 100, freed LIFO ------------------------------- */

static void run_tiny_hot(double scale) {
    static const size_t sizes[] = {64, 16, 32, 64, 128, 256, 512, 1024};
    enum { BATCH = 100 };
    uint64_t cycles = scaled(100000, scale);
    uint8_t *blk[BATCH];
    double secs = 0;
    uint64_t ops = 0;

    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        double t0 = now_sec();
        for (uint64_t c = 0; c < cycles; c++) {
            for (unsigned i = 0; i < BATCH; i++) {
                blk[i] = xmalloc(n);
                mark(blk[i], n, tag_of(c, i));
            }
            for (unsigned i = BATCH; i-- > 0;) {
                check_mark(blk[i], n, tag_of(c, i));
                free(blk[i]);
            }
        }
        double t = now_sec() - t0;
        secs += t;
        ops += 2 * BATCH * cycles;
        fprintf(stderr, "tiny_hot size=%zu: %.1f Mops/s\n", n,
                (double)(2 * BATCH * cycles) / t / 1e6);
    }
    print_result(ops, secs, "ok");
}

/* ---- random_mixed: 8192 slots, 16-1039 B -------------------------------- */

enum { RM_SLOTS = 8192 };
static uint8_t *rm_ptr[RM_SLOTS];
static uint16_t rm_len[RM_SLOTS];

static inline void rm_step(uint64_t *rng) {
    uint64_t r = rng_next(rng);
    unsigned slot = (unsigned)(r >> 40) % RM_SLOTS;
    if (rm_ptr[slot]) {
        check_mark(rm_ptr[slot], rm_len[slot], tag_of(slot, rm_len[slot]));
        free(rm_ptr[slot]);
        rm_ptr[slot] = NULL;
    } else {
        size_t n = 16 + (size_t)(r % 1024);
        rm_ptr[slot] = xmalloc(n);
        rm_len[slot] = (uint16_t)n;
        mark(rm_ptr[slot], n, tag_of(slot, n));
    }
}

static void run_random_mixed(double scale) {
    uint64_t steps = scaled(10000000, scale);
    uint64_t rng = rng_seed(1);
    for (uint64_t i = 0; i < steps / 10; i++) /* untimed warm-up */
        rm_step(&rng);
    double t0 = now_sec();
    for (uint64_t i = 0; i < steps; i++)
        rm_step(&rng);
    double secs = now_sec() - t0;
    for (unsigned s = 0; s < RM_SLOTS; s++) {
        if (rm_ptr[s]) {
            check_mark(rm_ptr[s], rm_len[s], tag_of(s, rm_len[s]));
            free(rm_ptr[s]);
        }
    }
    print_result(steps, secs, "ok");
}

/* ---- mid_large_mt: 4 threads, 8-34 KiB ---------------------------------- */

enum { MLT_THREADS = 4, MLT_SLOTS = 2048 };

static uint8_t *mlt_ptr[MLT_THREADS][MLT_SLOTS];
static uint32_t mlt_len[MLT_THREADS][MLT_SLOTS];

struct mlt_arg {
    pthread_t tid;
    unsigned id;
    uint64_t steps;
    pthread_barrier_t *start;
    double t0, t1;
};

static void *mlt_thread(void *vp) {
    struct mlt_arg *a = vp;
    uint8_t **ptr = mlt_ptr[a->id];
    uint32_t *len = mlt_len[a->id];
    uint64_t rng = rng_seed(100 + a->id);

    pthread_barrier_wait(a->start);
    a->t0 = now_sec();
    for (uint64_t i = 0; i < a->steps; i++) {
        uint64_t r = rng_next(&rng);
        unsigned slot = (unsigned)(r >> 40) % MLT_SLOTS;
        if (ptr[slot]) {
            check_mark(ptr[slot], len[slot], tag_of(slot, len[slot]));
            free(ptr[slot]);
            ptr[slot] = NULL;
        } else {
            size_t n = ((size_t)1 << (13 + r % 3)) + (size_t)(r & 0x7FF);
            ptr[slot] = xmalloc(n);
            len[slot] = (uint32_t)n;
            mark(ptr[slot], n, tag_of(slot, n));
        }
    }
    a->t1 = now_sec();
    for (unsigned s = 0; s < MLT_SLOTS; s++) { /* untimed cleanup */
        if (ptr[s]) {
            check_mark(ptr[s], len[s], tag_of(s, len[s]));
            free(ptr[s]);
            ptr[s] = NULL;
        }
    }
    return NULL;
}

static void run_mid_large_mt(double scale) {
    struct mlt_arg arg[MLT_THREADS];
    pthread_barrier_t start;
    uint64_t steps = scaled(40000, scale);

    pthread_barrier_init(&start, NULL, MLT_THREADS);
    for (unsigned i = 0; i < MLT_THREADS; i++) {
        arg[i] = (struct mlt_arg){.id = i, .steps = steps, .start = &start};
        if (pthread_create(&arg[i].tid, NULL, mlt_thread, &arg[i]) != 0)
            fail("pthread_create failed");
    }
    double t0 = 0, t1 = 0;
    for (unsigned i = 0; i < MLT_THREADS; i++) {
        pthread_join(arg[i].tid, NULL);
        if (i == 0 || arg[i].t0 < t0)
            t0 = arg[i].t0;
        if (arg[i].t1 > t1)
            t1 = arg[i].t1;
    }
    pthread_barrier_destroy(&start);
    print_result(MLT_THREADS * steps, t1 - t0, "ok");
}

/* ---- vm_mixed and large_blocks: big blocks, every page touched ---------- */

/* Each step replaces one random slot with a new block in [2^lo, 2^hi). */
static void run_big_blocks(uint64_t steps, unsigned nslots, unsigned lo, unsigned hi,
                           uint64_t seed) {
    uint8_t *ptr[16] = {0};
    size_t len[16] = {0};
    uint64_t rng = rng_seed(seed);

    double t0 = now_sec();
    for (uint64_t i = 0; i < steps; i++) {
        uint64_t r = rng_next(&rng);
        unsigned slot = (unsigned)(r >> 56) % nslots;
        if (ptr[slot]) {
            check_pages(ptr[slot], len[slot], tag_of(slot, len[slot]));
            free(ptr[slot]);
        }
        size_t n = log_size(r, lo, hi);
        ptr[slot] = xmalloc(n);
        len[slot] = n;
        touch_pages(ptr[slot], n, tag_of(slot, n));
    }
    double secs = now_sec() - t0;
    for (unsigned s = 0; s < nslots; s++) {
        if (ptr[s]) {
            check_pages(ptr[s], len[s], tag_of(s, len[s]));
            free(ptr[s]);
        }
    }
    print_result(steps, secs, "ok");
}

static void run_vm_mixed(double scale) {
    run_big_blocks(scaled(200000, scale), 16, 16, 22, 3); /* 64 KiB - 4 MiB */
}

static void run_large_blocks(double scale) {
    run_big_blocks(scaled(2000, scale), 4, 23, 25, 4); /* 8 - 32 MiB */
}

/* ---- larson_like: thread churn and cross-thread frees ------------------- */

/* Each round starts LL_THREADS new threads.  Thread i of round k first
 * replaces every block that thread i of round k-1 (now exited) allocated,
 * then keeps replacing random blocks of its array. */
enum { LL_THREADS = 4, LL_BLOCKS = 1000, LL_STEPS = 4000 };

struct ll_block {
    uint8_t *p;
    uint32_t n;
    uint64_t stamp;
};
static struct ll_block ll_arr[LL_THREADS][LL_BLOCKS];

struct ll_arg {
    unsigned id;
    uint64_t round;
};

static void ll_replace(struct ll_block *b, uint64_t *rng, uint64_t stamp) {
    if (b->p) {
        check_stamp(b->p, b->n, b->stamp);
        free(b->p);
    }
    uint32_t n = 16 + (uint32_t)(rng_next(rng) % 2033); /* 16 - 2048 B */
    b->p = xmalloc(n);
    b->n = n;
    b->stamp = stamp;
    put_stamp(b->p, n, stamp);
}

static void *ll_thread(void *vp) {
    const struct ll_arg *a = vp;
    struct ll_block *arr = ll_arr[a->id];
    uint64_t rng = rng_seed(a->round * LL_THREADS + a->id + 1000);
    for (unsigned j = 0; j < LL_STEPS; j++) {
        unsigned slot = j < LL_BLOCKS ? j : (unsigned)(rng_next(&rng) >> 40) % LL_BLOCKS;
        ll_replace(&arr[slot], &rng, (a->round << 32) ^ ((uint64_t)a->id << 24) ^ j);
    }
    return NULL;
}

static void run_larson_like(double scale) {
    uint64_t rounds = scaled(500, scale);
    uint64_t rng = rng_seed(5);
    for (unsigned t = 0; t < LL_THREADS; t++) /* round "-1" is the main thread */
        for (unsigned j = 0; j < LL_BLOCKS; j++)
            ll_replace(&ll_arr[t][j], &rng, ((uint64_t)t << 24) ^ j ^ 0xABCDEF);

    double t0 = now_sec();
    for (uint64_t k = 0; k < rounds; k++) {
        pthread_t tid[LL_THREADS];
        struct ll_arg arg[LL_THREADS];
        for (unsigned i = 0; i < LL_THREADS; i++) {
            arg[i] = (struct ll_arg){.id = i, .round = k + 1};
            if (pthread_create(&tid[i], NULL, ll_thread, &arg[i]) != 0)
                fail("pthread_create failed in round %" PRIu64, k);
        }
        for (unsigned i = 0; i < LL_THREADS; i++)
            pthread_join(tid[i], NULL);
    }
    double secs = now_sec() - t0;

    for (unsigned t = 0; t < LL_THREADS; t++) {
        for (unsigned j = 0; j < LL_BLOCKS; j++) {
            check_stamp(ll_arr[t][j].p, ll_arr[t][j].n, ll_arr[t][j].stamp);
            free(ll_arr[t][j].p);
        }
    }
    print_result(rounds * LL_THREADS * LL_STEPS * 2, secs, "ok");
}

/* ---- prod_cons: one producer, one consumer, lock-free ring -------------- */

enum { PC_CAP = 1024 }; /* a power of two */

static struct {
    _Alignas(64) _Atomic uint64_t tail; /* written by the producer */
    _Alignas(64) _Atomic uint64_t head; /* written by the consumer */
    _Alignas(64) uint8_t *slot[PC_CAP];
} pc_ring;

static uint64_t pc_count;

static inline uint64_t pc_stamp(uint64_t i, size_t n) { return (i << 16) | n; }

static void pc_wait(unsigned *spins) {
    if (++*spins > 64) {
        sched_yield();
        *spins = 0;
    }
}

static void *pc_producer(void *unused) {
    (void)unused;
    uint64_t rng = rng_seed(6);
    uint64_t head = 0; /* the consumer's head, as last seen */
    for (uint64_t i = 0; i < pc_count; i++) {
        size_t n = 16 + (size_t)(rng_next(&rng) % 4081); /* 16 - 4096 B */
        uint8_t *p = xmalloc(n);
        put_stamp(p, n, pc_stamp(i, n));
        unsigned spins = 0;
        while (i - head >= PC_CAP) {
            head = atomic_load_explicit(&pc_ring.head, memory_order_acquire);
            if (i - head >= PC_CAP)
                pc_wait(&spins);
        }
        pc_ring.slot[i % PC_CAP] = p;
        atomic_store_explicit(&pc_ring.tail, i + 1, memory_order_release);
    }
    return NULL;
}

static void *pc_consumer(void *unused) {
    (void)unused;
    uint64_t rng = rng_seed(6); /* replays the producer's sizes */
    uint64_t tail = 0;
    for (uint64_t i = 0; i < pc_count; i++) {
        unsigned spins = 0;
        while (i >= tail) {
            tail = atomic_load_explicit(&pc_ring.tail, memory_order_acquire);
            if (i >= tail)
                pc_wait(&spins);
        }
        uint8_t *p = pc_ring.slot[i % PC_CAP];
        size_t n = 16 + (size_t)(rng_next(&rng) % 4081);
        check_stamp(p, n, pc_stamp(i, n));
        free(p);
        atomic_store_explicit(&pc_ring.head, i + 1, memory_order_release);
    }
    return NULL;
}

static void run_prod_cons(double scale) {
    pthread_t prod, cons;
    pc_count = scaled(2000000, scale);
    double t0 = now_sec();
    if (pthread_create(&cons, NULL, pc_consumer, NULL) != 0 ||
        pthread_create(&prod, NULL, pc_producer, NULL) != 0)
        fail("pthread_create failed");
    pthread_join(prod, NULL);
    pthread_join(cons, NULL);
    print_result(pc_count, now_sec() - t0, "ok");
}

/* ---- main --------------------------------------------------------------- */

static const struct bench_workload workloads[] = {
    {"tiny_hot", run_tiny_hot, 0},          {"random_mixed", run_random_mixed, 0},
    {"mid_large_mt", run_mid_large_mt, 0},  {"vm_mixed", run_vm_mixed, 0},
    {"larson_like", run_larson_like, 0},    {"prod_cons", run_prod_cons, 0},
    {"large_blocks", run_large_blocks, 0},  {"larson", run_larson, 0},
    {"xmalloc", run_xmalloc, 0},            {"sh_batch", run_sh_batch, 0},
    {"sh_batch_xt", run_sh_batch_xt, 0},    {"malloc_simple", run_malloc_simple, 0},
    {"malloc_large", run_malloc_large, 0},  {"idle_rss", run_idle_rss, 1},
};

int main(int argc, char **argv) {
    return bench_main(argc, argv, workloads, sizeof workloads / sizeof workloads[0]);
}
