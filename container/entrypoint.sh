#!/bin/sh
# egressd container entrypoint (container/README.md).
#
# 1. Picks the config: a mounted /etc/egressd/egressd.conf; else a mounted
#    /etc/squid/squid.conf translated by `egressd import-squid`; else the
#    image's default allowlist served on all interfaces (0.0.0.0:3128).
# 2. Adds host-port forwards from EGRESSD_HOST_FORWARDS ("5432 6379" or
#    "5432,16379:6379": LISTEN[:TARGET] ports) to host.docker.internal.
# 3. Validates with `egressd --check`: a config that does not load stops
#    here with exit 1 and its FILE:LINE diagnostics, so traffic is never left
#    unfiltered.
# 4. Where it may (root with CAP_NET_ADMIN), installs iptables/ip6tables
#    INPUT rules: loopback, established, and egressd's own non-loopback ports
#    are accepted (the admin port only from its `allow=` networks, and not at
#    all without them), everything else is dropped; forwarding is refused. This is
#    defense in depth, not the main control: without the capability it warns
#    and goes on.
# 5. Drops root (uid/gid 10001, no capabilities, no_new_privs) and execs
#    egressd, which becomes PID 1 and handles SIGTERM/SIGHUP/SIGUSR1 itself.
#
# Only EGRESSD_RUN_DIR is written (a tmpfs: the root filesystem is read-only).
# Every path is an environment variable so the tests can run this script
# outside a container, inside network namespaces.
#
# Arguments: none to serve; `--check` to validate the chosen config and exit;
# anything else is passed to egressd as is (e.g. `import-squid FILE`,
# `--version`), without a firewall, as the unprivileged user.
set -eu
umask 022

BIN=${EGRESSD_BIN:-/usr/local/bin/egressd}
CONF_DIR=${EGRESSD_CONF_DIR:-/etc/egressd}
SQUID_CONF=${SQUID_CONF:-/etc/squid/squid.conf}
RUN_DIR=${EGRESSD_RUN_DIR:-/run/egressd}
DEFAULT_CONF=${EGRESSD_DEFAULT_CONF:-/usr/share/egressd/egressd.conf}
LISTEN=${EGRESSD_LISTEN:-0.0.0.0:3128}
HOST_FORWARDS=${EGRESSD_HOST_FORWARDS:-}
FORWARD_HOST=${EGRESSD_FORWARD_HOST:-host.docker.internal}
FIREWALL=${EGRESSD_FIREWALL:-auto}     # auto | on (failure is fatal) | off
IPTABLES=${EGRESSD_IPTABLES:-iptables}
IP6TABLES=${EGRESSD_IP6TABLES:-ip6tables}
RUN_UID=${EGRESSD_UID:-10001}
RUN_GID=${EGRESSD_GID:-10001}
SKIP_PRIVDROP=${EGRESSD_SKIP_PRIVDROP:-0}
CHAIN=EGRESSD-INPUT

say() { printf 'egressd-entrypoint: %s\n' "$*" >&2; }
warn() { say "warning: $*"; }
die() {
  say "error: $*"
  exit 1
}

# ---- privileges ----------------------------------------------------------

# Root drops to RUN_UID before egressd runs (iptables needed root first).
# setpriv to a non-zero uid clears the permitted and effective capability
# sets; the inheritable set and, when CAP_SETPCAP allows, the bounding set are
# cleared too, and no_new_privs stops any later gain.
drop_privileges() {
  [ "$(id -u)" = 0 ] && [ "$SKIP_PRIVDROP" != 1 ]
}

# CAP_SETPCAP (bit 8 of CapEff) is what dropping the bounding set needs.
can_drop_bounding_set() {
  capeff=$(awk '/^CapEff:/ { print $2 }' /proc/self/status 2>/dev/null || true)
  [ -n "$capeff" ] && [ $(((0x$capeff >> 8) & 1)) = 1 ]
}

