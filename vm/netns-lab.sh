#!/usr/bin/env bash
# The Drawbridge namespace lab: the one description of the lab topology. The C++ integration
# harness (tests/integration/lab.cpp) calls `up`/`down` with its own --prefix, so what the tests
# prove is what `demo` shows.
#
#   <p>msp  provider "acme" (203.0.113.2, .3; 2001:db8:100::2), an address outside acme's /28
#           (203.0.113.100) and an attacker (198.51.100.66; 2001:db8:666::66)
#     │ eth0 ── wan0   203.0.113.254, 198.51.100.254, 2001:db8:100::fe, 2001:db8:666::fe
#   <p>gw   forwards; runs the enforcer and its own echo services (input hook)
#     │ lan0 ── eth0   gw: 10.20.0.1, 2001:db8:20::1
#   <p>lan  servers 10.20.0.10, .11, .12; 2001:db8:20::10, ::11
#
# Only documentation ranges and 10.20.0.0/24, only inside namespaces this script creates.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "${SCRIPT_DIR}/.." && pwd)"
readonly SCRIPT_DIR REPO_DIR
readonly SERVE_TCP="22,3389,5900,8080,8443"
readonly SERVE_UDP="3389"

PREFIX="drawbridge-"
START_SERVERS=1

usage() {
  cat <<EOF
Usage: $(basename "$0") COMMAND [--prefix P] [--no-servers]

Commands:
  up      build the namespaces ${PREFIX}msp, ${PREFIX}gw, ${PREFIX}lan and start echo servers
          (tcp ${SERVE_TCP}, udp ${SERVE_UDP}) in lan and gw
  demo    up, apply a demo policy with the enforcer, show which connections are ALLOWED and
          which are DROPPED and why, watch a short grant open and close, then tear down
  down    stop everything running in the lab namespaces and delete them
  status  show the namespaces, addresses, lab processes and the drawbridge table

Options:
  --prefix P    namespace name prefix (default "drawbridge-"; the tests use their own)
  --no-servers  'up' only: do not start echo servers (the C++ harness starts its own)
  -h, --help    this text

Environment:
  DRAWBRIDGE_ENFORCER  enforcer binary (default: <repo>/build/enforcer/drawbridge-enforcer)
  DRAWBRIDGE_LABNET    labnet binary   (default: <repo>/build/tests/drawbridge-labnet)
Needs root (network namespaces).
EOF
}

die() {
  echo "lab.sh: $*" >&2
  exit 1
}

ns() { echo "${PREFIX}$1"; }
in_ns() {
  local name="$1"
  shift
  ip netns exec "$(ns "${name}")" "$@"
}
ns_exists() { [[ -e "/run/netns/$(ns "$1")" ]]; }

# /proc/sys/net is per network namespace: write it from inside.
ns_sysctl() {
  local name="$1" key="$2" value="$3"
  in_ns "${name}" sh -c "echo ${value} > /proc/sys/${key//.//}"
}

labnet_bin() {
  local bin="${DRAWBRIDGE_LABNET:-${REPO_DIR}/build/tests/drawbridge-labnet}"
  [[ -x "${bin}" ]] || die "labnet not found at ${bin} (build it, or set DRAWBRIDGE_LABNET)"
  realpath "${bin}"
}

enforcer_bin() {
  local bin="${DRAWBRIDGE_ENFORCER:-${REPO_DIR}/build/enforcer/drawbridge-enforcer}"
  [[ -x "${bin}" ]] || die "enforcer not found at ${bin} (build it, or set DRAWBRIDGE_ENFORCER)"
  realpath "${bin}"
}

controller_bin() {
  local bin="${DRAWBRIDGE_CONTROLLER:-${REPO_DIR}/build/controller/drawbridge-controller}"
  [[ -x "${bin}" ]] || die "controller not found at ${bin} (build it, or set DRAWBRIDGE_CONTROLLER)"
  realpath "${bin}"
}

