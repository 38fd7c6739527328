#!/usr/bin/env bash
# Runs test programs and tallies them; the last line is "N passed, N failed".
#   tests/run.sh unit BIN...        cmocka programs (each prints [  PASSED  ] / [  FAILED  ])
#   tests/run.sh pytest DIR         a pytest directory under /usr/bin/python3
# Each mode appends its counts to $LW_TALLY (if set) so `make test` can print
# one total at the end.
set -u
mode=$1; shift
passed=0; failed=0; status=0
case "$mode" in
unit)
    for t in "$@"; do
        echo "== $t"
        out=$("$t" 2>&1); rc=$?
        printf '%s\n' "$out"
        p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
        f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
        passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
        if [ "$rc" -ne 0 ] && [ -z "$f" ]; then failed=$((failed + 1)); fi
        [ "$rc" -eq 0 ] || status=1
    done ;;
pytest)
    dir=$1
    if ls "$dir"/test_*.py >/dev/null 2>&1; then
        out=$(/usr/bin/python3 -m pytest -q -p no:cacheprovider "$dir" 2>&1); rc=$?
        printf '%s\n' "$out"
        last=$(printf '%s\n' "$out" | tail -1)
        p=$(printf '%s\n' "$last" | grep -o '[0-9]* passed' | grep -o '[0-9]*')
        f=$(printf '%s\n' "$last" | grep -o '[0-9]* failed' | grep -o '[0-9]*')
        e=$(printf '%s\n' "$last" | grep -o '[0-9]* error' | grep -o '[0-9]*')
        passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0} + ${e:-0}))
        [ "$rc" -eq 0 ] || status=1
    fi ;;
total)
    if [ -n "${LW_TALLY:-}" ] && [ -f "$LW_TALLY" ]; then
        read -r passed failed < <(awk '{p+=$1; f+=$2} END {print p+0, f+0}' "$LW_TALLY")
    fi
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]; exit $? ;;
esac
[ -n "${LW_TALLY:-}" ] && echo "$passed $failed" >> "$LW_TALLY"
echo "$mode: $passed passed, $failed failed"
exit $status
