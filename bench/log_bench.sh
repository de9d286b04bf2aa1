#!/usr/bin/env bash
# Benchmark: denied packets per second that the enforcer logs with zero unaccounted loss, its CPU
# per 1,000 packets and per 1,000 events, and how aggregation bounds the events the SOC gets
# under a SYN flood. See docs/performance.md#violation-logging for the method and the results.
# Run as root; everything runs inside the namespace lab (vm/netns-lab.sh) under a prefix of its own,
# which is always deleted.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bench/log_bench.sh [options]

Builds the namespace lab (msp ↔ gw ↔ lan) under its own prefix, then floods a guarded port
(10.20.0.10 tcp/5900) from msp through gw with drawbridge-flood (raw TCP SYNs, sendmmsg).
Each measurement is a pair of runs, in alternating order:
  daemon    the real `drawbridge-enforcer run` in gw (default config: audit file only)
  baseline  the same table installed with `apply`, no daemon: the kernel's counter alone
For every run: packets sent; the kernel's count of logged packets (the `counter` of every
logging rule, read before and after); what the daemon received, counted lost (sequence gaps)
and ENOBUFS (from <state_dir>/events.json); unaccounted = logged − received − lost −
parse errors, which must be 0; the daemon's CPU (utime+stime from /proc/PID/stat, and the
per-thread run time from /proc/PID/task/*/schedstat); the events it wrote to the audit file.

Scenarios:
  ladder       one source, many source ports, at each of --rates (default aggregation, 60 s)
  aggregation  --agg-seconds of flood at --agg-rate with aggregation_seconds = --agg-interval:
               syn-1src   one source (198.51.100.66), source ports vary
               syn-253src 253 sources (198.51.100.1 …), source ports vary
               scan-253src 253 sources × 100 destination ports (tcp/20000-20099)
               each also run as baseline (kernel counter only)

Options:
  --quick              a few seconds, small counts; asserts nothing about speed, fails if any
                       run has unaccounted ≠ 0 or a packet is missing from the events
  --rates "R..."       offered rates, packets/s; "max" = as fast as possible
                       [25000 50000 100000 200000 max]
  --seconds S          flood length per ladder run (count = rate × S)      [2]
  --max-count N        packets in a "max" run                               [400000]
  --repeats K          pairs per rate and scenario                          [3]
  --scenarios "S..."   ladder and/or aggregation                            [ladder aggregation]
  --agg-rate R         offered rate in the aggregation scenario             [100000]
  --agg-seconds S      flood length in the aggregation scenario             [20]
  --agg-interval S     aggregation_seconds in the aggregation scenario      [5]
  --no-pin             do not pin the generator to CPU 0 and the daemon to CPU 1
  --build-dir DIR      build tree (configured RelWithDebInfo and built here unless --no-build)
                                                                     [REPO/build-bench]
  --no-build           use the binaries already in --build-dir
  --out DIR            work directory: results.tsv, summary.md, machine.txt, logs
                                                          [new /tmp/drawbridge-logbench.*]
  --save               also copy results.tsv, summary.md and machine.txt to
                       bench/results/log-<date>-<commit>/
  -h, --help           this text
EOF
}

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
RATES="25000 50000 100000 200000 max"
SECONDS_PER_RUN=2
MAX_COUNT=400000
REPEATS=3
SCENARIOS="ladder aggregation"
AGG_RATE=100000
AGG_SECONDS=20
AGG_INTERVAL=5
PIN=1
BUILD=$REPO/build-bench
BUILD_IT=1
OUT=""
SAVE=0
QUICK=0
SETTLE=1.0  # after a flood: the kernel flushes a partial NFLOG batch within 50 ms

die() { echo "log_bench: $*" >&2; exit 2; }

while (($#)); do
  case $1 in
    --quick) QUICK=1; shift ;;
    --rates) RATES=${2:?}; shift 2 ;;
    --seconds) SECONDS_PER_RUN=${2:?}; shift 2 ;;
    --max-count) MAX_COUNT=${2:?}; shift 2 ;;
    --repeats) REPEATS=${2:?}; shift 2 ;;
    --scenarios) SCENARIOS=${2:?}; shift 2 ;;
    --agg-rate) AGG_RATE=${2:?}; shift 2 ;;
    --agg-seconds) AGG_SECONDS=${2:?}; shift 2 ;;
    --agg-interval) AGG_INTERVAL=${2:?}; shift 2 ;;
    --no-pin) PIN=0; shift ;;
    --build-dir) BUILD=${2:?}; shift 2 ;;
    --no-build) BUILD_IT=0; shift ;;
    --out) OUT=${2:?}; shift 2 ;;
    --save) SAVE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
done

if ((QUICK)); then
  RATES="50000 max" SECONDS_PER_RUN=0.4 MAX_COUNT=40000 REPEATS=1
  AGG_RATE=50000 AGG_SECONDS=0.6 AGG_INTERVAL=1 SETTLE=0.4
fi
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || die "--repeats must be a positive integer"
for r in $RATES; do [[ $r == max || $r =~ ^[1-9][0-9]*$ ]] || die "bad rate '$r'"; done
for s in $SCENARIOS; do [[ $s == ladder || $s == aggregation ]] || die "unknown scenario '$s'"; done
[[ $AGG_INTERVAL =~ ^[1-9][0-9]*$ ]] || die "--agg-interval must be whole seconds"
if ((EUID != 0)); then
  echo "log_bench: needs root (network namespaces, nftables); skipped" >&2
  exit 77  # CTest's SKIP_RETURN_CODE
fi
for tool in ip nft python3 taskset; do command -v "$tool" >/dev/null || die "$tool not found"; done
(($(nproc) >= 2)) || PIN=0

if ((BUILD_IT)); then
  if [[ -f $BUILD/CMakeCache.txt ]]; then
    cmake -S "$REPO" -B "$BUILD" >/dev/null
  else
    cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  cmake --build "$BUILD" -j"$(nproc)" --target drawbridge-enforcer drawbridge-flood >/dev/null
fi
BUILD=$(cd "$BUILD" && pwd)
ENFORCER=$BUILD/enforcer/drawbridge-enforcer
FLOOD=$BUILD/bench/drawbridge-flood
[[ -x $ENFORCER && -x $FLOOD ]] || die "no drawbridge-enforcer or drawbridge-flood in $BUILD (build them, see --help)"

if [[ -z $OUT ]]; then OUT=$(mktemp -d /tmp/drawbridge-logbench.XXXXXX); else mkdir -p "$OUT"; fi
OUT=$(cd "$OUT" && pwd)
mkdir -p "$OUT/runs"

# ---- the lab, under a prefix of our own; deleted on every exit path
PREFIX="dblb$$-"
LAB=(bash "$REPO/vm/netns-lab.sh")
DAEMON_PID=""
cleanup() {
  if [[ -n $DAEMON_PID ]]; then kill -TERM "$DAEMON_PID" 2>/dev/null || true; fi
  "${LAB[@]}" down --prefix "$PREFIX" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
GW=${PREFIX}gw
MSP=${PREFIX}msp
"${LAB[@]}" up --prefix "$PREFIX" --no-servers >/dev/null

GEN_PIN=() DAEMON_PIN=()
if ((PIN)); then GEN_PIN=(taskset -c 0) DAEMON_PIN=(taskset -c 1); fi

POLICY=$OUT/policy.toml
cat >"$POLICY" <<'EOF'
# The benchmark's policy: provider acme may reach 10.20.0.10 tcp/3389; tcp/5900 and
# tcp/20000-20099 are guarded (everyone else's packets to them are dropped and logged).
version = 1
site = "bench"
serial = 1
timezone = "UTC"

[providers.acme]
addresses = ["203.0.113.0/28"]

[[links]]
name = "rdp"
provider = "acme"
direction = "inbound"
hosts = ["10.20.0.10"]
ports = ["tcp/3389"]
windows = ["always"]

[guard]
ports = ["tcp/5900", "tcp/20000-20099"]
EOF
"$ENFORCER" check "$POLICY" >/dev/null || die "the benchmark policy does not check"

# ---- measuring

# "logged limited": summed counters of the table's logging rules, and of counting drop rules
# without a log statement (a kernel rate limit in front of the log, when the ruleset has one).
kernel_counters() {
  ip netns exec "$GW" nft -j list table inet drawbridge | python3 -c '
import json, sys
logged = limited = 0
for item in json.load(sys.stdin)["nftables"]:
    rule = item.get("rule")
    if not rule:
        continue
    exprs = rule.get("expr", [])
    packets = sum(e["counter"]["packets"] for e in exprs if "counter" in e)
    if any("log" in e for e in exprs):
        logged += packets
    elif any("drop" in e for e in exprs):
        limited += packets
print(logged, limited)'
}

# "user_ticks sys_ticks run_ns" of a process and all its threads.
cpu_of() {
  local pid=$1 stat ns=0 t
  stat=$(cat "/proc/$pid/stat")
  stat=${stat##*) }  # the command name may contain spaces
  read -r -a f <<<"$stat"
  for t in /proc/"$pid"/task/*/schedstat; do
    read -r run _ <"$t" && ns=$((ns + run))
  done
  # Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the name.
  echo "${f[11]} ${f[12]} $ns"
}

