#!/usr/bin/env bash
# bench/load.sh — egressd beside HAProxy, Squid and tinyproxy, one at a time,
# on loopback, and one markdown table of medians. See bench/README.md.
#
#   bench/load.sh            full run (make bench)
#   bench/load.sh --smoke    1-second runs, 1 repeat, 16 MiB file, 100 idle
#                            tunnels; needs none of the Debian bench packages
#
# Environment: EGRESSD_BIN (build/egressd), BENCH_REPEAT (3), BENCH_SECONDS (10),
# BENCH_OUT (bench/results/latest.md), BENCH_SMOKE=1, BENCH_PROXIES (subset of
# "direct haproxy squid ats tinyproxy egressd"), BENCH_FILE_MB (1024), BENCH_IDLE
# (5000), BENCH_LOADGEN=wrk|loadgen (default: wrk when installed),
# BENCH_ORIGIN=nginx|python (default: nginx when installed), BENCH_PERF=ROWS
# ("a", "b d"; 1 = a: perf record -g of egressd during those rows, beside BENCH_OUT),
# BENCH_ROWS (subset of "a b c ct cu c2 c3 c4 d e0 e f"; default all),
# BENCH_KEEP=1 (keep the temp dir with configs and logs), BENCH_NICE (-15 as
# root, 0 in smoke runs: the priority of the proxy, origin and load tools).
#
# Only 127.0.0.0/8 is ever used. The proxy runs on CPU 0, the origin and the
# load generators on CPU 1. Every client run is bounded by `timeout`, every
# wait loop by a count; the EXIT trap stops everything this script started and
# removes its temp dir.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

SMOKE=${BENCH_SMOKE:-0}
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "load.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
export BENCH_SMOKE=$SMOKE

