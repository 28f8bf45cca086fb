/* bench_shapes.c - owns the C workloads in the shapes of well-known public
 * allocator benchmarks (written for this bench, none copied):
 *
 *   xmalloc        producers allocate small blocks in batches, consumers
 *                  free them: every free is remote and one-directional;
 *   sh_batch       batches of many blocks of varied sizes freed out of
 *                  order (reversed, interleaved, middle-out), some blocks
 *                  kept across batches; 2 threads, each on its own blocks;
 *   sh_batch_xt    the same, but each thread hands half of every batch to
 *                  the other thread to free;
 *   malloc_simple  one thread: malloc/free pairs of fixed sizes 16-256 B in
 *                  a tight loop, then batches of 25-1600 freed in order;
 *   malloc_large   5-25 MiB blocks, every page touched, freed soon after, in
 *                  repetitions separated by a pause within one process;
 *   idle_rss       about 1.9 GiB allocated on 2 threads and freed, then a
 *                  quiet process (two small malloc/free pairs a second):
 *                  the resident set it keeps.
 *
 * larson is bench_larson.c's; the C++ shapes are bench_cxx.cc's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench_workloads.h"

#define MIB ((size_t)1 << 20)

static void sleep_sec(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Start/end times of several threads: the run is from the first start to
 * the last end. */
struct span {
    double t0, t1;
};

static double span_secs(const struct span *s, unsigned n) {
    double t0 = s[0].t0, t1 = s[0].t1;
    for (unsigned i = 1; i < n; i++) {
        if (s[i].t0 < t0)
            t0 = s[i].t0;
        if (s[i].t1 > t1)
            t1 = s[i].t1;
    }
    return t1 - t0;
}

/* ---- xmalloc: producers allocate, consumers free -------------------------- */

/* XM_PRODUCERS threads allocate batches of XM_BATCH blocks of 8-511 B
 * (log-uniform, so mostly small) and queue them; XM_CONSUMERS threads take
 * batches off the queue, check and free every block and the batch record.
 * The queue holds at most XM_QCAP batches, so the live set stays bounded.
 * A consumer never allocates. */
enum { XM_PRODUCERS = 2, XM_CONSUMERS = 2, XM_BATCH = 128, XM_QCAP = 64 };

struct xm_batch {
    struct xm_batch *next;
    uint64_t stamp0;
    uint8_t *p[XM_BATCH];
    uint16_t n[XM_BATCH];
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    struct xm_batch *head, *tail;
    unsigned queued;
    uint64_t taken, total;
} xm = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
        NULL, NULL, 0, 0, 0};

struct xm_arg {
    pthread_t tid;
    unsigned id;
    uint64_t batches;
    struct span span;
};

static void *xm_producer(void *vp) {
    struct xm_arg *a = vp;
    uint64_t rng = rng_seed(800 + a->id);
    a->span.t0 = now_sec();
    for (uint64_t b = 0; b < a->batches; b++) {
        struct xm_batch *rec = xmalloc(sizeof *rec);
        rec->next = NULL;
        rec->stamp0 = ((uint64_t)a->id << 56) ^ (b << 8);
        for (unsigned i = 0; i < XM_BATCH; i++) {
            size_t n = log_size(rng_next(&rng), 3, 9);
            rec->p[i] = xmalloc(n);
            rec->n[i] = (uint16_t)n;
            seal(rec->p[i], n, rec->stamp0 + i);
        }
        pthread_mutex_lock(&xm.mu);
        while (xm.queued >= XM_QCAP)
            pthread_cond_wait(&xm.not_full, &xm.mu);
        if (xm.tail)
            xm.tail->next = rec;
        else
            xm.head = rec;
        xm.tail = rec;
        xm.queued++;
        pthread_cond_signal(&xm.not_empty);
        pthread_mutex_unlock(&xm.mu);
    }
    a->span.t1 = now_sec();
    return NULL;
}

