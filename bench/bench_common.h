/* bench_common.h - what both bench programs share: the peak RSS each prints
 * on its RESULT line. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The number after `key` in a /proc file of at most 4 KiB (KiB values of
 * status and smaps_rollup), read without allocating; -1 when absent. */
static inline long proc_kib(const char *path, const char *key) {
    char buf[4096];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    const char *p = strstr(buf, key);
    return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

/* Peak RSS of this process in KiB (VmHWM).  The runner's wait4 ru_maxrss
 * would include the runner's own RSS: Linux carries the pre-exec address
 * space's high-water mark across exec. */
static inline long peak_rss_kib(void) { return proc_kib("/proc/self/status", "VmHWM:"); }

/* One uint64_t statistic through hak_mallctl (passed in: bench_workloads
 * finds it at run time, bench_arenas links it); -1 when it does not answer. */
typedef int (*hak_mallctl_fn)(const char *, void *, size_t *, void *, size_t);
static inline int64_t hk_read(hak_mallctl_fn fn, const char *name) {
    uint64_t v = 0;
    size_t len = sizeof v;
    if (fn(name, &v, &len, NULL, 0) != 0 || len != sizeof v)
        return -1;
    return (int64_t)v;
}

#endif
