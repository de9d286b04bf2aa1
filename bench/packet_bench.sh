#!/usr/bin/env bash
# Benchmark: the packet path through the lab gateway. TCP throughput (iperf3) and connection
# rate from an approved provider address in msp to a server in lan, with gw holding
#   none        no firewall at all (the reference: 100 %)
#   drawbridge  an N-prefix drawbridge policy (`drawbridge-enforcer apply`)
#   iptables    the naive linear iptables ruleset of the same shape (bench/gen_iptables.py)
# in alternating order, repeat after repeat. See docs/performance.md#packet-path. Run as root;
# everything runs inside the namespace lab under a prefix of its own, always deleted.
set -euo pipefail

# The namespace lab.
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
LAB_SCRIPT=$REPO/vm/netns-lab.sh

usage() {
  cat <<'EOF'
Usage: bench/packet_bench.sh [options]

The client is 203.0.113.2 in msp (added to provider msp-a of the policy, and as the last
rules of the iptables ruleset: the worst case for a linear list); the server 10.20.0.10 in lan
(iperf3 on tcp/5900, an accept-and-close server on tcp/8040 for the connection rate).

Options:
  --n N              drawbridge policy size (provider prefixes)          [100000]
  --iptables-n M     size of the iptables ruleset (about 115 × M rules)  [1000]
  --repeats K        rounds of the three configurations                   [3]
  --seconds S        length of each iperf3 run and each connection-rate run [5]
  --enforcer PATH    drawbridge-enforcer binary         [REPO/build-release/enforcer/drawbridge-enforcer]
  --out DIR          results.tsv, logs                  [new /tmp/drawbridge-packetbench.*]
  --perf             also profile one more iperf3 run per firewall configuration (perf record
                     -a, all CPUs: the forwarding runs in softirq) into perf-<config>.txt
  -h, --help         this text
EOF
}

N=100000
IPT_N=1000
REPEATS=3
SECS=5
ENFORCER=$REPO/build-release/enforcer/drawbridge-enforcer
OUT=""
PERF=0
CLIENT=203.0.113.2
SERVER=10.20.0.10

die() { echo "packet_bench: $*" >&2; exit 2; }

while (($#)); do
  case $1 in
    --n) N=${2:?}; shift 2 ;;
    --iptables-n) IPT_N=${2:?}; shift 2 ;;
    --repeats) REPEATS=${2:?}; shift 2 ;;
    --seconds) SECS=${2:?}; shift 2 ;;
    --enforcer) ENFORCER=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    --perf) PERF=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
done
((EUID == 0)) || die "must run as root (network namespaces, nftables)"
for tool in ip nft iperf3 iptables-restore python3; do
  command -v "$tool" >/dev/null || die "$tool not found (see .ci/debian-packages.txt)"
done
[[ -x $ENFORCER ]] || die "no enforcer at $ENFORCER"
[[ -n $OUT ]] || OUT=$(mktemp -d /tmp/drawbridge-packetbench.XXXXXX)
mkdir -p "$OUT/state"
OUT=$(cd "$OUT" && pwd)

PREFIX="dbpk$$-"
GW=${PREFIX}gw MSP=${PREFIX}msp LAN=${PREFIX}lan
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  bash "$LAB_SCRIPT" down --prefix "$PREFIX" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "packet_bench: lab ($LAB_SCRIPT) under prefix $PREFIX; output $OUT"
DRAWBRIDGE_ENFORCER=$ENFORCER bash "$LAB_SCRIPT" up --prefix "$PREFIX" --no-servers >"$OUT/lab.log" 2>&1 ||
  die "lab did not come up; see $OUT/lab.log"

python3 "$BENCH_DIR/gen_policy.py" "$N" --extra-source "$CLIENT" -o "$OUT/policy.toml"
python3 "$BENCH_DIR/gen_iptables.py" "$IPT_N" --extra-source "$CLIENT" -o "$OUT/naive.rules"
IPT_RULES=$(grep -c -- '-j ACCEPT$' "$OUT/naive.rules")