# Runs "$@" as the unprivileged user (or as is when not root).
as_egressd() {
  if ! drop_privileges; then
    "$@"
  elif can_drop_bounding_set; then
    setpriv --reuid="$RUN_UID" --regid="$RUN_GID" --clear-groups --inh-caps=-all \
      --bounding-set=-all --no-new-privs -- "$@"
  else
    setpriv --reuid="$RUN_UID" --regid="$RUN_GID" --clear-groups --inh-caps=-all \
      --no-new-privs -- "$@"
  fi
}

exec_as_egressd() {
  if ! drop_privileges; then
    exec "$@"
  elif can_drop_bounding_set; then
    exec setpriv --reuid="$RUN_UID" --regid="$RUN_GID" --clear-groups --inh-caps=-all \
      --bounding-set=-all --no-new-privs -- "$@"
  else
    exec setpriv --reuid="$RUN_UID" --regid="$RUN_GID" --clear-groups --inh-caps=-all \
      --no-new-privs -- "$@"
  fi
}

[ -x "$BIN" ] || die "$BIN is not an executable egressd binary (EGRESSD_BIN)"

# Utility mode: `docker run IMAGE import-squid FILE`, `... --version`.
if [ $# -gt 0 ] && [ "$1" != --check ]; then
  exec_as_egressd "$BIN" "$@"
fi
CHECK_ONLY=0
if [ $# -gt 0 ]; then
  CHECK_ONLY=1
  shift
  [ $# -eq 0 ] || die "--check takes no further arguments"
fi

# ---- the run directory -----------------------------------------------------

# The entrypoint writes here as whoever it runs as: root without
# CAP_DAC_OVERRIDE (the documented capability set) writes only where root owns
# the directory or its group/other bits allow (the image's is root:egressd
# 0775), uid 10001 where it owns it or through group egressd.
mkdir -p "$RUN_DIR" 2>/dev/null || true
if ! [ -d "$RUN_DIR" ] || ! [ -w "$RUN_DIR" ]; then
  owner=$(stat -c 'owner %u:%g, mode %a' "$RUN_DIR" 2>/dev/null || echo missing)
  die "$RUN_DIR ($owner) is not a writable directory for uid $(id -u): the generated config" \
    "lives there while the root filesystem is read-only; mount a tmpfs on it that uid $(id -u)" \
    "may write (compose: tmpfs: [$RUN_DIR]; docker run --tmpfs $RUN_DIR; Kubernetes: an" \
    "emptyDir volume); root without CAP_DAC_OVERRIDE cannot write a directory another user" \
    "owns"
fi
CONF=$RUN_DIR/egressd.conf
FORWARDS_CONF=$RUN_DIR/forwards.conf

# A file is "mounted" when it is a regular file. A directory in its place is
# what `docker run -v host/missing.conf:...` leaves when the host file is
# missing: say so instead of silently serving the default.
is_mounted() {
  if [ -d "$1" ]; then
    die "$1 is a directory, not a config file (was the file to mount missing on the host?)"
  fi
  [ -f "$1" ]
}

# ---- choose the config ---------------------------------------------------

has_listen() {
  grep -Eq '^[[:space:]]*listen[[:space:]]' "$1"
}

if is_mounted "$CONF_DIR/egressd.conf"; then
  SOURCE=$CONF_DIR/egressd.conf
  [ -r "$SOURCE" ] || die "$SOURCE is not readable"
  if is_mounted "$SQUID_CONF"; then
    warn "both $SOURCE and $SQUID_CONF are present: serving $SOURCE, ignoring $SQUID_CONF"
  fi
  say "config: $SOURCE (SIGHUP re-reads it)"
  # Included, not copied, so that SIGHUP picks up edits of the mounted file
  # (a Kubernetes ConfigMap update) and diagnostics name the real file.
  PREAMBLE=""
  INCLUDE=$SOURCE
elif is_mounted "$SQUID_CONF"; then
  [ -r "$SQUID_CONF" ] || die "$SQUID_CONF is not readable"
  say "config: $SQUID_CONF, translated by 'egressd import-squid' (restart to re-translate)"
  INCLUDE=$RUN_DIR/squid-import.conf
  if ! as_egressd "$BIN" import-squid "$SQUID_CONF" >"$INCLUDE.tmp"; then
    rm -f "$INCLUDE.tmp"
    die "cannot translate $SQUID_CONF (see above); egressd was not started"
  fi
  mv "$INCLUDE.tmp" "$INCLUDE"
  PREAMBLE=""
  if ! has_listen "$INCLUDE"; then
    # No http_port came through: serve where a Squid container does.
    PREAMBLE="listen $LISTEN"
  fi
else
  [ -r "$DEFAULT_CONF" ] || die "no config: mount $CONF_DIR/egressd.conf or $SQUID_CONF" \
    "(the default $DEFAULT_CONF is missing)"
  say "config: the default allowlist $DEFAULT_CONF, listening on $LISTEN" \
    "(mount $CONF_DIR/egressd.conf or $SQUID_CONF to change it)"
  # The shipped default listens on loopback, which in a container no agent
  # can reach: its loopback proxy listener moves to $LISTEN (the admin
  # endpoint stays on loopback).
  INCLUDE=$RUN_DIR/default.conf
  sed -E "s#^([[:space:]]*listen[[:space:]]+)127\\.0\\.0\\.1:3128([[:space:]]|\$)#\\1$LISTEN\\2#" \
    "$DEFAULT_CONF" >"$INCLUDE.tmp"
  mv "$INCLUDE.tmp" "$INCLUDE"
  if ! awk -v l="$LISTEN" '$1 == "listen" && $2 == l { f = 1 } END { exit !f }' "$INCLUDE"; then
    die "$DEFAULT_CONF has no 'listen 127.0.0.1:3128' line to move to $LISTEN"
  fi
  PREAMBLE=""
fi

# ---- host-port forwards --------------------------------------------------

valid_port() {
  case $1 in '' | *[!0-9]*) return 1 ;; esac
  [ "${#1}" -le 5 ] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]
}

FORWARD_PORTS=""
{
  echo "# Generated by the container entrypoint from EGRESSD_HOST_FORWARDS=\"$HOST_FORWARDS\"."
  set -f  # the list is split on blanks and commas, never globbed
  for spec in $(printf '%s' "$HOST_FORWARDS" | tr ',' ' '); do
    case $spec in
      *:*) lport=${spec%%:*} tport=${spec#*:} ;;
      *) lport=$spec tport=$spec ;;
    esac
    if ! valid_port "$lport" || ! valid_port "$tport"; then
      die "EGRESSD_HOST_FORWARDS: '$spec' is not PORT or LISTEN_PORT:HOST_PORT (1-65535)"
    fi
    echo "forward 0.0.0.0:$lport $FORWARD_HOST:$tport"
    FORWARD_PORTS="$FORWARD_PORTS $lport"
  done
  set +f
} >"$FORWARDS_CONF.tmp"
mv "$FORWARDS_CONF.tmp" "$FORWARDS_CONF"
[ -z "$FORWARD_PORTS" ] || say "host forwards:$FORWARD_PORTS -> $FORWARD_HOST"

