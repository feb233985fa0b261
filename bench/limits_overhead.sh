#!/usr/bin/env bash
# bench/limits_overhead.sh — what limits and metrics cost on the hot path
# (issue 3): the HTTP keep-alive request rate of egressd with a `rate=` rule,
# the admin endpoint being scraped and anomaly detection on, against the same
# egressd without them, in one run, alternating A/B runs, medians printed.
# Needs nginx and wrk (`scripts/deps.sh --bench`). Only 127.0.0.0/8 is used;
# every run is bounded by `timeout`; the EXIT trap stops what it started.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
EGRESSD_BIN=${EGRESSD_BIN:-$ROOT/build/egressd}
SECONDS_RUN=${BENCH_SECONDS:-5}
REPEAT=${BENCH_REPEAT:-5}
T=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [ -f "$T/nginx.pid" ] && kill "$(cat "$T/nginx.pid")" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT

cat > "$T/nginx.conf" <<NGX
worker_processes 1; daemon on; pid $T/nginx.pid; error_log $T/error.log;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:18391; keepalive_requests 10000000;
  location / { return 200 "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"; } } }
NGX
taskset -c 1 nginx -c "$T/nginx.conf" -p "$T"
echo "127.0.0.1 origin.bench.test" > "$T/hosts"
common="hosts $T/hosts
resolver 127.0.0.1:1
allow_net 127.0.0.0/8
threads 1
access_log $T/access-\$N.log"
printf 'listen 127.0.0.1:18392\n%s\nallow origin.bench.test ports=18391\n' "${common/\$N/plain}" > "$T/plain.conf"
printf 'listen 127.0.0.1:18393\nadmin 127.0.0.1:18394\n%s\nallow origin.bench.test ports=18391 rate=100000000/s conns=100000\nanomaly requests=100000000/m unique_domains=1000\n' \
  "${common/\$N/limits}" > "$T/limits.conf"
taskset -c 0 "$EGRESSD_BIN" -c "$T/plain.conf" 2>"$T/plain.err" & pids+=($!)
taskset -c 0 "$EGRESSD_BIN" -c "$T/limits.conf" 2>"$T/limits.err" & pids+=($!)
cat > "$T/abs.lua" <<'LUA'
wrk.path = "http://origin.bench.test:18391/"
wrk.headers["Host"] = "origin.bench.test:18391"
LUA
for i in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/18392 && exec 4<>/dev/tcp/127.0.0.1/18393) 2>/dev/null && break; sleep 0.1
done
# A scraper hitting /metrics every 100 ms during the limited runs.
( for i in $(seq $((SECONDS_RUN * REPEAT * 20))); do curl -s -o /dev/null http://127.0.0.1:18394/metrics || true; sleep 0.1; done ) & pids+=($!)

run() {  # port -> req/s
  timeout $((SECONDS_RUN + 10)) taskset -c 1 wrk -t1 -c64 -d"${SECONDS_RUN}s" -s "$T/abs.lua" "http://127.0.0.1:$1" \
    | awk '/Requests\/sec/ {print $2}'
}
plain=(); limits=()
for r in $(seq "$REPEAT"); do
  plain+=("$(run 18392)"); limits+=("$(run 18393)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mp=$(median "${plain[@]}"); ml=$(median "${limits[@]}")
echo "| egressd, keep-alive req/s (median of $REPEAT x ${SECONDS_RUN}s) | value |"
echo "|---|---|"
echo "| plain allow rule, no admin endpoint | $mp |"
echo "| rate= + conns= rule, /metrics scraped every 100 ms, anomaly thresholds set | $ml |"
awk -v a="$ml" -v b="$mp" 'BEGIN { printf "| ratio | %.3f |\n", a / b }'
echo "(runs: plain ${plain[*]}; limits ${limits[*]})"