ip netns exec "$LAN" iperf3 -s -p 5900 >"$OUT/iperf3-server.log" 2>&1 &
PIDS+=($!)
ip netns exec "$LAN" python3 "$BENCH_DIR/connrate.py" serve 8040 >"$OUT/connrate-server.log" 2>&1 &
PIDS+=($!)
sleep 0.5

# Only our own namespace's tables are touched: the drawbridge table and iptables' ip filter.
clear_gw() {
  ip netns exec "$GW" nft delete table inet drawbridge 2>/dev/null || true
  ip netns exec "$GW" iptables -F FORWARD 2>/dev/null || true
  ip netns exec "$GW" nft delete table ip filter 2>/dev/null || true
}
setup() {  # config
  clear_gw
  case $1 in
    none) ;;
    drawbridge)
      ip netns exec "$GW" "$ENFORCER" apply "$OUT/policy.toml" --state-dir "$OUT/state" \
        >"$OUT/apply.log" 2>&1 || die "apply failed; see $OUT/apply.log"
      ;;
    iptables)
      ip netns exec "$GW" iptables-restore "$OUT/naive.rules" || die "iptables-restore failed"
      ;;
  esac
  sleep 0.5
  # The client must get through, or the numbers mean nothing.
  ip netns exec "$MSP" python3 "$BENCH_DIR/connrate.py" client "$SERVER" 8040 0.2 "$CLIENT" |
    { read -r ok failed _; ((ok > 0 && failed == 0)); } || die "$1: the client cannot connect"
}

printf 'repeat\tconfig\tthroughput_gbps\tretransmits\tconnections_per_s\tconnect_failures\tload1\n' \
  >"$OUT/results.tsv"
measure() {  # repeat config
  local json gbps retr line ok failed secs cps load1
  json=$(ip netns exec "$MSP" iperf3 -c "$SERVER" -p 5900 -B "$CLIENT" -t "$SECS" -J)
  read -r gbps retr < <(python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
e = d["end"]
print("%.3f" % (e["sum_received"]["bits_per_second"] / 1e9), e["sum_sent"].get("retransmits", 0))
' <<<"$json")
  line=$(ip netns exec "$MSP" python3 "$BENCH_DIR/connrate.py" client "$SERVER" 8040 "$SECS" "$CLIENT")
  read -r ok failed secs <<<"$line"
  cps=$(python3 -c "print(f'{$ok / $secs:.0f}')")
  read -r load1 _ </proc/loadavg
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$gbps" "$retr" "$cps" "$failed" "$load1" \
    >>"$OUT/results.tsv"
  printf '  repeat %s  %-10s  %6s Gbit/s (%s retransmits)  %6s connections/s  (load %s)\n' \
    "$1" "$2" "$gbps" "$retr" "$cps" "$load1"
}

echo "packet_bench: drawbridge N=$N; iptables N=$IPT_N ($IPT_RULES ACCEPT rules); $REPEATS × $SECS s"
for ((r = 1; r <= REPEATS; r++)); do
  if ((r % 2)); then order="none drawbridge iptables"; else order="iptables drawbridge none"; fi
  for config in $order; do
    setup "$config"
    measure "$r" "$config"
  done
done
if ((PERF)); then
  for config in drawbridge iptables; do
    setup "$config"
    perf record -q -a -g -o "$OUT/perf-$config.data" -- ip netns exec "$MSP" \
      iperf3 -c "$SERVER" -p 5900 -B "$CLIENT" -t "$SECS" >/dev/null 2>&1 || true
    perf report -i "$OUT/perf-$config.data" --no-children --comms iperf3,ksoftirqd/0,ksoftirqd/1 --sort comm,sym --stdio 2>/dev/null |
      grep -E '^ +[0-9.]+%' | head -n 25 >"$OUT/perf-$config.txt" || true
    rm -f "$OUT/perf-$config.data"
  done
fi
clear_gw
{
  echo "n: $N"
  echo "iptables_n: $IPT_N"
  echo "iptables_rules: $IPT_RULES"
  echo "iptables: $(iptables -V)"
  echo "seconds: $SECS"
  echo "repeats: $REPEATS"
} >"$OUT/params.txt"
echo "packet_bench: results in $OUT/results.tsv"
