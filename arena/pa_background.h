/* pa_background.h - the PageArena's background purge thread (defined in
 * pa_background.c).  Decay on the arena's slow paths never runs in a process
 * that has gone quiet; this thread does it on time instead: it wakes when a
 * cached span falls due (decay_ms after it was cached), returns what is due
 * to the OS, and sleeps without a timeout while nothing is cached.
 *
 * It is started lazily: the arena asks for it (pa_background_want) once it
 * has handed out more than 16 MiB or caches more than 4 MiB of dirty spans,
 * and the thread is created at the next safe point: pa_background_poll on an
 * allocation slow path of the malloc front (no lock held, not inside
 * jemalloc; pthread_create allocates), or pa_background_start from
 * hak_arena_create / hak_arena_attach in the libraries without the front.
 * Never from a free: glibc frees a thread's TLS under the lock its
 * pthread_create takes.  A process that never holds that much never gets a
 * thread.  A fork child has none; it asks again if it inherited cached
 * memory or the thread was started on request, and the next safe point
 * creates it.  At exit (or dlclose) the thread is stopped and joined.
 * HAKMEM_BACKGROUND=0 turns it off, and decay stays on the slow paths. */
#ifndef PA_BACKGROUND_H
#define PA_BACKGROUND_H

#include "arena/pa_os.h"

enum {
    PA_BG_OFF,      /* not asked for (or disabled) */
    PA_BG_WANTED,   /* asked for: created at the next safe point */
    PA_BG_STARTING,
    PA_BG_RUNNING,  /* the thread runs decay; the slow paths do not */
    PA_BG_FAILED,   /* pthread_create refused: decay stays on the slow paths */
    PA_BG_STOPPED,  /* stopped at exit */
};
extern atomic_int pa_bg_state;
/* The futex word the thread sleeps on; every wake bumps it. */
extern _Atomic uint32_t pa_bg_seq;
/* Passes the thread has made (statistics). */
extern _Atomic uint64_t pa_bg_passes;

void pa_background_start_slow(void);
/* At a safe point: create the thread if the arena asked for it. */
static inline void pa_background_poll(void) {
    if (PA_UNLIKELY(atomic_load_explicit(&pa_bg_state, memory_order_relaxed) == PA_BG_WANTED))
        pa_background_start_slow();
}
/* Ask for the thread (any context; nothing when disabled or already asked). */
void pa_background_want(void);
/* Ask for it and, this being a safe point, create it now; a fork child
 * then asks for it too, cached memory or not. */
void pa_background_start(void);
static inline bool pa_background_running(void) {
    return atomic_load_explicit(&pa_bg_state, memory_order_relaxed) == PA_BG_RUNNING;
}
/* Wake the sleeping thread (any context, no lock held: a system call). */
void pa_background_wake(void);
/* fn runs at the safe point right after each start, a fork child's
 * included (the hooks layer turns jemalloc's own background threads on). */
void pa_background_on_start(void (*fn)(void));
/* fn runs on the thread at the start of every wake-up, before the decay
 * pass, with no lock held; it returns the milliseconds until it wants to
 * run again (UINT64_MAX: not before the next wake-up).  libhakmem_je.so
 * runs jemalloc's decay from it. */
void pa_background_on_tick(uint64_t (*fn)(void));
/* Stop the thread and join it (bounded wait). */
void pa_background_stop(void);
/* In a fork child: no thread runs; ask again when `cached` (or after
 * pa_background_start). */
void pa_background_fork_child(bool cached);

/* page_arena.c, for the thread: run the decay that is due.  Returns the
 * milliseconds to sleep before the next pass, or UINT64_MAX when the shared
 * tiers hold nothing; then *seq is pa_bg_seq as read under the arena lock,
 * and any later caching wakes the thread (no lost wake-up). */
uint64_t pa_background_pass(uint32_t *seq);

#endif