# Run inside a private mount namespace when we can (root + unshare): there the
# bench names are bound into /etc/hosts and /etc/resolv.conf points at
# 127.0.0.1, so a proxy that resolves through the system (tinyproxy) sees the
# same names, and no proxy can send a DNS query off the machine. The mounts
# vanish with the namespace.
if [ -z "${BENCH_NS:-}" ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null 2>&1 \
   && unshare -m --propagation private true 2>/dev/null; then
  export BENCH_NS=1
  exec unshare -m --propagation private bash "${BASH_SOURCE[0]}" "$@"
fi
BENCH_NS=${BENCH_NS:-0}

if [ "$SMOKE" = 1 ]; then
  REPEAT=${BENCH_REPEAT:-1}; RUN_S=${BENCH_SECONDS:-1}
  FILE_MB=${BENCH_FILE_MB:-16}; IDLE_N=${BENCH_IDLE:-100}
else
  REPEAT=${BENCH_REPEAT:-3}; RUN_S=${BENCH_SECONDS:-10}
  FILE_MB=${BENCH_FILE_MB:-1024}; IDLE_N=${BENCH_IDLE:-5000}
fi
CONNS_HTTP=64
CONNS_CONNECT=32
EGRESSD_BIN=${EGRESSD_BIN:-$ROOT/build/egressd}
BENCH_OUT=${BENCH_OUT:-$ROOT/bench/results/latest.md}
PROXIES=${BENCH_PROXIES:-direct haproxy squid ats tinyproxy egressd}
ALLOWED=origin.bench.test
DENIED=denied.bench.test
CLK_TCK=$(getconf CLK_TCK)

unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export LC_ALL=C

# On a shared machine, the bench's processes run at a raised priority (root
# only) so that builds and tests of others do not take the cores mid-run.
NICE=${BENCH_NICE:-}
if [ -z "$NICE" ]; then if [ "$(id -u)" = 0 ] && [ "$SMOKE" != 1 ]; then NICE=-15; else NICE=0; fi; fi
ON_CPU0=(nice -n "$NICE" taskset -c 0)
ON_CPU1=(nice -n "$NICE" taskset -c 1)

log() { printf '[load %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
sbin() { # finds daemons in /usr/sbin even when it is not on PATH
  local c
  for c in "$(command -v "$1" 2>/dev/null)" "/usr/sbin/$1" "/sbin/$1"; do
    [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
  done
  return 1
}

# ---------------------------------------------------------------- clean-up
# On tmpfs when there is one: every proxy logs one line per request to a file
# there, so none is measured against the disk (tinyproxy fsyncs each line).
TMPBASE=${BENCH_TMPDIR:-/dev/shm}
[ -d "$TMPBASE" ] && [ -w "$TMPBASE" ] || TMPBASE=/tmp
TMP=$(mktemp -d "$TMPBASE/egressd-bench.XXXXXX")
chmod 755 "$TMP"   # nginx, Squid and tinyproxy drop privileges and must read it
PIDS=()
cleanup() {
  local p i
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for i in $(seq 1 30); do
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ "$BENCH_NS" = 1 ]; then umount /etc/hosts /etc/resolv.conf 2>/dev/null; fi
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "load.sh: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() { local p=$1 q keep=(); for q in "${PIDS[@]}"; do [ "$q" != "$p" ] && keep+=("$q"); done; PIDS=("${keep[@]}"); }
stop_pid() { # TERM, wait at most 5 s, KILL
  local p=$1 i
  kill -TERM "$p" 2>/dev/null
  for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  forget_pid "$p"
}

mkdir -p "$TMP/bin" "$TMP/logs" "$TMP/www" "$TMP/conf" "$TMP/nginx/logs"
chmod 1777 "$TMP/logs"

# ---------------------------------------------------------------- tools
# The C clients: the build's own (bench/CMakeLists.txt builds them beside
# egressd) when they are there and current, else compiled here into the temp
# dir, or into the build tree when the temp dir cannot execute (Docker and
# podman mount /dev/shm noexec).
TOOLS=$TMP/bin
cp /bin/true "$TOOLS/.exec-probe" 2>/dev/null && "$TOOLS/.exec-probe" 2>/dev/null \
  || TOOLS=$(dirname "$EGRESSD_BIN")/bench-tools
for tool in loadgen idle_tunnels; do
  built=$(dirname "$EGRESSD_BIN")/bench/$tool
  if [ -x "$built" ] && [ "$built" -nt "$HERE/load/$tool.c" ]; then
    eval "TOOL_$tool=\$built"
    continue
  fi
  log "building $tool into $TOOLS"
  mkdir -p "$TOOLS"
  cc -O2 -Wall -o "$TOOLS/$tool" "$HERE/load/$tool.c" || { echo "load.sh: cannot build $tool" >&2; exit 1; }
  eval "TOOL_$tool=\$TOOLS/\$tool"
done
LOADGEN=$TOOL_loadgen
IDLE=$TOOL_idle_tunnels

LOAD_TOOL=${BENCH_LOADGEN:-}
if [ -z "$LOAD_TOOL" ]; then if have wrk; then LOAD_TOOL=wrk; else LOAD_TOOL=loadgen; fi; fi
if [ "$LOAD_TOOL" = wrk ] && ! have wrk; then echo "load.sh: wrk not installed" >&2; exit 1; fi
ORIGIN_KIND=${BENCH_ORIGIN:-}
NGINX=$(sbin nginx || true)
if [ -z "$ORIGIN_KIND" ]; then if [ -n "$NGINX" ]; then ORIGIN_KIND=nginx; else ORIGIN_KIND=python; fi; fi
if [ "$ORIGIN_KIND" = nginx ] && [ -z "$NGINX" ]; then echo "load.sh: nginx not installed" >&2; exit 1; fi
if [ "$SMOKE" != 1 ] && { [ "$LOAD_TOOL" != wrk ] || [ "$ORIGIN_KIND" != nginx ]; }; then
  log "warning: a full run wants wrk and nginx (make bench installs them); using $LOAD_TOOL and $ORIGIN_KIND"
fi

# Free loopback ports, taken all at once; each start of a proxy gets fresh ones.
PORTS=($(python3 - <<'EOF'
import socket
socks = []
for _ in range(64):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
))
PORT_I=0
next_port() { NEXT_PORT=${PORTS[$PORT_I]}; PORT_I=$((PORT_I + 1)); }

# ---------------------------------------------------------------- names
printf '127.0.0.1 localhost\n127.0.0.1 %s\n' "$ALLOWED" > "$TMP/hosts"
chmod 644 "$TMP/hosts"
NAMES_VIA_SYSTEM=0
if [ "$BENCH_NS" = 1 ]; then
  { cat /etc/hosts; printf '127.0.0.1 %s\n' "$ALLOWED"; } > "$TMP/etc_hosts"
  echo "nameserver 127.0.0.1" > "$TMP/resolv.conf"
  chmod 644 "$TMP/etc_hosts" "$TMP/resolv.conf"
  if mount --bind "$TMP/etc_hosts" /etc/hosts && mount --bind "$TMP/resolv.conf" /etc/resolv.conf; then
    NAMES_VIA_SYSTEM=1
  fi
fi

# ---------------------------------------------------------------- origin
next_port; OPORT=$NEXT_PORT
next_port; TPORT=$NEXT_PORT
next_port; SPORT=$NEXT_PORT  # the upload sink behind nginx's /up
ORIGIN=$ALLOWED:$OPORT
TORIGIN=$ALLOWED:$TPORT
BIG=$TMP/www/big.bin
BIG_BYTES=$((FILE_MB * 1024 * 1024))
fallocate -l "$BIG_BYTES" "$BIG" 2>/dev/null || truncate -s "$BIG_BYTES" "$BIG"
: > "$TMP/www/empty"
chmod 644 "$BIG" "$TMP/www/empty"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=$ALLOWED" -addext "subjectAltName=DNS:$ALLOWED" \
  -keyout "$TMP/conf/key.pem" -out "$TMP/conf/cert.pem" 2>/dev/null \
  || { echo "load.sh: openssl cannot make a certificate" >&2; exit 1; }
chmod 644 "$TMP/conf/key.pem" "$TMP/conf/cert.pem"
SMALL_BODY="egressd-bench-origin $(printf 'x%.0s' $(seq 1 78))"

start_origin() {
  if [ "$ORIGIN_KIND" = nginx ]; then
    cat > "$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
worker_rlimit_nofile 20000;
events { worker_connections 16000; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  client_header_timeout 600s;
  server {
    listen 127.0.0.1:$OPORT backlog=4096;
    listen 127.0.0.1:$TPORT ssl backlog=4096;
    ssl_certificate $TMP/conf/cert.pem;
    ssl_certificate_key $TMP/conf/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location = / { default_type text/plain; return 200 "$SMALL_BODY\n"; }
    location = /deny { return 403; }
    location = /big { default_type application/octet-stream; alias $BIG; }
    # The same file chunked (64 KiB chunks): no Content-Length once the
    # addition filter appends the empty /empty, read() into 64 KiB buffers.
    location = /chunked {
      default_type application/octet-stream; alias $BIG;
      sendfile off; output_buffers 2 64k; addition_types *; add_after_body /empty;
    }
    location = /empty { alias $TMP/www/empty; }
    # Uploads (PUT): passed on unbuffered to the sink (bench/load/sink.py),
    # which answers once it has read the whole body (a proxy that sees the
    # answer early may cut the upload).
    location = /up {
      client_max_body_size 0; proxy_pass http://127.0.0.1:$SPORT;
      proxy_http_version 1.1; proxy_request_buffering off; proxy_buffering off;
    }
  }
}
EOF
    "${ON_CPU1[@]}" python3 "$HERE/load/sink.py" --port "$SPORT" --lifetime 3600 > "$TMP/logs/sink.out" 2>&1 &
    PIDS+=("$!")
    "${ON_CPU1[@]}" "$NGINX" -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/logs/nginx-error.log" \
      > "$TMP/logs/nginx.out" 2>&1 &
  else
    "${ON_CPU1[@]}" python3 "$HERE/load/origin.py" --port "$OPORT" --tls-port "$TPORT" \
      --cert "$TMP/conf/cert.pem" --key "$TMP/conf/key.pem" --big "$BIG" --lifetime 3600 \
      > "$TMP/logs/origin.out" 2>&1 &
  fi
  ORIGIN_PID=$!
  PIDS+=("$ORIGIN_PID")
  local i
  for i in $(seq 1 100); do
    if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$OPORT/" \
       && curl -sk -o /dev/null --max-time 1 "https://127.0.0.1:$TPORT/"; then return 0; fi
    kill -0 "$ORIGIN_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "load.sh: the $ORIGIN_KIND origin did not start:" >&2
  tail -n 20 "$TMP/logs/"{nginx-error.log,nginx.out,origin.out} 2>/dev/null >&2
  exit 1
}

# ---------------------------------------------------------------- /proc readings
# Descendants of a pid (Squid helpers, forked workers); threads are already
# included in a process's own /proc/PID/stat and VmRSS.
tree_pids() {
  # cat, not awk FILES: a process that ends between the glob and the read must
  # not abort the listing (mawk stops at a file it cannot open).
  echo "$1"
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '
    { s = $0; sub(/^[0-9]+ \(.*\) /, "", s); split(s, f, " "); parent[$1] = f[2] }
    END {
      n = 1; q[1] = root
      while (n > 0) { cur = q[n--]; for (p in parent) if (parent[p] == cur && p != root) { print p; q[++n] = p } }
    }'
}
cpu_ticks() { # utime+stime of the tree, plus what reaped children used
  local sum=0 p v
  for p in $(tree_pids "$1"); do
    v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 + $14 + $15 }')
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}
rss_kib() {
  local sum=0 p v
  for p in $(tree_pids "$1"); do
    v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

# ---------------------------------------------------------------- results
declare -A RES    # "proxy:metric" -> space-separated values, one per repeat
NOTES=()
RAW=${BENCH_OUT%.md}.raw.txt
mkdir -p "$(dirname "$BENCH_OUT")"
: > "$RAW"
add() { RES["$1:$2"]="${RES["$1:$2"]:-} $3"; printf '%s %s %s\n' "$1" "$2" "$3" >> "$RAW"; }
note() { NOTES+=("$*"); log "note: $*"; }
# Per-repeat counts become one note: "squid: a: socket errors in each repeat: 3, 0, 5".
declare -A COUNTS
COUNT_KEYS=()
count_note() { # KEY WHAT VALUE
  local k="$1: $2"
  [ -n "${COUNTS[$k]+x}" ] || COUNT_KEYS+=("$k")
  COUNTS[$k]="${COUNTS[$k]:+${COUNTS[$k]}, }$3"
  log "note: $1: $2: $3"
}
# CPU 0 belongs to the proxy: time other processes spent there during a run
# (user+system of CPU 0 minus the proxy's own) says the figure is disturbed.
cpu0_mark() { awk '/^cpu0 / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }
cpu0_check() { # PROXY ROW MARK PROXY_TICKS
  local b0 t0 b1 t1 pct
  read -r b0 t0 <<<"$3"
  read -r b1 t1 < <(cpu0_mark)
  [ "$t1" -gt "$t0" ] || return 0
  pct=$(awk -v b="$((b1 - b0 - $4))" -v t="$((t1 - t0))" 'BEGIN { p = 100 * b / t; printf "%.0f", p < 0 ? 0 : (p > 100 ? 100 : p) }')
  printf '%s %s_cpu0_foreign_pct %s (cpu0 busy %s of %s ticks, proxy %s)\n' "$1" "$2" "$pct" "$((b1 - b0))" "$((t1 - t0))" "$4" >> "$RAW"
  [ "$pct" -ge 10 ] && count_note "$1: $2" "% of CPU 0 used by other processes" "$pct"
  # The proxy is pinned to CPU 0: more CPU than CPU 0 had means a bad reading.
  [ "$4" -gt $(((t1 - t0) * 11 / 10 + 2)) ] \
    && count_note "$1: $2" "proxy CPU ticks above CPU 0's elapsed ticks (suspect reading)" "$4 > $((t1 - t0))"
  return 0
}
calc() { awk "BEGIN { printf \"%.6g\", $* }"; }

# ---------------------------------------------------------------- load runs
# http_load PROXY MODE(keepalive|close) ADDR TARGET HOST -> L_RPS L_P50 L_P99 (ms)
# L_REQS L_NON2XX L_ERR L_S403
http_load() {
  local proxy=$1 mode=$2 addr=$3 target=$4 host=$5 out
  L_RPS=""; L_P50=""; L_P99=""; L_REQS=0; L_NON2XX=0; L_ERR=0; L_S403=0
  if [ "$LOAD_TOOL" = wrk ]; then
    local lua=$TMP/conf/wrk-$mode.lua
    {
      printf 'wrk.method = "GET"\nwrk.path = "%s"\nwrk.headers["Host"] = "%s"\n' "$target" "$host"
      [ "$mode" = close ] && printf 'wrk.headers["Connection"] = "close"\n'
    } > "$lua"
    out=$(timeout $((RUN_S + 30)) "${ON_CPU1[@]}" wrk -t1 -c$CONNS_HTTP -d"${RUN_S}s" --latency \
          --timeout 5s -s "$lua" "http://$addr/" 2>&1)
    printf '%s\n' "$out" >> "$TMP/logs/wrk.out"
    L_RPS=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    L_REQS=$(awk '/requests in/ { print $1 }' <<<"$out")
    L_NON2XX=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' <<<"$out")
    L_ERR=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' <<<"$out")
    local to_ms='function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v }'
    L_P50=$(awk "$to_ms"' /^ +50% / { printf "%.3f", ms($2) }' <<<"$out")
    L_P99=$(awk "$to_ms"' /^ +99% / { printf "%.3f", ms($2) }' <<<"$out")
    L_NON2XX=${L_NON2XX:-0}; L_ERR=${L_ERR:-0}; L_REQS=${L_REQS:-0}
    L_S403=$L_NON2XX
  else
    out=$(timeout $((RUN_S + 30)) "${ON_CPU1[@]}" "$LOADGEN" -m "$mode" -a "$addr" -r "$target" \
          -H "$host" -c $CONNS_HTTP -d "$RUN_S" 2>&1)
    printf '%s\n' "$out" >> "$TMP/logs/loadgen.out"
    L_RPS=$(sed -n 's/.* rate=\([0-9.]*\).*/\1/p' <<<"$out")
    L_REQS=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$out")
    local s2xx p50 p99
    s2xx=$(sed -n 's/.* s2xx=\([0-9]*\).*/\1/p' <<<"$out")
    L_S403=$(sed -n 's/.* s403=\([0-9]*\).*/\1/p' <<<"$out")
    L_ERR=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$out")
    p50=$(sed -n 's/.* p50_us=\([0-9]*\).*/\1/p' <<<"$out")
    p99=$(sed -n 's/.* p99_us=\([0-9]*\).*/\1/p' <<<"$out")
    [ -n "$L_REQS" ] && L_NON2XX=$((L_REQS - ${s2xx:-0}))
    [ -n "$p50" ] && L_P50=$(calc "$p50 / 1000")
    [ -n "$p99" ] && L_P99=$(calc "$p99 / 1000")
    L_REQS=${L_REQS:-0}; L_ERR=${L_ERR:-0}; L_S403=${L_S403:-0}
  fi
  [ -n "$L_RPS" ] || { note "$proxy: $mode load run produced no result: $(tail -n 3 <<<"$out" | tr '\n' ' ')"; return 1; }
  return 0
}

# BENCH_PERF=ROWS ("a", "b d", ...; 1 means a): perf record -g of egressd during
# those rows, one file per row and repeat beside BENCH_OUT.
PERF_PID=""
perf_start() { # PROXY ROW PID
  local rows=${BENCH_PERF:-}
  [ "$rows" = 1 ] && rows=a
  [ "$1" = egressd ] && [ -n "$3" ] && [[ " $rows " == *" $2 "* ]] && have perf || return 0
  PERF_N=$((${PERF_N:-0} + 1))
  perf record -F 999 -g -p "$3" -o "$(dirname "$BENCH_OUT")/egressd-$2-$PERF_N.perf.data" \
    -- sleep "$RUN_S" > /dev/null 2>&1 &
  PERF_PID=$!
}
perf_stop() { [ -n "$PERF_PID" ] && wait "$PERF_PID" 2>/dev/null; PERF_PID=""; return 0; }

# row KEY: is row KEY (a b c ct cu c2 c3 c4 d e0 e f; dr runs with d) in BENCH_ROWS?
row() { [ -z "${BENCH_ROWS:-}" ] || [[ " $BENCH_ROWS " == *" $1 "* ]]; }

# measure_http PROXY ROW(a|b|f) PID ADDR TARGET HOST
measure_http() {
  local proxy=$1 row=$2 pid=$3 addr=$4 target=$5 host=$6 mode=keepalive c0 c1
  row "$row" || return 0
  [ "$row" = b ] && mode=close
  [ -n "$pid" ] && c0=$(cpu_ticks "$pid")
  local mark
  mark=$(cpu0_mark)
  local alog=$TMP/logs/$proxy-access.log l0=0 l1
  [ -f "$alog" ] && l0=$(wc -l < "$alog")
  perf_start "$proxy" "$row" "$pid"
  http_load "$proxy" "$mode" "$addr" "$target" "$host" || { perf_stop; return 0; }
  perf_stop
  add "$proxy" "${row}_rps" "$L_RPS"
  if [ "$row" = a ]; then
    [ -n "$L_P50" ] && add "$proxy" a_p50 "$L_P50"
    [ -n "$L_P99" ] && add "$proxy" a_p99 "$L_P99"
  fi
  if [ -n "$pid" ]; then
    c1=$(cpu_ticks "$pid")
    [ "$L_REQS" -gt 0 ] && add "$proxy" "${row}_cpu" "$(calc "($c1 - $c0) / $CLK_TCK * 1e6 / $L_REQS")"
    cpu0_check "$proxy" "$row" "$mark" "$((c1 - c0))"
  else
    cpu0_check "$proxy" "$row" "$mark" 0
  fi
  if [ "$row" = f ]; then
    [ "$L_S403" -lt "$L_REQS" ] && note "$proxy: f: only $L_S403 of $L_REQS responses were 403 (or non-2xx)"
  elif [ "$L_NON2XX" -gt 0 ]; then
    count_note "$proxy: $row" "responses that were not 2xx" "$L_NON2XX of $L_REQS"
  fi
  [ "$L_ERR" -gt 0 ] && count_note "$proxy: $row" "socket errors" "$L_ERR"
  if [ -n "$pid" ]; then
    sleep 0.2
    l1=$(wc -l < "$alog" 2>/dev/null || echo 0)
    printf '%s %s_loglines %s (requests %s)\n' "$proxy" "$row" "$((l1 - l0))" "$L_REQS" >> "$RAW"
    [ "$((l1 - l0))" -gt 0 ] || note "$proxy: $row: no access-log line was written during the run"
  fi
  return 0
}

# measure_bulk PROXY ROW(c|ct) PID CURL-ARGS... (URL last)
measure_bulk() {
  local proxy=$1 row=$2 pid=$3 c0 c1 out code size secs
  shift 3
  row "$row" || return 0
  [ -n "$pid" ] && c0=$(cpu_ticks "$pid")
  local counted=size_download
  [[ "$row" == c3 || "$row" == cu ]] && counted=size_upload   # c3 and cu upload the file (curl -T)
  out=$(timeout 300 "${ON_CPU1[@]}" curl -sS --http1.1 --max-time 240 -o /dev/null \
        -w "%{http_code} %{$counted} %{time_total}" "$@" 2>&1)
  read -r code size secs <<<"$out"
  # (c3, cu: the sink behind nginx answers a PUT with 204)
  if [[ "$code" != 2?? ]] || [ "${size:-0}" != "$BIG_BYTES" ]; then
    note "$proxy: $row: bulk transfer failed ($out)"
    return 0
  fi
  add "$proxy" "${row}_mbs" "$(calc "$size / $secs / 1e6")"
  if [ -n "$pid" ]; then
    c1=$(cpu_ticks "$pid")
    add "$proxy" "${row}_cpu" "$(calc "($c1 - $c0) / $CLK_TCK / ($size / 1e9)")"
  fi
}

# measure_cycles PROXY ADDR [CONNECT-TARGET]
# measure_cycles PROXY ADDR [TUNNEL]: CONNECT TUNNEL + GET + close cycles
# (row d). Without TUNNEL: connect + GET + close to ADDR itself (direct, and
# HAProxy's spliced TCP relay as the reference row "dr", with RELAY=1).
measure_cycles() {
  local proxy=$1 addr=$2 tunnel=${3:-} out rate done s2xx errors key=d
  row d || return 0
  [ "${RELAY:-0}" = 1 ] && key=dr
  local args=(-m connect -a "$addr" -H "$ORIGIN" -c $CONNS_CONNECT -d "$RUN_S")
  [ -n "$tunnel" ] && args+=(-T "$tunnel")
  [ "$key" = dr ] && args=(-m close -a "$addr" -r / -H "$ORIGIN" -c $CONNS_CONNECT -d "$RUN_S")
  local mark c0=0 c1=0
  mark=$(cpu0_mark)
  [ -n "${PROXY_PID_FOR_CYCLES:-}" ] && c0=$(cpu_ticks "$PROXY_PID_FOR_CYCLES")
  perf_start "$proxy" d "${PROXY_PID_FOR_CYCLES:-}"
  out=$(timeout $((RUN_S + 30)) "${ON_CPU1[@]}" "$LOADGEN" "${args[@]}" 2>&1)
  perf_stop
  printf '%s\n' "$out" >> "$TMP/logs/loadgen.out"
  [ -n "${PROXY_PID_FOR_CYCLES:-}" ] && c1=$(cpu_ticks "$PROXY_PID_FOR_CYCLES")
  cpu0_check "$proxy" "$key" "$mark" "$((c1 - c0))"
  rate=$(sed -n 's/.* rate=\([0-9.]*\).*/\1/p' <<<"$out")
  done=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$out")
  s2xx=$(sed -n 's/.* s2xx=\([0-9]*\).*/\1/p' <<<"$out")
  errors=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$out")
  if [ -z "$rate" ] || [ "${s2xx:-0}" = 0 ]; then note "$proxy: $key: no cycle completed ($out)"; return 0; fi
  add "$proxy" "${key}_cps" "$(calc "$rate * $s2xx / $done")"
  [ -n "${PROXY_PID_FOR_CYCLES:-}" ] && add "$proxy" "${key}_cpu" "$(calc "($c1 - $c0) / $CLK_TCK * 1e6 / $done")"
  [ "$s2xx" -lt "$done" ] && count_note "$proxy: $key" "cycles that did not end in 200" "$((done - s2xx)) of $done"
  [ "${errors:-0}" -gt 0 ] && count_note "$proxy: $key" "connection errors" "$errors"
  return 0
}

# measure_idle PROXY PID ADDR KEY: N idle tunnels, RSS growth per tunnel;
# KEY e: each after its ClientHello and the server's reply, e0: each waiting
# for its ClientHello (idle_tunnels -W).
measure_idle() {
  local proxy=$1 pid=$2 addr=$3 key=$4 r0 r1 i line replied wflag=()
  [ "$key" = e0 ] && wflag=(-W)
  # One finished tunnel first, so lazily built state counts in the baseline.
  curl -sk --http1.1 -o /dev/null --max-time 10 -x "http://$addr" "https://$TORIGIN/" || true
  sleep 0.5
  r0=$(rss_kib "$pid")
  local wait_s=$((IDLE_N / 100 + 20))
  "${ON_CPU1[@]}" "$IDLE" -a "$addr" -T "$TORIGIN" -n "$IDLE_N" -w "$wait_s" -h $((wait_s + 30)) "${wflag[@]}" \
    > "$TMP/logs/idle.out" 2>&1 &
  local ipid=$!
  PIDS+=("$ipid")
  line=""
  for i in $(seq 1 $(((wait_s + 10) * 10))); do
    line=$(grep '^ready' "$TMP/logs/idle.out" 2>/dev/null)
    [ -n "$line" ] && break
    kill -0 "$ipid" 2>/dev/null || break
    sleep 0.1
  done
  sleep 0.5   # let the proxy settle after the last relayed flight
  r1=$(rss_kib "$pid")
  stop_pid "$ipid"
  replied=$(sed -n 's/.* replied=\([0-9]*\).*/\1/p' <<<"$line")
  if [ -z "$line" ] || [ "${replied:-0}" = 0 ]; then
    note "$proxy: $key: idle tunnels did not come up ($(tr '\n' ' ' < "$TMP/logs/idle.out"))"
    return 0
  fi
  [ "$replied" -lt "$IDLE_N" ] && note "$proxy: $key: only $replied of $IDLE_N tunnels got their answer ($line)"
  add "$proxy" "${key}_kib" "$(calc "($r1 - $r0) / $replied")"
  log "$proxy: $key: RSS $r0 KiB -> $r1 KiB with $replied tunnels"
}

# ---------------------------------------------------------------- proxies
# start_PROXY sets PROXY_PID and PROXY_ADDR (and HAProxy's relay ports).
start_egressd() {
  next_port; PROXY_ADDR=127.0.0.1:$NEXT_PORT
  cat > "$TMP/conf/egressd.conf" <<EOF
# egressd under load: one worker, the bench names from a hosts file.
listen $PROXY_ADDR
threads 1
hosts $TMP/hosts
resolver 127.0.0.1
allow_net 127.0.0.0/8 ports=$OPORT,$TPORT
allow $ALLOWED ports=$OPORT,$TPORT
tls_ports $TPORT
access_log $TMP/logs/egressd-access.log
timeout drain=1s
EOF
  "${ON_CPU0[@]}" "$EGRESSD_BIN" -c "$TMP/conf/egressd.conf" >> "$TMP/logs/egressd.out" 2>&1 &
  PROXY_PID=$!
}

start_squid() {
  next_port; PROXY_ADDR=127.0.0.1:$NEXT_PORT
  cat > "$TMP/conf/squid.conf" <<EOF
http_port $PROXY_ADDR
visible_hostname egressd-bench
pid_filename $TMP/logs/squid.pid
cache_log $TMP/logs/squid-cache.log
access_log stdio:$TMP/logs/squid-access.log
cache_store_log none
logfile_rotate 0
coredump_dir $TMP/logs
hosts_file $TMP/hosts
dns_nameservers 127.0.0.1
pinger_enable off
shutdown_lifetime 0 seconds
max_filedescriptors 20000
cache deny all
cache_mem 8 MB
acl bench_ports port $OPORT $TPORT
acl bench_dst dstdomain $ALLOWED
http_access deny !bench_ports
http_access allow bench_dst
http_access deny all
EOF
  "${ON_CPU0[@]}" "$(sbin squid)" -N -f "$TMP/conf/squid.conf" >> "$TMP/logs/squid.out" 2>&1 &
  PROXY_PID=$!
}

# Apache Traffic Server 9.2 as a forward proxy: its own layout under the
# temp dir (runroot.yaml), no cache, one net thread; remap_required with one
# rule per allowed destination is the host allowlist (an https:// rule admits
# CONNECT to that authority); the denied name gets an ACL deny (403), any
# other name a 404.
start_ats() {
  next_port; PROXY_ADDR=127.0.0.1:$NEXT_PORT
  local d=$TMP/ats
  mkdir -p "$d/etc" "$d/run" "$d/cache"
  cp -r /etc/trafficserver/. "$d/etc/" 2>/dev/null
  cat > "$d/runroot.yaml" <<EOF
prefix: /usr
exec_prefix: /usr
bindir: /usr/bin
sbindir: /usr/sbin
sysconfdir: $d/etc
datadir: $d/cache
includedir: /usr/include
libdir: /usr/lib/trafficserver
libexecdir: /usr/lib/trafficserver/modules
localstatedir: $d/run
runtimedir: $d/run
logdir: $TMP/logs
cachedir: $d/cache
EOF
  cat > "$d/etc/records.config" <<EOF
CONFIG proxy.config.admin.user_id STRING #-1
CONFIG proxy.config.http.server_ports STRING ${PROXY_ADDR##*:}:ip-in=127.0.0.1
CONFIG proxy.config.http.cache.http INT 0
CONFIG proxy.config.url_remap.remap_required INT 1
CONFIG proxy.config.http.connect_ports STRING $OPORT $TPORT
CONFIG proxy.config.exec_thread.autoconfig INT 0
CONFIG proxy.config.exec_thread.limit INT 1
CONFIG proxy.config.accept_threads INT 0
CONFIG proxy.config.task_threads INT 1
CONFIG proxy.config.dns.nameservers STRING 127.0.0.1
CONFIG proxy.config.dns.resolv_conf STRING NULL
CONFIG proxy.config.hostdb.host_file.path STRING $TMP/hosts
CONFIG proxy.config.http.insert_request_via_str INT 0
CONFIG proxy.config.http.insert_response_via_str INT 0
CONFIG proxy.config.http.keep_alive_no_activity_timeout_in INT 600
CONFIG proxy.config.http.transaction_no_activity_timeout_in INT 600
CONFIG proxy.config.net.connections_throttle INT 15000
CONFIG proxy.config.http.server_session_sharing.match STRING both
CONFIG proxy.config.log.max_secs_per_buffer INT 1
EOF
  cat > "$d/etc/remap.config" <<EOF
map http://$ORIGIN/ http://$ORIGIN/
map https://$ORIGIN https://$ORIGIN
map https://$TORIGIN https://$TORIGIN
map http://$DENIED:$OPORT/ http://$DENIED:$OPORT/ @action=deny @src_ip=0.0.0.0-255.255.255.255
EOF
  echo "$d/cache 64M" > "$d/etc/storage.config"
  cat > "$d/etc/ip_allow.yaml" <<EOF
ip_allow:
  - apply: in
    ip_addrs: 127.0.0.1
    action: allow
    methods: ALL
  - apply: out
    ip_addrs: 127.0.0.1
    action: allow
    methods: ALL
EOF
  cat > "$d/etc/logging.yaml" <<EOF
logging:
  formats:
    - name: bench
      format: '%<cqtq> %<ttms> %<chi> %<crc>/%<pssc> %<psql> %<cqhm> %<cquc> %<phr>/%<shn>'
  logs:
    - filename: ats-access
      format: bench
      mode: ascii
EOF
  "${ON_CPU0[@]}" "$(sbin traffic_server)" --run-root="$d/runroot.yaml" >> "$TMP/logs/ats.out" 2>&1 &
  PROXY_PID=$!
}

start_tinyproxy() {
  next_port; PROXY_ADDR=127.0.0.1:$NEXT_PORT
  local name=$ALLOWED
  # Without the private /etc/hosts, tinyproxy can only reach the IP literal.
  [ "$NAMES_VIA_SYSTEM" = 1 ] || name=127.0.0.1
  printf '^%s$\n' "${name//./\\.}" > "$TMP/conf/tinyproxy.filter"
  chmod 644 "$TMP/conf/tinyproxy.filter"
  cat > "$TMP/conf/tinyproxy.conf" <<EOF
User nobody
Group nogroup
Port ${PROXY_ADDR##*:}
Listen 127.0.0.1
Timeout 600
LogFile "$TMP/logs/tinyproxy-access.log"
LogLevel Connect
PidFile "$TMP/logs/tinyproxy.pid"
MaxClients 15000
Allow 127.0.0.1
Filter "$TMP/conf/tinyproxy.filter"
FilterType ere
FilterURLs Off
FilterDefaultDeny Yes
ConnectPort $OPORT
ConnectPort $TPORT
EOF
  [ "$(id -u)" = 0 ] || sed -i '/^User /d; /^Group /d' "$TMP/conf/tinyproxy.conf"
  "${ON_CPU0[@]}" "$(sbin tinyproxy)" -d -c "$TMP/conf/tinyproxy.conf" >> "$TMP/logs/tinyproxy.out" 2>&1 &
  PROXY_PID=$!
}

start_haproxy() {
  next_port; PROXY_ADDR=127.0.0.1:$NEXT_PORT
  next_port; HA_PLAIN=$NEXT_PORT
  next_port; HA_TLS=$NEXT_PORT
  cat > "$TMP/conf/haproxy.cfg" <<EOF
global
  nbthread 1
  # 2 fds per connection plus 2 per splice pipe must fit the 20,000 cap.
  maxconn 8000
  maxpipes 1000
  fd-hard-limit 20000
  log stdout format raw local0 info
defaults
  log global
  maxconn 8000
  timeout connect 10s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
# a, b, f: reverse proxy choosing by Host, as close to a forward allowlist as it gets
frontend fwd
  mode http
  option httplog
  bind $PROXY_ADDR
  acl allowed hdr(host) -i $ORIGIN
  http-request deny deny_status 403 if !allowed
  default_backend origin
backend origin
  mode http
  http-reuse always
  server o 127.0.0.1:$OPORT
# c: spliced TCP relays in front of the plain and the TLS origin
listen relay_plain
  mode tcp
  option tcplog
  option splice-request
  option splice-response
  bind 127.0.0.1:$HA_PLAIN
  server o 127.0.0.1:$OPORT
listen relay_tls
  mode tcp
  option tcplog
  option splice-request
  option splice-response
  bind 127.0.0.1:$HA_TLS
  server o 127.0.0.1:$TPORT
EOF
  "${ON_CPU0[@]}" "$(sbin haproxy)" -db -f "$TMP/conf/haproxy.cfg" >> "$TMP/logs/haproxy-access.log" 2>&1 &
  PROXY_PID=$!
}

proxy_installed() {
  case "$1" in
    direct) return 0 ;;
    egressd) [ -x "$EGRESSD_BIN" ] ;;
    ats) sbin traffic_server >/dev/null ;;
    *) sbin "$1" >/dev/null ;;
  esac
}

# Starts a proxy and waits until it forwards (a 200 through it) — at most 15 s.
start_proxy() {
  local proxy=$1 i code
  "start_$proxy"
  PIDS+=("$PROXY_PID")
  for i in $(seq 1 150); do
    if [ "$proxy" = haproxy ]; then
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Host: $ORIGIN" "http://$PROXY_ADDR/")
    else
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -x "http://$PROXY_ADDR" "http://$ORIGIN/")
    fi
    [ "$code" = 200 ] && return 0
    kill -0 "$PROXY_PID" 2>/dev/null || break
    sleep 0.1
  done
  note "$proxy: did not start or does not forward (last status ${code:-none}): $(tail -q -n 3 "$TMP/logs/$proxy".out "$TMP/logs/$proxy"-*.log 2>/dev/null | tr '\n' ' ' | cut -c1-400)"
  stop_pid "$PROXY_PID"
  return 1
}

# Checks that the proxy answers the way the rows assume; notes what it does not.
probe_proxy() {
  local proxy=$1 code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -x "http://$PROXY_ADDR" "http://$DENIED:$OPORT/")
  [ "$code" = 403 ] || note "$proxy: a denied name got HTTP $code, not 403"
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -p -x "http://$PROXY_ADDR" "http://$ORIGIN/")
  [ "$code" = 200 ] || note "$proxy: GET through a CONNECT tunnel got HTTP $code"
  code=$(curl -sk --http1.1 -o /dev/null -w '%{http_code}' --max-time 5 -x "http://$PROXY_ADDR" "https://$TORIGIN/")
  [ "$code" = 200 ] || note "$proxy: HTTPS through a CONNECT tunnel got HTTP $code"
}

