#!/usr/bin/env bash
# Installs every dependency from Debian's packages and builds Drawbridge into ./build.
# Run as root on Debian 12. Safe to run again: apt and cmake only do what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  echo "usage: .ci/bootstrap.sh   (as root) install Debian packages, then build into ./build"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "bootstrap.sh: run as root (it installs packages with apt-get)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
mapfile -t packages < <(grep -Ev '^\s*(#|$)' .ci/debian-packages.txt)
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

# /usr: what the Debian packages (`--target package`) install into.
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
cmake --build build -j"$(nproc)"
echo "built: build/enforcer/drawbridge-enforcer"