audit_lines() { [[ -f $1 ]] && wc -l <"$1" || echo 0; }

# flood ARGS...: runs drawbridge-flood in msp; sets F_SENT F_SECONDS F_RATE F_USER F_SYS
flood() {
  local line
  line=$(ip netns exec "$MSP" "${GEN_PIN[@]}" "$FLOOD" "$@") || die "drawbridge-flood failed: $line"
  [[ $line =~ ^sent=([0-9]+)\ seconds=([0-9.]+)\ rate=([0-9]+)\ user_s=([0-9.]+)\ sys_s=([0-9.]+) ]] ||
    die "unexpected output from drawbridge-flood: $line"
  F_SENT=${BASH_REMATCH[1]} F_SECONDS=${BASH_REMATCH[2]} F_RATE=${BASH_REMATCH[3]}
  F_USER=${BASH_REMATCH[4]} F_SYS=${BASH_REMATCH[5]}
}

RESULTS=$OUT/results.tsv
printf '%s\n' "scenario	rate	repeat	method	sent	flood_s	sent_per_s	gen_user_s	gen_sys_s	logged	kernel_limited	received	lost	enobufs	parse_errors	unaccounted	rate_limited	daemon_kernel_count	enf_user_ticks	enf_sys_ticks	enf_cpu_ms	events	peak_events_per_s	audit_delivered	audit_backlog	event_packets	audit_rate	load1" >"$RESULTS"