truncate_logs() { local f; for f in "$TMP/logs/"*-access.log; do [ -f "$f" ] && : > "$f"; done; }

run_direct() {
  local r
  for r in $(seq 1 "$REPEAT"); do
    log "direct: repeat $r/$REPEAT"
    measure_http direct a "" "127.0.0.1:$OPORT" / "$ORIGIN"
    measure_http direct b "" "127.0.0.1:$OPORT" / "$ORIGIN"
    measure_bulk direct c "" --resolve "$ORIGIN:127.0.0.1" "http://$ORIGIN/big"
    measure_bulk direct ct "" -k --resolve "$TORIGIN:127.0.0.1" "https://$TORIGIN/big"
    measure_bulk direct cu "" --resolve "$ORIGIN:127.0.0.1" -T "$BIG" "http://$ORIGIN/up"
    measure_bulk direct c2 "" --resolve "$ORIGIN:127.0.0.1" "http://$ORIGIN/big"
    measure_bulk direct c3 "" --resolve "$ORIGIN:127.0.0.1" -T "$BIG" "http://$ORIGIN/up"
    measure_bulk direct c4 "" --resolve "$ORIGIN:127.0.0.1" "http://$ORIGIN/chunked"
    PROXY_PID_FOR_CYCLES="" measure_cycles direct "127.0.0.1:$OPORT"
    measure_http direct f "" "127.0.0.1:$OPORT" /deny "$ORIGIN"
  done
}