{
  echo "# Generated by the container entrypoint at every start; edit the source instead."
  [ -z "$PREAMBLE" ] || echo "$PREAMBLE"
  echo "include $INCLUDE"
  echo "include $FORWARDS_CONF"
} >"$CONF.tmp"
mv "$CONF.tmp" "$CONF"

# ---- validate ------------------------------------------------------------

CHECK_OUT=$RUN_DIR/check.txt
if ! as_egressd "$BIN" -c "$CONF" --check >"$CHECK_OUT" 2>&1; then
  cat "$CHECK_OUT" >&2
  die "the configuration does not load; egressd was not started"
fi
cat "$CHECK_OUT" >&2
[ "$CHECK_ONLY" = 0 ] || exit 0

# ---- firewall (defense in depth) -----------------------------------------

# The ports egressd listens on beyond loopback, from its own reading of the
# config (`--check` summary: "listen: ADDR:PORT ...", "forward: ADDR:PORT ->",
# "dns_listen: ADDR:PORT ...", "admin: ADDR:PORT [allow=CIDR,...]|off").
# One line each: "tcp PORT", "dns PORT" (TCP and UDP), or "admin PORT
# CIDR,..." — the admin port is opened only to its allow= networks; without
# allow= it is "admin PORT -" and stays closed (fail closed: /metrics and /v1/
# are not for the agents).
open_ports() {
  awk '
    $1 == "listen:" || $1 == "forward:" || $1 == "admin:" || $1 == "dns_listen:" {
      a = $2
      if (a == "off" || a !~ /:[0-9]+$/) next
      port = a; sub(/.*:/, "", port)
      host = a; sub(/:[0-9]+$/, "", host)
      if (host ~ /^127\./ || host == "[::1]" || host == "::1" || host == "localhost") next
      if ($1 == "admin:") {
        nets = "-"
        for (i = 3; i <= NF; i++) if ($i ~ /^allow=/) { nets = $i; sub(/^allow=/, "", nets) }
        print "admin " port " " nets
      } else {
        print ($1 == "dns_listen:" ? "dns " : "tcp ") port
      }
    }' "$CHECK_OUT" | sort -u
}