static void *xm_consumer(void *vp) {
    struct xm_arg *a = vp;
    a->span.t0 = now_sec();
    for (;;) {
        pthread_mutex_lock(&xm.mu);
        while (!xm.head && xm.taken < xm.total)
            pthread_cond_wait(&xm.not_empty, &xm.mu);
        if (!xm.head) { /* everything taken */
            pthread_mutex_unlock(&xm.mu);
            break;
        }
        struct xm_batch *rec = xm.head;
        xm.head = rec->next;
        if (!xm.head)
            xm.tail = NULL;
        xm.queued--;
        if (++xm.taken == xm.total)
            pthread_cond_broadcast(&xm.not_empty); /* wake the other consumers to leave */
        pthread_cond_signal(&xm.not_full);
        pthread_mutex_unlock(&xm.mu);

        for (unsigned i = 0; i < XM_BATCH; i++) {
            check_seal(rec->p[i], rec->n[i], rec->stamp0 + i);
            free(rec->p[i]);
        }
        free(rec);
    }
    a->span.t1 = now_sec();
    return NULL;
}

void run_xmalloc(double scale) {
    struct xm_arg arg[XM_PRODUCERS + XM_CONSUMERS];
    struct span span[XM_PRODUCERS + XM_CONSUMERS];
    uint64_t batches = scaled(16000, scale); /* per producer */
    xm.total = batches * XM_PRODUCERS;
    for (unsigned i = 0; i < XM_PRODUCERS + XM_CONSUMERS; i++) {
        arg[i] = (struct xm_arg){.id = i, .batches = batches};
        int rc = pthread_create(&arg[i].tid, NULL, i < XM_PRODUCERS ? xm_producer : xm_consumer,
                                &arg[i]);
        if (rc != 0)
            fail("pthread_create failed");
    }
    for (unsigned i = 0; i < XM_PRODUCERS + XM_CONSUMERS; i++) {
        pthread_join(arg[i].tid, NULL);
        span[i] = arg[i].span;
    }
    if (xm.taken != xm.total || xm.head)
        fail("%" PRIu64 " of %" PRIu64 " batches consumed", xm.taken, xm.total);
    /* allocations and frees of the blocks and the batch records */
    print_result(2 * xm.total * (XM_BATCH + 1), span_secs(span, XM_PRODUCERS + XM_CONSUMERS),
                 "ok");
}

/* ---- sh_batch / sh_batch_xt: batches freed out of order ------------------- */

/* Each of SH_THREADS threads runs `iters` iterations.  An iteration
 * allocates SH_BATCH blocks (95% of 8-512 B, 5% of 512 B-4 KiB), then frees
 * the blocks it kept from the previous iteration (every 16th), then frees
 * the rest of this batch in one of three orders, turn about: reversed,
 * interleaved (odd positions upwards, then even positions downwards), or
 * from the middle outwards.  In sh_batch_xt a thread frees only the even
 * positions itself and posts the odd ones to the next thread (a ring), which
 * frees them in the same order before taking its own next batch's post. */
enum { SH_THREADS = 2, SH_BATCH = 2000, SH_HALF = SH_BATCH / 2, SH_KEEP_EVERY = 16 };

struct sh_item {
    uint8_t *p;
    uint32_t n;
    uint64_t stamp;
};

struct sh_thread {
    pthread_t tid;
    unsigned id;
    uint64_t iters;
    int cross;
    struct span span;
    struct sh_thread *next; /* where this thread posts (sh_batch_xt) */
    /* The mailbox this thread takes from, filled by the previous thread;
     * `full` is cleared once every posted block is freed. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int full;
    const struct sh_item *box;
    unsigned box_n;
    /* What this thread posts, double-buffered by iteration parity. */
    struct sh_item out[2][SH_HALF];
    struct sh_item batch[SH_BATCH];
    struct sh_item kept[SH_BATCH / SH_KEEP_EVERY + 1];
};

static struct sh_thread sh_thr[SH_THREADS];

static inline size_t sh_size(uint64_t r) {
    if (r % 20 == 0)
        return 512 + (size_t)((r >> 8) % 3585); /* 512 B - 4 KiB */
    return 8 + (size_t)((r >> 8) % 505);        /* 8 - 512 B */
}