run_haproxy() {
  local r
  start_proxy haproxy || return 0
  [ "$SMOKE" = 1 ] || { RUN_S_SAVED=$RUN_S; RUN_S=1; http_load haproxy keepalive "$PROXY_ADDR" "http://$ORIGIN/" "$ORIGIN"; RUN_S=$RUN_S_SAVED; }
  for r in $(seq 1 "$REPEAT"); do
    log "haproxy: repeat $r/$REPEAT"
    measure_http haproxy a "$PROXY_PID" "$PROXY_ADDR" "http://$ORIGIN/" "$ORIGIN"
    measure_http haproxy b "$PROXY_PID" "$PROXY_ADDR" "http://$ORIGIN/" "$ORIGIN"
    measure_bulk haproxy c "$PROXY_PID" --resolve "$ALLOWED:$HA_PLAIN:127.0.0.1" "http://$ALLOWED:$HA_PLAIN/big"
    measure_bulk haproxy ct "$PROXY_PID" -k --resolve "$ALLOWED:$HA_TLS:127.0.0.1" "https://$ALLOWED:$HA_TLS/big"
    measure_bulk haproxy cu "$PROXY_PID" --resolve "$ALLOWED:$HA_PLAIN:127.0.0.1" -T "$BIG" "http://$ALLOWED:$HA_PLAIN/up"
    PROXY_PID_FOR_CYCLES=$PROXY_PID RELAY=1 measure_cycles haproxy "127.0.0.1:$HA_PLAIN"
    measure_http haproxy f "$PROXY_PID" "$PROXY_ADDR" "http://$DENIED:$OPORT/" "$DENIED:$OPORT"
    truncate_logs
  done
  stop_pid "$PROXY_PID"
}