wait_for_daemon() {  # state_dir: until the audit file shows the policy applied and NFLOG bound
  local audit=$1/audit.jsonl
  for _ in $(seq 100); do
    if [[ -f $audit ]] && grep -q '"action":"log-epoch"' "$audit" &&
      grep -q '"action":"policy-applied"' "$audit"; then
      return 0
    fi
    kill -0 "$DAEMON_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# one_run SCENARIO RATE REPEAT METHOD AGGREGATION FLOOD_ARGS...
one_run() {
  local scenario=$1 rate=$2 repeat=$3 method=$4 agg=$5
  shift 5
  local dir="$OUT/runs/$scenario-$rate-r$repeat-$method" cpu0=() cpu1=()
  # A run starts from nothing: a state directory left by an earlier run with the same --out
  # would add its spool and audit file to this run's counts.
  rm -rf "$dir"
  mkdir -p "$dir/state"
  ip netns exec "$GW" nft delete table inet drawbridge 2>/dev/null || true
  if [[ $method == daemon ]]; then
    {
      echo "policy = \"$POLICY\""
      echo "state_dir = \"$dir/state\""
      if [[ $agg != default ]]; then printf '[events]\naggregation_seconds = %s\n' "$agg"; fi
    } >"$dir/enforcer.toml"
    ip netns exec "$GW" "${DAEMON_PIN[@]}" "$ENFORCER" run --config "$dir/enforcer.toml" \
      </dev/null >"$dir/daemon.out" 2>"$dir/daemon.err" &
    DAEMON_PID=$!
    wait_for_daemon "$dir/state" || die "the daemon did not start: $(tail -n 5 "$dir/daemon.err")"
  else
    ip netns exec "$GW" "$ENFORCER" apply "$POLICY" --state-dir "$dir/state" >"$dir/apply.out" ||
      die "apply failed in $GW"
  fi
  read -r before_logged before_limited <<<"$(kernel_counters)"
  local lines_before=0 audit="$dir/state/audit.jsonl" sampler=""
  if [[ $method == daemon ]]; then
    read -r -a cpu0 <<<"$(cpu_of "$DAEMON_PID")"
    lines_before=$(audit_lines "$audit")
    # The daemon rewrites events.json every 5 s: each new version is one point of the event
    # rate over time.
    (
      last=""
      while kill -0 "$DAEMON_PID" 2>/dev/null; do
        snap=$(tr -d ' \n' <"$dir/state/events.json" 2>/dev/null || true)
        if [[ -n $snap && $snap != "$last" ]]; then
          echo "$snap" >>"$dir/snapshots.jsonl"
          last=$snap
        fi
        sleep 0.5
      done
    ) &
    sampler=$!
  fi
  flood "$@"
  local sent=$F_SENT secs=$F_SECONDS srate=$F_RATE guser=$F_USER gsys=$F_SYS
  # A loss at the very end shows only in the next packet's sequence number: one more SYN.
  sleep 0.2
  flood --count 1
  sent=$((sent + 1))
  sleep "$SETTLE"
  if [[ $method == daemon ]]; then read -r -a cpu1 <<<"$(cpu_of "$DAEMON_PID")"; fi
  read -r after_logged after_limited <<<"$(kernel_counters)"
  local logged=$((after_logged - before_logged)) klimited=$((after_limited - before_limited))
  local received="" lost="" enobufs="" perr="" unacc="" rlim="" dkern="" eu="" es="" ems=""
  local events="" peak="" delivered="" backlog="" ev_packets="" audit_rate=""
  if [[ $method == daemon ]]; then
    kill -TERM "$DAEMON_PID"
    for _ in $(seq 200); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$DAEMON_PID" 2>/dev/null; then die "the daemon did not stop on SIGTERM"; fi
    wait "$DAEMON_PID" || die "the daemon exited with an error: $(tail -n 5 "$dir/daemon.err")"
    DAEMON_PID=""
    wait "$sampler" 2>/dev/null || true
    # events.json as the daemon left it at stop. denied_rate_limited and denied_logged_by_kernel
    # (the daemon's own reading of the counters) only exist in newer enforcers: "-" if absent.
    # events: emitted because of the flood = all − those before it (delivered by then) − the
    # enforcer-stopped event; the summaries flushed at stop are included.
    # peak: the highest events/s between two consecutive versions of events.json.
    # ev_packets: the packets carried by the connection-denied events in the audit file (every
    # received packet must be in exactly one), when the audit file got every event.
    # audit_rate: events/s the audit file took while it had a backlog.
    read -r received lost enobufs perr rlim dkern events peak delivered backlog ev_packets \
      audit_rate <<<"$(python3 - "$dir/state/events.json" "$dir/snapshots.jsonl" "$audit" \
      "$lines_before" <<'PY'
import datetime, json, os, sys
j = json.load(open(sys.argv[1]))
def when(text):
    t = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()
snaps = [json.loads(l) for l in open(sys.argv[2])] if os.path.exists(sys.argv[2]) else []
peak = 0.0
for a, b in zip(snaps, snaps[1:]):
    dt = when(b["updated_at"]) - when(a["updated_at"])
    if dt > 0:
        peak = max(peak, (b["events_emitted"] - a["events_emitted"]) / dt)
out = j["outputs"][0] if j.get("outputs") else {"delivered": 0, "backlog": 0}
packets, times = 0, []
for line in open(sys.argv[3]):
    rec = json.loads(line)
    ev = rec["event"]
    if ev["event"].get("action") == "connection-denied":
        packets += ev.get("network", {}).get("packets", 0)
        times.append(when(rec["time"]))
rate = "-"
if out["backlog"] > 0 and len(times) > 1 and times[-1] > times[0]:
    rate = f"{(len(times) - 1) / (times[-1] - times[0]):.0f}"
print(j["denied_received"], j["denied_lost"], j["enobufs"], j["parse_errors"],
      j.get("denied_rate_limited", j.get("rate_limited", "-")),
      j.get("denied_logged_by_kernel", "-"),
      j["events_emitted"] - int(sys.argv[4]) - 1, f"{peak:.1f}" if len(snaps) > 1 else "-",
      out["delivered"], out["backlog"], packets if out["backlog"] == 0 else "-", rate)
PY
)"
    [[ $rlim == - ]] && rlim=""
    [[ $dkern == - ]] && dkern=""
    [[ $peak == - ]] && peak=""
    [[ $ev_packets == - ]] && ev_packets=""
    [[ $audit_rate == - ]] && audit_rate=""
    unacc=$((logged - received - lost - perr))
    eu=$((cpu1[0] - cpu0[0])) es=$((cpu1[1] - cpu0[1]))
    ems=$(python3 -c "print(f'{($((cpu1[2])) - $((cpu0[2]))) / 1e6:.1f}')")
  fi
  local load1
  read -r load1 _ </proc/loadavg
  printf '%s\t' "$scenario" "$rate" "$repeat" "$method" "$sent" "$secs" "$srate" "$guser" "$gsys" \
    "$logged" "$klimited" "$received" "$lost" "$enobufs" "$perr" "$unacc" "$rlim" "$dkern" "$eu" \
    "$es" "$ems" "$events" "$peak" "$delivered" "$backlog" "$ev_packets" "$audit_rate" >>"$RESULTS"
  printf '%s\n' "$load1" >>"$RESULTS"
  if [[ $method == daemon ]]; then
    printf '  %-12s %-7s r%s %-8s sent %8s at %7s/s  logged %8s  received %8s  lost %s  ENOBUFS %s  unaccounted %s  daemon %s ms CPU  events %s (audit file: %s, waiting %s)\n' \
      "$scenario" "$rate" "$repeat" "$method" "$sent" "$srate" "$logged" "$received" "$lost" \
      "$enobufs" "$unacc" "$ems" "$events" "$delivered" "$backlog"
  else
    printf '  %-12s %-7s r%s %-8s sent %8s at %7s/s  logged %8s\n' \
      "$scenario" "$rate" "$repeat" "$method" "$sent" "$srate" "$logged"
  fi
  ip netns exec "$GW" nft delete table inet drawbridge 2>/dev/null || true
}

