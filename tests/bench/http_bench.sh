#!/usr/bin/env bash
# http_bench.sh -- lossweightd's report path against nginx serving a static
# file, side by side in one run, with wrk over keep-alive on loopback.
#
#   BUILD=build bash tests/bench/http_bench.sh     (make bench runs it)
#
# Starts Debian's nginx (one worker process, its own config in a temporary
# directory, daemon off, an ephemeral port) serving a 200-byte file, and
# build/lossweightd on an ephemeral port, then for each connection count
# (1, 8, 64) runs `wrk -t N -c N --latency` for the same duration against
# both: nginx GETs the file; lossweightd takes reports (world_size 1, 3
# tasks, method uw), each wrk thread posting to its own job with its step
# increasing per request (tests/bench/report.lua), so every request decides
# a step and none conflicts. nginx is driven with tests/bench/get.lua, the
# same client-side Lua work (a formatted body per request, every answer
# handed back to Lua) with a GET of the file: at 64 threads on one client
# CPU that work, not the server, sets the latency tail, so the baseline must
# carry it too (nginx's p99 at 64 connections went from ~2 ms with plain wrk
# to 4.5-5.5 ms with the script). nginx under plain wrk is also measured and
# printed, for reference. Then barrier rounds: one job with world_size 8,
# 8 threads on 8 connections each a rank, all posting the same steps.
# Prints absolute figures and the ratios lossweightd / nginx with the
# targets (requests/s >= 0.5x nginx, p99 <= 2x nginx). Figures, not a test;
# it exits non-zero only if the measurement itself is broken (a server did
# not start, or any answer was not 2xx).
#
# With two CPUs or more the servers run on CPU 0 and wrk on the others
# (taskset), so that the load generator does not take the server's CPU.
#
# Each figure is the best of BENCH_REPEAT runs (default 3; nginx and
# lossweightd alternate): on a shared machine other load only ever makes a
# run slower, so the best run is the closest to what the server can do.
#
# Environment: BUILD (default build; LWD=path runs another lossweightd),
# BENCH_SECONDS (per run, default 5),
# BENCH_CONNS (default "1 8 64"), BENCH_DATA_DIR=1 to give lossweightd a
# data directory (the journal) with --fsync $BENCH_FSYNC (default always);
# without it nothing is journaled, like nginx writes nothing. BENCH_PIN=0
# leaves placement to the scheduler. BENCH_TOKEN=0 skips the last section
# (the same reports with a bearer token, against the same build).
# nginx-light and wrk are installed with apt-get if missing (sudo if not root).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
secs=${BENCH_SECONDS:-5}
repeat=${BENCH_REPEAT:-3}
conns=${BENCH_CONNS:-"1 8 64"}
daemon=${LWD:-$root/$BUILD/lossweightd}
lua=$root/tests/bench/report.lua
getlua=$root/tests/bench/get.lua
NGINX=${NGINX:-/usr/sbin/nginx}
srv_cpu=() wrk_cpu=() placement="unpinned"
if [ "${BENCH_PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    srv_cpu=(taskset -c 0) wrk_cpu=(taskset -c "1-$(($(nproc) - 1))")
    placement="servers on CPU 0, wrk on CPUs 1-$(($(nproc) - 1))"
fi

die() { echo "http_bench: $*" >&2; exit 1; }

# ---- packages ----
need=""
command -v wrk >/dev/null 2>&1 || need="$need wrk"
[ -x "$NGINX" ] || need="$need nginx-light"
# shellcheck source=tests/bench/common.sh
. "$root/tests/bench/common.sh"
# shellcheck disable=SC2086
install_pkgs $need || die "could not install$need"
[ -x "$daemon" ] || die "$daemon is not built (make BUILD=$BUILD)"

# ---- processes we start, and only those, are stopped at the end ----
tmp=$(mktemp -d /tmp/lw-bench.XXXXXX)
chmod 755 "$tmp"   # nginx's worker may run as nobody: it must read www/
nginx_pid= daemon_pid=
stop() { # PID: TERM, wait up to 5 s, then KILL
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}
cleanup() {
    stop "$nginx_pid"; nginx_pid=
    stop "$daemon_pid"; daemon_pid=
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() { # URL: up to 10 s for a 200
    local i
    for i in $(seq 100); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.1
    done
    return 1
}

# ---- nginx: one worker, a 200-byte file ----
mkdir -p "$tmp/nginx/www" "$tmp/nginx/logs"
head -c 200 /dev/zero | tr '\0' 'x' > "$tmp/nginx/www/file"
nginx_port=$(free_port)
cat > "$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$nginx_port;
        root $tmp/nginx/www;
    }
}
EOF
"${srv_cpu[@]}" "$NGINX" -p "$tmp/nginx" -e "$tmp/nginx/logs/error.log" -c "$tmp/nginx/nginx.conf" \
    </dev/null >"$tmp/nginx/logs/stdout" 2>&1 &