run_forward_proxy() {
  local proxy=$1 r
  # e first, on a fresh process per repeat: freed memory kept by the allocator
  # would otherwise hide the cost of the next 5,000 tunnels.
  local key
  for key in e0 e; do
    row "$key" || continue
    for r in $(seq 1 "$REPEAT"); do
      log "$proxy: idle tunnels ($key), repeat $r/$REPEAT"
      start_proxy "$proxy" || return 0
      measure_idle "$proxy" "$PROXY_PID" "$PROXY_ADDR" "$key"
      stop_pid "$PROXY_PID"
    done
  done
  start_proxy "$proxy" || return 0
  probe_proxy "$proxy"
  [ "$SMOKE" = 1 ] || { RUN_S_SAVED=$RUN_S; RUN_S=1; http_load "$proxy" keepalive "$PROXY_ADDR" "http://$ORIGIN/" "$ORIGIN"; RUN_S=$RUN_S_SAVED; }
  for r in $(seq 1 "$REPEAT"); do
    log "$proxy: repeat $r/$REPEAT"
    kill -0 "$PROXY_PID" 2>/dev/null || { note "$proxy: the process died during the run"; return 0; }
    measure_http "$proxy" a "$PROXY_PID" "$PROXY_ADDR" "http://$ORIGIN/" "$ORIGIN"
    measure_http "$proxy" b "$PROXY_PID" "$PROXY_ADDR" "http://$ORIGIN/" "$ORIGIN"
    measure_bulk "$proxy" c "$PROXY_PID" -p -x "http://$PROXY_ADDR" "http://$ORIGIN/big"
    measure_bulk "$proxy" ct "$PROXY_PID" -k -x "http://$PROXY_ADDR" "https://$TORIGIN/big"
    measure_bulk "$proxy" cu "$PROXY_PID" -p -x "http://$PROXY_ADDR" -T "$BIG" "http://$ORIGIN/up"
    measure_bulk "$proxy" c2 "$PROXY_PID" -x "http://$PROXY_ADDR" "http://$ORIGIN/big"
    measure_bulk "$proxy" c3 "$PROXY_PID" -x "http://$PROXY_ADDR" -T "$BIG" "http://$ORIGIN/up"
    measure_bulk "$proxy" c4 "$PROXY_PID" -x "http://$PROXY_ADDR" "http://$ORIGIN/chunked"
    PROXY_PID_FOR_CYCLES=$PROXY_PID measure_cycles "$proxy" "$PROXY_ADDR" "$ORIGIN"
    measure_http "$proxy" f "$PROXY_PID" "$PROXY_ADDR" "http://$DENIED:$OPORT/" "$DENIED:$OPORT"
    truncate_logs
  done
  kill -0 "$PROXY_PID" 2>/dev/null || note "$proxy: the process died during the run"
  stop_pid "$PROXY_PID"
}