# pair SCENARIO RATE REPEAT AGGREGATION FLOOD_ARGS...: daemon and baseline, alternating order
pair() {
  local scenario=$1 rate=$2 repeat=$3 agg=$4
  shift 4
  if ((repeat % 2)); then
    one_run "$scenario" "$rate" "$repeat" daemon "$agg" "$@"
    one_run "$scenario" "$rate" "$repeat" baseline "$agg" "$@"
  else
    one_run "$scenario" "$rate" "$repeat" baseline "$agg" "$@"
    one_run "$scenario" "$rate" "$repeat" daemon "$agg" "$@"
  fi
}

count_for() {  # rate seconds → packets
  python3 -c "print(max(1, round($1 * $2)))"
}

# ---- the machine
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
dirty=""
[[ -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]] && dirty=" (with uncommitted changes)"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "cpu details: $(lscpu 2>/dev/null | awk -F: '/^CPU family|^Model:|^Hypervisor vendor|^L3 cache/ {gsub(/^ +/, "", $2); printf "%s %s; ", $1, $2}')"
  echo "cores: $(nproc)"
  echo "kernel: $(uname -r)"
  echo "nft: $(nft --version)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "source: checkout $REPO at $commit$dirty"
  echo "build: $BUILD ($(grep -s '^CMAKE_BUILD_TYPE:' "$BUILD/CMakeCache.txt" | cut -d= -f2 || true))"
  echo "pinning: $( ((PIN)) && echo 'generator (and the kernel work of its packets) on CPU 0, daemon on CPU 1' || echo none)"
  echo "command: bench/log_bench.sh$( ((QUICK)) && echo ' --quick') --rates \"$RATES\" --seconds $SECONDS_PER_RUN --max-count $MAX_COUNT --repeats $REPEATS --scenarios \"$SCENARIOS\" --agg-rate $AGG_RATE --agg-seconds $AGG_SECONDS --agg-interval $AGG_INTERVAL$( ((PIN)) || echo ' --no-pin')"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt"