/* The j-th block to free, of n, in the order of iteration k. */
static inline unsigned sh_order(uint64_t k, unsigned n, unsigned j) {
    switch (k % 3) {
    case 0: /* reversed */
        return n - 1 - j;
    case 1: { /* odd positions upwards, then even positions downwards */
        unsigned odd = n / 2;
        if (j < odd)
            return 2 * j + 1;
        unsigned e = j - odd; /* 0 .. evens-1, from the top even down */
        unsigned top_even = (n - 1) & ~1u;
        return top_even - 2 * e;
    }
    default: { /* middle outwards: m, m+1, m-1, m+2, m-2, ..., then n-1 or 0 */
        unsigned m = (n - 1) / 2;
        unsigned d = (j + 1) / 2;
        return (j & 1) ? m + d : m - d;
    }
    }
}

static inline void sh_free_item(const struct sh_item *it) {
    check_seal(it->p, it->n, it->stamp);
    free(it->p);
}

static void sh_free_in_order(const struct sh_item *items, unsigned n, uint64_t k) {
    for (unsigned j = 0; j < n; j++)
        sh_free_item(&items[sh_order(k, n, j)]);
}

static void *sh_run_thread(void *vp) {
    struct sh_thread *t = vp;
    uint64_t rng = rng_seed(900 + t->id);
    unsigned nkept = 0;
    struct sh_item own[SH_BATCH];

    t->span.t0 = now_sec();
    for (uint64_t k = 0; k < t->iters; k++) {
        for (unsigned i = 0; i < SH_BATCH; i++) {
            uint64_t r = rng_next(&rng);
            size_t n = sh_size(r);
            struct sh_item *it = &t->batch[i];
            it->p = xmalloc(n);
            it->n = (uint32_t)n;
            it->stamp = ((uint64_t)t->id << 60) ^ (k << 16) ^ i;
            seal(it->p, n, it->stamp);
        }
        for (unsigned i = 0; i < nkept; i++) /* last iteration's keepers, oldest first */
            sh_free_item(&t->kept[i]);
        nkept = 0;

        /* Split this batch: what is kept, what is posted, what is freed here. */
        unsigned nown = 0, nout = 0;
        struct sh_item *out = t->out[k & 1];
        for (unsigned i = 0; i < SH_BATCH; i++) {
            if (t->cross && (i & 1))
                out[nout++] = t->batch[i];
            else if (i % SH_KEEP_EVERY == SH_KEEP_EVERY - 2)
                t->kept[nkept++] = t->batch[i];
            else
                own[nown++] = t->batch[i];
        }
        if (t->cross) { /* post, once the next thread has freed the last post */
            struct sh_thread *nx = t->next;
            pthread_mutex_lock(&nx->mu);
            while (nx->full)
                pthread_cond_wait(&nx->cv, &nx->mu);
            nx->box = out;
            nx->box_n = nout;
            nx->full = 1;
            pthread_cond_broadcast(&nx->cv);
            pthread_mutex_unlock(&nx->mu);
        }
        sh_free_in_order(own, nown, k);
        if (t->cross) { /* take the previous thread's post, free it, empty the box */
            pthread_mutex_lock(&t->mu);
            while (!t->full)
                pthread_cond_wait(&t->cv, &t->mu);
            const struct sh_item *box = t->box;
            unsigned box_n = t->box_n;
            pthread_mutex_unlock(&t->mu);
            sh_free_in_order(box, box_n, k);
            pthread_mutex_lock(&t->mu);
            t->full = 0;
            pthread_cond_broadcast(&t->cv);
            pthread_mutex_unlock(&t->mu);
        }
    }
    for (unsigned i = 0; i < nkept; i++)
        sh_free_item(&t->kept[i]);
    t->span.t1 = now_sec();
    return NULL;
}