# ---------------------------------------------------------------- run
log "origin: $ORIGIN_KIND on 127.0.0.1:$OPORT (TLS :$TPORT); load: $LOAD_TOOL; ${RUN_S}s x $REPEAT; file ${FILE_MB} MiB; $IDLE_N idle tunnels"
LOAD_AT_START=$(cut -d' ' -f1 /proc/loadavg)
awk -v l="$LOAD_AT_START" 'BEGIN { exit !(l > 0.5) }' \
  && log "warning: load average is $LOAD_AT_START: other work on these 2 cores will show in the numbers"
start_origin
declare -A STATE
T_START=$(date +%s)
for proxy in direct haproxy squid ats tinyproxy egressd; do
  if ! grep -qw "$proxy" <<<"$PROXIES"; then STATE[$proxy]=skipped; continue; fi
  if ! proxy_installed "$proxy"; then STATE[$proxy]=missing; log "$proxy: not installed, n/a"; continue; fi
  STATE[$proxy]=ran
  case "$proxy" in
    direct) run_direct ;;
    haproxy) run_haproxy ;;
    *) run_forward_proxy "$proxy" ;;
  esac
done
stop_pid "$ORIGIN_PID"
ELAPSED=$(($(date +%s) - T_START))
LOAD_AT_END=$(cut -d' ' -f1 /proc/loadavg)

