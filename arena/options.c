/* options.c - owns the options table: names, environment variables, ranges,
 * defaults and documentation of every HAKMEM option, and their parsing; and
 * hak_misuse, the one reporter of bad input, which obeys HAKMEM_ON_ERROR. */
#include "arena/options.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "arena/pa_os.h"

static const char *const mode_words[] = {"pools", "jemalloc", NULL};
static const char *const on_error_words[] = {"abort", "warn", NULL};
static const char *const stats_words[] = {"0", "1", "json", NULL};

const hak_option hak_options[OPT_COUNT] = {
    [OPT_PA_ENABLE] = {"page_arena.enable", "HAKMEM_PAGE_ARENA_ENABLE", 0, 1, 1, NULL,
                       "1: cache pages and spans; 0: every request goes to the OS"},
    [OPT_PA_HOT_SIZE] = {"page_arena.hot_size", "HAKMEM_PAGE_ARENA_HOT_SIZE", 0, 1u << 20, 1024, NULL,
                         "4 KiB pages in the shared hot stack"},
    [OPT_PA_WARM_64K] = {"page_arena.warm_64k", "HAKMEM_PAGE_ARENA_WARM_64K", 0, 1u << 20, 256, NULL,
                         "64 KiB spans in the warm tier"},
    [OPT_PA_WARM_128K] = {"page_arena.warm_128k", "HAKMEM_PAGE_ARENA_WARM_128K", 0, 1u << 20, 128, NULL,
                          "128 KiB spans in the warm tier"},
    [OPT_PA_WARM_2M] = {"page_arena.warm_2m", "HAKMEM_PAGE_ARENA_WARM_2M", 0, 1u << 16, 0, NULL,
                        "2 MiB spans (2 MiB-aligned) in the warm tier"},
    [OPT_PA_DECAY_MS] = {"page_arena.decay_ms", "HAKMEM_PAGE_ARENA_DECAY_MS", 0, 3600000, 10000, NULL,
                         "a cached span idle this long is returned to the OS"},
    [OPT_PA_ODD_CAP_MB] = {"page_arena.odd_cap_mb", "HAKMEM_PAGE_ARENA_ODD_CAP_MB", 0, 1u << 20, 256, NULL,
                           "MiB of odd-sized ranges kept resident for reuse"},
    [OPT_PA_THP] = {"page_arena.thp", "HAKMEM_PAGE_ARENA_THP", 0, 1, 0, NULL,
                    "1: ask for transparent huge pages on 2 MiB spans"},
    [OPT_BACKGROUND] = {"background", "HAKMEM_BACKGROUND", 0, 1, 1, NULL,
                        "1: a background thread returns idle cached memory to the OS on time"},
    [OPT_MODE] = {"mode", "HAKMEM_MODE", 0, 1, MODE_POOLS, mode_words,
                  "pools: HAKMEM's pools; jemalloc: every size to hooked jemalloc arenas"},
    [OPT_ON_ERROR] = {"on_error", "HAKMEM_ON_ERROR", 0, 1, ON_ERROR_ABORT, on_error_words,
                      "abort, or warn and continue, on an invalid or double free"},
    [OPT_GUARD] = {"guard", "HAKMEM_GUARD", 0, 1, 0, NULL,
                   "1: every block above 64 KiB gets its own span between two guard pages"},
    [OPT_STATS] = {"stats", "HAKMEM_STATS", 0, 2, STATS_OFF, stats_words,
                   "print statistics to stderr at exit: 1 text, json"},
};

uint64_t hak_opt_values[OPT_COUNT];

static void complain(const hak_option *o, const char *val) {
    pa_msg m = {.n = 0};
    pa_msg_str(&m, "hakmem: ");
    pa_msg_str(&m, o->env);
    pa_msg_str(&m, "='");
    pa_msg_str(&m, val);
    pa_msg_str(&m, "' is invalid: expected ");
    if (o->words) {
        pa_msg_str(&m, "one of ");
        for (unsigned i = 0; o->words[i]; i++) {
            if (i)
                pa_msg_str(&m, "|");
            pa_msg_str(&m, o->words[i]);
        }
    } else {
        pa_msg_str(&m, "an integer in [");
        pa_msg_u64(&m, o->min);
        pa_msg_str(&m, ", ");
        pa_msg_u64(&m, o->max);
        pa_msg_str(&m, "]");
    }
    pa_msg_str(&m, "; using ");
    if (o->words)
        pa_msg_str(&m, o->words[o->def]);
    else
        pa_msg_u64(&m, o->def);
    pa_msg_emit(&m);
}

static uint64_t parse(const hak_option *o, const char *val) {
    if (o->words) {
        for (unsigned i = 0; o->words[i]; i++)
            if (strcmp(val, o->words[i]) == 0)
                return i;
    } else if (*val >= '0' && *val <= '9') {
        uint64_t v = 0;
        const char *s = val;
        for (; *s >= '0' && *s <= '9'; s++) {
            if (v > (UINT64_MAX - 9) / 10)
                break;
            v = v * 10 + (uint64_t)(*s - '0');
        }
        if (*s == '\0' && v >= o->min && v <= o->max)
            return v;
    }
    complain(o, val);
    return o->def;
}

static void read_environment(void) {
    for (unsigned i = 0; i < OPT_COUNT; i++) {
        const char *v = getenv(hak_options[i].env);
        hak_opt_values[i] = v ? parse(&hak_options[i], v) : hak_options[i].def;
    }
}

void hak_options_init(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, read_environment);
}

void hak_misuse(const char *fn, const void *p, const char *fault) {
    pa_msg m = {.n = 0};
    pa_msg_str(&m, "hakmem: ");
    pa_msg_str(&m, fn);
    pa_msg_str(&m, "(");
    pa_msg_ptr(&m, p);
    pa_msg_str(&m, "): ");
    pa_msg_str(&m, fault);
    pa_msg_emit(&m);
    if (hak_opt(OPT_ON_ERROR) != ON_ERROR_WARN)
        abort();
}
