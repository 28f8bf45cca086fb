/* hk_je.c - owns what libhakmem_je.so adds to the jemalloc it carries whole
 * (libjemalloc_pic.a: malloc, free, the C++ operators, mallctl, mallocx and
 * the rest are jemalloc's own, with nothing of HAKMEM on their path):
 *  - jemalloc's default arena configuration, which jemalloc reads whenever
 *    it creates an arena that has no hooks of its own (an automatic arena on
 *    a thread's first malloc, the huge arena on the first allocation of
 *    opt.oversize_threshold bytes, arenas.create without hooks); it is
 *    defined here instead of in the archive, and at load its hooks pointer
 *    becomes the PageArena's;
 *  - at load, the PageArena hooks on the arenas jemalloc made before that:
 *    arena 0 always (jemalloc makes it on the first malloc, which in most
 *    programs comes from a library's constructor before this one), and any
 *    automatic or huge arena a thread made that early;
 *  - jemalloc's options: retain:false (malloc_conf);
 *  - jemalloc's decay on time in a quiet process: the PageArena's background
 *    thread runs it (arena.<all>.decay) at a tenth of opt.dirty_decay_ms,
 *    at most every second; HAKMEM_BACKGROUND=0 leaves it to jemalloc's
 *    application-thread paths, as stock jemalloc does;
 *  - pthread_create, which starts that thread when the program starts its
 *    first thread: a single-threaded program runs without it;
 *  - HAKMEM_STATS at exit.
 * Ranges an arena mapped before its hooks changed (arena 0's first extents)
 * stay with jemalloc's own hooks: hk_extent.c forwards every call about
 * them.  Nothing here is per thread; fork needs nothing of its own
 * (jemalloc's and the PageArena's atfork handlers cover their state). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "arena/options.h"
#include "arena/pa_background.h"
#include "arena/page_arena.h"
#include "hakmem.h"
#include "hooks/hk_extent.h"

/* jemalloc 5.3's arena_config_t (configure checks the archive's object is
 * 16 bytes): the hooks a new arena gets, and whether its metadata comes
 * from them too. */
typedef struct hk_je_arena_config {
    extent_hooks_t *extent_hooks;
    bool metadata_use_hooks;
} hk_je_arena_config;

extern const extent_hooks_t je_ehooks_default_extent_hooks;
/* Until the constructor runs, what the archive's definition holds:
 * jemalloc's default hooks, metadata on them. */
hk_je_arena_config je_arena_config_default __attribute__((visibility("hidden"))) = {
    (extent_hooks_t *)&je_ehooks_default_extent_hooks, true};

/* One stderr line, malloc-free (no strerror): an arena that stays on
 * jemalloc's own hooks, and why (hak_arena_attach's errno value). */
static void report(unsigned ind, int err) {
    pa_msg m = {.n = 0};
    pa_msg_str(&m, "hakmem: jemalloc arena ");
    pa_msg_u64(&m, ind);
    pa_msg_str(&m, " keeps jemalloc's own extent hooks (errno ");
    pa_msg_u64(&m, (uint64_t)err);
    pa_msg_str(&m, err == ENOMEM ? ": out of memory)" : ")");
    pa_msg_emit(&m);
}

static bool initialized(unsigned ind) {
    char name[64];
    snprintf(name, sizeof name, "arena.%u.initialized", ind);
    bool init = false;
    size_t sz = sizeof init;
    return mallctl(name, &init, &sz, NULL, 0) == 0 && init;
}

static atomic_bool attached; /* attach_all ran: the PageArena is in use */

static bool attach_done(void) { return atomic_load_explicit(&attached, memory_order_acquire); }

static void attach_all(void) {
    static atomic_bool done;
    if (atomic_exchange(&done, true))
        return;
    if (!pa_init()) {
        report(0, ENOMEM); /* the OS refused the PageArena's tables */
        return;
    }
    unsigned n = 0;
    size_t sz = sizeof n;
    if (mallctl("opt.narenas", &n, &sz, NULL, 0) != 0)
        return; /* jemalloc could not start; its malloc says so */
    /* Arena 0 first: this also reads opt.retain into the hooks, which must
     * know it before an arena made with them calls them. */
    int err = hk_arena_attach_hooks(0);
    if (err) {
        report(0, err);
        return; /* the hooks could not be installed: leave the default */
    }
    /* From here on every arena jemalloc creates starts on the hooks. */
    __atomic_store_n(&je_arena_config_default.extent_hooks, hak_extent_hooks(),
                     __ATOMIC_RELEASE);
    /* Arenas made before the line above: arena.<i>.initialized reads
     * jemalloc's view as of the last "epoch" write.  The automatic arenas
     * are 0 .. n-1 and the huge arena is n (when opt.oversize_threshold
     * enables it); manual arenas made this early are the program's own. */
    uint64_t epoch = 1;
    mallctl("epoch", NULL, NULL, &epoch, sizeof epoch);
    unsigned total = 0;
    sz = sizeof total;
    if (mallctl("arenas.narenas", &total, &sz, NULL, 0) != 0)
        total = n;
    for (unsigned i = 1; i <= n && i < total; i++)
        if (initialized(i) && (err = hk_arena_attach_hooks(i)) != 0)
            report(i, err);
    atomic_store_explicit(&attached, true, memory_order_release);
}

