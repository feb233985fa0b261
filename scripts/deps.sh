#!/usr/bin/env bash
# Installs the Debian 12 packages egressd needs to build and test, only those
# missing. Idempotent; safe to run on every `make`.
set -euo pipefail

pkgs=(
  build-essential cmake ninja-build pkg-config ccache
  libboost-dev libssl-dev libc-ares-dev libre2-dev libspdlog-dev libfmt-dev
  nlohmann-json3-dev libcli11-dev libgoogle-perftools-dev libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-yaml curl openssl iproute2 iptables netcat-openbsd util-linux
  libhiredis-dev redis-server
)
# kubectl renders container/k8s in the tests (`kubectl kustomize`); any kubectl
# will do, so Debian's is installed only when none is on the PATH (a kubectl
# package from another repository owns /usr/bin/kubectl and would conflict).
if ! command -v kubectl >/dev/null 2>&1; then
  pkgs+=(kubernetes-client)
fi
if [ "${1:-}" = "--bench" ]; then
  pkgs+=(squid tinyproxy haproxy nginx-light wrk linux-perf trafficserver)
fi
if [ "${1:-}" = "--image" ]; then
  # make test-image: rootful podman with runc, debootstrap for the base
  # images, kubectl for `kubectl kustomize container/k8s` (any kubectl will do).
  pkgs+=(podman runc debootstrap)
  command -v kubectl >/dev/null 2>&1 || pkgs+=(kubernetes-client)
fi
if [ "${1:-}" = "--fuzz" ]; then  # make fuzz: clang 14 and its libFuzzer/ASan runtimes
  pkgs+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
