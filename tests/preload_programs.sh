#!/bin/sh
# preload_programs.sh - owns the LD_PRELOAD runs of real programs
# (docs/DESIGN.md: What HAKMEM is, Tests): python3 with threads, sort on
# ~50 MB, sqlite3 with 100k rows, gcc and g++ compiling generated sources, git
# init/commit/log/gc, and HAKMEM_STATS / HAKMEM_MODE=jemalloc runs of the
# python case; the generic cases run under libhakmem.so and under
# libhakmem_je.so, and python_je checks the statistics of the latter.  Each
# case checks the program's output (against a run without HAKMEM where that
# is the clearest reference) and that HAKMEM printed nothing on stderr.
#
# Usage: preload_programs.sh /abs/path/libhakmem.so CASE
#   CASE: python python_stats python_jemalloc sort sqlite gcc gxx git
#         python_je (LIB: libhakmem_je.so)
# A missing program is a failure: third_party/install-deps installs them.
set -eu

lib=${1:?usage: preload_programs.sh LIB CASE}
case=${2:?usage: preload_programs.sh LIB CASE}

fail() {
    echo "preload_programs: FAIL ($case): $*" >&2
    exit 1
}
case "$lib" in
/*) ;;
*) fail "library path '$lib' is not absolute (children that cd would lose it)" ;;
esac
[ -r "$lib" ] || fail "$lib not readable"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-prog.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

need() {
    command -v "$1" >/dev/null 2>&1 ||
        fail "$1 is not installed (third_party/install-deps installs it)"
}

# hk [NAME=VALUE]... PROG ARGS...: run under HAKMEM; stderr goes to $tmp/err.
hk() {
    env LD_PRELOAD="$lib" "$@" 2>"$tmp/err"
}

# The preloaded run printed nothing on stderr (no hakmem: lines).
quiet() {
    if [ -s "$tmp/err" ]; then
        cat "$tmp/err" >&2
        fail "unexpected stderr from $1"
    fi
}

# hkstat NAME: the value of NAME in a HAKMEM_STATS=1 dump in $tmp/err.
hkstat() {
    v=$(sed -n "s/^$1: \\([0-9][0-9]*\\)\$/\\1/p" "$tmp/err" | head -n 1)
    [ -n "$v" ] || {
        cat "$tmp/err" >&2
        fail "no '$1:' line in the HAKMEM_STATS output"
    }
    echo "$v"
}

# hkword NAME: the word an option spelled in words (opt.mode, opt.on_error)
# has in a HAKMEM_STATS=1 dump in $tmp/err.
hkword() {
    v=$(sed -n "s/^$1: \\([a-z][a-z]*\\)\$/\\1/p" "$tmp/err" | head -n 1)
    [ -n "$v" ] || {
        cat "$tmp/err" >&2
        fail "no '$1:' line with a word in the HAKMEM_STATS output"
    }
    echo "$v"
}

pick_python() {
    if [ -x /usr/bin/python3 ]; then
        echo /usr/bin/python3
    else
        need python3
        command -v python3
    fi
}

write_py() {
    cat >"$tmp/threads.py" <<'EOF'
import threading, hashlib

N = 4
results = [None] * N
shared = []
lock = threading.Lock()

def work(i):
    d = {}
    keep = []
    for k in range(60000):
        s = str(k * (i + 1))
        d[s] = [k, s * (k % 5)]
        if k % 3 == 0:
            keep.append(bytes(k % 700))
        if k % 7 == 0:
            d.pop(str((k - 7) * (i + 1)), None)
        if k % 1000 == 0:
            with lock:          # handed to another thread, freed there
                shared.append(bytearray(k % 50000 + 1))
    results[i] = sum(v[0] for v in d.values()) + sum(len(b) for b in keep)

threads = [threading.Thread(target=work, args=(i,)) for i in range(N)]
for t in threads:
    t.start()
for t in threads:
    t.join()
sizes = sum(len(b) for b in shared)
del shared[:]
big = bytearray(8 << 20)        # above 2 MiB: the jemalloc arena
big[-1] = 7
digest = hashlib.sha256(big).hexdigest()[:16]
print("threads=%d total=%d shared=%d big=%d last=%d sha=%s" %
      (N, sum(results), sizes, len(big), big[-1], digest))
EOF
}

case "$case" in
python | python_stats | python_jemalloc | python_je)
    py=$(pick_python)
    write_py
    "$py" "$tmp/threads.py" >"$tmp/ref" || fail "$py without HAKMEM failed"
    case "$case" in
    python)
        hk "$py" "$tmp/threads.py" >"$tmp/out" || fail "python3 under HAKMEM exited with $?"
        quiet python3
        ;;
    python_stats)
        hk HAKMEM_STATS=1 "$py" "$tmp/threads.py" >"$tmp/out" ||
            fail "python3 under HAKMEM_STATS=1 exited with $?"
        tiny=$(hkstat stats.tiny.nmalloc)
        large=$(hkstat stats.large.nmalloc)
        echo "stats.tiny.nmalloc=$tiny stats.large.nmalloc=$large"
        [ "$tiny" -gt 0 ] || fail "stats.tiny.nmalloc is 0: the pools were not used"
        [ "$large" -gt 0 ] || fail "stats.large.nmalloc is 0: the jemalloc arena was not used"
        grep -q '^___ Begin hakmem statistics ___$' "$tmp/err" || fail "no statistics header"
        ;;
    python_jemalloc)
        HAKMEM_MODE=jemalloc hk HAKMEM_STATS=1 "$py" "$tmp/threads.py" >"$tmp/out" ||
            fail "python3 under HAKMEM_MODE=jemalloc exited with $?"
        mode=$(hkword opt.mode)
        hooks=$(hkstat stats.hooks.alloc_calls)
        large=$(hkstat stats.large.nmalloc)
        pools=$(($(hkstat stats.tiny.nmalloc) + $(hkstat stats.mid.nmalloc) + $(hkstat stats.l25.nmalloc)))
        echo "opt.mode=$mode stats.hooks.alloc_calls=$hooks stats.large.nmalloc=$large pools.nmalloc=$pools"
        [ "$mode" = jemalloc ] || fail "opt.mode is $mode, expected jemalloc"
        [ "$hooks" -gt 0 ] || fail "stats.hooks.alloc_calls is 0: no extent came from the PageArena"
        [ "$large" -gt 10000 ] || fail "stats.large.nmalloc is $large: allocations did not go to jemalloc"
        # Every size goes to the hooked arenas (only a malloc made from inside
        # jemalloc could reach the pools, and python makes none).
        [ "$pools" -eq 0 ] || fail "the pools served $pools mallocs in jemalloc mode"
        ;;
    python_je)
        # jemalloc's own statistics at exit prove it served malloc (with the
        # library's retain:false); HAKMEM's, that extents came from the
        # PageArena for several arenas (main's and the threads').
        hk HAKMEM_STATS=1 MALLOC_CONF=stats_print:true "$py" "$tmp/threads.py" >"$tmp/out" ||
            fail "python3 under libhakmem_je.so exited with $?"
        grep -q '^___ Begin jemalloc statistics ___$' "$tmp/err" ||
            fail "no jemalloc statistics at exit: jemalloc did not serve malloc"
        grep -q '^  opt.retain: false$' "$tmp/err" || fail "jemalloc runs without opt.retain: false"
        hooks=$(hkstat stats.hooks.alloc_calls)
        arenas=$(hkstat stats.hooks.arenas)
        echo "stats.hooks.alloc_calls=$hooks stats.hooks.arenas=$arenas"
        [ "$hooks" -gt 0 ] || fail "stats.hooks.alloc_calls is 0: no extent came from the PageArena"
        [ "$arenas" -ge 2 ] || fail "stats.hooks.arenas is $arenas: the threads' arenas are not on the PageArena"
        if grep -q '^stats\.tiny\.' "$tmp/err"; then
            fail "pool statistics in libhakmem_je.so's output: not the jemalloc-only library"
        fi
        ;;
    esac
    cat "$tmp/out"
    cmp -s "$tmp/ref" "$tmp/out" || fail "output differs from the run without HAKMEM: $(cat "$tmp/ref")"
    ;;

sort)
    need sort
    need awk
    need cmp
    LC_ALL=C awk 'BEGIN { srand(20240601)
        for (i = 0; i < 1300000; i++)
            printf "%08x %d line-%d %s\n", int(rand() * 4294967295), i, i % 977, substr("abcdefghijklmnopqrstuvwxyz", 1 + i % 26)
    }' >"$tmp/in"
    bytes=$(wc -c <"$tmp/in")
    [ "$bytes" -gt 40000000 ] || fail "generated only $bytes bytes"
    LC_ALL=C sort "$tmp/in" >"$tmp/ref" || fail "sort without HAKMEM failed"
    hk LC_ALL=C sort "$tmp/in" >"$tmp/out" || fail "sort under HAKMEM exited with $?"
    quiet sort
    cmp "$tmp/ref" "$tmp/out" || fail "sort output differs from the run without HAKMEM"
    hk LC_ALL=C sort -k3,3 -k2,2n -S 8M "$tmp/in" >"$tmp/out2" || fail "sort -k3,3 -k2,2n under HAKMEM"
    quiet sort
    LC_ALL=C sort -k3,3 -k2,2n -S 8M "$tmp/in" | cmp - "$tmp/out2" ||
        fail "sort -k3,3 -k2,2n output differs from the run without HAKMEM"
    echo "sorted $bytes bytes twice, identical to the reference"
    ;;

sqlite)
    need sqlite3
    need awk
    {
        echo "PRAGMA journal_mode=WAL;"
        echo "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v INTEGER, b BLOB);"
        echo "BEGIN;"
        awk 'BEGIN { for (i = 1; i <= 100000; i++)
            printf "INSERT INTO t(name, v, b) VALUES(%crow%d%c, %d, randomblob(%d));\n", 39, i, 39, i * 7 % 1000, i % 200 }'
        echo "COMMIT;"
        echo "CREATE INDEX tv ON t(v);"
        # randomblob(0) is one byte: sum(length(b)) = 500 * (0 + 1 + ... + 199) + 500
        echo "SELECT count(*), sum(id), sum(v), sum(length(b)) FROM t;"
        echo "SELECT count(*) FROM t WHERE v < 500;"
        echo "SELECT count(DISTINCT name) FROM t;"
        echo "SELECT group_concat(n) FROM (SELECT count(*) AS n FROM t GROUP BY v % 4 ORDER BY v % 4);"
    } >"$tmp/load.sql"
    (cd "$tmp" && hk sqlite3 db.sqlite <load.sql >out) || fail "sqlite3 under HAKMEM exited with $?"
    quiet sqlite3
    printf 'wal\n100000|5000050000|49950000|9950500\n50000\n100000\n25000,25000,25000,25000\n' >"$tmp/want"
    cat "$tmp/out"
    cmp -s "$tmp/want" "$tmp/out" || fail "unexpected sqlite3 output; expected: $(cat "$tmp/want")"
    # Reopen the database under HAKMEM and check it again.
    (cd "$tmp" && echo "PRAGMA integrity_check; SELECT count(*), max(id) FROM t WHERE v = 7;" |
        hk sqlite3 db.sqlite >out2) || fail "sqlite3 reopen under HAKMEM exited with $?"
    quiet sqlite3
    printf 'ok\n100|99001\n' | cmp -s - "$tmp/out2" || fail "unexpected reopen output: $(cat "$tmp/out2")"
    ;;

gcc)
    need gcc
    {
        echo '#include <stdio.h>'
        echo '#include <string.h>'
        awk 'BEGIN { for (i = 0; i < 2000; i++)
            printf "int f%d(int x) { char b[32]; int n = snprintf(b, sizeof b, \"%%d\", x * %d); return x * %d + 1 + (int)strlen(b) - n; }\n", i, i, i }'
        printf 'typedef int (*fn)(int);\nstatic const fn table[] = {'
        awk 'BEGIN { for (i = 0; i < 2000; i++) printf "f%d,", i }'
        echo '};'
        echo 'int main(void) {'
        echo '    long s = 0;'
        echo '    for (unsigned i = 0; i < sizeof table / sizeof table[0]; i++) s += table[i](3);'
        printf '%s\n' '    printf("functions=%u sum=%ld\n", (unsigned)(sizeof table / sizeof table[0]), s);'
        echo '    return 0;'
        echo '}'
    } >"$tmp/gen.c"
    (cd "$tmp" && hk gcc -O2 -Wall -o gen gen.c) || { rc=$?; cat "$tmp/err" >&2; fail "gcc under HAKMEM exited with $rc"; }
    quiet gcc
    out=$("$tmp/gen") || fail "the compiled program failed"
    echo "$out"
    [ "$out" = "functions=2000 sum=5999000" ] || fail "compiled program printed '$out'"
    ;;

gxx)
    need g++
    cat >"$tmp/gen.cc" <<'EOF'
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>
template <int N> struct Sum { static constexpr long value = N + Sum<N - 1>::value; };
template <> struct Sum<0> { static constexpr long value = 0; };
int main() {
    std::map<std::string, std::vector<int>> m;
    for (int i = 0; i < 10000; i++)
        m[std::to_string(i % 100)].push_back(i);
    long s = 0;
    for (auto &kv : m)
        for (int v : kv.second)
            s += v;
    auto p = std::make_unique<long[]>(1 << 20);
    p[(1 << 20) - 1] = Sum<300>::value;
    std::cout << "keys=" << m.size() << " sum=" << s << " tmpl=" << p[(1 << 20) - 1] << "\n";
}
EOF
    (cd "$tmp" && hk g++ -O2 -std=c++17 -o gen gen.cc) || { rc=$?; cat "$tmp/err" >&2; fail "g++ under HAKMEM exited with $rc"; }
    quiet g++
    out=$(env LD_PRELOAD="$lib" "$tmp/gen") || fail "the compiled program failed under HAKMEM"
    echo "$out"
    [ "$out" = "keys=100 sum=49995000 tmpl=45150" ] || fail "compiled program printed '$out'"
    ;;

git)
    need git
    repo="$tmp/repo"
    mkdir "$repo"
    export HOME="$tmp" GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=hakmem GIT_AUTHOR_EMAIL=hakmem@example.invalid \
        GIT_COMMITTER_NAME=hakmem GIT_COMMITTER_EMAIL=hakmem@example.invalid
    cd "$repo"
    hk git -c init.defaultBranch=main init -q . || fail "git init exited with $?"
    quiet "git init"
    i=0
    while [ $i -lt 200 ]; do
        echo "file $i $(printf '%0200d' $i)" >"f$i.txt"
        i=$((i + 1))
    done
    hk git add . || fail "git add exited with $?"
    quiet "git add"
    hk git commit -q -m "hakmem test commit" || fail "git commit exited with $?"
    quiet "git commit"
    echo changed >>f7.txt
    hk git commit -q -a -m "second commit under hakmem" || fail "git commit -a exited with $?"
    quiet "git commit -a"
    hk git gc -q || fail "git gc exited with $?"
    quiet "git gc"
    log=$(hk git log --format=%s) || fail "git log exited with $?"
    quiet "git log"
    echo "$log"
    [ "$log" = "second commit under hakmem
hakmem test commit" ] || fail "unexpected git log: $log"
    hk git fsck --no-progress >/dev/null || fail "git fsck exited with $?"
    quiet "git fsck"
    files=$(hk git ls-files | wc -l)
    [ "$files" -eq 200 ] || fail "git ls-files lists $files files"
    ;;

*)
    fail "unknown case"
    ;;
esac
echo "preload_programs: $case ok"
