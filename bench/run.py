#!/usr/bin/env python3
"""run.py - owns the HAKMEM bench runner: runs every workload under every
allocator configuration, proves which allocator was live in each run, and
writes the tables, CSV files and SVG charts.

Usage (after building; `make bench` / `make bench-full` do the same):

    python3 bench/run.py --build build [--full] [--only w1,w2] [--reps N]
                         [--configs c1,c2] [--scale F] [--idle S] [--timeout S]

  --build    the CMake build directory (holds libhakmem.so and bench/).
  --full     scale 1.0 and 5 repetitions (quick mode: smaller scales, 3 reps);
             idle_rss: 3 repetitions idling 15 s (quick: 1, idling 4 s).
  --only     workloads to run.  HAKMEM's own shapes: tiny_hot random_mixed
             mid_large_mt vm_mixed larson_like prod_cons large_blocks; the
             shapes of public benchmarks: larson larson_sized xmalloc
             cxx_mixed cxx_mixed_mt sh_batch sh_batch_xt malloc_simple
             malloc_large idle_rss; arenas (in-process hooks); and the arena
             kinds, blockcache and chase (bench_blockcache, see kinds_report).
  --configs  configurations to run: glibc jemalloc je+pagearena hakmem-pa-off
             hakmem mimalloc tcmalloc (the arenas rows always run).
  --reps     repetitions of every workload (idle_rss included).
  --scale    multiply every workload scale by F (e.g. 0.1 for a smoke test).
  --idle     idle_rss's quiet phase in seconds (overrides 4 / 15).

Configurations run interleaved (A B C ... A B C ...); each row is the median
of the repetitions.  A run counts only if its RESULT line proves that the
expected allocator provided malloc; otherwise the row says NOT LIVE (or
FAILED for a crash, a timeout or a failed data check) and has no numbers.
Tables go to stdout and <build>/bench/results.md; results.csv (every run),
summary.csv (medians) and *.svg charts (gnuplot) go to <build>/bench/.
Progress goes to stderr.  Standard library only.
"""
import argparse
import csv
import datetime
import glob
import math
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

WORKLOADS = ["tiny_hot", "random_mixed", "mid_large_mt", "vm_mixed",
             "larson_like", "prod_cons", "large_blocks",
             "larson", "larson_sized", "xmalloc", "cxx_mixed", "cxx_mixed_mt",
             "sh_batch", "sh_batch_xt", "malloc_simple", "malloc_large", "idle_rss",
             "arenas", "blockcache", "chase"]

# The program that runs a workload (bench_cxx: the C++ ones, kept apart so
# that the C workloads do not load libstdc++); arenas is bench_arenas.
WORKLOAD_BIN = {"cxx_mixed": "bench_cxx", "cxx_mixed_mt": "bench_cxx",
                "larson_sized": "bench_cxx"}

# Quick-mode scales.  Measured on this project's 2-core VM (AMD EPYC, Linux
# 6.18, shared with other work: load average 5-15) with all eight
# configurations, wall seconds per run from the fastest to the slowest
# configuration.  A page fault costs about 10 us of CPU here, so the
# fault-bound workloads (vm_mixed, large_blocks, arenas) run at smaller
# scales than on the machine they were first sized on; the default 3 reps
# take about 12 minutes at that load.  Per run:
QUICK_SCALE = {
    "tiny_hot": 0.5,       # 80 M ops: 0.5 s (mimalloc) - 1.9 s (je+pagearena)
    "random_mixed": 1.0,   # 10 M steps: 0.4-0.8 s
    "mid_large_mt": 1.0,   # 160 k ops: 0.4-0.9 s (the definition is short)
    "vm_mixed": 0.1,       # 20 k blocks: 0.1 s (mimalloc) - 40 s (hakmem-pa-off)
    "larson_like": 0.5,    # 125 rounds, 8 M ops: 0.3-2.4 s
    "prod_cons": 1.0,      # 2 M blocks: 0.2-4 s, scheduling-sensitive on 2 cores
    "large_blocks": 0.05,  # 100 blocks: 0.3 s (tcmalloc) - 12 s (hakmem-pa-off)
    # The shapes of public benchmarks:
    "larson": 1.0,         # 200 generations x 4 chains, 8 M ops: 0.4-1 s
    "larson_sized": 1.0,   # the same through new / sized delete: 0.4-1.3 s
    "xmalloc": 1.0,        # 4 M blocks: 0.3-0.8 s
    "cxx_mixed": 1.0,      # 4 M steps: 0.4-0.6 s
    "cxx_mixed_mt": 1.0,   # 4 x 1 M steps: 0.6-0.8 s
    "sh_batch": 1.0,       # 2 x 2000 batches of 2000: 0.25-1.1 s
    "sh_batch_xt": 1.0,    # the same, half of each freed by the other thread: 0.5-1.2 s
    "malloc_simple": 1.0,  # 80 M ops: 0.3 s (tcmalloc) - 5 s (hakmem-pa-off)
    "malloc_large": 0.3,   # 5 reps x 6 blocks of 5-25 MiB: 1.3-3.3 s (0.8 s of pauses)
    "idle_rss": 0.25,      # about 0.5 GiB, then idle 4 s; 1 rep: 7.5-9.5 s per run
    "arenas": 0.02,        # 400 blocks: about 15 s per row at load 10
    "blockcache": 0.5,     # 600 k lookups: 4-8 s per row (past jemalloc's decay)
    "chase": 1.0,          # 4 M loads over 512 MiB: 5-9 s per row with setup
}
# Full mode: every workload as defined (scale 1.0), 5 reps (idle_rss: 3,
# idling 15 s): the shapes of public benchmarks alone take about 25 minutes
# here, 15 of them idle_rss's; large_blocks, arenas and vm_mixed take longer.
FULL_SCALE = {w: 1.0 for w in WORKLOADS}
# Repetitions other than the mode's default, per workload (--reps overrides):
# idle_rss idles for seconds, and its resident set hardly varies run to run.
QUICK_REPS = {"idle_rss": 1}
FULL_REPS = {"idle_rss": 3}
# idle_rss's quiet phase, seconds: 15 s covers the PageArena's and
# jemalloc's default 10 s decay plus 5 s.
QUICK_IDLE = 4.0
FULL_IDLE = 15.0
# The idle_rss table marks the first second at which the resident set is at
# most this many KiB (64 MiB).
IDLE_RSS_GOAL_KIB = 64 * 1024

