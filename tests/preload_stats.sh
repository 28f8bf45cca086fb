#!/bin/sh
# preload_stats.sh - owns the tests of the HAKMEM_STATS dump at exit: it
# reaches the file stderr was even when the program closed its stderr, and
# option values print as the words the options table accepts.
#
# Usage: preload_stats.sh LIB HELPER HAKMEM_RUN VERSION CASE
#   LIB         absolute path of libhakmem.so
#   HELPER      the preload_stats program (tests/preload_stats.c)
#   HAKMEM_RUN  the build tree's hakmem-run
#   VERSION     HAKMEM_VERSION, as the dump's version line prints it
#   CASE        fclose close names names_json ls
set -eu

lib=${1:?usage: preload_stats.sh LIB HELPER HAKMEM_RUN VERSION CASE}
helper=${2:?usage}
run=${3:?usage}
version=${4:?usage}
case=${5:?usage}

fail() {
    echo "preload_stats: FAIL ($case): $*" >&2
    [ -s "$tmp/err" ] && sed 's/^/  stderr: /' "$tmp/err" >&2
    exit 1
}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-stats.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# The option rows of a run with every option at its default but HAKMEM_STATS=1.
default_opts() {
    cat <<'EOF'
opt.page_arena.enable: 1
opt.page_arena.hot_size: 1024
opt.page_arena.warm_64k: 256
opt.page_arena.warm_128k: 128
opt.page_arena.warm_2m: 0
opt.page_arena.decay_ms: 10000
opt.page_arena.odd_cap_mb: 256
opt.page_arena.thp: 0
opt.background: 1
opt.mode: pools
opt.on_error: abort
opt.guard: 0
opt.stats: 1
EOF
}

# check_dump FILE EXPECTED_OPTS: FILE (from its first line) is one text dump:
# the header, the version, exactly the expected option rows, then only
# "stats.NAME: NUMBER" rows (at least one), then the footer.
check_dump() {
    sed -n 1p "$1" | grep -qx '___ Begin hakmem statistics ___' || fail "no header line first"
    sed -n 2p "$1" | grep -qx "version: $version" || fail "no 'version: $version' line second"
    n=$(wc -l <"$2")
    sed -n "3,$((n + 2))p" "$1" >"$tmp/opts"
    cmp -s "$tmp/opts" "$2" || {
        diff "$2" "$tmp/opts" >&2 || true
        fail "option rows differ from the expected ones (diff: expected, got)"
    }
    sed -n '$p' "$1" | grep -qx '___ End hakmem statistics ___' || fail "no footer line last"
    sed -n "$((n + 3)),\$p" "$1" | sed '$d' >"$tmp/stats"
    [ -s "$tmp/stats" ] || fail "no stats rows"
    if grep -vqE '^stats\.[a-z0-9_.]+: [0-9]+$' "$tmp/stats"; then
        fail "a row that is not 'stats.NAME: NUMBER': $(grep -vE '^stats\.[a-z0-9_.]+: [0-9]+$' "$tmp/stats" | head -n 1)"
    fi
}

# stat NAME: the value of NAME in $tmp/stats.
stat() {
    v=$(sed -n "s/^$1: //p" "$tmp/stats")
    [ -n "$v" ] || fail "no $1 row"
    echo "$v"
}

case "$case" in
fclose | close)
    # The dump goes to the file stderr was at start-up, after the program
    # closed fd 2: the line the program wrote before closing comes first.
    env LD_PRELOAD="$lib" HAKMEM_STATS=1 "$helper" "$case" >"$tmp/out" 2>"$tmp/err" ||
        fail "the helper exited with $?"
    [ "$(cat "$tmp/out")" = "stderr closed" ] || fail "stdout: $(cat "$tmp/out")"
    sed -n 1p "$tmp/err" | grep -qx 'preload_stats: closing stderr' ||
        fail "the helper's own line is not first on stderr"
    sed 1d "$tmp/err" >"$tmp/dump"
    default_opts >"$tmp/want"
    check_dump "$tmp/dump" "$tmp/want"
    # The helper's own blocks are counted (other rows vary with libc).
    tiny=$(stat stats.tiny.nmalloc)
    large=$(stat stats.large.nmalloc)
    [ "$tiny" -ge 1000 ] || fail "stats.tiny.nmalloc is $tiny, expected >= 1000"
    [ "$large" -ge 1 ] || fail "stats.large.nmalloc is $large, expected >= 1"
    echo "ok: dump after $case(stderr): stats.tiny.nmalloc=$tiny stats.large.nmalloc=$large"
    ;;
names)
    # Non-default words and numbers: each option prints as the table's word.
    env LD_PRELOAD="$lib" HAKMEM_STATS=1 HAKMEM_MODE=jemalloc HAKMEM_ON_ERROR=warn \
        HAKMEM_GUARD=1 HAKMEM_PAGE_ARENA_HOT_SIZE=64 "$helper" work >"$tmp/out" 2>"$tmp/err" ||
        fail "the helper exited with $?"
    default_opts | sed -e 's/^opt.page_arena.hot_size: .*/opt.page_arena.hot_size: 64/' \
        -e 's/^opt.mode: .*/opt.mode: jemalloc/' -e 's/^opt.on_error: .*/opt.on_error: warn/' \
        -e 's/^opt.guard: .*/opt.guard: 1/' >"$tmp/want"
    check_dump "$tmp/err" "$tmp/want"
    echo "ok: option rows as words"
    ;;
names_json)
    env LD_PRELOAD="$lib" HAKMEM_STATS=json HAKMEM_MODE=jemalloc HAKMEM_ON_ERROR=warn \
        "$helper" work >"$tmp/out" 2>"$tmp/err" || fail "the helper exited with $?"
    python3 - "$tmp/err" "$version" <<'EOF' || fail "JSON dump not as expected"
import json, sys
doc = json.load(open(sys.argv[1]))["hakmem"]
want = {"page_arena.enable": 1, "page_arena.hot_size": 1024, "page_arena.warm_64k": 256,
        "page_arena.warm_128k": 128, "page_arena.warm_2m": 0, "page_arena.decay_ms": 10000,
        "page_arena.odd_cap_mb": 256, "page_arena.thp": 0, "background": 1,
        "mode": "jemalloc",
        "on_error": "warn", "guard": 0, "stats": "json"}
if doc["version"] != sys.argv[2] or doc["opt"] != want:
    sys.exit("version %r, opt %r" % (doc["version"], doc["opt"]))
if not doc["stats"] or not all(isinstance(v, int) for v in doc["stats"].values()):
    sys.exit("stats: %r" % doc["stats"])
EOF
    echo "ok: JSON option values as words"
    ;;
ls)
    # ls closes its stderr before exit (gnulib close_stdout).
    command -v ls >/dev/null || fail "ls is not installed"
    ls / >"$tmp/ref"
    HAKMEM_STATS=1 "$run" ls / >"$tmp/out" 2>"$tmp/err" || fail "ls under hakmem-run exited with $?"
    cmp -s "$tmp/ref" "$tmp/out" || fail "ls / printed something else under hakmem-run"
    default_opts >"$tmp/want"
    check_dump "$tmp/err" "$tmp/want"
    echo "ok: HAKMEM_STATS=1 hakmem-run ls / printed the statistics"
    ;;
*)
    fail "unknown case"
    ;;
esac
