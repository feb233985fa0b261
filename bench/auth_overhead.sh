#!/usr/bin/env bash
# bench/auth_overhead.sh — what proxy credentials cost on the hot path
# (issue 10): row a of the load benchmark (HTTP keep-alive GETs through the
# proxy) against egressd with `auth required` and Basic credentials on every
# request, and against the same egressd without agents, in one run,
# alternating A/B runs, medians printed, with egressd's CPU per request
# (utime + stime from /proc, so a slow origin or load generator does not
# hide a difference). Needs nginx (`scripts/deps.sh --bench`) and a C
# compiler (bench/load/loadgen.c is built here). Only 127.0.0.0/8 is used;
# every run is bounded by `timeout`; the EXIT trap stops what it started.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
EGRESSD_BIN=${EGRESSD_BIN:-$ROOT/build/egressd}
SECONDS_RUN=${BENCH_SECONDS:-5}
REPEAT=${BENCH_REPEAT:-5}
CONNS=${BENCH_CONNS:-64}
T=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [ -f "$T/nginx.pid" ] && kill "$(cat "$T/nginx.pid")" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT

cc -O2 -o "$T/loadgen" "$HERE/load/loadgen.c"
cat > "$T/nginx.conf" <<NGX
worker_processes 1; daemon on; pid $T/nginx.pid; error_log $T/error.log;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:18491; keepalive_requests 10000000;
  location / { return 200 "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"; } } }
NGX
taskset -c 1 nginx -c "$T/nginx.conf" -p "$T"
echo "127.0.0.1 origin.bench.test" > "$T/hosts"
TOKEN=bench-token-0123456789abcdef0123456789abcdef
HASH=$(printf %s "$TOKEN" | "$EGRESSD_BIN" hash-token)
AUTH="Proxy-Authorization: Basic $(printf %s "bench-agent:$TOKEN" | base64 -w0)"
common="hosts $T/hosts
resolver 127.0.0.1:1
allow_net 127.0.0.0/8
threads 1
access_log $T/access-\$N.log"
printf 'listen 127.0.0.1:18492\n%s\nallow origin.bench.test ports=18491\n' "${common/\$N/plain}" > "$T/plain.conf"
{
  printf 'listen 127.0.0.1:18493\n%s\n' "${common/\$N/auth}"
  # 1000 agents: the lookup must not depend on their number.
  for i in $(seq 999); do printf 'agent a%s token=%s\n' "$i" "$(printf %s "t$i" | "$EGRESSD_BIN" hash-token)"; done
  printf 'agent bench-agent token=%s\nauth required\nallow origin.bench.test ports=18491 agent=bench-agent\n' "$HASH"
} > "$T/auth.conf"
taskset -c 0 "$EGRESSD_BIN" -c "$T/plain.conf" 2>"$T/plain.err" & pids+=($!); plain_pid=$!
taskset -c 0 "$EGRESSD_BIN" -c "$T/auth.conf" 2>"$T/auth.err" & pids+=($!); auth_pid=$!
for i in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/18492 && exec 4<>/dev/tcp/127.0.0.1/18493) 2>/dev/null && break; sleep 0.1
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
run() {  # port pid [extra header] -> "req/s cpu_us_per_req s2xx"
  local before after out
  before=$(ticks "$2")
  out=$(timeout $((SECONDS_RUN + 10)) taskset -c 1 "$T/loadgen" -m keepalive -a "127.0.0.1:$1" -c "$CONNS" \
          -d "$SECONDS_RUN" -r "http://origin.bench.test:18491/" -H origin.bench.test:18491 ${3:+-A "$3"})
  after=$(ticks "$2")
  awk -v o="$out" -v b="$before" -v a="$after" -v hz="$HZ" 'BEGIN {
    n = split(o, kv, " "); for (i = 1; i <= n; i++) { split(kv[i], p, "="); v[p[1]] = p[2] }
    printf "%s %.2f %s\n", v["rate"], (a - b) / hz * 1e6 / (v["requests"] ? v["requests"] : 1), v["s2xx"] }'
}
plain=(); auth=(); pcpu=(); acpu=(); hdr=(); hcpu=()
for r in $(seq "$REPEAT"); do
  read -r rate cpu ok < <(run 18492 "$plain_pid"); plain+=("$rate"); pcpu+=("$cpu")
  read -r rate cpu ok < <(run 18492 "$plain_pid" "$AUTH"); hdr+=("$rate"); hcpu+=("$cpu")
  perf_pid=
  if [ -n "${BENCH_PERF:-}" ]; then  # a perf profile of the auth instance during its runs
    timeout $((SECONDS_RUN + 5)) perf record -q -g -p "$auth_pid" -o "$BENCH_PERF" -- sleep "$SECONDS_RUN" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  read -r rate cpu ok2 < <(run 18493 "$auth_pid" "$AUTH"); auth+=("$rate"); acpu+=("$cpu")
  [ -z "$perf_pid" ] || wait "$perf_pid" || true
  [ "$ok2" != "0" ] || { echo "auth runs got no 2xx (credentials refused?)" >&2; cat "$T/auth.err" >&2; exit 1; }
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mp=$(median "${plain[@]}"); ma=$(median "${auth[@]}"); cp=$(median "${pcpu[@]}"); ca=$(median "${acpu[@]}")
mh=$(median "${hdr[@]}"); ch=$(median "${hcpu[@]}")
echo "| egressd, row a: keep-alive GETs, $CONNS conns (median of $REPEAT x ${SECONDS_RUN}s) | req/s | CPU µs/req |"
echo "|---|---|---|"
echo "| no agents (auth off) | $mp | $cp |"
echo "| no agents, the same Proxy-Authorization header sent (parsed, ignored, stripped) | $mh | $ch |"
echo "| auth required, 1000 agents, Basic credentials on every request | $ma | $ca |"
awk -v a="$ma" -v b="$mp" -v x="$ca" -v y="$cp" 'BEGIN { printf "| auth / no agents | %.3f | %.3f |\n", a / b, x / y }'
echo "(runs: plain ${plain[*]} / ${pcpu[*]} µs; header ${hdr[*]} / ${hcpu[*]} µs; auth ${auth[*]} / ${acpu[*]} µs)"