DEBIAN_LIBS = {
    "jemalloc": "libjemalloc.so.2",
    "mimalloc": "libmimalloc.so.2",
    "tcmalloc": "libtcmalloc_minimal.so.4",
}


class Config:
    """One allocator configuration: what to preload, which environment, and
    which library must be seen providing malloc."""

    def __init__(self, name, lib, env, expect):
        self.name, self.lib, self.env, self.expect = name, lib, env, expect
        self.path = None      # resolved preload path (None for glibc)
        self.missing = None   # reason the configuration is skipped


CONFIGS = [
    Config("glibc", None, {}, "libc.so"),
    Config("jemalloc", "jemalloc", {}, "libjemalloc"),
    # jemalloc itself with every arena on the PageArena hooks (libhakmem_je.so).
    Config("je+pagearena", "hakmem-je", {}, "libhakmem_je"),
    Config("hakmem-pa-off", "hakmem", {"HAKMEM_PAGE_ARENA_ENABLE": "0"}, "libhakmem"),
    Config("hakmem", "hakmem", {}, "libhakmem"),
    # The same library built with HAKMEM_HARDEN=0: what the hardening costs.
    Config("hakmem-unhardened", "hakmem-unhardened", {}, "libhakmem_unhardened"),
    Config("mimalloc", "mimalloc", {}, "libmimalloc"),
    Config("tcmalloc", "tcmalloc", {}, "libtcmalloc"),
]
BASELINE = "jemalloc"

# The in-process arenas workload: (row name, bench_arenas argument, env).
# Under Debian's default opt.retain:true the hooks take back only whole
# alloc results (hooks/hk_extent.c); with retain:false, libhakmem's own
# setting, every freed extent: both are measured, each against jemalloc's
# own hooks under the same setting.
RETAIN_OFF = {"MALLOC_CONF": "retain:false"}
ARENA_ROWS = [
    ("arena default hooks", "default", {}),
    ("arena PageArena hooks", "hakmem", {}),
    ("arena PageArena OFF", "hakmem", {"HAKMEM_PAGE_ARENA_ENABLE": "0"}),
    ("arena default hooks, retain:false", "default", RETAIN_OFF),
    ("arena PageArena hooks, retain:false", "hakmem", RETAIN_OFF),
]
ARENA_BASELINE = "arena default hooks"


def note(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- locating things ------------------------------------------------------

def find_system_lib(soname):
    """Path of a shared library by soname: ldconfig -p first, then globs."""
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True,
                             timeout=20).stdout
        for line in out.splitlines():
            parts = line.strip().split(" => ")
            if len(parts) == 2 and parts[0].split()[0] == soname and "x86-64" in parts[0] \
                    and os.path.exists(parts[1]):
                return parts[1]
        for line in out.splitlines():  # other architectures' naming
            parts = line.strip().split(" => ")
            if len(parts) == 2 and parts[0].split()[0] == soname and os.path.exists(parts[1]):
                return parts[1]
    except (OSError, subprocess.SubprocessError):
        pass
    for pattern in ("/usr/lib/*-linux-gnu/", "/lib/*-linux-gnu/", "/usr/lib64/",
                    "/usr/lib/", "/usr/local/lib/"):
        hits = sorted(glob.glob(pattern + soname))
        if hits:
            return hits[0]
    return None


def find_hakmem(build, name="libhakmem"):
    direct = os.path.join(build, name + ".so")
    if os.path.exists(direct):
        return direct
    hits = sorted(glob.glob(os.path.join(build, "**", name + ".so*"), recursive=True))
    return hits[0] if hits else None


def find_binary(build, name):
    for cand in (os.path.join(build, "bench", name), os.path.join(build, name)):
        if os.access(cand, os.X_OK):
            return cand
    hits = sorted(glob.glob(os.path.join(build, "**", name), recursive=True))
    hits = [h for h in hits if os.access(h, os.X_OK) and os.path.isfile(h)]
    return hits[0] if hits else None


# ---- running one child ----------------------------------------------------

def base_env():
    """The caller's environment without LD_PRELOAD or HAKMEM_* settings, so
    every configuration starts from the same place."""
    return {k: v for k, v in os.environ.items()
            if k != "LD_PRELOAD" and not k.startswith("HAKMEM_")}


class Child:
    pid = None  # the running child, killed on Ctrl-C


