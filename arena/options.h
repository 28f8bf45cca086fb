/* options.h - the one options table (defined in options.c).  Every option is
 * an environment variable HAKMEM_<NAME>, read once at initialisation; a
 * malformed value prints one stderr line and the default is used. */
#ifndef HAK_OPTIONS_H
#define HAK_OPTIONS_H

#include <stdint.h>

enum hak_opt_id {
    OPT_PA_ENABLE,      /* HAKMEM_PAGE_ARENA_ENABLE */
    OPT_PA_HOT_SIZE,    /* HAKMEM_PAGE_ARENA_HOT_SIZE */
    OPT_PA_WARM_64K,    /* HAKMEM_PAGE_ARENA_WARM_64K */
    OPT_PA_WARM_128K,   /* HAKMEM_PAGE_ARENA_WARM_128K */
    OPT_PA_WARM_2M,     /* HAKMEM_PAGE_ARENA_WARM_2M */
    OPT_PA_DECAY_MS,    /* HAKMEM_PAGE_ARENA_DECAY_MS */
    OPT_PA_ODD_CAP_MB,  /* HAKMEM_PAGE_ARENA_ODD_CAP_MB */
    OPT_PA_THP,         /* HAKMEM_PAGE_ARENA_THP */
    OPT_BACKGROUND,     /* HAKMEM_BACKGROUND */
    OPT_MODE,           /* HAKMEM_MODE: pools | jemalloc */
    OPT_ON_ERROR,       /* HAKMEM_ON_ERROR: abort | warn */
    OPT_GUARD,          /* HAKMEM_GUARD: guard pages above 64 KiB */
    OPT_STATS,          /* HAKMEM_STATS: 0 | 1 | json */
    OPT_COUNT
};
enum { MODE_POOLS = 0, MODE_JEMALLOC = 1 };
enum { ON_ERROR_ABORT = 0, ON_ERROR_WARN = 1 };
enum { STATS_OFF = 0, STATS_TEXT = 1, STATS_JSON = 2 };

typedef struct hak_option {
    const char *name;   /* mallctl name under "opt." */
    const char *env;
    uint64_t min, max, def;
    const char *const *words; /* enum spellings, index = value; NULL = integer */
    const char *doc;
} hak_option;

extern const hak_option hak_options[OPT_COUNT];
extern uint64_t hak_opt_values[OPT_COUNT];

/* Read the environment once (idempotent, thread-safe, malloc-free). */
void hak_options_init(void);
static inline uint64_t hak_opt(enum hak_opt_id id) { return hak_opt_values[id]; }

/* Bad input (docs/DESIGN.md, Bad input): one stderr line
 * "hakmem: fn(p): fault", then abort, or return with HAKMEM_ON_ERROR=warn
 * (the caller loses nothing). */
void hak_misuse(const char *fn, const void *p, const char *fault);

#endif
