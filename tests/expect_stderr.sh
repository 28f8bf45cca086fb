#!/bin/sh
# expect_stderr.sh - runs a command and checks its exit status and that its
# stderr is exactly the expected text.
# Usage: expect_stderr.sh <status> <expected-stderr> command args...
want_status=$1 want_err=$2
shift 2
err=$(mktemp)
"$@" >/dev/null 2>"$err"
status=$?
got=$(cat "$err")
rm -f "$err"
fail=0
if [ "$status" != "$want_status" ]; then
    echo "exit status $status, expected $want_status" >&2
    fail=1
fi
if [ "$got" != "$want_err" ]; then
    printf 'stderr:\n%s\nexpected:\n%s\n' "$got" "$want_err" >&2
    fail=1
fi
[ $fail = 0 ] && echo "ok: status $status, stderr as expected"
exit $fail
