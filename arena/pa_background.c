/* pa_background.c - owns the PageArena's background purge thread: its state
 * machine (asked for, created at a safe point, running, failed, stopped),
 * its sleep and wake-up on a futex word, its start-up callback, fork
 * handling (no thread in a child until asked again) and its stop at exit.
 * The decay it runs is page_arena.c's (pa_background_pass).
 *
 * The thread never calls malloc: it runs only PageArena code (leaf lock,
 * munmap), futex waits and the tick a library registers (libhakmem_je.so:
 * jemalloc's decay, through mallctl, with no HAKMEM lock held).  It blocks
 * every signal, so signals go to the program's threads. */
#define _GNU_SOURCE
#include "arena/pa_background.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "arena/options.h"

#define BG_STACK ((size_t)128 << 10)
#define BG_JOIN_MS 1000 /* stop: how long to wait for the thread to finish */

atomic_int pa_bg_state;
_Atomic uint32_t pa_bg_seq;
_Atomic uint64_t pa_bg_passes;

static atomic_bool bg_stop;
static atomic_bool bg_sticky; /* started on request: a fork child asks again */
static pthread_t bg_thread;
static void (*_Atomic bg_on_start)(void);
static uint64_t (*_Atomic bg_tick)(void);

static void futex_wait(_Atomic uint32_t *w, uint32_t val, uint64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    int saved = errno;
    syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, ms == UINT64_MAX ? NULL : &ts, NULL, 0);
    errno = saved;
}

void pa_background_wake(void) {
    atomic_fetch_add_explicit(&pa_bg_seq, 1, memory_order_release);
    int saved = errno;
    syscall(SYS_futex, &pa_bg_seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    errno = saved;
}

static void *bg_main(void *unused) {
    prctl(PR_SET_NAME, "hakmem-bg", 0, 0, 0);
    while (!atomic_load_explicit(&bg_stop, memory_order_acquire)) {
        uint32_t seq = atomic_load_explicit(&pa_bg_seq, memory_order_acquire);
        uint64_t (*tick)(void) = atomic_load_explicit(&bg_tick, memory_order_acquire);
        uint64_t tick_ms = tick ? tick() : UINT64_MAX; /* before the pass: it
                                                         * may cache spans */
        uint64_t ms = pa_background_pass(&seq);
        if (tick_ms < ms)
            ms = tick_ms;
        atomic_fetch_add_explicit(&pa_bg_passes, 1, memory_order_relaxed);
        if (atomic_load_explicit(&bg_stop, memory_order_acquire))
            break;
        futex_wait(&pa_bg_seq, seq, ms);
    }
    return NULL;
}

void pa_background_want(void) {
    if (atomic_load_explicit(&pa_bg_state, memory_order_relaxed) != PA_BG_OFF)
        return;
    hak_options_init();
    if (!hak_opt(OPT_BACKGROUND) || !hak_opt(OPT_PA_DECAY_MS) || !hak_opt(OPT_PA_ENABLE))
        return;
    int expect = PA_BG_OFF;
    atomic_compare_exchange_strong(&pa_bg_state, &expect, PA_BG_WANTED);
}

void pa_background_start_slow(void) {
    int expect = PA_BG_WANTED;
    if (!atomic_compare_exchange_strong(&pa_bg_state, &expect, PA_BG_STARTING))
        return;
    int saved = errno;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread inherits it */
    pthread_attr_t attr;
    int err = pthread_attr_init(&attr);
    if (!err) {
        pthread_attr_setstacksize(&attr, BG_STACK);
        atomic_store(&bg_stop, false);
        err = pthread_create(&bg_thread, &attr, bg_main, NULL);
        pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    atomic_store(&pa_bg_state, err ? PA_BG_FAILED : PA_BG_RUNNING);
    void (*fn)(void) = atomic_load(&bg_on_start);
    if (!err && fn)
        fn();
    errno = saved;
}

void pa_background_start(void) {
    atomic_store(&bg_sticky, true);
    pa_background_want();
    pa_background_poll();
}

void pa_background_on_start(void (*fn)(void)) {
    atomic_store(&bg_on_start, fn);
    if (fn && pa_background_running())
        fn(); /* already running: the caller is at a safe point too */
}

void pa_background_on_tick(uint64_t (*fn)(void)) {
    atomic_store_explicit(&bg_tick, fn, memory_order_release);
    pa_background_wake(); /* a sleeping thread picks it up now */
}

void pa_background_stop(void) {
    int expect = PA_BG_RUNNING;
    if (!atomic_compare_exchange_strong(&pa_bg_state, &expect, PA_BG_STOPPED))
        return;
    atomic_store_explicit(&bg_stop, true, memory_order_release);
    pa_background_wake();
    /* Bounded: a thread stuck behind a lock that an interrupted exit path
     * holds must not hang the process; exit takes it down then. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += BG_JOIN_MS / 1000;
    if (pthread_timedjoin_np(bg_thread, NULL, &ts) != 0)
        pthread_detach(bg_thread);
}

void pa_background_fork_child(bool cached) {
    atomic_store_explicit(&pa_bg_seq, 0, memory_order_relaxed);
    int s = atomic_load_explicit(&pa_bg_state, memory_order_relaxed);
    if (s == PA_BG_WANTED || s == PA_BG_STARTING || s == PA_BG_RUNNING) {
#if defined(__SANITIZE_THREAD__)
        /* ThreadSanitizer cannot create threads in the child of a
         * multi-threaded process (ours made it one): decay stays on the
         * slow paths there. */
        atomic_store_explicit(&pa_bg_state, PA_BG_FAILED, memory_order_relaxed);
        return;
#endif
        atomic_store_explicit(&pa_bg_state,
                              cached || atomic_load(&bg_sticky) ? PA_BG_WANTED : PA_BG_OFF,
                              memory_order_relaxed);
    }
}

/* At exit and at dlclose: the thread must not run on in unmapped code. */
__attribute__((destructor)) static void bg_dtor(void) { pa_background_stop(); }