def run_child(argv, env, timeout):
    """Run argv; return (exit code or None on timeout, stdout, stderr,
    rusage, wall seconds).  Reaped with os.wait4 for ru_minflt/ru_maxrss."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                   (os.POSIX_SPAWN_DUP2, err.fileno(), 2)]
        t0 = time.monotonic()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
        Child.pid = pid
        deadline = t0 + timeout
        delay = 0.001
        code = None
        while True:
            wpid, status, ru = os.wait4(pid, os.WNOHANG)
            if wpid == pid:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                _, _, ru = os.wait4(pid, 0)
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        Child.pid = None
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        return (code, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"), ru, wall)


def parse_result(stdout):
    """The fields of the last RESULT line, or None."""
    fields = None
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            fields = {}
            for tok in line.split()[1:]:
                key, _, val = tok.partition("=")
                fields[key] = val
    return fields


def as_int(fields, key):
    try:
        return int(fields.get(key, ""))
    except ValueError:
        return None


def live_problem(row, workload, f):
    """Why this RESULT does not prove the expected allocator, or None."""
    if workload == "arenas":
        hooks, pa = as_int(f, "hk_hooks_alloc"), as_int(f, "hk_pa")
        if row.startswith("arena default hooks"):
            if hooks is not None and hooks > 0:
                return "hk_hooks_alloc=%d, expected 0 with default hooks" % hooks
            return None
        want_pa = 0 if row == "arena PageArena OFF" else 1
        if hooks is None or hooks <= 0:
            return "hk_hooks_alloc=%s, expected > 0" % f.get("hk_hooks_alloc")
        if pa != want_pa:
            return "hk_pa=%s, expected %d" % (f.get("hk_pa"), want_pa)
        return None

    cfg = row
    lib = f.get("malloc_lib", "")
    if cfg.expect not in os.path.basename(lib):
        return "malloc_lib=%s, expected %s" % (lib, cfg.expect)
    if cfg.lib == "hakmem" and "hk_mode" not in f:
        return "no hk_* fields: hak_mallctl not found at run time"
    mode, pa = as_int(f, "hk_mode"), as_int(f, "hk_pa")
    pool, hooks = as_int(f, "hk_pool_nmalloc"), as_int(f, "hk_hooks_alloc")
    if cfg.name == "je+pagearena":
        # jemalloc's malloc in libhakmem_je.so, extents from the PageArena,
        # no pools (their statistics do not exist there: -1).
        if hooks is None or hooks <= 0:
            return "hk_hooks_alloc=%s, expected > 0" % f.get("hk_hooks_alloc")
        if pool != -1:
            return "hk_pool_nmalloc=%s, expected -1 (no pools)" % f.get("hk_pool_nmalloc")
    elif cfg.name in ("hakmem", "hakmem-unhardened"):
        if mode != 0:
            return "hk_mode=%s, expected 0" % f.get("hk_mode")
        if workload in ("large_blocks", "malloc_large"):
            if hooks is None or hooks <= 0:
                return "hk_hooks_alloc=%s, expected > 0" % f.get("hk_hooks_alloc")
        elif pool is None or pool <= 0:
            return "hk_pool_nmalloc=%s, expected > 0" % f.get("hk_pool_nmalloc")
    elif cfg.name == "hakmem-pa-off":
        if mode != 0:
            return "hk_mode=%s, expected 0" % f.get("hk_mode")
        if pa != 0:
            return "hk_pa=%s, expected 0" % f.get("hk_pa")
    return None


# Workload fields of the RESULT line kept per run (results.csv's `extra`):
# idle_rss's resident set after the frees, after idling, and each second;
# malloc_large's fastest and slowest repetition inside the process.
EXTRA_FIELDS = ("rss_freed_kib", "rss_idle_kib", "idle_s", "rss_trace_kib",
                "rep_min_s", "rep_max_s")


def one_run(argv, env, timeout, row, workload):
    """Run once and judge it: a dict with status ok / FAILED / NOT LIVE."""
    code, out, err, ru, wall = run_child(argv, env, timeout)
    # Peak RSS: the child's own VmHWM (rss_kib in its RESULT line).  wait4's
    # ru_maxrss is kept too, but on Linux exec carries the pre-exec address
    # space's high-water mark (this Python process) into it.
    r = {"ops": None, "secs": None, "ops_per_s": None, "minflt": ru.ru_minflt,
         "maxrss_kib": ru.ru_maxrss, "ru_maxrss_kib": ru.ru_maxrss, "wall": wall,
         "status": "ok", "detail": "", "extra": {}}
    fields = parse_result(out)
    for key in EXTRA_FIELDS:
        if fields and key in fields:
            r["extra"][key] = fields[key]
    rss = as_int(fields or {}, "rss_kib")
    if rss is not None and rss > 0:
        r["maxrss_kib"] = rss
    last_err = err.strip().splitlines()[-1] if err.strip() else ""
    if code is None:
        r["status"], r["detail"] = "FAILED", "timeout after %gs" % timeout
    elif code != 0 or fields is None:
        why = ("killed by signal %d" % -code) if code < 0 else ("exit status %d" % code)
        if fields is None:
            why += ", no RESULT line"
        r["status"], r["detail"] = "FAILED", why + (": " + last_err if last_err else "")
    elif fields.get("check") != "ok":
        r["status"], r["detail"] = "FAILED", "check=%s" % fields.get("check")
    else:
        try:
            r["ops"], r["secs"] = int(fields["ops"]), float(fields["secs"])
        except (KeyError, ValueError):
            r["status"], r["detail"] = "FAILED", "malformed RESULT line"
            return r
        r["ops_per_s"] = r["ops"] / r["secs"] if r["secs"] > 0 else float("inf")
        problem = live_problem(row, workload, fields)
        if problem:
            r["status"], r["detail"] = "NOT LIVE", problem
        else:
            r["detail"] = fields.get("malloc_lib", "")
    return r


# ---- formatting -------------------------------------------------------------

def fmt_secs(s):
    s = int(round(s))
    return "%dm%02ds" % (s // 60, s % 60) if s >= 60 else "%ds" % s


def fmt_rate(v):
    if v >= 1e6:
        return "%.2f M" % (v / 1e6)
    if v >= 1e3:
        return "%.1f k" % (v / 1e3)
    return "%.1f" % v


def fmt_ratio(v):
    return "%.2f" % v if v < 100 else "%.0f" % v


def geomean(vals):
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else None


def marked(text, best):
    return "**%s** ★" % text if best else text


def is_best(v, vals, higher):
    vals = [x for x in vals if x is not None]
    if v is None or not vals:
        return False
    target = max(vals) if higher else min(vals)
    return abs(v - target) <= 1e-9 * max(abs(target), 1e-300)


# ---- the run ----------------------------------------------------------------

def machine_header(args, scales, libs):
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    thp = ""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            thp = f.read().strip()
    except OSError:
        pass
    commit = ""
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        commit = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    lines = [
        "# HAKMEM bench results",
        "",
        "- date: %s" % datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
        "- machine: nproc=%d, kernel %s, %s%s" % (
            os.cpu_count() or 0, platform.release(), cpu or platform.machine(),
            (", THP %s" % thp) if thp else ""),
        "- command: `%s`" % " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv),
        "- mode: %s, %d reps per configuration (interleaved), median shown%s%s" % (
            "full" if args.full else "quick", args.reps,
            (", git %s" % commit) if commit else "",
            "; idle_rss: %d reps, idling %g s" % (args.reps_of["idle_rss"], args.idle)
            if "idle_rss" in args.only else ""),
        "- scales: %s" % ", ".join("%s=%g" % (w, scales[w]) for w in args.only),
        "- libraries: %s" % ", ".join("%s=%s" % (k, v or "not found") for k, v in libs.items()),
        "- ratios are against stock jemalloc (arenas: against the default-hooks row);"
        " lower is better for every ratio.  ★ marks the best value in a column.",
        "- minor faults: wait4 ru_minflt of the child.  Peak RSS: the child's VmHWM, which it"
        " prints (wait4 ru_maxrss, kept in results.csv, also counts this runner's RSS).",
        "- faults ratio = (minor faults + 1) / (jemalloc minor faults + 1), so zero-fault"
        " rows stay finite.",
    ]
    other = sorted(k for k in os.environ
                   if k in ("MALLOC_CONF", "GLIBC_TUNABLES") or k.startswith(("MIMALLOC_", "TCMALLOC_")))
    if other:
        lines.append("- note: allocator settings inherited from the environment: %s" % ", ".join(other))
    return lines


def summarize(runs, rows, workload):
    """Median per row of one workload; rows failing any rep get no numbers."""
    summary = {}
    for row in rows:
        rs = runs.get((workload, row), [])
        bad = [r for r in rs if r["status"] != "ok"]
        if not rs:
            continue
        if bad:
            summary[row] = {"status": bad[0]["status"], "detail": bad[0]["detail"],
                            "reps_ok": len(rs) - len(bad)}
            continue
        summary[row] = {
            "status": "ok", "detail": "", "reps_ok": len(rs),
            "ops": rs[0]["ops"],
            "ops_per_s": statistics.median(r["ops_per_s"] for r in rs),
            "secs": statistics.median(r["secs"] for r in rs),
            "minflt": statistics.median(r["minflt"] for r in rs),
            "maxrss_kib": statistics.median(r["maxrss_kib"] for r in rs),
            "secs_all": [r["secs"] for r in rs],
        }
        for key in ("rss_freed_kib", "rss_idle_kib", "rep_min_s", "rep_max_s"):
            vals = [extra_float(r, key) for r in rs]
            if vals and None not in vals:
                summary[row][key] = statistics.median(vals)
        spreads = [extra_float(r, "rep_max_s") / extra_float(r, "rep_min_s") for r in rs
                   if extra_float(r, "rep_min_s") and extra_float(r, "rep_max_s") is not None]
        if spreads and len(spreads) == len(rs):
            summary[row]["rep_spread"] = statistics.median(spreads)
        traces = [idle_trace(r) for r in rs]
        if traces and None not in traces:
            n = min(len(t) for t in traces)
            summary[row]["rss_trace_kib"] = [statistics.median(t[i] for t in traces)
                                             for i in range(n)]
    return summary


def extra_float(run, key):
    try:
        return float(run["extra"][key])
    except (KeyError, ValueError):
        return None


def idle_trace(run):
    """idle_rss's per-second RSS readings (KiB) of one run, [] for none."""
    text = run["extra"].get("rss_trace_kib")
    if text is None:
        return None
    if text == "-":
        return []
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        return None


