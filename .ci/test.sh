#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, then runs unit tests (no root needed)
# and integration tests (root: network namespaces, nftables, real TCP/UDP traffic).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  echo "usage: .ci/test.sh   (as root) bootstrap, build, then run every test with ctest"
  exit 0
fi
bash .ci/bootstrap.sh
cd build
ctest --output-on-failure --timeout 600
