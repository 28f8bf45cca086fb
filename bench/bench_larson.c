/* bench_larson.c - owns the larson runner: a server simulation in which
 * threads come and go and each frees the blocks the thread before it
 * allocated.  Used by the larson workload (malloc/free, sizes 8-1000 B) and,
 * from bench_cxx.cc, by larson_sized (operator new / sized delete).
 *
 * LS_CHAINS chains run at once.  Each chain owns an array of LS_BLOCKS
 * blocks, first filled by the main thread (untimed).  A chain is a sequence
 * of generations, one thread each: a generation replaces LS_STEPS random
 * blocks of the array (check, free, allocate a new size, seal), then starts
 * the next generation's thread, hands it the array and exits; the new
 * thread reaps its predecessor.  So nearly every free is of a block another
 * thread allocated, most often one that has already exited, and threads
 * start and end all the time without the chains keeping step.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_workloads.h"

enum { LS_CHAINS = 4, LS_BLOCKS = 2500, LS_STEPS = 5000, LS_GENERATIONS = 200 };

struct ls_block {
    void *p;
    size_t n;
    uint64_t stamp;
};

struct ls_chain {
    const struct larson_ops *ops;
    unsigned id;
    uint64_t gens;      /* generations in this run */
    uint64_t gen;       /* the generation running now */
    pthread_t prev;     /* the generation before, reaped by its successor */
    int has_prev;
    pthread_t last;     /* the final generation, reaped by the main thread */
    uint64_t rng;
    struct ls_block blk[LS_BLOCKS];
};

static struct ls_chain ls_chain[LS_CHAINS];
static pthread_mutex_t ls_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ls_cv = PTHREAD_COND_INITIALIZER;
static unsigned ls_done;
static double ls_t_end;

static inline uint64_t ls_stamp(uint64_t gen, unsigned chain, unsigned step) {
    return (gen << 24) ^ ((uint64_t)step << 4) ^ chain ^ 0x5EED000000000000ULL;
}

static void ls_new_block(struct ls_chain *c, struct ls_block *b, uint64_t stamp) {
    size_t n = c->ops->size(rng_next(&c->rng));
    void *p = c->ops->alloc(n);
    if (!p)
        fail("allocation of %zu bytes returned NULL", n);
    seal(p, n, stamp);
    b->p = p;
    b->n = n;
    b->stamp = stamp;
}

static void *ls_thread(void *vp) {
    struct ls_chain *c = vp;
    if (c->has_prev)
        pthread_join(c->prev, NULL);
    uint64_t gen = c->gen;
    for (unsigned j = 0; j < LS_STEPS; j++) {
        struct ls_block *b = &c->blk[(rng_next(&c->rng) >> 40) % LS_BLOCKS];
        check_seal(b->p, b->n, b->stamp);
        c->ops->release(b->p, b->n);
        ls_new_block(c, b, ls_stamp(gen + 1, c->id, j));
    }
    if (++c->gen < c->gens) {
        pthread_t next;
        c->prev = pthread_self();
        c->has_prev = 1;
        if (pthread_create(&next, NULL, ls_thread, c) != 0)
            fail("pthread_create failed in chain %u, generation %" PRIu64, c->id, c->gen);
        return NULL; /* c belongs to the next generation now */
    }
    pthread_mutex_lock(&ls_mu);
    c->last = pthread_self();
    ls_t_end = now_sec();
    ls_done++;
    pthread_cond_signal(&ls_cv);
    pthread_mutex_unlock(&ls_mu);
    return NULL;
}

void larson_run(const struct larson_ops *ops, double scale) {
    uint64_t gens = scaled(LS_GENERATIONS, scale);
    for (unsigned i = 0; i < LS_CHAINS; i++) {
        struct ls_chain *c = &ls_chain[i];
        c->ops = ops;
        c->id = i;
        c->gens = gens;
        c->gen = 0;
        c->has_prev = 0;
        c->rng = rng_seed(700 + i);
        for (unsigned j = 0; j < LS_BLOCKS; j++)
            ls_new_block(c, &c->blk[j], ls_stamp(0, i, j));
    }

    double t0 = now_sec();
    for (unsigned i = 0; i < LS_CHAINS; i++) {
        pthread_t t; /* reaped by the second generation */
        if (pthread_create(&t, NULL, ls_thread, &ls_chain[i]) != 0)
            fail("pthread_create failed for chain %u", i);
    }
    pthread_mutex_lock(&ls_mu);
    while (ls_done < LS_CHAINS)
        pthread_cond_wait(&ls_cv, &ls_mu);
    double secs = ls_t_end - t0;
    pthread_mutex_unlock(&ls_mu);

    for (unsigned i = 0; i < LS_CHAINS; i++) {
        struct ls_chain *c = &ls_chain[i];
        pthread_join(c->last, NULL);
        for (unsigned j = 0; j < LS_BLOCKS; j++) {
            check_seal(c->blk[j].p, c->blk[j].n, c->blk[j].stamp);
            ops->release(c->blk[j].p, c->blk[j].n);
        }
    }
    print_result(2 * (uint64_t)LS_CHAINS * gens * LS_STEPS, secs, "ok");
}

/* ---- larson: malloc / free, sizes 8-1000 B, uniform ---------------------- */

static void *ls_malloc(size_t n) { return malloc(n); }
static void ls_free(void *p, size_t n) { (void)n; free(p); }
static size_t ls_size_8_1000(uint64_t r) { return 8 + (size_t)(r % 993); }

void run_larson(double scale) {
    static const struct larson_ops ops = {ls_malloc, ls_free, ls_size_8_1000};
    larson_run(&ops, scale);
}