# ---------------------------------------------------------------- table
median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
fmt() { # fmt VALUE KIND
  case "$2" in
    int) awk -v v="$1" 'BEGIN { x = sprintf("%.0f", v); o = ""; n = length(x)
                                for (i = 1; i <= n; i++) { o = o substr(x, i, 1); if ((n - i) % 3 == 0 && i < n) o = o "," }
                                print o }' ;;
    f1) awk -v v="$1" 'BEGIN { printf "%.1f", v }' ;;
    f2) awk -v v="$1" 'BEGIN { printf "%.2f", v }' ;;
    f3) awk -v v="$1" 'BEGIN { printf "%.3f", v }' ;;
  esac
}
# key | label | format | applies to (d: direct, h: haproxy, s/a/t/e: forward proxies; a: ATS)
ROWS=(
  "a_rps|a. keep-alive req/s|int|dhsate"
  "a_p50|a. p50 latency, ms|f3|dhsate"
  "a_p99|a. p99 latency, ms|f3|dhsate"
  "a_cpu|a. proxy CPU µs/req|f1|hsate"
  "b_rps|b. Connection: close req/s|int|dhsate"
  "b_cpu|b. proxy CPU µs/req|f1|hsate"
  "c_mbs|c. tunnel MB/s, plain HTTP inside|int|dhsate"
  "c_cpu|c. proxy CPU s/GB, plain inside|f2|hsate"
  "ct_mbs|c. tunnel MB/s, TLS inside|int|dhsate"
  "ct_cpu|c. proxy CPU s/GB, TLS inside|f2|hsate"
  "cu_mbs|cu. tunnel MB/s, upload (plain HTTP inside)|int|dhsate"
  "cu_cpu|cu. proxy CPU s/GB, upload in a tunnel|f2|hsate"
  "c2_mbs|c2. forward MB/s, download (Content-Length)|int|dsate"
  "c2_cpu|c2. proxy CPU s/GB, download|f2|sate"
  "c3_mbs|c3. forward MB/s, upload (Content-Length)|int|dsate"
  "c3_cpu|c3. proxy CPU s/GB, upload|f2|sate"
  "c4_mbs|c4. forward MB/s, chunked download|int|dsate"
  "c4_cpu|c4. proxy CPU s/GB, chunked download|f2|sate"
  "d_cps|d. CONNECT+GET+close cycles/s|int|dsate"
  "d_cpu|d. proxy CPU µs/cycle|f1|sate"
  "dr_cps|d. (reference) TCP relay, connect+GET+close cycles/s|int|h"
  "dr_cpu|d. (reference) TCP relay CPU µs/cycle|f1|h"
  "e0_kib|e0. KiB RSS per tunnel waiting for its ClientHello|f1|sate"
  "e_kib|e. KiB RSS per idle tunnel|f1|sate"
  "f_rps|f. denied req/s (403, keep-alive)|int|dhsate"
  "f_cpu|f. proxy CPU µs/req|f1|hsate"
)
COLS=(direct haproxy squid ats tinyproxy egressd)
declare -A CODE=([direct]=d [haproxy]=h [squid]=s [ats]=a [tinyproxy]=t [egressd]=e)
cell_value() { # raw median or empty
  local m
  m=$(median <<<"${RES["$1:$2"]:-}")
  echo "$m"
}
cell() { # printable cell
  local proxy=$1 key=$2 fmtk=$3 applies=$4 v
  case "${STATE[$proxy]}" in
    missing) echo "n/a"; return ;;
    skipped) echo "skipped"; return ;;
  esac
  [[ "$applies" == *"${CODE[$proxy]}"* ]] || { echo "—"; return; }
  v=$(cell_value "$proxy" "$key")
  if [ -z "$v" ]; then echo "err"; else fmt "$v" "$fmtk"; fi
}
ratio() {
  local key=$1 other=$2 applies=$3 e o
  [[ "$applies" == *e* && "$applies" == *"${CODE[$other]}"* ]] || { echo "—"; return; }
  e=$(cell_value egressd "$key"); o=$(cell_value "$other" "$key")
  if [ -z "$e" ] || [ -z "$o" ]; then echo "n/a"; return; fi
  awk -v e="$e" -v o="$o" 'BEGIN { if (o == 0) print "n/a"; else printf "%.2f×\n", e / o }'
}

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
version_of() {
  case "$1" in
    haproxy) "$(sbin haproxy)" -v 2>/dev/null | awk 'NR == 1 { print $3 }' ;;
    squid) "$(sbin squid)" -v 2>/dev/null | awk 'NR == 1 { print $4 }' ;;
    tinyproxy) "$(sbin tinyproxy)" -v 2>/dev/null | awk '{ print $2 }' ;;
    ats) "$(sbin traffic_server)" --version 2>/dev/null | awk 'NR == 1 { print $3 }' ;;
    egressd) "$EGRESSD_BIN" --version 2>/dev/null | head -n 1 | sed 's/^egressd //' ;;
    nginx) "$NGINX" -v 2>&1 | sed 's/.*nginx\///' ;;
    wrk) wrk -v 2>&1 | awk 'NR == 1 { print $2 }' ;;
  esac
}
{
  echo "### egressd load benchmark — $(date -u +'%Y-%m-%d %H:%M UTC')"
  echo
  echo "Machine: $(nproc) × ${CPU_MODEL:-unknown CPU}, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r). Proxy on CPU 0, origin and load on CPU 1, at nice $NICE."
  origin_v=$ORIGIN_KIND; [ "$ORIGIN_KIND" = nginx ] && origin_v="nginx $(version_of nginx)"
  tool_v=$LOAD_TOOL; [ "$LOAD_TOOL" = wrk ] && tool_v="wrk $(version_of wrk)"
  versions=""
  for p in haproxy squid ats tinyproxy egressd; do
    [ "${STATE[$p]}" = ran ] && versions="$versions, $p $(version_of "$p")"
  done
  echo "Run: $([ "$SMOKE" = 1 ] && echo "SMOKE, ")${RUN_S} s per load run, median of $REPEAT, ${FILE_MB} MiB bulk file, $IDLE_N idle tunnels, $CONNS_HTTP HTTP connections, $CONNS_CONNECT CONNECT clients; origin $origin_v; load $tool_v${versions}; ${ELAPSED} s in all; load average $LOAD_AT_START at the start, $LOAD_AT_END at the end."
  echo
  echo "| | direct | HAProxy | Squid | ATS | tinyproxy | egressd | egressd/Squid | egressd/ATS | egressd/tinyproxy | egressd/HAProxy | egressd/direct |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  for spec in "${ROWS[@]}"; do
    IFS='|' read -r key label fmtk applies <<<"$spec"
    rk=${key%%_*}; [ "$rk" = dr ] && rk=d
    row "$rk" || continue
    line="| $label |"
    for p in "${COLS[@]}"; do line="$line $(cell "$p" "$key" "$fmtk" "$applies") |"; done
    for p in squid ats tinyproxy haproxy direct; do line="$line $(ratio "$key" "$p" "$applies") |"; done
    echo "$line"
  done
  echo
  echo "Ratios are egressd ÷ the other column: above 1 is better for rates and MB/s, below 1 is better for latency, CPU and KiB. \"—\": not applicable; \"n/a\": not installed or not measurable; \"err\": the measurement failed (see notes)."
  if [ ${#NOTES[@]} -gt 0 ] || [ ${#COUNT_KEYS[@]} -gt 0 ]; then
    echo
    echo "Notes:"
    for n in "${NOTES[@]}"; do echo "- $n"; done
    for k in "${COUNT_KEYS[@]}"; do echo "- $k, in each repeat where it happened: ${COUNTS[$k]}"; done
  fi
} > "$BENCH_OUT.tmp"
mv "$BENCH_OUT.tmp" "$BENCH_OUT"
cat "$BENCH_OUT"
log "table written to $BENCH_OUT (raw values: $RAW)"