static void sh_run(double scale, int cross) {
    struct span span[SH_THREADS];
    uint64_t iters = scaled(2000, scale);
    for (unsigned i = 0; i < SH_THREADS; i++) {
        struct sh_thread *t = &sh_thr[i];
        t->id = i;
        t->iters = iters;
        t->cross = cross;
        t->next = &sh_thr[(i + 1) % SH_THREADS];
        t->full = 0;
        pthread_mutex_init(&t->mu, NULL);
        pthread_cond_init(&t->cv, NULL);
    }
    for (unsigned i = 0; i < SH_THREADS; i++)
        if (pthread_create(&sh_thr[i].tid, NULL, sh_run_thread, &sh_thr[i]) != 0)
            fail("pthread_create failed");
    for (unsigned i = 0; i < SH_THREADS; i++) {
        pthread_join(sh_thr[i].tid, NULL);
        span[i] = sh_thr[i].span;
        pthread_mutex_destroy(&sh_thr[i].mu);
        pthread_cond_destroy(&sh_thr[i].cv);
    }
    print_result(2 * (uint64_t)SH_THREADS * iters * SH_BATCH, span_secs(span, SH_THREADS), "ok");
}

void run_sh_batch(double scale) { sh_run(scale, 0); }
void run_sh_batch_xt(double scale) { sh_run(scale, 1); }

/* ---- malloc_simple: one thread, fixed small sizes ------------------------- */

static const size_t ms_sizes[] = {16, 32, 64, 128, 256};
static const unsigned ms_batches[] = {25, 100, 400, 1600};
static uint8_t *ms_blk[1600];

void run_malloc_simple(double scale) {
    uint64_t pairs = scaled(4000000, scale);   /* per size */
    uint64_t blocks = scaled(1000000, scale);  /* per size and batch length */
    double secs = 0;
    uint64_t ops = 0;

    for (size_t s = 0; s < sizeof ms_sizes / sizeof ms_sizes[0]; s++) {
        size_t n = ms_sizes[s];
        double t0 = now_sec();
        for (uint64_t i = 0; i < pairs; i++) {
            uint8_t *p = xmalloc(n);
            p[0] = (uint8_t)i;
            p[n - 1] = (uint8_t)(i >> 8);
            if (p[0] != (uint8_t)i)
                fail("block %p of %zu bytes was overwritten", (void *)p, n);
            free(p);
        }
        double t = now_sec() - t0;
        secs += t;
        ops += 2 * pairs;
        fprintf(stderr, "malloc_simple size=%zu pairs: %.1f Mops/s\n", n,
                (double)(2 * pairs) / t / 1e6);

        for (size_t b = 0; b < sizeof ms_batches / sizeof ms_batches[0]; b++) {
            unsigned len = ms_batches[b];
            uint64_t rounds = blocks / len ? blocks / len : 1;
            t0 = now_sec();
            for (uint64_t r = 0; r < rounds; r++) {
                for (unsigned i = 0; i < len; i++) {
                    ms_blk[i] = xmalloc(n);
                    mark(ms_blk[i], n, tag_of(r, i));
                }
                for (unsigned i = 0; i < len; i++) { /* in allocation order */
                    check_mark(ms_blk[i], n, tag_of(r, i));
                    free(ms_blk[i]);
                }
            }
            t = now_sec() - t0;
            secs += t;
            ops += 2 * rounds * len;
            fprintf(stderr, "malloc_simple size=%zu batch=%u: %.1f Mops/s\n", n, len,
                    (double)(2 * rounds * len) / t / 1e6);
        }
    }
    print_result(ops, secs, "ok");
}

/* ---- malloc_large: 5-25 MiB blocks, every page touched -------------------- */

/* ML_REPS repetitions of `steps` steps, ML_PAUSE seconds apart (untimed).
 * A step allocates a block of 5-25 MiB (whole pages, uniform), writes every
 * page, and frees the block allocated ML_LIVE - 1 steps before it, so at
 * most ML_LIVE are live; a repetition ends with everything freed.  The
 * RESULT line adds the fastest and slowest repetition (rep_min_s,
 * rep_max_s). */
enum { ML_REPS = 5, ML_LIVE = 3 };
#define ML_PAUSE 0.2

