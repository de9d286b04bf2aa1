#!/usr/bin/env bash
# Benchmark: time to apply a policy with N approved source prefixes × 100 hosts with
# `drawbridge-enforcer apply`, against `nft -f` loading the same ruleset from `render`.
# See docs/performance.md for the method and the results. Run as root; everything that touches
# nftables runs inside network namespaces this script creates and always deletes.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bench/apply_bench.sh [options]

For each size N: generate a policy with N provider source prefixes (bench/gen_policy.py),
render it once at a fixed instant to an .nft file, then alternate drawbridge and nft runs,
each in a fresh network namespace, and report median and min–max per method.

Methods (each run, in alternating order):
  apply        drawbridge-enforcer apply POLICY            (empty namespace)
  reapply      drawbridge-enforcer apply POLICY(serial 2)  (onto the table `apply` left)
  nft          nft -f rendered.nft                         (empty namespace)
  nft-replace  nft -f "delete table; load" in one transaction (onto the table `nft` left)
  dry-run      drawbridge-enforcer apply --dry-run         (kernel validates, aborts)
  nft-check    nft -c -f rendered.nft                      (kernel validates, aborts)
  check        drawbridge-enforcer check POLICY            (parse + validate, no netlink)
  render       drawbridge-enforcer render POLICY --at T    (parse + compile + print)
  iptables     iptables-restore naive.rules                (empty namespace): the ruleset people
               write by hand, one ACCEPT rule per (source, host, port), about 115 × N rules
               (bench/gen_iptables.py); after a timeout at one size, not run at larger sizes
After every run that installs a table, the provider maps must hold N elements (providers_v4,
plus provider_hosts_v4 where single addresses have their own hash map; for iptables, the
FORWARD chain must hold every generated rule);
once per size the ruleset applied by drawbridge must equal the one nft loaded (timeouts aside).

Options:
  --sizes "N..."      sizes to run                        [10 1000 10000 100000]
  --runs K            runs per method and size            [5]
  --methods "M..."    methods to run (see above)          [all]
  --enforcer PATH     drawbridge-enforcer binary          [REPO/build-bench/enforcer/drawbridge-enforcer]
  --out DIR           where policies, logs, results.tsv and summary.md go [new /tmp/drawbridge-bench.*]
  --at TIME           instant to render at (RFC 3339)     [the benchmark's start, to the second]
  --max-seconds S     kill a command after S seconds and skip that method's remaining runs
                      for that size                       [300]
  --iptables-max-seconds S  the same for iptables-restore [60]
  --iptables-max-rules R    do not try iptables-restore with more rules than this: the rules
                      text and iptables' memory grow with them (11.5 million rules at N =
                      100,000 would be about 0.9 GB of text) [2000000]
  --settle S          pause after deleting a namespace, seconds [0.5]
  --note TEXT         what is measured, for machine.txt   [git revision of this checkout]
  --perf              also record one `perf record -g` profile of apply and of nft -f per size
  -h, --help          this text

Build first (Release; GCC 12 needs -Wno-error=restrict, see docs/performance.md):
  cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release
  cmake --build build-bench -j2 --target drawbridge-enforcer
EOF
}

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
SIZES="10 1000 10000 100000"
RUNS=5
ALL_METHODS="apply reapply nft nft-replace dry-run nft-check check render iptables"
METHODS=$ALL_METHODS
ENFORCER=$REPO/build-bench/enforcer/drawbridge-enforcer
OUT=""
AT=""
MAX_SECONDS=300
IPT_MAX_SECONDS=60
IPT_MAX_RULES=2000000
SETTLE=0.5
PERF=0
NOTE=""

die() { echo "apply_bench: $*" >&2; exit 2; }

while (($#)); do
  case $1 in
    --sizes) SIZES=${2:?}; shift 2 ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    --methods) METHODS=${2:?}; shift 2 ;;
    --enforcer) ENFORCER=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    --at) AT=${2:?}; shift 2 ;;
    --max-seconds) MAX_SECONDS=${2:?}; shift 2 ;;
    --iptables-max-seconds) IPT_MAX_SECONDS=${2:?}; shift 2 ;;
    --iptables-max-rules) IPT_MAX_RULES=${2:?}; shift 2 ;;
    --settle) SETTLE=${2:?}; shift 2 ;;
    --note) NOTE=${2:?}; shift 2 ;;
    --perf) PERF=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
