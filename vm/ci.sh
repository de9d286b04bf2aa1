#!/usr/bin/env bash
# ci.sh BUILD_DIR — the VM stage of CI (CTest `vm_lab`, label vm): packages from BUILD_DIR, the
# lab image from them, three VMs booted, the end-to-end scenario, the VMs stopped. Prints how long
# each step took (docs/lab-vms.md keeps the numbers). Root; needs a Debian mirror for a cold image
# cache.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR

if [[ $# -ne 1 || "$1" == -* ]]; then
  echo "usage: vm/ci.sh BUILD_DIR   (as root) package, build the image, boot the lab, test, stop" >&2
  exit 2
fi
build="$(realpath "$1")"
[[ "$(id -u)" -eq 0 ]] || {
  echo "ci.sh: needs root (the image build installs packages into a chroot)" >&2
  exit 1
}

t0=$(date +%s)
last=${t0}
timings=()
step_done() {
  local now
  now=$(date +%s)
  timings+=("$(printf '%-34s %4d s' "$1" $((now - last)))")
  last=${now}
}
# shellcheck disable=SC2317  # called by the EXIT trap
report() {
  echo "--- VM stage timings"
  printf '  %s\n' "${timings[@]}"
  echo "  total                              $(($(date +%s) - t0)) s"
}

export DRAWBRIDGE_VM_IMAGE_DIR="${build}/vm"
# A state directory of its own: a lab someone left running (vm/lab.sh up) is not touched.
export DRAWBRIDGE_VM_STATE=/run/drawbridge-vmlab-ci
lab() { bash "${SCRIPT_DIR}/lab.sh" "$@"; }
trap 'lab down >/dev/null 2>&1 || true; report' EXIT

echo "--- packages (cpack in ${build})"
# The packages install under /usr, as their units expect; the build's own tree does not depend on
# the prefix, so changing it recompiles nothing.
prefix="$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "${build}/CMakeCache.txt")"
if [[ "${prefix}" != "/usr" ]]; then
  echo "configuring ${build} with CMAKE_INSTALL_PREFIX=/usr (was ${prefix})"
  cmake -DCMAKE_INSTALL_PREFIX=/usr "${build}" >/dev/null
fi
rm -f "${build}"/drawbridge-*_amd64.deb
cmake --build "${build}" --target drawbridge-enforcer drawbridge-controller man -j"$(nproc)" \
  >/dev/null
(cd "${build}" && cpack -G DEB >/dev/null)
step_done "packages (cpack)"

echo "--- image (vm/build-image.sh)"
bash "${SCRIPT_DIR}/build-image.sh" --out "${build}/vm" --debs "${build}"
step_done "image (build-image.sh)"

echo "--- lab up"
lab up
step_done "boot three VMs (lab.sh up)"

echo "--- lab test"
status=0
lab test || status=$?
step_done "scenario (lab.sh test)"

lab down
step_done "stop (lab.sh down)"
exit "${status}"