void run_malloc_large(double scale) {
    uint64_t steps = scaled(20, scale);
    uint64_t rng = rng_seed(11);
    uint8_t *ptr[ML_LIVE] = {0};
    size_t len[ML_LIVE] = {0};
    double secs = 0, rep_min = 0, rep_max = 0;

    for (unsigned rep = 0; rep < ML_REPS; rep++) {
        if (rep)
            sleep_sec(ML_PAUSE);
        double t0 = now_sec();
        for (uint64_t i = 0; i < steps; i++) {
            unsigned slot = (unsigned)(i % ML_LIVE);
            if (ptr[slot]) {
                check_pages(ptr[slot], len[slot], tag_of(slot, len[slot]));
                free(ptr[slot]);
            }
            size_t pages = 5 * MIB / BENCH_PAGE + (size_t)(rng_next(&rng) % (20 * MIB / BENCH_PAGE + 1));
            size_t n = pages * BENCH_PAGE;
            ptr[slot] = xmalloc(n);
            len[slot] = n;
            touch_pages(ptr[slot], n, tag_of(slot, n));
        }
        for (unsigned s = 0; s < ML_LIVE; s++) {
            if (ptr[s]) {
                check_pages(ptr[s], len[s], tag_of(s, len[s]));
                free(ptr[s]);
                ptr[s] = NULL;
            }
        }
        double t = now_sec() - t0;
        secs += t;
        if (rep == 0 || t < rep_min)
            rep_min = t;
        if (t > rep_max)
            rep_max = t;
        fprintf(stderr, "malloc_large rep %u: %.3f s, RSS %ld KiB after the frees\n", rep + 1, t,
                current_rss_kib());
    }
    char extra[96];
    snprintf(extra, sizeof extra, " rep_min_s=%.6f rep_max_s=%.6f", rep_min, rep_max);
    print_result_extra(ML_REPS * steps, secs, "ok", extra);
}

/* ---- idle_rss: what a process keeps once it has gone quiet ---------------- */

/* IR_THREADS threads each allocate `blocks` blocks (one in 500 of 2-3 MiB,
 * then 10% of 16-256 KiB, the rest 16 B-2 KiB, uniform within each; every
 * page written), wait for each other (the peak, about 1.9 GiB at scale 1),
 * and free their own blocks in allocation order.  Then the process is quiet
 * for g_idle_seconds: every half second one of the two threads, turn about,
 * makes one malloc/free pair of 64 B, so two pairs a second; the main thread
 * reads the resident set once a second.  The timed part is the allocation
 * and the frees; the RESULT line adds rss_freed_kib (just after the frees),
 * rss_idle_kib (at the end), idle_s, and rss_trace_kib (the reading of
 * each second, comma-separated, "-" if none). */
enum { IR_THREADS = 2, IR_BLOCKS = 50000 };

struct ir_block {
    uint8_t *p;
    size_t n;
};

struct ir_thread {
    pthread_t tid;
    unsigned id;
    uint64_t blocks;
    struct ir_block *blk; /* mmap'ed: the bench's own bookkeeping stays out of the allocator */
    struct span span;
    unsigned pending, done; /* idle pairs asked for and made (under ir_mu) */
    int quit;
};

static struct ir_thread ir_thr[IR_THREADS];
static pthread_barrier_t ir_barrier;
static pthread_mutex_t ir_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ir_cv = PTHREAD_COND_INITIALIZER;

static inline size_t ir_size(uint64_t r) {
    if (r % 500 == 0)
        return 2 * MIB + (size_t)((r >> 16) % (MIB + 1));
    if ((r >> 9) % 10 == 0)
        return 16384 + (size_t)((r >> 16) % (262144 - 16384 + 1));
    return 16 + (size_t)((r >> 16) % (2048 - 16 + 1));
}