done

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
for n in $SIZES; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "bad size '$n'"; done
for m in $METHODS; do [[ " $ALL_METHODS " == *" $m "* ]] || die "unknown method '$m'"; done
((EUID == 0)) || die "must run as root (network namespaces, nftables)"
for tool in ip nft python3; do command -v "$tool" >/dev/null || die "$tool not found"; done
[[ -x $ENFORCER ]] || die "no enforcer at $ENFORCER (build it first, see --help)"
if ((PERF)); then command -v perf >/dev/null || die "--perf needs perf"; fi
if [[ " $METHODS " == *" iptables "* ]]; then
  for tool in iptables-restore iptables-save; do command -v "$tool" >/dev/null || die "$tool not found"; done
fi

[[ -n $AT ]] || AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if [[ -z $OUT ]]; then OUT=$(mktemp -d /tmp/drawbridge-bench.XXXXXX); else mkdir -p "$OUT"; fi
OUT=$(cd "$OUT" && pwd)
mkdir -p "$OUT/policies" "$OUT/logs" "$OUT/state"
RESULTS=$OUT/results.tsv
printf 'n\trun\tmethod\twall_ms\tuser_ms\tsys_ms\trc\tstatus\telements\tmessages\tbytes\tload1\n' >"$RESULTS"

# ---- network namespaces: every one we create is deleted on exit, whatever happens.
NS_PREFIX="dbbench-$$"
NS_COUNT=0
declare -a NAMESPACES=()
cleanup() {
  local ns
  for ns in "${NAMESPACES[@]}"; do
    ip netns del "$ns" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

NS=""
new_ns() {
  NS_COUNT=$((NS_COUNT + 1))
  NS="$NS_PREFIX-$NS_COUNT"
  NAMESPACES+=("$NS")
  ip netns add "$NS"
  # A fresh namespace has no nftables tables at all; make sure of it.
  if [[ -n $(ip netns exec "$NS" nft list tables) ]]; then die "namespace $NS is not empty"; fi
}
del_ns() {
  local ns=$1
  # Delete our table first, synchronously, so that freeing 100k elements does not overlap the
  # next measurement (namespace teardown is asynchronous); then the namespace.
  ip netns exec "$ns" nft delete table inet drawbridge 2>/dev/null || true
  ip netns del "$ns"
  sleep "$SETTLE"
}

# ---- measuring
# timed NS|- LOGBASE CMD...: sets T_WALL T_USER T_SYS T_RC; stdout/stderr in LOGBASE.{out,err}
T_WALL=0 T_USER=0 T_SYS=0 T_RC=0
TIMEOUT=""  # overrides --max-seconds for one call
timed() {
  local ns=$1 log=$2; shift 2
  local -a runner=(python3 "$BENCH_DIR/run_timed.py" --stdout "$log.out" --stderr "$log.err"
                   --timeout "${TIMEOUT:-$MAX_SECONDS}" --)
  local line
  if [[ $ns == - ]]; then
    line=$("${runner[@]}" "$@")
  else
    line=$(ip netns exec "$ns" "${runner[@]}" "$@")
  fi
  read -r T_WALL T_USER T_SYS T_RC <<<"$line"
}

# Number of provider source elements: maps providers_v4 (prefixes; before commit e8b84e7 all
# addresses) and provider_hosts_v4 (single addresses, hash map) of table inet drawbridge. Their
# elements are the only ones that jump to a provider chain p<i>_<name>.
provider_elements() {
  local map
  for map in providers_v4 provider_hosts_v4; do
    ip netns exec "$1" nft list map inet drawbridge "$map" 2>/dev/null || true
  done | { grep -o ': goto p[0-9]*_' || true; } | wc -l
}
has_tables() { [[ -n $(ip netns exec "$1" nft list tables 2>/dev/null) ]]; }

# The ruleset without timeouts and expiry times (they depend on when it was installed).
normalized_ruleset() {
  ip netns exec "$1" nft list ruleset | sed -E 's/ (timeout|expires) [0-9dhms]+//g'
}

record() {  # n run method status elements messages bytes
  local load1
  read -r load1 _ </proc/loadavg
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$T_WALL" "$T_USER" \
    "$T_SYS" "$T_RC" "$4" "${5:-}" "${6:-}" "${7:-}" "$load1" >>"$RESULTS"
  printf '  N=%-7s run %s  %-12s %10s ms  (user %s, sys %s)  %s%s\n' "$1" "$2" "$3" "$T_WALL" \
    "$T_USER" "$T_SYS" "$4" "${6:+  [$6 msgs, $7 bytes]}"
}

declare -A SKIP=()  # "N method" -> 1 once a command hit --max-seconds
wanted() { [[ " $METHODS " == *" $1 "* && -z ${SKIP["$N $1"]:-} ]]; }
timed_out() {  # method: after a timeout, skip the rest of this method's runs at this size
  if ((T_RC == 124)); then
    SKIP["$N $1"]=1
    return 0
  fi
  return 1
}
status_of() {  # expected_elements got_elements -> ok or FAIL text
  if ((T_RC == 124)); then echo "timeout(>${TIMEOUT:-$MAX_SECONDS}s)"
  elif ((T_RC != 0)); then echo "FAIL:rc=$T_RC"
  elif (($1 != $2)); then echo "FAIL:elements=$2"
  else echo ok
  fi
}

# ---- the groups of methods. Globals: N RUN POLICY POLICY2 NFTFILE REPLACEFILE
group_drawbridge() {  # apply into an empty namespace, then re-apply onto what it installed
  wanted apply || wanted reapply || return 0
  new_ns
  local ns=$NS log="$OUT/logs/n$N-r$RUN" st="$OUT/state/n$N-r$RUN" st_ok msgs bytes count
  mkdir -p "$st"
  timed "$ns" "$log-apply" "$ENFORCER" apply "$POLICY" --state-dir "$st"
  count=$(provider_elements "$ns")
  st_ok=$(status_of "$N" "$count")
  msgs="" bytes=""
  if [[ $(head -n1 "$log-apply.out") =~ \(([0-9]+)\ netlink\ messages,\ ([0-9]+)\ bytes ]]; then
    msgs=${BASH_REMATCH[1]} bytes=${BASH_REMATCH[2]}
  elif [[ $st_ok == ok ]]; then
    st_ok="FAIL:no-message-count"
  fi
  if wanted apply; then record "$N" "$RUN" apply "$st_ok" "$count" "$msgs" "$bytes"; fi
  timed_out apply || true
  if [[ $RUN == 1 && $st_ok == ok ]]; then normalized_ruleset "$ns" >"$OUT/logs/n$N-applied.nft"; fi
  if [[ $st_ok == ok ]] && wanted reapply; then
    timed "$ns" "$log-reapply" "$ENFORCER" apply "$POLICY2" --state-dir "$st"
    count=$(provider_elements "$ns")
    st_ok=$(status_of "$N" "$count")
    msgs="" bytes=""
    if [[ $(head -n1 "$log-reapply.out") =~ serial\ 2\ .*\(([0-9]+)\ netlink\ messages,\ ([0-9]+)\ bytes ]]; then
      msgs=${BASH_REMATCH[1]} bytes=${BASH_REMATCH[2]}
    elif [[ $st_ok == ok ]]; then
      st_ok="FAIL:no-serial-2"
    fi
    record "$N" "$RUN" reapply "$st_ok" "$count" "$msgs" "$bytes"
    timed_out reapply || true
  fi
  del_ns "$ns"
}

group_nft() {  # nft -f into an empty namespace, then an atomic replace onto what it loaded
  wanted nft || wanted nft-replace || return 0
  new_ns
  local ns=$NS log="$OUT/logs/n$N-r$RUN" st_ok count
  timed "$ns" "$log-nft" nft -f "$NFTFILE"
  count=$(provider_elements "$ns")
  st_ok=$(status_of "$N" "$count")
  if wanted nft; then record "$N" "$RUN" nft "$st_ok" "$count"; fi
  timed_out nft || true
  if [[ $RUN == 1 && $st_ok == ok ]]; then normalized_ruleset "$ns" >"$OUT/logs/n$N-nft.nft"; fi
  if [[ $st_ok == ok ]] && wanted nft-replace; then
    timed "$ns" "$log-nft-replace" nft -f "$REPLACEFILE"
    count=$(provider_elements "$ns")
    record "$N" "$RUN" nft-replace "$(status_of "$N" "$count")" "$count"
    timed_out nft-replace || true
  fi
  del_ns "$ns"
}

group_validate() {  # which: dry-run | nft-check. Nothing may be left in the namespace.
  local which=$1 st_ok
  wanted "$which" || return 0
  new_ns
  local ns=$NS log="$OUT/logs/n$N-r$RUN-$which"
  if [[ $which == dry-run ]]; then
    timed "$ns" "$log" "$ENFORCER" apply --dry-run "$POLICY" --state-dir "$OUT/state/dry-run"
  else
    timed "$ns" "$log" nft -c -f "$NFTFILE"
  fi
  st_ok=$(status_of 0 0)
  if [[ $st_ok == ok ]] && has_tables "$ns"; then st_ok="FAIL:committed"; fi
  if [[ $st_ok == ok && $which == dry-run ]] && ! grep -q '^dry run: the kernel accepts' "$log.out"; then
    st_ok="FAIL:output"
  fi
  record "$N" "$RUN" "$which" "$st_ok"
  timed_out "$which" || true
  del_ns "$ns"
}

group_userspace() {  # which: check | render. No netlink at all.
  local which=$1 st_ok
  wanted "$which" || return 0
  local log="$OUT/logs/n$N-r$RUN-$which"
  if [[ $which == check ]]; then
    timed - "$log" "$ENFORCER" check "$POLICY" --at "$AT"
    st_ok=$(status_of 0 0)
    if [[ $st_ok == ok ]] && ! grep -q ': valid\.' "$log.out"; then st_ok="FAIL:output"; fi
  else
    timed - "$log" "$ENFORCER" render "$POLICY" --at "$AT"
    st_ok=$(status_of 0 0)
    if [[ $st_ok == ok ]] && ! cmp -s "$log.out" "$NFTFILE"; then st_ok="FAIL:differs"; fi
  fi
  record "$N" "$RUN" "$which" "$st_ok"
  timed_out "$which" || true
  rm -f "$log.out"
}

group_iptables() {  # iptables-restore of the naive ruleset into an empty namespace
  wanted iptables || return 0
  [[ -z ${IPT_STOPPED:-} ]] || return 0
  new_ns
  local ns=$NS log="$OUT/logs/n$N-r$RUN-iptables" count
  TIMEOUT=$IPT_MAX_SECONDS
  timed "$ns" "$log" iptables-restore "$IPTFILE"
  # iptables-restore (nf_tables backend) commits the whole file in one transaction, so exit
  # status 0 means every rule is in. Listing them is checked only up to 200,000 rules:
  # iptables-save of a million rules takes minutes.
  if ((T_RC == 0 && IPT_RULES <= 200000)); then
    count=$(ip netns exec "$ns" iptables-save -t filter 2>/dev/null | grep -c -- '-j ACCEPT$' || true)
  elif ((T_RC == 0)); then
    count=$IPT_RULES
  else
    count=0
  fi
  record "$N" "$RUN" iptables "$(status_of "$IPT_RULES" "$count")" "$count"
  TIMEOUT=""
  if timed_out iptables; then IPT_STOPPED=$N; fi
  # Flushing synchronously keeps the kernel's freeing of the rules out of the next measurement.
  ip netns exec "$ns" iptables -F FORWARD 2>/dev/null || true
  del_ns "$ns"
}

perf_profiles() {
  local ns
  new_ns
  ns=$NS
  ip netns exec "$ns" perf record -q -g -o "$OUT/perf-apply-n$N.data" \
    "$ENFORCER" apply "$POLICY" --state-dir "$OUT/state/perf" >/dev/null 2>&1 || true
  perf report -i "$OUT/perf-apply-n$N.data" --no-children --sort dso,sym --stdio 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -n 25 >"$OUT/perf-apply-n$N.txt" || true
  del_ns "$ns"
  new_ns
  ns=$NS
  ip netns exec "$ns" perf record -q -g -o "$OUT/perf-nft-n$N.data" nft -f "$NFTFILE" \
    >/dev/null 2>&1 || true
  perf report -i "$OUT/perf-nft-n$N.data" --no-children --sort dso,sym --stdio 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -n 25 >"$OUT/perf-nft-n$N.txt" || true
  del_ns "$ns"
}

# ---- the machine
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "cpu details: $(lscpu 2>/dev/null | awk -F: '/^CPU family|^Model:|^Hypervisor vendor|^L3 cache/ {gsub(/^ +/, "", $2); printf "%s %s; ", $1, $2}')"
  echo "cores: $(nproc)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel: $(uname -r)"
  echo "nft: $(nft --version)"
  echo "libnftnl: $(dpkg-query -W -f='${Version}' libnftnl11 2>/dev/null || echo unknown)"
  echo "libmnl: $(dpkg-query -W -f='${Version}' libmnl0 2>/dev/null || echo unknown)"
  echo "enforcer: $("$ENFORCER" --version) ($ENFORCER, built $(date -u -r "$ENFORCER" +%Y-%m-%dT%H:%M:%SZ))"
  if [[ -n $NOTE ]]; then
    echo "source: $NOTE"
  else
    echo "source: checkout $REPO at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(
      [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]] && echo ' (with uncommitted changes)')"
  fi
  echo "build type: $(grep -s '^CMAKE_BUILD_TYPE:' "$(dirname "$(dirname "$ENFORCER")")/CMakeCache.txt" | cut -d= -f2 || true)"
  echo "render instant: $AT"
  echo "sizes: $SIZES; runs: $RUNS; methods: $METHODS; max-seconds: $MAX_SECONDS; settle: $SETTLE s"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt"
echo "output: $OUT"

# ---- the runs
for N in $SIZES; do
  POLICY=$OUT/policies/bench-$N.toml
  POLICY2=$OUT/policies/bench-$N-serial2.toml
  NFTFILE=$OUT/policies/bench-$N.nft
  REPLACEFILE=$OUT/policies/bench-$N-replace.nft
  python3 "$BENCH_DIR/gen_policy.py" "$N" -o "$POLICY"
  python3 "$BENCH_DIR/gen_policy.py" "$N" --serial 2 -o "$POLICY2"
  echo "N=$N: rendering at $AT"
  "$ENFORCER" render "$POLICY" --at "$AT" >"$NFTFILE"
  rendered=$(grep -o ': goto p[0-9]*_' "$NFTFILE" | wc -l)
  # the provider maps are the only ones whose elements jump to provider chains p<i>_*
  ((rendered == N)) || die "render of N=$N has $rendered provider elements"
  # nft's way to replace a table atomically: create it if absent, delete it, load it again.
  { printf 'table inet drawbridge {}\ndelete table inet drawbridge\n'; cat "$NFTFILE"; } >"$REPLACEFILE"
  IPTFILE=$OUT/policies/bench-$N.iptables
  IPT_RULES=0
  if wanted iptables && (($(python3 "$BENCH_DIR/gen_iptables.py" "$N" --count) > IPT_MAX_RULES)); then
    echo "N=$N: iptables-restore not run: more than $IPT_MAX_RULES rules (--iptables-max-rules)"
    T_WALL="" T_USER="" T_SYS="" T_RC=""
    record "$N" 1 iptables "not-run(more-than-$IPT_MAX_RULES-rules)"
    SKIP["$N iptables"]=1
  elif wanted iptables && [[ -z ${IPT_STOPPED:-} ]]; then
    python3 "$BENCH_DIR/gen_iptables.py" "$N" -o "$IPTFILE"
    IPT_RULES=$(grep -c -- '-j ACCEPT$' "$IPTFILE")
    echo "N=$N: naive iptables ruleset of $IPT_RULES ACCEPT rules"
  elif wanted iptables; then
    echo "N=$N: iptables-restore not run: it did not load within ${IPT_MAX_SECONDS}s at N=$IPT_STOPPED"
    T_WALL="" T_USER="" T_SYS="" T_RC=""
    record "$N" 1 iptables "not-run(timeout-at-smaller-N)"
  fi

  for ((RUN = 1; RUN <= RUNS; RUN++)); do
    # Alternate the order of each drawbridge/nft pair from run to run (ABBA), so that drift
    # (caches, frequency, background work) does not favour one side.
    if ((RUN % 2)); then
      group_drawbridge; group_nft; group_validate dry-run; group_validate nft-check
      group_userspace check; group_userspace render; group_iptables
    else
      group_iptables; group_nft; group_drawbridge; group_validate nft-check
      group_validate dry-run; group_userspace render; group_userspace check
    fi
    if ((RUN == 1)) && [[ -f $OUT/logs/n$N-applied.nft && -f $OUT/logs/n$N-nft.nft ]]; then
      if diff -q "$OUT/logs/n$N-applied.nft" "$OUT/logs/n$N-nft.nft" >/dev/null; then
        echo "  N=$N: the ruleset applied by drawbridge equals the one nft -f loaded (timeouts aside)"
      else
        echo "  N=$N: WARNING: applied and nft-loaded rulesets differ:" \
             "diff $OUT/logs/n$N-applied.nft $OUT/logs/n$N-nft.nft" | tee -a "$OUT/warnings.txt"
      fi
    fi
  done
  rm -f "$IPTFILE"  # up to hundreds of MB; gen_iptables.py makes it again
  if ((PERF)); then perf_profiles; fi
done

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
python3 "$BENCH_DIR/summarize.py" "$RESULTS" | tee "$OUT/summary.md"
echo
echo "raw results: $RESULTS"
if grep -P '\t(FAIL|timeout)' "$RESULTS" | grep -qvP '\tiptables\t' || [[ -f $OUT/warnings.txt ]]; then
  echo "some runs failed or differed; see above" >&2
  exit 1
fi
