#!/bin/sh
# je_exports.sh - owns the check of libhakmem_je.so's dynamic symbol table:
# exactly what Debian's libjemalloc.so.2 exports (its je_test_hooks_*
# variables aside) plus HAKMEM's public functions, nothing of jemalloc's
# internals or of HAKMEM's, and pthread_create (which starts the
# PageArena's background thread with the program's first thread).
# Usage: je_exports.sh /path/libhakmem_je.so /path/libjemalloc.so.2
set -eu
lib=${1:?usage: je_exports.sh LIB STOCK_JEMALLOC}
stock=${2:?usage: je_exports.sh LIB STOCK_JEMALLOC}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-exports.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
nm -D --defined-only "$lib" | awk '{print $NF}' | sort >"$tmp/ours"
{
    nm -D --defined-only "$stock" | awk '{print $NF}' | grep -v '^je_test_hooks_'
    printf '%s\n' hak_arena_attach hak_arena_create hak_arena_create_with hak_arena_destroy \
        hak_arena_flags hak_extent_hooks hak_mallctl hak_stats_print pthread_create
} | sort >"$tmp/want"
[ "$(wc -l <"$tmp/want")" -gt 40 ] || { echo "je_exports: FAIL: $stock exports too little" >&2; exit 1; }
if ! diff "$tmp/want" "$tmp/ours" >"$tmp/diff"; then
    echo "je_exports: FAIL: $lib exports differ from $stock plus hak_* (< missing, > extra):" >&2
    cat "$tmp/diff" >&2
    exit 1
fi
echo "je_exports: $(wc -l <"$tmp/ours") symbols, as $stock plus hak_*"
