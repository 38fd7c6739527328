#!/usr/bin/env bash
# A walk through lossweightd's HTTP API with curl: create a job for two ranks,
# post both ranks' reports (in the background, so the barrier completes),
# read the decision, the history and the metrics, then delete the job.
#
#   clients/curl/walkthrough.sh http://127.0.0.1:7070 [JOB]
#
# Every call prints what it sends and what it gets; any status other than
# the expected one stops the script with a non-zero exit. The tests run this
# script against a live daemon (tests/integration/test_curl_walkthrough.py),
# so these calls are known to work. For a daemon with --token-file set
# LW_TOKEN (or LOSSWEIGHT_TOKEN) to an admin token without a job prefix (the
# walk creates and deletes a job and reads /metrics); it is sent as
# "Authorization: Bearer ..." and never printed. For https:// with a
# self-signed certificate, point curl at it: CURL_CA_BUNDLE=cert.pem.
set -euo pipefail

BASE=${1:?usage: walkthrough.sh BASE_URL [JOB]}
BASE=${BASE%/}
JOB=${2:-walkthrough-$$}
AUTH=()
TOKEN=${LW_TOKEN:-${LOSSWEIGHT_TOKEN:-}}
[ -n "$TOKEN" ] && AUTH=(-H "Authorization: Bearer $TOKEN")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# call EXPECTED_STATUS VERB PATH [JSON_BODY] -- prints the body, checks the status
call() {
    local want=$1 verb=$2 path=$3 body=${4:-} out=$TMP/body.$RANDOM code
    local args=(-sS --max-time 30 -o "$out" -w '%{http_code}' -X "$verb" "${AUTH[@]}")
    [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
    echo "> $verb $path ${body:+$body}"
    code=$(curl "${args[@]}" "$BASE$path") || { echo "curl failed" >&2; return 1; }
    cat "$out"; echo
    if [ "$code" != "$want" ]; then
        echo "unexpected status $code for $verb $path (wanted $want)" >&2
        return 1
    fi
}

echo "== the methods and what each needs"
call 200 GET /v1/methods >/dev/null && echo "(GET /v1/methods: ok)"

echo "== create a job: two tasks, DWA, two ranks"
call 201 PUT "/v1/jobs/$JOB" '{"tasks": ["ctr", "cvr"], "method": "dwa", "params": {"temperature": 2.0}, "world_size": 2, "barrier_timeout_ms": 20000}'
echo "== the same spec again is fine (every rank may create the job)"
call 200 PUT "/v1/jobs/$JOB" '{"tasks": ["ctr", "cvr"], "method": "dwa", "params": {"temperature": 2.0}, "world_size": 2, "barrier_timeout_ms": 20000}'

echo "== steps 0..2: both ranks report; each waits until the other has"
R0=("[0.51, 2.9]" "[0.47, 2.8]" "[0.44, 2.75]")
R1=("[0.53, 3.1]" "[0.49, 3.0]" "[0.45, 2.9]")
for step in 0 1 2; do
    call 200 POST "/v1/jobs/$JOB/reports" \
        "{\"rank\": 0, \"step\": $step, \"epoch\": $step, \"losses\": ${R0[$step]}}" \
        > "$TMP/rank0.$step" &
    r0=$!
    call 200 POST "/v1/jobs/$JOB/reports" \
        "{\"rank\": 1, \"step\": $step, \"epoch\": $step, \"losses\": ${R1[$step]}}" \
        > "$TMP/rank1.$step" &
    r1=$!
    st=0
    wait "$r0" || st=1
    wait "$r1" || st=1
    cat "$TMP/rank0.$step" "$TMP/rank1.$step"
    [ "$st" = 0 ] || exit 1
    # both ranks got the same bytes
    [ "$(tail -1 "$TMP/rank0.$step")" = "$(tail -1 "$TMP/rank1.$step")" ] \
        || { echo "the ranks got different decisions" >&2; exit 1; }
done

echo "== a retry of the same report gets the same answer"
call 200 POST "/v1/jobs/$JOB/reports" '{"rank": 0, "step": 2, "epoch": 2, "losses": [0.44, 2.75]}'
echo "== other numbers for a step already reported are a conflict"
call 409 POST "/v1/jobs/$JOB/reports" '{"rank": 0, "step": 2, "epoch": 2, "losses": [0.5, 2.75]}'
echo "== a report missing what the method needs is refused"
call 400 POST "/v1/jobs/$JOB/reports" '{"rank": 0, "step": 3, "epoch": 3}'

echo "== the latest decision, one step, the history (mean inputs and weights)"
call 200 GET "/v1/jobs/$JOB/weights"
call 200 GET "/v1/jobs/$JOB/steps/1"
call 200 GET "/v1/jobs/$JOB/history?from=0&limit=10"

echo "== the job, its state document, the metrics"
call 200 GET "/v1/jobs/$JOB"
call 200 GET "/v1/jobs/$JOB/state"
metrics=$(call 200 GET /metrics)
printf '%s\n' "$metrics" | grep -E '^lossweight_' | sed -n 1,5p

echo "== delete it"
call 200 DELETE "/v1/jobs/$JOB"
call 404 GET "/v1/jobs/$JOB/weights"
echo "walkthrough ok"