def add_ratios(summary, baseline):
    base = summary.get(baseline)
    for s in summary.values():
        if s["status"] != "ok" or not base or base["status"] != "ok":
            s["time_ratio"] = s["faults_ratio"] = s["rss_ratio"] = None
            continue
        s["time_ratio"] = base["ops_per_s"] / s["ops_per_s"] if s["ops_per_s"] else None
        s["faults_ratio"] = (s["minflt"] + 1) / (base["minflt"] + 1)
        s["rss_ratio"] = s["maxrss_kib"] / base["maxrss_kib"] if base["maxrss_kib"] else None


def workload_table(workload, scale, summary, rows, skipped, baseline):
    ok = [summary[r] for r in rows if r in summary and summary[r]["status"] == "ok"]
    ops = ok[0]["ops"] if ok else None
    title = "## %s (scale %g%s)" % (workload, scale, ", %d ops per run" % ops if ops else "")
    out = [title, "",
           "| config | ops/s | time ratio vs %s | minor faults | faults ratio | peak RSS (MiB) | RSS ratio |"
           % baseline.replace("arena ", ""),
           "|---|---:|---:|---:|---:|---:|---:|"]
    cols = {k: [s.get(k) for s in ok] for k in
            ("ops_per_s", "time_ratio", "minflt", "faults_ratio", "maxrss_kib", "rss_ratio")}
    for row in rows:
        if row in skipped:
            out.append("| %s | skipped: %s | | | | | |" % (row, skipped[row]))
            continue
        s = summary.get(row)
        if s is None:
            continue
        if s["status"] != "ok":
            detail = s["detail"].replace("|", "/")
            out.append("| %s | %s: %s | — | — | — | — | — |" % (row, s["status"], detail))
            continue

        def cell(key, text, higher=False):
            return marked(text, is_best(s.get(key), cols[key], higher))

        na = "n/a"
        out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            row,
            cell("ops_per_s", fmt_rate(s["ops_per_s"]), higher=True),
            cell("time_ratio", fmt_ratio(s["time_ratio"])) if s["time_ratio"] is not None else na,
            cell("minflt", "%d" % s["minflt"]),
            cell("faults_ratio", fmt_ratio(s["faults_ratio"])) if s["faults_ratio"] is not None else na,
            cell("maxrss_kib", "%.1f" % (s["maxrss_kib"] / 1024.0)),
            cell("rss_ratio", fmt_ratio(s["rss_ratio"])) if s["rss_ratio"] is not None else na))
    out.append("")
    return out


def fmt_mib(kib):
    return "%.1f" % (kib / 1024.0)