nginx_pid=$!
wait_http "http://127.0.0.1:$nginx_port/file" || { cat "$tmp/nginx/logs/"*; die "nginx did not start"; }
[ "$(curl -s "http://127.0.0.1:$nginx_port/file" | wc -c)" = 200 ] || die "nginx does not serve the file"

# ---- lossweightd ----
dflags=(--listen 127.0.0.1:0 --ready-file "$tmp/ready" --log-level warn --max-jobs 4096)
mode="no data directory (nothing journaled)"
if [ "${BENCH_DATA_DIR:-0}" = 1 ]; then
    dflags+=(--data-dir "$tmp/data" --fsync "${BENCH_FSYNC:-always}")
    mode="--data-dir on $(df -P "$tmp" | awk 'NR==2 {print $1}'), --fsync ${BENCH_FSYNC:-always}"
fi
start_lwd() { # [FLAGS...]: lossweightd with dflags and FLAGS; sets daemon_pid, lwd
    rm -f "$tmp/ready"
    "${srv_cpu[@]}" "$daemon" "${dflags[@]}" "$@" </dev/null >/dev/null 2>"$tmp/daemon.log" &
    daemon_pid=$!
    for i in $(seq 100); do [ -s "$tmp/ready" ] && break; sleep 0.1; done
    [ -s "$tmp/ready" ] || { cat "$tmp/daemon.log"; die "lossweightd did not start"; }
    lwd="http://$(cat "$tmp/ready")"
}
auth=()   # extra request headers (curl and wrk): the bearer token section sets them
start_lwd

create_job() { # ID SPEC
    local st
    st=$(curl -s -o "$tmp/create.out" -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
        "${auth[@]}" --data "$2" "$lwd/v1/jobs/$1")
    [ "$st" = 201 ] || { tail -5 "$tmp/daemon.log"; die "creating job $1: HTTP $st"; }
}

# ---- wrk and its output ----
to_ms() { # "123.45us" / "1.20ms" / "2.00s" -> milliseconds
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}
# best NAME N URL [SCRIPT ARGS...]: run_wrk $repeat times (a fresh job
# prefix each time: ARGS' first word gets the run number appended); sets
# rps (highest), p50 and p99 (lowest), bad (total non-2xx)
best() {
    local name=$1 n=$2 url=$3 b_rps=0 b_p50= b_p99= b_bad=0 r; shift 3
    for r in $(seq "$repeat"); do
        if [ $# -gt 0 ]; then
            setup_run "$r"
            run_wrk "$name" "$n" "$url" "$1" "$2$r-" "${@:3}"
        else
            run_wrk "$name" "$n" "$url"
        fi
        b_rps=$(awk -v a="$b_rps" -v b="$rps" 'BEGIN {print (b > a ? b : a)}')
        b_p50=$(awk -v a="$b_p50" -v b="$p50" 'BEGIN {print (a == "" || b < a ? b : a)}')
        b_p99=$(awk -v a="$b_p99" -v b="$p99" 'BEGIN {print (a == "" || b < a ? b : a)}')
        b_bad=$((b_bad + bad))
    done
    rps=$b_rps p50=$b_p50 p99=$b_p99 bad=$b_bad
}

# run_wrk NAME N URL [SCRIPT ARGS...]: sets rps p50 p99 bad (non-2xx)
run_wrk() {
    local name=$1 n=$2 url=$3; shift 3
    local out="$tmp/wrk-$name-$n.txt" script=()
    if [ $# -gt 0 ]; then script=(-s "$1"); shift; fi
    "${wrk_cpu[@]}" wrk -t "$n" -c "$n" -d "${secs}s" --latency "${auth[@]}" "${script[@]}" "$url" \
        ${1+--} "$@" > "$out" 2>&1 \
        || { cat "$out"; die "wrk failed ($name, $n connections)"; }
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$out")
    local lua_bad
    lua_bad=$(awk '/^NON2XX/ {print $2}' "$out")
    bad=${bad:-0} lua_bad=${lua_bad:-0}   # the same answers, counted by wrk and by the script
    [ "$lua_bad" -gt "$bad" ] && bad=$lua_bad
    local errs
    errs=$(awk '/Socket errors:/ {print}' "$out")
    [ -z "$rps" ] && { cat "$out"; die "no figures from wrk ($name, $n)"; }
    if [ "$bad" != 0 ] || [ -n "$errs" ]; then
        echo "  $name at $n connections: $bad non-2xx answers; $errs"
        grep -E '^NON2XX' "$out" | cut -c1-400
    fi
}

spec3='{"tasks": ["a", "b", "c"], "method": "uw"}'
echo "lossweightd $("$daemon" --version | awk '{print $2}') ($mode) vs nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') (1 worker);"
echo "wrk keep-alive, -t N -c N, ${secs} s per run, best of $repeat; $(nproc) CPUs ($placement)"
echo "reports: world_size 1, 3 tasks, uw; each wrk thread its own job, one step per request"
echo "nginx: GET of the file with the same client work (wrk -s get.lua); plain wrk below the table"
echo
printf '%5s | %12s %12s %7s | %9s %9s | %9s %9s %7s | %s\n' \
    conns "nginx req/s" "lwd req/s" ratio "nginx p50" "lwd p50" "nginx p99" "lwd p99" ratio non-2xx
printf '%s\n' "------+--------------------------------------+---------------------+-----------------------------+--------"
total_bad=0 misses=0 plain=""
for n in $conns; do
    setup_run() { :; }
    best nginx-plain "$n" "http://127.0.0.1:$nginx_port/file"
    plain="$plain$(printf '%5s | %12.0f req/s  p50 %7.3fms  p99 %7.3fms' "$n" "$rps" "$p50" "$p99")"$'\n'
    total_bad=$((total_bad + bad))
    best nginx "$n" "http://127.0.0.1:$nginx_port/file" "$getlua" get
    n_rps=$rps n_p50=$p50 n_p99=$p99 n_bad=$bad
    setup_run() { local k; for k in $(seq 0 $((n - 1))); do create_job "c$n-$1-$k" "$spec3"; done; }
    best lwd "$n" "$lwd" "$lua" "c$n-" jobs
    l_rps=$rps l_p50=$p50 l_p99=$p99 l_bad=$bad
    r_rps=$(awk -v a="$l_rps" -v b="$n_rps" 'BEGIN {printf "%.2f", a / b}')
    r_p99=$(awk -v a="$l_p99" -v b="$n_p99" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
    ok_rps=$(awk -v r="$r_rps" 'BEGIN {print (r >= 0.5 ? "ok" : "MISS")}')
    ok_p99=$(awk -v r="$r_p99" 'BEGIN {print (r <= 2.0 ? "ok" : "MISS")}')
    [ "$ok_rps" = ok ] || misses=$((misses + 1))
    [ "$ok_p99" = ok ] || misses=$((misses + 1))
    total_bad=$((total_bad + n_bad + l_bad))
    printf '%5s | %12.0f %12.0f %5sx%s | %7.3fms %7.3fms | %7.3fms %7.3fms %5sx%s | %s/%s\n' \
        "$n" "$n_rps" "$l_rps" "$r_rps" "$([ "$ok_rps" = ok ] && echo ' ' || echo '!')" \
        "$n_p50" "$l_p50" "$n_p99" "$l_p99" "$r_p99" "$([ "$ok_p99" = ok ] && echo ' ' || echo '!')" \
        "$n_bad" "$l_bad"
done
echo "targets: lossweightd req/s >= 0.5x nginx, p99 <= 2x nginx ('!' marks a miss: $misses)"
echo "nginx under plain wrk (no script: the client's Lua work removed), for reference:"
printf '%s' "$plain"

# ---- barrier rounds: 8 ranks on 8 connections ----
setup_run() { create_job "barrier$1-" '{"tasks": ["a", "b", "c"], "method": "uw", "world_size": 8}'; }
best barrier 8 "$lwd" "$lua" barrier ranks
rounds=$(awk -v r="$rps" 'BEGIN {printf "%.0f", r / 8}')
total_bad=$((total_bad + bad))
decided=$(curl -s "$lwd/v1/jobs/barrier$repeat-" | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["status"]["steps_decided"])')
echo
echo "barrier: world_size 8, 8 ranks on 8 connections: $rounds rounds/s" \
     "($rps reports/s, p50 ${p50}ms, p99 ${p99}ms; the last run decided $decided steps; non-2xx $bad)"

# ---- the cost of bearer tokens: reports at 8 connections, --token-file ----
if [ "${BENCH_TOKEN:-1}" = 1 ]; then
    tn=8 plain_rps=
    setup_run() { local k; for k in $(seq 0 $((tn - 1))); do create_job "p$tn-$1-$k" "$spec3"; done; }
    best lwd "$tn" "$lwd" "$lua" "p$tn-" jobs
    plain_rps=$rps plain_p99=$p99
    total_bad=$((total_bad + bad))
    stop "$daemon_pid"; daemon_pid=
    tok=bench-token-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
    printf '%s trainer\nadmin-%s admin\n' "$tok" "$tok" > "$tmp/tokens"
    chmod 600 "$tmp/tokens"
    start_lwd --token-file "$tmp/tokens"
    auth=(-H "Authorization: Bearer admin-$tok")
    setup_run() { local k; for k in $(seq 0 $((tn - 1))); do create_job "t$tn-$1-$k" "$spec3"; done; }
    best lwdtok "$tn" "$lwd" "$lua" "t$tn-" jobs
    total_bad=$((total_bad + bad))
    echo
    echo "bearer tokens (--token-file, SHA-256 per request): reports at $tn connections" \
         "$(awk -v a="$rps" -v b="$plain_rps" 'BEGIN {printf "%.0f req/s, %.2fx", a, a / b}') the same" \
         "daemon without tokens in this run ($(printf '%.0f' "$plain_rps") req/s); p99 ${p99}ms vs ${plain_p99}ms"
fi

if [ "$total_bad" != 0 ]; then
    echo "http_bench: $total_bad answers were not 2xx: the figures are not valid" >&2
    exit 1
fi
exit 0