/* jemalloc's decay, from the PageArena's thread.  jemalloc's own
 * background threads (opt.background_thread) would do it too, but with them
 * on, jemalloc's thread-cache paths run about 7% slower (tiny_hot, stock
 * libjemalloc.so.2 with and without MALLOC_CONF=background_thread:true):
 * this library keeps them as stock has them, off.  Extents the decay
 * releases reach the hooks on this thread, which return them to the OS
 * at once (hk_extent.c). */
static uint64_t tick_ms = UINT64_MAX;

static uint64_t je_decay_tick(void) {
    char name[48];
    snprintf(name, sizeof name, "arena.%u.decay", (unsigned)MALLCTL_ARENAS_ALL);
    mallctl(name, NULL, NULL, NULL, 0);
    return tick_ms;
}

static void decay_on_time(void) {
    ssize_t dirty = 0;
    size_t sz = sizeof dirty;
    if (mallctl("opt.dirty_decay_ms", &dirty, &sz, NULL, 0) != 0 || dirty <= 0)
        return; /* 0: purged at once; -1: never: nothing to run on time */
    uint64_t t = (uint64_t)dirty / 10;
    tick_ms = t < 10 ? 10 : t > 1000 ? 1000 : t;
    pa_background_on_tick(je_decay_tick);
}

__attribute__((constructor)) static void hk_je_ctor(void) {
    hak_options_init(); /* malformed HAKMEM_* values are reported now */
    attach_all();
    if (hak_opt(OPT_BACKGROUND))
        decay_on_time();
}

/* The background thread starts with the program's first thread, not at
 * load.  Any second thread in a process, even one that only sleeps, made
 * stock jemalloc's thread-cache loop about 7% slower here (tiny_hot 0.3,
 * LD_PRELOAD of libjemalloc.so.2 with and without a library whose
 * constructor starts a thread that pauses: farm-bench CPU median 1.073), so
 * a single-threaded program keeps stock jemalloc's speed, and its decay runs
 * on its own malloc and free paths, as stock jemalloc's does.  After the
 * program's pthread_create returns is a safe point (no lock of ours or
 * jemalloc's held; pthread_create allocates).  The thread's own creation
 * comes back here and finds it already starting. */
typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

__attribute__((visibility("default"))) int
pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start)(void *), void *arg) {
    static _Atomic(pthread_create_fn) real;
    pthread_create_fn fn = atomic_load_explicit(&real, memory_order_acquire);
    if (!fn) {
        fn = (pthread_create_fn)dlsym(RTLD_NEXT, "pthread_create");
        if (!fn)
            return EAGAIN;
        atomic_store_explicit(&real, fn, memory_order_release);
    }
    int err = fn(thread, attr, start, arg);
    if (!err && attach_done())
        pa_background_start();
    return err;
}

static void write_stderr(void *unused, const char *s) {
    ssize_t r = write(2, s, strlen(s));
    (void)r;
}

__attribute__((destructor)) static void hk_je_dtor(void) {
    uint64_t s = hak_opt(OPT_STATS);
    if (s != STATS_OFF)
        hak_stats_print(write_stderr, NULL, s == STATS_JSON ? "J" : "");
}

/* With opt.retain on (jemalloc's default on Linux), jemalloc keeps every
 * range it ever got from its hooks, purged, and hands back only whole ones,
 * which it rarely has: the PageArena would only map memory.  Off, jemalloc
 * asks the hooks for each extent and gives every extent its decay releases
 * back to them, so the PageArena caches it for the next request of any
 * arena.  MALLOC_CONF and a program's own malloc_conf still apply on top. */
__attribute__((visibility("default"))) const char *malloc_conf = "retain:false";