static void *ir_run_thread(void *vp) {
    struct ir_thread *t = vp;
    uint64_t rng = rng_seed(1000 + t->id);
    pthread_barrier_wait(&ir_barrier);
    t->span.t0 = now_sec();
    for (uint64_t i = 0; i < t->blocks; i++) {
        size_t n = ir_size(rng_next(&rng));
        t->blk[i].p = xmalloc(n);
        t->blk[i].n = n;
        touch_pages(t->blk[i].p, n, tag_of(i, n));
    }
    pthread_barrier_wait(&ir_barrier); /* both threads at their peak */
    for (uint64_t i = 0; i < t->blocks; i++) {
        check_pages(t->blk[i].p, t->blk[i].n, tag_of(i, t->blk[i].n));
        free(t->blk[i].p);
    }
    t->span.t1 = now_sec();
    pthread_barrier_wait(&ir_barrier); /* everything freed */

    pthread_mutex_lock(&ir_mu);
    for (;;) {
        while (t->pending == t->done && !t->quit)
            pthread_cond_wait(&ir_cv, &ir_mu);
        if (t->pending == t->done)
            break; /* quit, nothing owed */
        pthread_mutex_unlock(&ir_mu);
        uint8_t *p = xmalloc(64);
        mark(p, 64, 0x77);
        check_mark(p, 64, 0x77);
        free(p);
        pthread_mutex_lock(&ir_mu);
        t->done++;
        pthread_cond_broadcast(&ir_cv);
    }
    pthread_mutex_unlock(&ir_mu);
    return NULL;
}

void run_idle_rss(double scale) {
    static char trace[3601 * 12];
    struct span span[IR_THREADS];
    uint64_t blocks = scaled(IR_BLOCKS, scale);
    size_t map_len = (size_t)blocks * sizeof(struct ir_block);

    pthread_barrier_init(&ir_barrier, NULL, IR_THREADS + 1);
    for (unsigned i = 0; i < IR_THREADS; i++) {
        struct ir_thread *t = &ir_thr[i];
        t->id = i;
        t->blocks = blocks;
        t->blk = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (t->blk == MAP_FAILED)
            fail("mmap of %zu bytes for the block table failed", map_len);
        if (pthread_create(&t->tid, NULL, ir_run_thread, t) != 0)
            fail("pthread_create failed");
    }
    pthread_barrier_wait(&ir_barrier); /* start */
    pthread_barrier_wait(&ir_barrier); /* peak */
    long rss_peak_now = current_rss_kib();
    pthread_barrier_wait(&ir_barrier); /* freed */
    for (unsigned i = 0; i < IR_THREADS; i++) {
        span[i] = ir_thr[i].span;
        munmap(ir_thr[i].blk, map_len);
        ir_thr[i].blk = NULL;
    }
    long rss_freed = current_rss_kib();
    fprintf(stderr, "idle_rss: RSS %ld KiB at the peak, %ld KiB after the frees\n", rss_peak_now,
            rss_freed);

    /* The quiet phase: a tick every half second, each asking one thread for
     * one pair; the resident set is read on every second tick. */
    unsigned ticks = (unsigned)(g_idle_seconds * 2 + 0.5);
    size_t used = 0;
    trace[0] = 0;
    for (unsigned k = 1; k <= ticks; k++) {
        sleep_sec(0.5);
        struct ir_thread *t = &ir_thr[k % IR_THREADS];
        pthread_mutex_lock(&ir_mu);
        t->pending++;
        pthread_cond_broadcast(&ir_cv);
        while (t->done != t->pending)
            pthread_cond_wait(&ir_cv, &ir_mu);
        pthread_mutex_unlock(&ir_mu);
        if (k % 2 == 0) {
            long rss = current_rss_kib();
            used += (size_t)snprintf(trace + used, sizeof trace - used, "%s%ld", used ? "," : "",
                                     rss);
            fprintf(stderr, "idle_rss: %u s: RSS %ld KiB\n", k / 2, rss);
        }
    }
    long rss_idle = current_rss_kib();

    pthread_mutex_lock(&ir_mu);
    for (unsigned i = 0; i < IR_THREADS; i++)
        ir_thr[i].quit = 1;
    pthread_cond_broadcast(&ir_cv);
    pthread_mutex_unlock(&ir_mu);
    for (unsigned i = 0; i < IR_THREADS; i++)
        pthread_join(ir_thr[i].tid, NULL);
    pthread_barrier_destroy(&ir_barrier);

    char extra[sizeof trace + 128];
    snprintf(extra, sizeof extra, " rss_freed_kib=%ld rss_idle_kib=%ld idle_s=%g rss_trace_kib=%s",
             rss_freed, rss_idle, g_idle_seconds, used ? trace : "-");
    print_result_extra(2 * IR_THREADS * blocks, span_secs(span, IR_THREADS), "ok", extra);
}