echo "output: $OUT"

# ---- the runs
ATTACKER=198.51.100.66
if [[ " $SCENARIOS " == *" ladder "* ]]; then
  echo "ladder: one source ($ATTACKER), source ports vary, to 10.20.0.10 tcp/5900"
  for ((k = 1; k <= REPEATS; k++)); do
    for rate in $RATES; do
      if [[ $rate == max ]]; then
        pair ladder max "$k" default --from "$ATTACKER" --count "$MAX_COUNT" --rate 0
      else
        pair ladder "$rate" "$k" default --from "$ATTACKER" \
          --count "$(count_for "$rate" "$SECONDS_PER_RUN")" --rate "$rate"
      fi
    done
  done
fi
if [[ " $SCENARIOS " == *" aggregation "* ]]; then
  agg_count=$(count_for "$AGG_RATE" "$AGG_SECONDS")
  echo "aggregation: $agg_count packets at $AGG_RATE/s, aggregation_seconds = $AGG_INTERVAL"
  for ((k = 1; k <= REPEATS; k++)); do
    pair syn-1src "$AGG_RATE" "$k" "$AGG_INTERVAL" --from "$ATTACKER" --count "$agg_count" \
      --rate "$AGG_RATE"
    # .1 to .253: .254 is the gateway's own address on that network (a martian as a source).
    pair syn-253src "$AGG_RATE" "$k" "$AGG_INTERVAL" --from 198.51.100.1 --sources 253 \
      --count "$agg_count" --rate "$AGG_RATE"
    pair scan-253src "$AGG_RATE" "$k" "$AGG_INTERVAL" --from 198.51.100.1 --sources 253 \
      --dport 20000 --dports 100 --count "$agg_count" --rate "$AGG_RATE"
  done
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"

