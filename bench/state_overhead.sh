#!/usr/bin/env bash
# bench/state_overhead.sh — what `state redis://` costs on the hot path (issue
# 11, "row a with a rate= rule in Redis mode >= 0.9x local mode"): the HTTP
# keep-alive request rate of egressd with a rule-wide `rate=` in local mode
# against the same rule leased from a real redis-server, alternating A/B runs,
# medians printed. The rate is far above what the load reaches, so both
# measure the cost of admitting, not the limit. Needs nginx, wrk and
# redis-server (`scripts/deps.sh --bench`). Only 127.0.0.0/8 is used; every
# run is bounded by `timeout`; the EXIT trap stops what it started.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
EGRESSD_BIN=${EGRESSD_BIN:-$ROOT/build/egressd}
SECONDS_RUN=${BENCH_SECONDS:-5}
REPEAT=${BENCH_REPEAT:-5}
T=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$T/nginx.pid" ] && kill "$(cat "$T/nginx.pid")" 2>/dev/null
  [ -f "$T/redis.pid" ] && kill "$(cat "$T/redis.pid")" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT

cat > "$T/nginx.conf" <<NGX
worker_processes 1; daemon on; pid $T/nginx.pid; error_log $T/error.log;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:18691; keepalive_requests 10000000;
  location / { return 200 "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"; } } }
NGX
taskset -c 1 nginx -c "$T/nginx.conf" -p "$T"
taskset -c 1 redis-server --port 18695 --bind 127.0.0.1 --save "" --appendonly no --dir "$T" \
  --daemonize yes --pidfile "$T/redis.pid" >/dev/null
echo "127.0.0.1 origin.bench.test" > "$T/hosts"
common="hosts $T/hosts
resolver 127.0.0.1:1
allow_net 127.0.0.0/8
threads 1
access_log off
allow origin.bench.test ports=18691 rate=100000000/s"
printf 'listen 127.0.0.1:18692\n%s\n' "$common" > "$T/local.conf"
printf 'listen 127.0.0.1:18693\nstate redis://127.0.0.1:18695/0\n%s\n' "$common" > "$T/redis.conf"
taskset -c 0 "$EGRESSD_BIN" -c "$T/local.conf" 2>"$T/local.err" & pids+=($!)
taskset -c 0 "$EGRESSD_BIN" -c "$T/redis.conf" 2>"$T/redis.err" & pids+=($!)
cat > "$T/abs.lua" <<'LUA'
wrk.path = "http://origin.bench.test:18691/"
wrk.headers["Host"] = "origin.bench.test:18691"
LUA
for i in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/18692 && exec 4<>/dev/tcp/127.0.0.1/18693) 2>/dev/null && break; sleep 0.1
done
grep -q "is up" "$T/redis.err" || { echo "egressd did not reach redis:"; cat "$T/redis.err"; exit 1; }

run() {  # port -> req/s
  timeout $((SECONDS_RUN + 10)) taskset -c 1 wrk -t1 -c64 -d"${SECONDS_RUN}s" -s "$T/abs.lua" "http://127.0.0.1:$1" \
    | awk '/Requests\/sec/ {print $2}'
}
local_=(); redis=()
for r in $(seq "$REPEAT"); do
  local_+=("$(run 18692)"); redis+=("$(run 18693)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ml=$(median "${local_[@]}"); mr=$(median "${redis[@]}")
echo "| egressd, keep-alive req/s through a rate= rule (median of $REPEAT x ${SECONDS_RUN}s) | value |"
echo "|---|---|"
echo "| local bucket (state off) | $ml |"
echo "| leased from redis-server (state redis://) | $mr |"
awk -v a="$mr" -v b="$ml" 'BEGIN { printf "| ratio | %.3f |\n", a / b }'
echo "(runs: local ${local_[*]}; redis ${redis[*]})"
