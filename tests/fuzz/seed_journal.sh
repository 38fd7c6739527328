#!/usr/bin/env bash
# tests/fuzz/seed_journal.sh DAEMON OUTDIR -- seeds for fuzz_journal.c: the
# files a real lossweightd leaves in its --data-dir, concatenated in the
# order recovery reads them (snapshot first, then segments).
#
# One daemon is driven through every kind of record: jobs created (ew, uw,
# mgda with a Gram, famo with losses_after, dwa with epochs, a barrier job),
# reports decided by all ranks and left open, a step decided by the barrier
# timeout from a subset of the ranks and a late rank after it, a job
# deleted, a job restored from its state document. Seeds:
#   journal         journal-1 as it stood before shutdown (no snapshot)
#   journal-torn    the same, its last record cut short
#   snapshot        the snapshot the SIGTERM wrote (every kind of job state)
#   snapshot-empty  that snapshot and the empty segment after it
#   snapshot-more   after a restart, more reports, kill -9: snapshot + segment
# Nothing is committed: run.sh calls this each time.
set -eu
daemon=${1:?daemon} out=${2:?outdir}
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$out"

start() {
    rm -f "$work/ready"
    "$daemon" --listen 127.0.0.1:0 --ready-file "$work/ready" --data-dir "$work/data" \
        --snapshot-interval-s 0 --log-level error 2>>"$work/log" &
    pid=$!
    for _ in $(seq 1 400); do
        [ -s "$work/ready" ] && break
        kill -0 "$pid" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
        sleep 0.025
    done
    addr=$(cat "$work/ready")
}
stop() { # SIG
    kill "-$1" "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
}
req() { # VERB PATH [BODY]
    if [ $# -gt 2 ]; then
        curl -sS -o /dev/null -X "$1" "http://$addr$2" -H 'Content-Type: application/json' --data "$3"
    else
        curl -sS -o /dev/null -X "$1" "http://$addr$2"
    fi
}
rep() { req POST "/v1/jobs/$1/reports?wait_ms=0" "$2"; }

start
req PUT /v1/jobs/ew '{"tasks": ["a", "b"], "method": "ew", "world_size": 2}'
req PUT /v1/jobs/uw '{"tasks": ["a", "b", "c"], "method": "uw", "sync": "async"}'
req PUT /v1/jobs/mgda '{"tasks": ["a", "b", "c"], "method": "mgda", "params": {"normalization": "loss"}}'
req PUT /v1/jobs/famo '{"tasks": ["a", "b"], "method": "famo"}'
req PUT /v1/jobs/dwa '{"tasks": ["a", "b"], "method": "dwa", "params": {"temperature": 1.5}}'
req PUT /v1/jobs/bar '{"tasks": ["a", "b"], "method": "ew", "world_size": 3, "min_ranks": 1, "barrier_timeout_ms": 100}'
req PUT /v1/jobs/gone '{"tasks": ["a", "b"], "method": "ew"}'
for s in 0 1 2; do
    rep ew "{\"rank\": 0, \"step\": $s, \"losses\": [1.5, 0.$((s + 2))]}"
    rep ew "{\"rank\": 1, \"step\": $s, \"losses\": [1.25, 0.$((s + 3))], \"samples\": 8}"
    rep uw "{\"rank\": 0, \"step\": $s, \"losses\": [1.5, 0.25, 3.$s]}"
    rep mgda "{\"rank\": 0, \"step\": $s, \"losses\": [1, 2, 3], \"gram\": [[1, 0.1, 0.2], [0.1, 2, 0.3], [0.2, 0.3, 3.$s]]}"
    rep famo "{\"rank\": 0, \"step\": $s, \"losses\": [1, 2], \"losses_after\": [0.9, 1.9$s]}"
    rep dwa "{\"rank\": 0, \"step\": $s, \"epoch\": $s, \"losses\": [1, 2.$s]}"
done
rep ew '{"rank": 0, "step": 3, "losses": [1, 2]}'          # left open
rep gone '{"rank": 0, "step": 0, "losses": [1, 2]}'
req DELETE /v1/jobs/gone
rep bar '{"rank": 0, "step": 0, "losses": [1, 2]}'
rep bar '{"rank": 2, "step": 0, "losses": [1.5, 2]}'
sleep 0.4                                                    # the barrier timeout decides step 0
rep bar '{"rank": 1, "step": 0, "losses": [1, 2.5]}'        # a late rank
rep bar '{"rank": 1, "step": 1, "losses": [1, 2.5]}'        # open
curl -sS -o "$work/state.json" "http://$addr/v1/jobs/uw/state"
req PUT /v1/jobs/uw2 '{"tasks": ["a", "b", "c"], "method": "uw", "sync": "async"}'
req PUT /v1/jobs/uw2/state "$(sed 's/"job":"uw"/"job":"uw2"/' "$work/state.json")"
rep uw2 '{"rank": 0, "step": 3, "losses": [1.5, 0.25, 3]}'

j1=$work/data/journal-00000000000000000001.lwj
cp "$j1" "$out/journal"
head -c $(($(stat -c %s "$j1") - 5)) "$j1" > "$out/journal-torn"
stop TERM
snap=$(ls "$work"/data/snapshot-*.lws)
cp "$snap" "$out/snapshot"
cat "$snap" "$work"/data/journal-*.lwj > "$out/snapshot-empty"

start
rep ew '{"rank": 1, "step": 3, "losses": [1, 2.5]}'
rep uw '{"rank": 0, "step": 4, "losses": [1.5, 0.25, 3]}'
rep dwa '{"rank": 0, "step": 3, "epoch": 3, "losses": [1, 2]}'
req DELETE /v1/jobs/mgda
stop KILL
cat "$work"/data/snapshot-*.lws "$work"/data/journal-*.lwj > "$out/snapshot-more"
ls "$out" | wc -l
