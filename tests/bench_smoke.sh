#!/bin/sh
# bench_smoke.sh - runs one bench workload and checks its RESULT line: the
# program exited 0, its own data check passed, the expected library provided
# malloc, ops is positive, and every field named is present.
# Usage: bench_smoke.sh <malloc_lib substring> <field,field,...|-> program args...
want_lib=$1 fields=$2
shift 2
out=$(mktemp)
"$@" >"$out"
status=$?
line=$(grep '^RESULT ' "$out" | tail -n 1)
rm -f "$out"
fail=0
[ "$status" = 0 ] || { echo "exit status $status, expected 0" >&2; fail=1; }
if [ -z "$line" ]; then
    echo "no RESULT line" >&2
    exit 1
fi
field() { printf '%s\n' "$line" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }
[ "$(field check)" = ok ] || { echo "check=$(field check), expected ok" >&2; fail=1; }
case "$(field malloc_lib)" in
    *"$want_lib"*) ;;
    *) echo "malloc_lib=$(field malloc_lib), expected one containing $want_lib" >&2; fail=1 ;;
esac
ops=$(field ops)
case "$ops" in
    ''|*[!0-9]*|0) echo "ops=$ops, expected a positive count" >&2; fail=1 ;;
esac
if [ "$fields" != - ]; then
    for f in $(printf '%s' "$fields" | tr ',' ' '); do
        printf '%s\n' "$line" | tr ' ' '\n' | grep -q "^$f=" ||
            { echo "no $f= field" >&2; fail=1; }
    done
fi
[ $fail = 0 ] && echo "ok: $line"
exit $fail