# iptables-restore input for one family: our chain is declared (created or
# flushed, so a restart does not stack rules), filled, ends in DROP, and is
# jumped to first from INPUT; FORWARD drops.
ruleset() {  # $1 = 4|6, $2 = the iptables binary, stdin = open_ports output
  echo "*filter"
  echo ":$CHAIN - [0:0]"
  echo ":FORWARD DROP [0:0]"
  echo "-A $CHAIN -i lo -j ACCEPT"
  echo "-A $CHAIN -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
  if [ "$1" = 6 ]; then
    # Neighbour discovery is not a connection: without it IPv6 stops working.
    for t in router-solicitation router-advertisement neighbour-solicitation neighbour-advertisement; do
      echo "-A $CHAIN -p ipv6-icmp --icmpv6-type $t -j ACCEPT"
    done
  fi
  while read -r kind port nets; do
    case $kind in
      admin)
        # Only this family's networks of allow= (an IPv6 CIDR has a colon).
        set -f
        for net in $(printf '%s' "$nets" | tr ',' ' '); do
          case $net in
            -) continue ;;
            *:*) [ "$1" = 6 ] || continue ;;
            *) [ "$1" = 4 ] || continue ;;
          esac
          echo "-A $CHAIN -p tcp -s $net --dport $port -j ACCEPT"
        done
        set +f
        ;;
      *)
        echo "-A $CHAIN -p tcp --dport $port -j ACCEPT"
        [ "$kind" != dns ] || echo "-A $CHAIN -p udp --dport $port -j ACCEPT"
        ;;
    esac
  done
  echo "-A $CHAIN -j DROP"
  if ! "$2" -w 5 -C INPUT -j "$CHAIN" >/dev/null 2>&1; then
    echo "-I INPUT 1 -j $CHAIN"
  fi
  echo "COMMIT"
}

# "tcp 3128,8080 and admin 9090 from 10.0.0.0/8" for the log line: what one
# family's rules accept.
describe_ports() {  # $1 = 4|6, stdin = open_ports output
  awk -v fam="$1" '
    $1 == "admin" {
      n = split($3, all, ","); from = ""
      for (i = 1; i <= n; i++)
        if (all[i] != "-" && ((fam == 6) == (all[i] ~ /:/))) from = from (from == "" ? "" : ",") all[i]
      if (from != "") admin = admin (admin == "" ? "" : ", ") "admin " $2 " from " from
      next
    }
    { tcp = tcp (tcp == "" ? "" : ",") $2 (($1 == "dns") ? "(+udp)" : "") }
    END {
      out = (tcp == "" ? "" : "tcp " tcp)
      if (admin != "") out = out (out == "" ? "" : " and ") admin
      print out
    }'
}

