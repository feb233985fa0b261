#!/bin/sh
# Makes the base images container/Dockerfile starts from when no registry is
# reachable: `docker.io/library/debian:12` (the build stage) and
# `docker.io/library/debian:12-slim` (the runtime stage), both from one
# `debootstrap --variant=minbase bookworm` of the Debian mirror this machine's
# apt already uses. The slim tag is that tree with what Debian's own slim
# images leave out (docs, man pages, locales, apt lists) removed and kept out
# by a dpkg path-exclude file, as debuerreotype does for debian:*-slim.
#
# Cached: an image that already exists is left alone (EGRESSD_IMAGE_REBASE=1
# remakes both). Usage: tests/image/base.sh   (root; podman, debootstrap)
set -eu

PODMAN=${PODMAN:-podman --runtime runc --cgroup-manager cgroupfs}
FULL=docker.io/library/debian:12
SLIM=docker.io/library/debian:12-slim
say() { printf 'image-base: %s\n' "$*" >&2; }

have() { $PODMAN image exists "$1"; }

if [ "${EGRESSD_IMAGE_REBASE:-0}" != 1 ] && have "$FULL" && have "$SLIM"; then
  say "$FULL and $SLIM exist (EGRESSD_IMAGE_REBASE=1 remakes them)"
  exit 0
fi

# The bookworm mirror of the machine's apt sources: deb822 "URIs:" or
# one-line "deb URI bookworm ..." (the security archive is not a mirror of
# bookworm itself).
mirror() {
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk '
      /^[[:space:]]*$/ { if (u != "" && s ~ /(^| )bookworm( |$)/) { print u; exit } u = s = ""; next }
      $1 == "URIs:" { u = $2 }
      $1 == "Suites:" { s = ""; for (i = 2; i <= NF; i++) s = s " " $i " " }
      END { if (u != "" && s ~ / bookworm /) print u }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                       if ($(i + 1) == "bookworm") print $i }' "$f"
  done
}
MIRROR=${EGRESSD_DEBIAN_MIRROR:-$(mirror | head -n 1)}
[ -n "$MIRROR" ] || { say "error: no bookworm mirror in /etc/apt/sources*; set EGRESSD_DEBIAN_MIRROR"; exit 1; }

WORK=$(mktemp -d /var/tmp/egressd-test-base.XXXXXX)
trap 'rm -rf "$WORK"' EXIT INT TERM
ROOT=$WORK/rootfs

say "debootstrap --variant=minbase bookworm from $MIRROR"
start=$(date +%s)
if ! debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
  tail -n 20 "$WORK/debootstrap.log" >&2
  say "error: debootstrap failed (log above)"
  exit 1
fi
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/*.log
# What a container's /etc needs: the official images leave these to the runtime.
: >"$ROOT/etc/hostname"
rm -f "$ROOT/etc/resolv.conf"

$PODMAN rmi -f "$FULL" "$SLIM" >/dev/null 2>&1 || true
tar -C "$ROOT" --numeric-owner -c . | $PODMAN import -q - "$FULL" >/dev/null
say "$FULL imported ($(( $(date +%s) - start ))s)"

# Slim: the excludes of debuerreotype's slimify, then what they cover removed.
mkdir -p "$ROOT/etc/dpkg/dpkg.cfg.d"
cat >"$ROOT/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# Installed by tests/image/base.sh as debian:*-slim does: no docs, man pages or locales.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
cat >"$ROOT/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
EOF
find "$ROOT/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$ROOT/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$ROOT"/usr/share/groff/* "$ROOT"/usr/share/info/* "$ROOT"/usr/share/linda/* \
  "$ROOT"/usr/share/lintian/* "$ROOT"/usr/share/man/* "$ROOT"/var/cache/apt/*.bin
find "$ROOT/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
tar -C "$ROOT" --numeric-owner -c . | $PODMAN import -q - "$SLIM" >/dev/null
say "$SLIM imported: $($PODMAN image inspect --format '{{.Size}}' "$SLIM") bytes"
