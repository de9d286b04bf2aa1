#!/usr/bin/env bash
# The Drawbridge labs (vm/README.md), one entry point:
#   demo                               the namespace lab's demo (vm/netns-lab.sh): seconds, no VMs
#   up|test|down|status|console|run    the VM lab (vm/vmlab.py): msp, gw and lan as qemu machines
#                                      booted from the image vm/build-image.sh makes
# The namespace lab itself (up/down/status with --prefix, for the tests and benchmarks) is
# vm/netns-lab.sh.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR

usage() {
  cat <<EOF2
Usage: $(basename "$0") COMMAND [options]

  demo                 the namespace lab's demo: a policy, real connections allowed and dropped
                       with the enforcer's explanation, a grant opening and closing, a controller
                       pushing signed policies (vm/netns-lab.sh demo; root)
  up                   boot the three lab VMs (msp, gw, lan) from build/vm/drawbridge-lab.img
  test                 run the end-to-end scenario in them: a PASS/FAIL line per step
  down                 stop them
  status               which VMs run, their addresses, the enforcer and the controller
  console VM           attach to VM's serial console, root logged in (Ctrl-] leaves)
  run VM COMMAND...    run a command in VM as root

VM lab options (after the command): --image-dir DIR, --state-dir DIR, --memory MIB,
--boot-timeout S; \`$(basename "$0") up --help\` says more. Build the image first:
vm/build-image.sh (vm/README.md). The namespace lab alone: vm/netns-lab.sh --help.
EOF2
}

case "${1:-}" in
demo) exec bash "${SCRIPT_DIR}/netns-lab.sh" "$@" ;;
up | test | down | status | console | run) exec python3 "${SCRIPT_DIR}/vmlab.py" "$@" ;;
-h | --help | help) usage ;;
*)
  usage >&2
  exit 2
  ;;
esac