# Applies one family atomically (iptables-restore: all or nothing); falls
# back to the legacy backend where nf_tables is unavailable.
apply_family() {  # $1 = 4|6, $2 = iptables binary; prints the error on failure
  for ipt in "$2" "$2-legacy"; do
    command -v "$ipt-restore" >/dev/null 2>&1 || continue
    if open_ports | ruleset "$1" "$ipt" | "$ipt-restore" -w 5 --noflush 2>"$RUN_DIR/iptables.err"; then
      ports=$(open_ports | describe_ports "$1")
      say "firewall: IPv$1 INPUT accepts lo, established${ports:+, $ports}; drops the rest ($ipt)"
      return 0
    fi
  done
  [ -s "$RUN_DIR/iptables.err" ] && head -n 3 "$RUN_DIR/iptables.err" >&2
  return 1
}

firewall_failed() {
  if [ "$FIREWALL" = on ]; then
    die "$1 (EGRESSD_FIREWALL=on makes this fatal)"
  fi
  warn "$1. egressd still enforces the allowlist; these INPUT rules are defense in depth only." \
    "Give the container NET_ADMIN (compose: cap_add: [NET_ADMIN], started as root) to install" \
    "them, or set EGRESSD_FIREWALL=off where a NetworkPolicy does this job."
}

if grep -q '^listen: ' "$CHECK_OUT" && ! open_ports | grep -qv '^admin '; then
  warn "egressd listens on loopback only: nothing outside this container can reach it" \
    "(use e.g. 'listen 0.0.0.0:3128')"
fi
FIREWALL_UP=0
case $FIREWALL in
  off) say "firewall: off (EGRESSD_FIREWALL=off)" ;;
  auto | on)
    if ! grep -q '^listen: ' "$CHECK_OUT"; then
      firewall_failed "firewall not installed: no listener could be read from 'egressd --check'"
    elif [ "$(id -u)" != 0 ]; then
      firewall_failed "firewall not installed: the entrypoint runs as uid $(id -u), not root"
    elif ! command -v "$IPTABLES-restore" >/dev/null 2>&1; then
      firewall_failed "firewall not installed: $IPTABLES-restore is not available"
    elif ! apply_family 4 "$IPTABLES"; then
      firewall_failed "firewall not installed: iptables refused the rules (no CAP_NET_ADMIN?)"
    else
      FIREWALL_UP=1
      if ! apply_family 6 "$IP6TABLES"; then
        # IPv4 is filtered; a kernel without ip6tables usually has no IPv6 either.
        firewall_failed "IPv6 firewall not installed: ip6tables refused the rules"
      fi
    fi
    ;;
  *) die "EGRESSD_FIREWALL must be auto, on or off, not '$FIREWALL'" ;;
esac

# Fail closed, and say so: an admin endpoint beyond loopback without allow=
# got no ACCEPT rule above.
if [ "$FIREWALL_UP" = 1 ]; then
  open_ports | while read -r kind port nets; do
    if [ "$kind" = admin ] && [ "$nets" = - ]; then
      warn "the admin endpoint listens beyond loopback without allow=: the firewall keeps port" \
        "$port closed to the network (loopback only). Name the networks that may scrape it, e.g." \
        "'admin 0.0.0.0:$port allow=10.0.0.0/24' (the monitoring network)"
    fi
  done
fi

# ---- run -----------------------------------------------------------------

if drop_privileges; then
  say "starting egressd as uid $RUN_UID (no capabilities)"
else
  say "starting egressd as uid $(id -u)"
fi
exec_as_egressd "$BIN" -c "$CONF"