# ---- the tables
python3 - "$RESULTS" "$AGG_INTERVAL" >"$OUT/summary.md" <<'PY'
import csv, statistics, sys

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
interval = sys.argv[2]

def num(v):
    return float(v) if v not in ("", None) else None

def med(values, fmt="{:,.0f}"):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    m = statistics.median(values)
    if len(values) == 1 or min(values) == max(values):
        return fmt.format(m)
    return f"{fmt.format(m)} ({fmt.format(min(values))}–{fmt.format(max(values))})"

def group(scenario, rate, method):
    return [r for r in rows if r["scenario"] == scenario and r["rate"] == rate and r["method"] == method]

def col(rs, key):
    return [num(r[key]) for r in rs]

def per_k(rs, what):  # daemon CPU ms per 1,000 `what`
    return [num(r["enf_cpu_ms"]) / num(r[what]) * 1000 if num(r[what]) else None for r in rs]

def gen_us(rs):  # generator CPU (with the kernel's per-packet work) per packet, µs
    return [(num(r["gen_user_s"]) + num(r["gen_sys_s"])) / num(r["sent"]) * 1e6 for r in rs]

def rate_of(rs, what):
    return [num(r[what]) / num(r["flood_s"]) for r in rs]

def row(cells):
    print("| " + " | ".join(cells) + " |")

scen = []
for r in rows:
    if (r["scenario"], r["rate"]) not in scen:
        scen.append((r["scenario"], r["rate"]))
has_limit = any(r["rate_limited"] != "" for r in rows)