def idle_table(summary, rows, skipped, idle_s):
    """idle_rss: the resident set after the frees and after idling, per row."""
    ok = [summary[r] for r in rows if r in summary and summary[r]["status"] == "ok"
          and summary[r].get("rss_idle_kib") is not None]
    if not ok:
        return []
    base = summary.get(BASELINE)
    base_idle = base.get("rss_idle_kib") if base and base["status"] == "ok" else None
    out = ["### idle_rss: memory held once everything is freed", "",
           "Resident set (/proc/self/statm) just after every block is freed, and after"
           " idling %g s with two 64 B malloc/free pairs a second; the ratio is against"
           " stock jemalloc's after idling.  Last column: the first second of the idle phase"
           " at which the resident set was at most %d MiB (median of the runs' readings;"
           " never: not within the idle phase)." % (idle_s, IDLE_RSS_GOAL_KIB // 1024), "",
           "| config | peak RSS (MiB) | after the frees (MiB) | after idling (MiB) |"
           " idle RSS ratio | at most %d MiB from |" % (IDLE_RSS_GOAL_KIB // 1024),
           "|---|---:|---:|---:|---:|---:|"]
    cols = {k: [s.get(k) for s in ok] for k in ("maxrss_kib", "rss_freed_kib", "rss_idle_kib")}
    for row in rows:
        if row in skipped:
            out.append("| %s | skipped: %s | | | | |" % (row, skipped[row]))
            continue
        s = summary.get(row)
        if s is None:
            continue
        if s["status"] != "ok" or s.get("rss_idle_kib") is None:
            out.append("| %s | %s | — | — | — | — |" % (row, s["status"] if s["status"] != "ok"
                                                         else "no idle readings"))
            continue
        trace = s.get("rss_trace_kib") or []
        when = next((i + 1 for i, v in enumerate(trace) if v <= IDLE_RSS_GOAL_KIB), None)
        if s["rss_freed_kib"] <= IDLE_RSS_GOAL_KIB:
            when_text = "the frees"
        elif when is not None:
            when_text = "%d s" % when
        else:
            when_text = "never"
        ratio = s["rss_idle_kib"] / base_idle if base_idle else None
        out.append("| %s | %s | %s | %s | %s | %s |" % (
            row,
            marked(fmt_mib(s["maxrss_kib"]), is_best(s["maxrss_kib"], cols["maxrss_kib"], False)),
            marked(fmt_mib(s["rss_freed_kib"]),
                   is_best(s["rss_freed_kib"], cols["rss_freed_kib"], False)),
            marked(fmt_mib(s["rss_idle_kib"]),
                   is_best(s["rss_idle_kib"], cols["rss_idle_kib"], False)),
            fmt_ratio(ratio) if ratio is not None else "n/a", when_text))
    out.append("")
    return out


def spread_table(summary, rows):
    """malloc_large: how steady the time is, between runs and inside one."""
    ok = [r for r in rows if r in summary and summary[r]["status"] == "ok"
          and summary[r].get("rep_spread") is not None]
    if not ok:
        return []
    out = ["### malloc_large: stability", "",
           "Timed seconds of each run (in run order), the slowest over the fastest run, and"
           " the median over runs of the slowest over the fastest repetition inside one"
           " process.", "",
           "| config | median (s) | runs (s) | slowest ÷ fastest run | slowest ÷ fastest repetition |",
           "|---|---:|---|---:|---:|"]
    for row in ok:
        s = summary[row]
        runs = s["secs_all"]
        out.append("| %s | %.3f | %s | %s | %s |" % (
            row, s["secs"], ", ".join("%.3f" % v for v in runs),
            fmt_ratio(max(runs) / min(runs)) if min(runs) > 0 else "n/a",
            fmt_ratio(s["rep_spread"])))
    out.append("")
    return out


def geomean_table(summaries, configs, workloads):
    out = ["## Geometric mean over workloads (vs stock jemalloc)", "",
           "Over the LD_PRELOAD workloads where both the configuration and jemalloc have"
           " numbers (the arenas workload compares hooks, not configurations, and is"
           " left out); faults ratios use (faults + 1) / (jemalloc faults + 1).", "",
           "| config | workloads | time ratio | faults ratio | RSS ratio |",
           "|---|---:|---:|---:|---:|"]
    vals = {}
    for cfg in configs:
        per = {"time_ratio": [], "faults_ratio": [], "rss_ratio": []}
        for w in workloads:
            s = summaries.get(w, {}).get(cfg)
            if s and s["status"] == "ok" and s.get("time_ratio") is not None:
                for k in per:
                    if s.get(k):
                        per[k].append(s[k])
        vals[cfg] = {k: geomean(v) for k, v in per.items()}
        vals[cfg]["n"] = len(per["time_ratio"])
    for cfg in configs:
        v = vals[cfg]
        if not v["n"]:
            out.append("| %s | 0 | — | — | — |" % cfg)
            continue
        cells = []
        for k in ("time_ratio", "faults_ratio", "rss_ratio"):
            best = is_best(v[k], [vals[c][k] for c in configs if vals[c]["n"]], False)
            cells.append(marked(fmt_ratio(v[k]), best) if v[k] is not None else "—")
        out.append("| %s | %d | %s | %s | %s |" % (cfg, v["n"], *cells))
    out.append("")
    return out, vals


def hardening_table(summaries, workloads):
    """hakmem against the same library built with HAKMEM_HARDEN=0."""
    ratios = []
    rows = []
    for w in workloads:
        a = summaries.get(w, {}).get("hakmem")
        b = summaries.get(w, {}).get("hakmem-unhardened")
        if not (a and b and a["status"] == "ok" and b["status"] == "ok"
                and a.get("ops_per_s") and b.get("ops_per_s")):
            continue
        r = b["ops_per_s"] / a["ops_per_s"]
        ratios.append(r)
        rows.append("| %s | %s | %s | %s |" % (w, fmt_rate(a["ops_per_s"]),
                                               fmt_rate(b["ops_per_s"]), fmt_ratio(r)))
    if not ratios:
        return []
    return ["## Cost of hardening", "",
            "hakmem (free-list links encoded with a per-slab key and range-checked) against"
            " hakmem-unhardened (the same library built with HAKMEM_HARDEN=0); a time"
            " ratio above 1 is the cost.", "",
            "| workload | hakmem ops/s | unhardened ops/s | time ratio |", "|---|---:|---:|---:|"] + \
        rows + ["| geometric mean | | | %s |" % fmt_ratio(geomean(ratios)), ""]


# ---- arena kinds: bench_blockcache -------------------------------------------
# A block cache on a no-dump arena (HAK_ARENA_NODUMP on the PageArena)
# against a folly-style standalone no-dump hook and jemalloc's own hooks,
# under retain:false and Debian's default retain:true, each against the
# default hooks with the same setting; and a pointer chase over 512 MiB on a
# huge arena and a plain one.  Rows run interleaved, after the other
# workloads.
KINDS_WORKLOADS = ["blockcache", "chase"]
BLOCKCACHE_ROWS = [
    ("nodump arena on the PageArena, retain:false", "nodump_pa", RETAIN_OFF),
    ("folly-style nodump hook, retain:false", "nodump_folly", RETAIN_OFF),
    ("default hooks, retain:false", "default", RETAIN_OFF),
    ("nodump arena on the PageArena, retain:true", "nodump_pa", {}),
    ("folly-style nodump hook, retain:true", "nodump_folly", {}),
    ("default hooks, retain:true", "default", {}),
]
CHASE_ROWS = [("huge arena (HAK_ARENA_HUGE)", "chase_huge", {}),
              ("plain arena (PageArena hooks)", "chase_plain", {})]


def kinds_live_problem(arg, f):
    """Why a bench_blockcache RESULT does not prove its variant, or None."""
    hooks, kinds = as_int(f, "hook_allocs"), as_int(f, "kind_arenas")
    if arg == "nodump_pa" and (kinds != 1 or not hooks):
        return "kind_arenas=%s hook_allocs=%s, expected 1 and > 0" % (kinds, hooks)
    if arg == "nodump_folly" and (kinds != 0 or not hooks):
        return "hook_allocs=%s, expected > 0 (the folly-style alloc hook)" % hooks
    if arg == "default" and hooks != 0:
        return "hook_allocs=%s, expected 0 with jemalloc's own hooks" % hooks
    huge = as_int(f, "kind_huge_arenas")
    if arg.startswith("chase") and huge != (1 if arg == "chase_huge" else 0):
        return "kind_huge_arenas=%s" % huge
    return None


def perf_dtlb_note():
    """What `perf stat -e dTLB-load-misses` says on this machine."""
    if not shutil.which("perf"):
        return "perf not installed"
    try:
        p = subprocess.run(["perf", "stat", "-x,", "-e", "dTLB-load-misses", "true"],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as e:
        return "perf failed: %s" % e
    line = (p.stderr.strip().splitlines() or [""])[-1]
    return "perf stat -e dTLB-load-misses: %s" % (
        "<not supported>" if "not supported" in line else "counts" if line[:1].isdigit()
        else (line or "no output"))


def kinds_report(args, build, env0, timeout, scales, csv_rows, runs):
    """Run the arena-kinds rows (into runs, keyed (workload, row name));
    return their markdown tables."""
    kinds_run = [w for w in args.only if w in KINDS_WORKLOADS]
    if not kinds_run:
        return []
    binary = find_binary(build, "bench_blockcache")
    if not binary:
        return ["## arena kinds", "", "skipped: bench_blockcache not built", ""]
    plan = [(w, row, rep) for w in kinds_run for rep in range(1, args.reps + 1)
            for row in (BLOCKCACHE_ROWS if w == "blockcache" else CHASE_ROWS)]
    for i, (w, (name, arg, env), rep) in enumerate(plan):
        prior = runs.get((w, name), [])
        if any(r["status"] != "ok" for r in prior):
            continue
        code, out, err, ru, wall = run_child([binary, arg, "%g" % scales[w]],
                                             dict(env0, **env), timeout)
        f = parse_result(out) or {}
        r = {"status": "ok", "detail": "", "minflt": ru.ru_minflt, "wall": wall,
             "maxrss_kib": as_int(f, "rss_kib") or ru.ru_maxrss, "fields": f, "extra": {}}
        last_err = err.strip().splitlines()[-1] if err.strip() else ""
        if code is None:
            r["status"], r["detail"] = "FAILED", "timeout after %gs" % timeout
        elif code != 0 or f.get("check") != "ok":
            r["status"], r["detail"] = "FAILED", "exit %s, check=%s %s" % (
                code, f.get("check"), last_err)
        else:
            try:
                r["ops"], r["secs"] = int(f["ops"]), float(f["secs"])
                r["ops_per_s"] = r["ops"] / r["secs"] if r["secs"] > 0 else float("inf")
            except (KeyError, ValueError):
                r["status"], r["detail"] = "FAILED", "malformed RESULT line"
            problem = r["status"] == "ok" and kinds_live_problem(arg, f)
            if problem:
                r["status"], r["detail"] = "NOT LIVE", problem
        runs.setdefault((w, name), []).append(r)
        csv_rows.append([w, name, rep, r.get("ops", ""), "%.6f" % r["secs"] if "secs" in r else "",
                         "%.1f" % r["ops_per_s"] if "ops_per_s" in r else "", r["minflt"],
                         r["maxrss_kib"], ru.ru_maxrss, r["status"], r["detail"],
                         " ".join("%s=%s" % kv for kv in sorted(f.items())
                                  if kv[0] not in ("workload", "ops", "secs", "check"))])
        note("[kinds %d/%d] %-10s %-45s rep %d: %s, %.2fs wall" % (
            i + 1, len(plan), w, name, rep,
            "%.2fs" % r["secs"] if r["status"] == "ok" else "%s (%s)" % (r["status"], r["detail"]),
            wall))
    md = []
    if "blockcache" in kinds_run:
        for setting in ("retain:false", "retain:true"):
            rows = [n for n, _, _ in BLOCKCACHE_ROWS if n.endswith(setting)]
            summ = summarize(runs, rows, "blockcache")
            add_ratios(summ, rows[2])
            md += workload_table("blockcache, " + setting, scales["blockcache"], summ, rows, {},
                                 rows[2])
            pa, folly, base = (summ.get(n) for n in rows)
            if all(s and s["status"] == "ok" for s in (pa, folly, base)):
                vs_folly = pa["secs"] / folly["secs"]
                if setting == "retain:false":
                    md += ["Goals (retain:false): time %.2fx default hooks (goal <= 1.05: %s), faults"
                           " %.2fx (goal <= 0.5: %s), time %.2fx the folly-style hook (goal <= 1: %s)."
                           % (pa["time_ratio"], "met" if pa["time_ratio"] <= 1.05 else "NOT met",
                              pa["faults_ratio"], "met" if pa["faults_ratio"] <= 0.5 else "NOT met",
                              vs_folly, "met" if vs_folly <= 1.0 else "NOT met"), ""]
                else:
                    md += ["Under retain:true the nodump arena on the PageArena takes %.2fx the time,"
                           " %.2fx the faults and %.2fx the peak RSS of jemalloc's own hooks, and"
                           " %.2fx the time of the folly-style hook."
                           % (pa["time_ratio"], pa["faults_ratio"], pa["rss_ratio"], vs_folly), ""]
    if "chase" in kinds_run:
        md += ["## chase (scale %g): 512 MiB pointer chase" % scales["chase"], "",
               "Time of the timed loop (wall and the thread's CPU time), setup (map, fault in,"
               " link); dTLB read misses counted in-process with perf_event_open (n/a where the"
               " kernel refuses the event; %s)." % perf_dtlb_note(), "",
               "| arena | loads | wall (s) | CPU (s) | ns per load (CPU) | setup (s) | dTLB misses"
               " | AnonHugePages (MiB) | minor faults | peak RSS (MiB) |",
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, _, _ in CHASE_ROWS:
            rs = runs.get(("chase", name), [])
            bad = [r for r in rs if r["status"] != "ok"]
            if not rs:
                continue
            if bad:
                md.append("| %s | %s: %s | | | | | | | | |" % (name, bad[0]["status"],
                                                             bad[0]["detail"].replace("|", "/")))
                continue

            def med(key, rs=rs):
                vals = [float(r["fields"].get(key, "nan")) for r in rs]
                return statistics.median(vals)
            dtlb = med("dtlb_misses")
            md.append("| %s | %d | %.3f | %.3f | %.0f | %.2f | %s | %.0f | %d | %.1f |" % (
                name, int(med("ops")), med("secs"), med("cpu_secs"),
                1e9 * med("cpu_secs") / med("ops"), med("setup_secs"),
                "n/a" if dtlb < 0 else "%d" % dtlb, med("anon_huge_kib") / 1024,
                statistics.median(r["minflt"] for r in rs),
                statistics.median(r["maxrss_kib"] for r in rs) / 1024))
        md.append("")
    return md


GNUPLOT_SCRIPT = """\
set terminal svg size {width},520 dynamic background rgb 'white' font 'sans,11'
set termoption noenhanced
set output '{svg}'
set title '{title}'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set datafile missing '?'
set logscale y 2
set yrange [{ymin}:{ymax}]
set ylabel '{ylabel}'
set grid ytics
set key outside right top
set xtics rotate by -25 nomirror
plot for [i=2:{ncols}] '{dat}' using i:xtic(1) title columnheader(i), \\
     1 with lines dashtype 2 linecolor rgb 'black' notitle
"""


def write_charts(outdir, summaries, configs, workloads):
    gp = shutil.which("gnuplot")
    if not gp:
        note("warning: gnuplot not found, no SVG charts")
        return []
    made = []
    charts = [("time_ratio", "Time ratio vs stock jemalloc (lower is better)", "time ratio"),
              ("faults_ratio", "Minor faults ratio vs stock jemalloc, (f+1)/(f_je+1) (lower is better)",
               "faults ratio"),
              ("rss_ratio", "Peak RSS ratio vs stock jemalloc (lower is better)", "RSS ratio")]
    wl = [w for w in workloads if w != "arenas" and w in summaries]
    if not wl:
        return []
    for key, title, ylabel in charts:
        vals = []
        lines = ["workload " + " ".join(configs)]
        for w in wl:
            cells = []
            for cfg in configs:
                s = summaries[w].get(cfg)
                v = s.get(key) if s and s["status"] == "ok" else None
                cells.append("%.6g" % v if v else "?")
                if v:
                    vals.append(v)
            lines.append(w + " " + " ".join(cells))
        if not vals:
            continue
        dat = os.path.join(outdir, key + ".dat")
        with open(dat, "w") as f:
            f.write("\n".join(lines) + "\n")
        lo = 2 ** math.floor(math.log2(min(vals + [1.0])) - 0.5)
        hi = 2 ** math.ceil(math.log2(max(vals + [1.0])) + 0.5)
        svg = os.path.join(outdir, key + ".svg")
        script = GNUPLOT_SCRIPT.format(width=max(900, 110 * len(wl) + 250), svg=svg,
                                       title=title, ylabel=ylabel, ymin=lo, ymax=hi,
                                       dat=dat, ncols=len(configs) + 1)
        p = subprocess.run([gp], input=script, capture_output=True, text=True)
        if p.returncode != 0 or not os.path.exists(svg):
            note("warning: gnuplot failed for %s: %s" % (key, p.stderr.strip()))
        else:
            made.append(svg)
    return made


def main():
    ap = argparse.ArgumentParser(description="HAKMEM bench runner (see the top of this file).")
    ap.add_argument("--build", required=True, help="CMake build directory")
    ap.add_argument("--full", action="store_true", help="full scales, 5 reps")
    ap.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workloads")
    ap.add_argument("--configs", default=",".join(c.name for c in CONFIGS),
                    help="comma-separated configurations")
    ap.add_argument("--reps", type=int, default=None,
                    help="repetitions (3 quick, 5 full; idle_rss 1 quick, 3 full)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every scale by this")
    ap.add_argument("--idle", type=float, default=None,
                    help="idle_rss's idle seconds, 0-3600 (4 quick, 15 full)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds per run (120 quick, 1200 full)")
    args = ap.parse_args()

    args.only = [w.strip() for w in args.only.split(",") if w.strip()]
    bad = [w for w in args.only if w not in WORKLOADS]
    wanted = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad += [c for c in wanted if c not in [k.name for k in CONFIGS]]
    if bad or not args.only or args.scale <= 0:
        ap.error("unknown workload/config: %s" % ", ".join(bad) if bad else "nothing to run")
    if args.reps is not None and args.reps < 1:
        ap.error("--reps must be at least 1")
    if args.idle is not None and not 0 <= args.idle <= 3600:
        ap.error("--idle must be in [0, 3600] seconds")
    default_reps = 5 if args.full else 3
    args.reps_of = {w: args.reps if args.reps is not None else
                    (FULL_REPS if args.full else QUICK_REPS).get(w, default_reps)
                    for w in WORKLOADS}
    if args.reps is None:
        args.reps = default_reps
    if args.idle is None:
        args.idle = FULL_IDLE if args.full else QUICK_IDLE
    timeout = args.timeout or (1200.0 if args.full else 120.0)
    scales = {w: (FULL_SCALE if args.full else QUICK_SCALE)[w] * args.scale for w in WORKLOADS}

    build = os.path.abspath(args.build)
    bins = {}
    for w in args.only:
        if w == "arenas" or w in KINDS_WORKLOADS:
            continue
        prog = WORKLOAD_BIN.get(w, "bench_workloads")
        if prog not in bins:
            bins[prog] = find_binary(build, prog)
            if not bins[prog]:
                note("error: %s not found under %s; build it first" % (prog, build))
                return 2
    arenas_bin = find_binary(build, "bench_arenas")

    # Resolve the configurations.
    libs = {"hakmem": find_hakmem(build),
            "hakmem-je": find_hakmem(build, "libhakmem_je"),
            "hakmem-unhardened": find_hakmem(build, "libhakmem_unhardened")}
    libs.update({k: find_system_lib(v) for k, v in DEBIAN_LIBS.items()})
    configs = [c for c in CONFIGS if c.name in wanted]
    for c in configs:
        if c.lib:
            c.path = libs[c.lib]
            if not c.path:
                c.missing = ("%s not found" % DEBIAN_LIBS[c.lib]) if c.lib in DEBIAN_LIBS \
                    else "%s.so not built in %s" % (c.expect, build)
                note("note: configuration %s skipped: %s" % (c.name, c.missing))
    live_cfgs = [c for c in configs if not c.missing]
    if "arenas" in args.only and not arenas_bin:
        note("note: arenas workload skipped: bench_arenas not built in %s" % build)

    # The plan: per workload, reps x configurations, interleaved.
    env0 = base_env()
    plan = []
    for w in args.only:
        if w in KINDS_WORKLOADS:
            continue  # run by kinds_report
        nreps = args.reps_of[w]
        for rep in range(1, nreps + 1):
            if w == "arenas":
                if arenas_bin:
                    for name, arg, env in ARENA_ROWS:
                        plan.append((w, name, rep, nreps, [arenas_bin, arg, "%g" % scales[w]],
                                     dict(env0, **env)))
                continue
            argv = [bins[WORKLOAD_BIN.get(w, "bench_workloads")], w, "%g" % scales[w]]
            if w == "idle_rss":
                argv.append("%g" % args.idle)
            for c in live_cfgs:
                env = dict(env0, **c.env)
                if c.path:
                    env["LD_PRELOAD"] = c.path
                plan.append((w, c, rep, nreps, argv, env))

    outdir = os.path.join(build, "bench")
    os.makedirs(outdir, exist_ok=True)
    runs = {}          # (workload, row name) -> [result dicts]
    durations = {}     # (workload, row name) -> [wall seconds]
    csv_rows = []
    t_start = time.monotonic()
    note("bench: %d runs planned (%s mode, %d reps), output in %s"
         % (len(plan), "full" if args.full else "quick", args.reps, outdir))

    def estimate_left(i):
        done = [d for ds in durations.values() for d in ds]
        overall = statistics.mean(done) if done else 0.0
        left = 0.0
        for w, row, _, _, _, _ in plan[i:]:
            name = row if isinstance(row, str) else row.name
            mine = durations.get((w, name))
            same_w = [d for (ww, _), ds in durations.items() if ww == w for d in ds]
            left += statistics.mean(mine) if mine else (statistics.mean(same_w) if same_w else overall)
        return left

    try:
        for i, (w, row, rep, nreps, argv, env) in enumerate(plan):
            name = row if isinstance(row, str) else row.name
            prior = runs.get((w, name), [])
            if any(r["status"] != "ok" for r in prior):
                continue  # already failed: no more reps of this row
            r = one_run(argv, env, timeout, row, w)
            runs.setdefault((w, name), []).append(r)
            durations.setdefault((w, name), []).append(r["wall"])
            csv_rows.append([w, name, rep, r["ops"] if r["ops"] is not None else "",
                             "%.6f" % r["secs"] if r["secs"] is not None else "",
                             "%.1f" % r["ops_per_s"] if r["ops_per_s"] is not None else "",
                             r["minflt"], r["maxrss_kib"], r["ru_maxrss_kib"], r["status"],
                             r["detail"],
                             " ".join("%s=%s" % kv for kv in sorted(r["extra"].items()))])
            res = fmt_rate(r["ops_per_s"]) + " ops/s" if r["status"] == "ok" \
                else "%s (%s)" % (r["status"], r["detail"])
            elapsed = time.monotonic() - t_start
            note("[%d/%d] %-13s %-21s rep %d/%d: %s, %.2fs wall | elapsed %s, ~%s left"
                 % (i + 1, len(plan), w, name, rep, nreps, res, r["wall"],
                    fmt_secs(elapsed), fmt_secs(estimate_left(i + 1))))
    except KeyboardInterrupt:
        if Child.pid:
            os.kill(Child.pid, signal.SIGKILL)
            os.waitpid(Child.pid, 0)
        note("interrupted; reporting what has run")

    # Summaries and tables.
    cfg_names = [c.name for c in configs]
    skipped = {c.name: c.missing for c in configs if c.missing}
    summaries = {}
    md = machine_header(args, scales, libs)
    md.append("")
    for w in args.only:
        if w in KINDS_WORKLOADS:
            continue
        if w == "arenas":
            rows = [r[0] for r in ARENA_ROWS]
            summ = summarize(runs, rows, w)
            if not summ:
                md += ["## arenas", "", "skipped: bench_arenas not built", ""]
                continue
            add_ratios(summ, ARENA_BASELINE)
            summaries[w] = summ
            md += workload_table(w, scales[w], summ, rows, {}, ARENA_BASELINE)
            continue
        summ = summarize(runs, cfg_names, w)
        add_ratios(summ, BASELINE)
        summaries[w] = summ
        md += workload_table(w, scales[w], summ, cfg_names, skipped, BASELINE)
        if w == "idle_rss":
            md += idle_table(summ, cfg_names, skipped, args.idle)
        elif w == "malloc_large":
            md += spread_table(summ, cfg_names)
    if summaries:
        gm_lines, _ = geomean_table(summaries, [c for c in cfg_names if c not in skipped],
                                    [w for w in args.only if w != "arenas"])
        md += gm_lines
        md += hardening_table(summaries, [w for w in args.only if w != "arenas"])
    charts = write_charts(outdir, summaries, [c for c in cfg_names if c not in skipped],
                          args.only)
    if charts:
        md += ["Charts: " + ", ".join(os.path.basename(c) for c in charts), ""]
    md += kinds_report(args, build, env0, timeout, scales, csv_rows, runs)
    text = "\n".join(md)
    print(text, flush=True)

    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(outdir, "results.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["workload", "config", "rep", "ops", "secs", "ops_per_s", "minflt",
                     "maxrss_kib", "ru_maxrss_kib", "status", "detail", "extra"])
        wr.writerows(csv_rows)
    with open(os.path.join(outdir, "summary.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["workload", "config", "reps_ok", "ops", "secs", "ops_per_s", "minflt",
                     "maxrss_kib", "time_ratio", "faults_ratio", "rss_ratio", "status",
                     "detail", "rss_freed_kib", "rss_idle_kib"])
        for w, summ in summaries.items():
            for row, s in summ.items():
                def g(k, fmt="%s"):
                    return fmt % s[k] if s.get(k) is not None else ""
                wr.writerow([w, row, s["reps_ok"], g("ops"), g("secs", "%.6f"),
                             g("ops_per_s", "%.1f"), g("minflt", "%g"), g("maxrss_kib", "%g"),
                             g("time_ratio", "%.4f"), g("faults_ratio", "%.4f"),
                             g("rss_ratio", "%.4f"), s["status"], s["detail"],
                             g("rss_freed_kib", "%g"), g("rss_idle_kib", "%g")])
    note("bench: done in %s; wrote results.md, results.csv, summary.csv%s to %s"
         % (fmt_secs(time.monotonic() - t_start),
            "".join(", " + os.path.basename(c) for c in charts), outdir))
    any_ok = any(r["status"] == "ok" for rs in runs.values() for r in rs)
    return 0 if any_ok else 1


if __name__ == "__main__":
    sys.exit(main())