require_root() {
  [[ "$(id -u)" -eq 0 ]] || die "needs root (network namespaces)"
}

# --- topology -------------------------------------------------------------------------------

lab_down() {
  local name
  local -a pids
  for name in msp gw lan; do
    ns_exists "${name}" || continue
    # Processes left in a namespace keep it (and its veths) alive after 'ip netns del'.
    mapfile -t pids < <(ip netns pids "$(ns "${name}")" 2>/dev/null || true)
    if ((${#pids[@]})); then
      kill -TERM "${pids[@]}" 2>/dev/null || true
      for _ in $(seq 20); do
        mapfile -t pids < <(ip netns pids "$(ns "${name}")" 2>/dev/null || true)
        ((${#pids[@]})) || break
        sleep 0.1
      done
      if ((${#pids[@]})); then
        kill -KILL "${pids[@]}" 2>/dev/null || true
      fi
    fi
    ip netns delete "$(ns "${name}")" 2>/dev/null || true
  done
  rm -rf "/run/drawbridge-lab/${PREFIX}"
}

# Waits until every link is up and no IPv6 address is tentative.
wait_usable() {
  local name
  for _ in $(seq 100); do
    local ready=1
    for name in msp gw lan; do
      if [[ -n "$(ip -n "$(ns "${name}")" -6 addr show tentative)" ]] ||
        ip -n "$(ns "${name}")" link show | grep -q 'state DOWN\|NO-CARRIER'; then
        ready=0
      fi
    done
    ((ready)) && return 0
    sleep 0.05
  done
  die "links or IPv6 addresses did not become usable"
}

lab_topology() {
  local name
  for name in msp gw lan; do
    ip netns add "$(ns "${name}")"
    # IPv6 addresses are usable at once (no DAD), link-local ones included.
    ns_sysctl "${name}" net.ipv6.conf.all.accept_dad 0
    ns_sysctl "${name}" net.ipv6.conf.default.accept_dad 0
    ns_sysctl "${name}" net.ipv4.conf.all.rp_filter 0
    ns_sysctl "${name}" net.ipv4.conf.default.rp_filter 0
    ip -n "$(ns "${name}")" link set lo up
  done
  ns_sysctl gw net.ipv4.ip_forward 1
  ns_sysctl gw net.ipv6.conf.all.forwarding 1

  local msp gw lan
  msp="$(ns msp)"
  gw="$(ns gw)"
  lan="$(ns lan)"
  ip -n "${gw}" link add wan0 type veth peer name eth0 netns "${msp}"
  ip -n "${gw}" link add lan0 type veth peer name eth0 netns "${lan}"
  # Up first: the carrier comes up asynchronously (linkwatch, up to a second), meanwhile the
  # addresses go on.
  ip -n "${msp}" link set eth0 up
  ip -n "${lan}" link set eth0 up
  ip -n "${gw}" link set wan0 up
  ip -n "${gw}" link set lan0 up

  local a
  for a in 203.0.113.2/24 203.0.113.3/24 203.0.113.100/24 198.51.100.66/24; do
    ip -n "${msp}" addr add "${a}" dev eth0
  done
  for a in 2001:db8:100::2/64 2001:db8:666::66/64; do
    ip -n "${msp}" addr add "${a}" dev eth0 nodad
  done
  for a in 203.0.113.254/24 198.51.100.254/24; do
    ip -n "${gw}" addr add "${a}" dev wan0
  done
  for a in 2001:db8:100::fe/64 2001:db8:666::fe/64; do
    ip -n "${gw}" addr add "${a}" dev wan0 nodad
  done
  ip -n "${gw}" addr add 10.20.0.1/24 dev lan0
  ip -n "${gw}" addr add 2001:db8:20::1/64 dev lan0 nodad
  for a in 10.20.0.10/24 10.20.0.11/24 10.20.0.12/24; do
    ip -n "${lan}" addr add "${a}" dev eth0
  done
  for a in 2001:db8:20::10/64 2001:db8:20::11/64; do
    ip -n "${lan}" addr add "${a}" dev eth0 nodad
  done

  ip -n "${msp}" route add default via 203.0.113.254
  ip -n "${msp}" -6 route add default via 2001:db8:100::fe
  ip -n "${lan}" route add default via 10.20.0.1
  ip -n "${lan}" -6 route add default via 2001:db8:20::1
  wait_usable
}

start_server() {
  local name="$1" labnet="$2" dir="/run/drawbridge-lab/${PREFIX}"
  mkdir -p "${dir}"
  local log="${dir}/serve-${name}.log"
  : >"${log}"
  ip netns exec "$(ns "${name}")" "${labnet}" serve --tcp "${SERVE_TCP}" --udp "${SERVE_UDP}" \
    </dev/null >"${log}" 2>&1 &
  disown
  for _ in $(seq 100); do
    grep -q '^ready' "${log}" && return 0
    sleep 0.05
  done
  die "echo server in $(ns "${name}") did not start: $(cat "${log}")"
}

lab_up() {
  require_root
  local labnet=""
  ((START_SERVERS)) && labnet="$(labnet_bin)"
  lab_down
  # A half-built lab is worse than none: if anything below fails (or dies), remove it all.
  local previous_trap
  previous_trap="$(trap -p EXIT)"
  trap 'lab_down' EXIT
  lab_topology
  if ((START_SERVERS)); then
    start_server lan "${labnet}"
    start_server gw "${labnet}"
  fi
  eval "${previous_trap:-trap - EXIT}"
}

lab_status() {
  local name
  for name in msp gw lan; do
    if ! ns_exists "${name}"; then
      echo "$(ns "${name}"): absent"
      continue
    fi
    echo "== $(ns "${name}")"
    ip -n "$(ns "${name}")" -brief addr show | sed 's/^/   /'
    local pids
    pids="$(ip netns pids "$(ns "${name}")" 2>/dev/null | paste -sd, -)"
    if [[ -n "${pids}" ]]; then
      ps -o pid=,args= -p "${pids}" | sed 's/^/   proc /'
    fi
  done
  if ns_exists gw; then
    echo "== nftables in $(ns gw)"
    in_ns gw nft list tables | sed 's/^/   /'
    in_ns gw nft list table inet drawbridge 2>/dev/null | sed 's/^/   /' || true
  fi
}

# --- demo -----------------------------------------------------------------------------------

rfc3339() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
hhmmss() { date -u -d "@$1" +%H:%M:%S; }

LABNET=""
# show_probe NS FROM TO PORT EXPECT(ALLOWED|DROPPED) WHO
# Sends a real connection, then asks the enforcer why (`explain`); both must agree with EXPECT.
show_probe() {
  local ns_name="$1" from="$2" to="$3" port="$4" expect="$5" who="$6"
  local verdict detail
  if detail="$(in_ns "${ns_name}" "${LABNET}" probe --from "${from}" --to "${to}" \
    --port "${port}" --timeout-ms 700)"; then
    verdict="ALLOWED"
  else
    local rc=$?
    [[ ${rc} -eq 1 ]] || die "probe failed to run: ${detail}"
    verdict="DROPPED"
  fi
  local why said="ALLOWED"
  why="$("${ENFORCER}" explain "${DEMO_POLICY}" --from "${from}" --to "${to}" --port "${port}")" ||
    said="DROPPED"
  # The explanation's detail lines, on one line.
  why="$(tail -n +2 <<<"${why}" | sed 's/^ *//' | paste -sd'|' | sed 's/|/; /g')"
  if [[ "${verdict}" == "${expect}" && "${said}" == "${expect}" ]]; then
    printf '  %-42s %-8s %s — %s\n' "${who} ${from} → ${to}" "${port}" "${verdict}" "${why}"
  else
    printf '  %-42s %-8s %s — UNEXPECTED: the policy means %s, explain says %s (%s)\n' \
      "${who} ${from} → ${to}" "${port}" "${verdict}" "${expect}" "${said}" "${why}"
    DEMO_SURPRISES=$((DEMO_SURPRISES + 1))
  fi
}

DEMO_SURPRISES=0

# wait_for_status CONFIG TEXT: polls `status --json` (spaces removed) until it contains TEXT.
wait_for_status() {
  local config="$1" pattern="$2" i
  for i in $(seq 1 50); do
    if in_ns msp "${CONTROLLER}" status --config "${config}" --json 2>/dev/null |
      tr -d ' \n' | grep -qF "${pattern}"; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}

# The MSP's controller pushes signed policies; the enforcer trusts only signatures.
demo_distribution() {
  local work="$1" d="$1/dist"
  CONTROLLER="$(controller_bin)"
  mkdir -p "${d}"
  echo
  echo "The MSP's controller: signed updates over ZeroMQ (CURVE), and one it cannot forge."
  "${CONTROLLER}" keygen --out "${d}/msp" --curve >/dev/null
  "${CONTROLLER}" keygen --out "${d}/gw" --curve >/dev/null
  "${CONTROLLER}" keygen --out "${d}/intruder" >/dev/null
  printf 'site = "lab"\nprovider_keys = ["%s"]\n' "$(cat "${d}/msp.pub")" >"${d}/trust.toml"
  printf '%s\n' 'listen = "tcp://203.0.113.2:7400"' "curve_key = \"${d}/msp.curve\"" \
    "state_dir = \"${d}/controller\"" 'heartbeat_seconds = 1' '' '[[enforcer]]' \
    'site = "lab"' 'name = "gw"' "key = \"$(cat "${d}/gw.curve.pub")\"" >"${d}/controller.toml"
  printf '%s\n' "trust = \"${d}/trust.toml\"" "state_dir = \"${work}/state\"" '' '[controller]' \
    'endpoint = "tcp://203.0.113.2:7400"' "server_key = \"$(cat "${d}/msp.curve.pub")\"" \
    "client_key = \"${d}/gw.curve\"" 'heartbeat_seconds = 1' >"${d}/enforcer.toml"
  echo "\$ drawbridge-controller serve --config controller.toml   (in ${PREFIX}msp, 203.0.113.2:7400)"
  in_ns msp "${CONTROLLER}" serve --config "${d}/controller.toml" </dev/null \
    >"${d}/controller.log" 2>&1 &
  local controller=$!
  echo "\$ drawbridge-enforcer run --config enforcer.toml   (in ${PREFIX}gw: dials out, no local policy)"
  ip netns exec "$(ns gw)" "${ENFORCER}" run --config "${d}/enforcer.toml" \
    </dev/null >"${d}/enforcer.log" 2>&1 &
  local daemon=$!
  wait_for_status "${d}/controller.toml" '"state":"connected"' ||
    die "the enforcer did not connect: $(cat "${d}/enforcer.log" "${d}/controller.log")"

  # Serial 2: as before, and the provider may now also reach 10.20.0.10 on tcp/8080.
  sed -e 's/^serial = 1$/serial = 2/' \
    -e 's#^ports = \["tcp/3389", "udp/3389"\]#ports = ["tcp/3389", "udp/3389", "tcp/8080"]#' \
    "${work}/demo.toml" >"${d}/serial2.toml"
  DEMO_POLICY="${d}/serial2.toml"
  "${CONTROLLER}" sign "${d}/serial2.toml" --key "${d}/msp" --out "${d}/serial2.bundle" >/dev/null
  echo "\$ drawbridge-controller sign serial2.toml --key msp   (adds tcp/8080 to rdp-servers)"
  echo "\$ drawbridge-controller publish serial2.bundle"
  in_ns msp "${CONTROLLER}" publish "${d}/serial2.bundle" --config "${d}/controller.toml" |
    sed 's/^/  /'
  wait_for_status "${d}/controller.toml" '"applied_serial":2' ||
    die "serial 2 was not applied: $(cat "${d}/enforcer.log")"
  show_probe msp 203.0.113.2 10.20.0.10 tcp/8080 ALLOWED "provider acme"
  show_probe msp 198.51.100.66 10.20.0.10 tcp/3389 DROPPED "attacker"

  # Serial 3 lets the attacker's network in, signed by a key the gateway does not trust: an
  # intruder in the MSP's controller can deliver it, but cannot make the enforcer accept it.
  sed -e 's/^serial = 2$/serial = 3/' \
    -e 's#^addresses = \["203.0.113.0/28"#addresses = ["198.51.100.0/24", "203.0.113.0/28"#' \
    "${d}/serial2.toml" >"${d}/serial3.toml"
  "${CONTROLLER}" sign "${d}/serial3.toml" --key "${d}/intruder" --out "${d}/serial3.bundle" \
    >/dev/null
  echo "\$ drawbridge-controller publish serial3.bundle   (an intruder's key; adds 198.51.100.0/24)"
  in_ns msp "${CONTROLLER}" publish "${d}/serial3.bundle" --config "${d}/controller.toml" |
    sed 's/^/  /'
  wait_for_status "${d}/controller.toml" '"last_ack":"rejected"' ||
    die "serial 3 was not refused: $(cat "${d}/enforcer.log")"
  echo "\$ drawbridge-controller status"
  in_ns msp "${CONTROLLER}" status --config "${d}/controller.toml" | sed 's/^/  /'
  show_probe msp 198.51.100.66 10.20.0.10 tcp/3389 DROPPED "attacker"

  kill -TERM "${daemon}" "${controller}" 2>/dev/null || true
  wait "${daemon}" "${controller}" 2>/dev/null || true
}

lab_demo() {
  require_root
  ENFORCER="$(enforcer_bin)"
  local enforcer="${ENFORCER}"
  LABNET="$(labnet_bin)"
  local work
  work="$(mktemp -d /tmp/drawbridge-demo.XXXXXX)"
  # Always leave the host as we found it.
  # shellcheck disable=SC2064  # expand ${work} now: it is local
  trap "lab_down; rm -rf '${work}'" EXIT

  echo "Building the lab: ${PREFIX}msp ↔ ${PREFIX}gw ↔ ${PREFIX}lan"
  lab_up

  local now open close
  now="$(date +%s)"
  open=$((now + 12))
  close=$((open + 6))
  cat >"${work}/demo.toml" <<EOF
version = 1
site = "lab"
serial = 1
timezone = "UTC"

[providers.acme]
addresses = ["203.0.113.0/28", "2001:db8:100::/48"]

[[links]]
name = "rdp-servers"
provider = "acme"
direction = "inbound"
hosts = ["10.20.0.10", "2001:db8:20::10"]
ports = ["tcp/3389", "udp/3389"]
windows = ["always"]

[[links]]
name = "ssh-maintenance"
provider = "acme"
direction = "inbound"
hosts = ["10.20.0.11"]
ports = ["tcp/22"]
windows = []

[[grants]]
link = "ssh-maintenance"
ticket = "CHG-42"
from = $(rfc3339 "${open}")
until = $(rfc3339 "${close}")

[guard]
ports = ["tcp/22", "tcp/5900"]
EOF
  echo
  echo "Policy (${work}/demo.toml):"
  sed 's/^/  | /' "${work}/demo.toml"
  DEMO_POLICY="${work}/demo.toml"
  echo
  echo "\$ drawbridge-enforcer check demo.toml"
  "${enforcer}" check "${work}/demo.toml"
  echo "\$ drawbridge-enforcer apply demo.toml   (in ${PREFIX}gw)"
  in_ns gw "${enforcer}" apply "${work}/demo.toml" --state-dir "${work}/state"

  echo
  echo "What passes through the gateway now:"
  show_probe msp 203.0.113.2 10.20.0.10 tcp/3389 ALLOWED "provider acme"
  show_probe msp 203.0.113.3 10.20.0.10 udp/3389 ALLOWED "provider acme"
  show_probe msp 2001:db8:100::2 2001:db8:20::10 tcp/3389 ALLOWED "provider acme"
  show_probe msp 203.0.113.100 10.20.0.10 tcp/3389 DROPPED "unapproved source"
  show_probe msp 198.51.100.66 10.20.0.10 tcp/3389 DROPPED "attacker"
  show_probe msp 203.0.113.2 10.20.0.11 tcp/3389 DROPPED "provider acme"
  show_probe msp 203.0.113.2 10.20.0.10 tcp/8080 DROPPED "provider acme"
  show_probe msp 198.51.100.66 10.20.0.10 tcp/22 DROPPED "attacker"
  show_probe msp 198.51.100.66 203.0.113.254 tcp/22 DROPPED "attacker"
  show_probe msp 198.51.100.66 10.20.0.10 tcp/8443 ALLOWED "attacker"

  echo
  echo "A change ticket: grant CHG-42 opens ssh-maintenance (10.20.0.11 tcp/22)" \
    "from $(hhmmss "${open}") to $(hhmmss "${close}") UTC."
  echo "\$ drawbridge-enforcer run --policy demo.toml   (daemon in ${PREFIX}gw, opens windows on time)"
  ip netns exec "$(ns gw)" "${enforcer}" run --policy "${work}/demo.toml" --state-dir "${work}/state" \
    </dev/null >"${work}/daemon.log" 2>&1 &
  local daemon=$!
  sleep 1
  kill -0 "${daemon}" 2>/dev/null || die "the daemon exited: $(cat "${work}/daemon.log")"

  echo "[$(date -u +%H:%M:%S)] before the grant:"
  show_probe msp 203.0.113.2 10.20.0.11 tcp/22 DROPPED "provider acme"
  while (($(date +%s) < open)); do sleep 0.2; done
  sleep 0.5
  echo "[$(date -u +%H:%M:%S)] inside the grant:"
  show_probe msp 203.0.113.2 10.20.0.11 tcp/22 ALLOWED "provider acme"
  show_probe msp 198.51.100.66 10.20.0.11 tcp/22 DROPPED "attacker"
  while (($(date +%s) < close)); do sleep 0.2; done
  sleep 0.5
  echo "[$(date -u +%H:%M:%S)] after the grant:"
  show_probe msp 203.0.113.2 10.20.0.11 tcp/22 DROPPED "provider acme"

  kill -TERM "${daemon}" 2>/dev/null || true
  wait "${daemon}" 2>/dev/null || true

  demo_distribution "${work}"

  echo
  if ((DEMO_SURPRISES)); then
    echo "${DEMO_SURPRISES} connection(s) did not match the policy."
    return 1
  fi
  echo "Every connection matched the policy. Tearing the lab down."
}

# --- main -----------------------------------------------------------------------------------

main() {
  local command="${1:-}"
  [[ -n "${command}" ]] || {
    usage >&2
    exit 2
  }
  shift
  while (($#)); do
    case "$1" in
    --prefix)
      [[ $# -ge 2 ]] || die "--prefix needs a value"
      PREFIX="$2"
      shift 2
      ;;
    --no-servers)
      START_SERVERS=0
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
  done
  [[ "${PREFIX}" =~ ^[A-Za-z0-9_-]{1,20}$ ]] || die "--prefix: 1-20 of [A-Za-z0-9_-]"

  case "${command}" in
  up) lab_up ;;
  down) require_root && lab_down ;;
  status) lab_status ;;
  demo) lab_demo ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
  esac
}

main "$@"