if any(s == "ladder" for s, _ in scen):
    print("### Logging rate (one source, source ports vary; default aggregation, 60 s)\n")
    hdr = ["offered pkt/s", "sent/s, baseline", "logged, baseline", "sent/s, daemon",
           "logged, daemon", "received", "lost", "ENOBUFS", "**unaccounted**", "received/s",
           "daemon CPU ms per 1,000 received", "generator µs/pkt, baseline → daemon",
           "SOC events"]
    if has_limit:
        hdr.insert(8, "rate-limited")
    row(hdr)
    print("|" + "---:|" * len(hdr))
    for scenario, rate in scen:
        if scenario != "ladder":
            continue
        d, b = group(scenario, rate, "daemon"), group(scenario, rate, "baseline")
        cells = [rate if rate == "max" else f"{int(rate):,}", med(col(b, "sent_per_s")),
                 med(col(b, "logged")), med(col(d, "sent_per_s")), med(col(d, "logged")),
                 med(col(d, "received")), med(col(d, "lost")), med(col(d, "enobufs")),
                 "**" + med(col(d, "unaccounted")) + "**", med(rate_of(d, "received")),
                 med(per_k(d, "received"), "{:.2f}"),
                 f"{med(gen_us(b), '{:.2f}')} → {med(gen_us(d), '{:.2f}')}",
                 med(col(d, "events"))]
        if has_limit:
            cells.insert(8, med(col(d, "rate_limited")))
        row(cells)

agg = [(s, r) for s, r in scen if s != "ladder"]
if agg:
    print(f"\n### Aggregation under a SYN flood (aggregation_seconds = {interval})\n")
    hdr = ["flood", "sent", "logged, baseline", "logged, daemon", "received", "lost",
           "**unaccounted**", "received/s", "SOC events", "events/s over the flood",
           "peak events/s (5 s samples)", "packets per event", "audit file at stop: delivered / waiting",
           "audit file events/s while backed up", "daemon CPU ms per 1,000 received",
           "daemon CPU ms per 1,000 events"]
    row(hdr)
    print("|---|" + "---:|" * (len(hdr) - 1))
    for scenario, rate in agg:
        d, b = group(scenario, rate, "daemon"), group(scenario, rate, "baseline")
        ppe = [num(r["received"]) / num(r["events"]) if num(r["events"]) else None for r in d]
        row([f"{scenario} at {int(rate):,}/s", med(col(d, "sent")), med(col(b, "logged")),
             med(col(d, "logged")), med(col(d, "received")), med(col(d, "lost")),
             "**" + med(col(d, "unaccounted")) + "**", med(rate_of(d, "received")),
             med(col(d, "events")), med(rate_of(d, "events"), "{:,.1f}"),
             med(col(d, "peak_events_per_s"), "{:,.1f}"), med(ppe, "{:,.0f}"),
             f"{med(col(d, 'audit_delivered'))} / {med(col(d, 'audit_backlog'))}",
             med(col(d, "audit_rate")), med(per_k(d, "received"), "{:.2f}"),
             med(per_k(d, "events"), "{:.1f}")])
PY
cat "$OUT/summary.md"
echo
echo "raw results: $RESULTS"

if ((SAVE)); then
  dest=$REPO/bench/results/log-$(date -u +%Y-%m-%d)-$commit
  mkdir -p "$dest"
  cp "$RESULTS" "$OUT/summary.md" "$OUT/machine.txt" "$dest/"
  echo "saved: $dest"
fi

# The one assertion, in every mode: every packet the kernel logged is received or counted lost,
# and every received packet is in exactly one event.
bad=$(python3 - "$RESULTS" <<'PY'
import csv, sys
for r in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    if r["method"] != "daemon":
        continue
    if r["unaccounted"] != "0":
        print(f"{r['scenario']} {r['rate']} r{r['repeat']}: unaccounted {r['unaccounted']}")
    if r["event_packets"] not in ("", r["received"]):
        print(f"{r['scenario']} {r['rate']} r{r['repeat']}: the events carry {r['event_packets']} packets, {r['received']} were received")
PY
)
if [[ -n $bad ]]; then
  echo "log_bench: FAILED: $bad" >&2
  exit 1
fi
echo "log_bench: every packet the kernel logged was received or counted lost; every received packet is in one event (where the audit file had them all)"
