/* bench_main.c - owns what every bench program (bench_workloads,
 * bench_cxx) does around a workload: the command line
 *
 *     <program> <workload> <scale> [<idle-seconds>]
 *
 * (<scale> multiplies the step counts, 1.0 = the full definition;
 * <idle-seconds>, 0-3600, default 15, only for a workload that idles), and
 * the one line each run prints:
 *
 *     RESULT workload=<name> ops=<n> secs=<timed seconds> malloc_lib=<path>
 *            check=<ok|FAIL:reason> rss_kib=<VmHWM> [hk_mode=.. hk_pa=..
 *            hk_pool_nmalloc=.. hk_hooks_alloc=..] [the workload's fields]
 *
 * malloc_lib is the object that provides malloc at run time (dladdr), the
 * proof of which allocator was live.  The hk_* fields appear when
 * hak_mallctl resolves (libhakmem is loaded); -1 means that name was
 * refused.  Every workload checks the bytes it wrote; a failed check or an
 * out-of-memory prints check=FAIL:<reason> and aborts.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"
#include "bench_workloads.h"

const char *g_workload = "?";

/* ---- the RESULT line and failures -------------------------------------- */

void print_result_extra(uint64_t ops, double secs, const char *check, const char *extra) {
    const char *lib = "unknown";
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    if (m && dladdr(m, &info) && info.dli_fname && info.dli_fname[0])
        lib = info.dli_fname;

    char hk[256] = "";
    hak_mallctl_fn fn;
    *(void **)(&fn) = dlsym(RTLD_DEFAULT, "hak_mallctl");
    if (fn) {
        int64_t pool = 0;
        static const char *const pools[] = {"stats.tiny.nmalloc", "stats.mid.nmalloc",
                                            "stats.l25.nmalloc"};
        for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++) {
            int64_t v = hk_read(fn, pools[i]);
            pool = (v < 0 || pool < 0) ? -1 : pool + v;
        }
        snprintf(hk, sizeof hk,
                 " hk_mode=%" PRId64 " hk_pa=%" PRId64 " hk_pool_nmalloc=%" PRId64
                 " hk_hooks_alloc=%" PRId64,
                 hk_read(fn, "opt.mode"), hk_read(fn, "opt.page_arena.enable"), pool,
                 hk_read(fn, "stats.hooks.alloc_calls"));
    }
    printf("RESULT workload=%s ops=%" PRIu64 " secs=%.6f malloc_lib=%s check=%s"
           " rss_kib=%ld%s%s\n",
           g_workload, ops, secs, lib, check, peak_rss_kib(), hk, extra);
    fflush(stdout);
}

void fail(const char *fmt, ...) {
    static atomic_flag once = ATOMIC_FLAG_INIT;
    char reason[200], check[220];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (!atomic_flag_test_and_set(&once)) {
        fprintf(stderr, "bench_workloads: %s: %s\n", g_workload, reason);
        for (char *c = reason; *c; c++) /* keep the RESULT line one token per field */
            if (*c == ' ' || *c == '=')
                *c = '_';
        snprintf(check, sizeof check, "FAIL:%s", reason);
        print_result(0, 0.0, check);
    }
    abort();
}

long current_rss_kib(void) {
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *p = buf;
    strtol(p, &p, 10); /* size */
    long resident = strtol(p, NULL, 10);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ---- the command line ---------------------------------------------------- */

double g_idle_seconds = 15.0;

static int usage(const char *argv0, const struct bench_workload *table, size_t n) {
    fprintf(stderr, "usage: %s <workload> <scale> [<idle-seconds>]\n  workloads:", argv0);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %s", table[i].name);
    fprintf(stderr, "\n  scale: a positive multiplier, 1.0 = full size\n"
                    "  idle-seconds: 0-3600 (default 15), for a workload that idles\n");
    return 2;
}

int bench_main(int argc, char **argv, const struct bench_workload *table, size_t n) {
    char *end = NULL;
    double scale = (argc == 3 || argc == 4) ? strtod(argv[2], &end) : 0;
    if ((argc != 3 && argc != 4) || end == argv[2] || *end || !(scale > 0 && scale <= 1e6))
        return usage(argv[0], table, n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(argv[1], table[i].name) != 0)
            continue;
        if (argc == 4) {
            if (!table[i].takes_idle) {
                fprintf(stderr, "%s: workload '%s' takes no idle-seconds argument\n", argv[0],
                        argv[1]);
                return 2;
            }
            double idle = strtod(argv[3], &end);
            if (end == argv[3] || *end || !(idle >= 0 && idle <= 3600)) {
                fprintf(stderr,
                        "%s: idle-seconds '%s' is invalid: expected a number in [0, 3600]\n",
                        argv[0], argv[3]);
                return 2;
            }
            g_idle_seconds = idle;
        }
        g_workload = table[i].name;
        table[i].run(scale);
        return 0;
    }
    fprintf(stderr, "%s: unknown workload '%s'\n", argv[0], argv[1]);
    return 2;
}
