#!/usr/bin/env bash
# tests/fuzz/run.sh -- run the libFuzzer target $LW_FUZZ for $FUZZ_SECONDS
# (default 20) and print cmocka-style [  PASSED  ] / [  FAILED  ] lines, so
# that tests/run.sh can tally it with the unit tests.
#
# Targets: fuzz_body (fuzz_body.c) and fuzz_journal (fuzz_journal.c). The
# corpus lives beside the binary ($FUZZ_DIR, default the binary's
# directory; fuzz_journal's in its journal/ subdirectory): corpus/ grows
# across runs, seeds/ is rebuilt each time, a crashing input is kept in
# artifacts/, the fuzzer's own output in fuzz.log.
#   fuzz_body     seeds from proto/examples (each example alone, and specs
#                 followed by reports, separated by form feeds as
#                 fuzz_body.c expects)
#   fuzz_journal  seeds from the files of a real daemon ($LW_DAEMON, run by
#                 seed_journal.sh)
set -u
bin=${LW_FUZZ:?set LW_FUZZ to the fuzz target}
secs=${FUZZ_SECONDS:-20}
dir=${FUZZ_DIR:-$(dirname "$bin")}
name=$(basename "$bin")
root=$(cd "$(dirname "$0")/../.." && pwd)
ex=$root/proto/examples
[ "$name" = fuzz_body ] || dir=$dir/${name#fuzz_}
corpus=$dir/corpus seeds=$dir/seeds artifacts=$dir/artifacts log=$dir/fuzz.log
mkdir -p "$corpus" "$artifacts"
rm -rf "$seeds"
mkdir -p "$seeds"

fail() { # WHY
    echo "[  FAILED  ] 1 test(s), listed below:"
    echo "[  FAILED  ] $name ($1)"
    exit 1
}

case $name in
fuzz_journal)
    "$root/tests/fuzz/seed_journal.sh" "${LW_DAEMON:?set LW_DAEMON to lossweightd}" "$seeds" \
        > /dev/null || fail "could not make the seeds with $LW_DAEMON"
    max_len=65536 ;;
*)
    max_len=16384 ;;
esac

if [ "$name" = fuzz_body ]; then
cp "$ex"/*.json "$seeds"/
seed() { # NAME BODY...: the bodies joined by form feeds
    local name=$1; shift
    local first=1
    for b in "$@"; do
        [ $first = 1 ] || printf '\f'
        printf '%s' "$b"
        first=0
    done > "$seeds/$name"
}
spec=$(cat "$ex/job-spec.json") rep=$(cat "$ex/report.json")
seed design "$spec" "${rep/\"rank\": 2/\"rank\": 0}" "${rep/\"rank\": 2/\"rank\": 3}" "$rep"
seed uw '{"tasks": ["a", "b", "c"], "method": "uw", "params": {"lr": 0.01}}' \
    '{"rank": 0, "step": 0, "losses": [1.5, 0.25, 3]}' \
    '{"rank": 0, "step": 1, "losses": [1.25, 0.5, 2.75], "samples": 8}'
seed mgda '{"tasks": ["a", "b", "c"], "method": "mgda", "params": {"normalization": "loss"}}' \
    '{"rank": 0, "step": 0, "losses": [1, 2, 3], "gram": [[1, 0.1, 0.2], [0.1, 2, 0.3], [0.2, 0.3, 3]]}'
seed cagrad '{"tasks": ["a", "b"], "method": "cagrad"}' \
    '{"rank": 0, "step": 7, "gram": [[4, -1], [-1, 1]]}' '{"rank": 0, "step": 8, "gram": [[1, 1], [1, 1]]}'
seed gradnorm '{"tasks": ["a", "b"], "method": "gradnorm", "params": {"alpha": 0.5}}' \
    '{"rank": 0, "step": 0, "epoch": 0, "losses": [1, 2], "grad_norms": [0.5, 1.5]}' \
    '{"rank": 0, "step": 1, "epoch": 0, "losses": [0.9, 1.8], "grad_norms": [0.4, 1.6]}'
seed dwa '{"tasks": ["a", "b"], "method": "dwa", "params": {"temperature": 1.5}}' \
    '{"rank": 0, "step": 0, "epoch": 1, "losses": [1, 2]}' '{"rank": 0, "step": 1, "epoch": 2, "losses": [0.8, 1.9]}' \
    '{"rank": 0, "step": 2, "epoch": 3, "losses": [0.7, 1.7]}'
seed famo '{"tasks": ["a", "b"], "method": "famo"}' \
    '{"rank": 0, "step": 0, "losses": [1, 2], "losses_after": [0.9, 1.95]}'
seed rt_norm '{"tasks": ["a", {"name": "b", "init_loss": 2}], "method": "rt_norm", "seed": 3}' \
    '{"rank": 0, "step": 0, "losses": [1, 2]}'
seed prior "$(cat "$ex/job-spec.priors.json")" '{"rank": 1, "step": 0, "losses": [0.1, 3, 1.5]}'
seed rlw '{"tasks": ["a", "b", "c"], "method": "rlw", "seed": 11}' '{"rank": 0, "step": 5, "losses": [1, 1, 1]}'

fi

"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
    -artifact_prefix="$artifacts/" -print_final_stats=1 "$corpus" "$seeds" > "$log" 2>&1
rc=$?
runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 runs in \2 s/p' "$log" | tail -1)
echo "[==========] $name: ${runs:-no runs}, corpus $(ls "$corpus" | wc -l) inputs (log: $log)"
if [ "$rc" -eq 0 ]; then
    echo "[  PASSED  ] 1 test(s)."
else
    tail -n 60 "$log"
    echo "[  FAILED  ] 1 test(s), listed below:"
    echo "[  FAILED  ] $name (exit $rc; the input is in $artifacts/)"
fi
exit "$rc"
