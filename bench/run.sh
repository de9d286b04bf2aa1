#!/usr/bin/env bash
# The benchmark suite: every workload of the benchmark issue, each side by side with what users
# would use instead, in one run; prints a table and writes docs/performance.md with its charts.
# Run as root after .ci/bootstrap.sh. See bench/README.md and docs/performance.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
ALL_WORKLOADS="micro apply window packet footprint fanout logging"

usage() {
  cat <<EOF
Usage: bench/run.sh [--quick] [--only WORKLOAD[,WORKLOAD...]] [options]

Workloads (all by default, in this order):
  micro      Google Benchmark: policy parser, compile(), render, event formatters (no root)
  apply      full apply at N = 10 … 100,000: drawbridge-enforcer apply vs nft -f of what render
             prints vs iptables-restore of the naive one-rule-per-(source, host, port) ruleset
             (bench/apply_bench.sh), plus the kernel's own commit time (drawbridge-window-bench)
  window     one link's window open/close latency with the policy holding N prefixes
             (drawbridge-window-bench; the baseline is the nft -f reload measured by 'apply')
  packet     TCP throughput (iperf3) and connection rate through the lab gateway: N = 100,000
             drawbridge policy vs no table vs the linear iptables ruleset (bench/packet_bench.sh)
  footprint  enforcer start → protected from a signed bundle (vs nft -f), RSS at N = 100,000,
             idle CPU (bench/footprint.py)
  fanout     publish → applied-ack at 1, 100, 1,000 enforcers and controller RSS per
             enforcer (bench/fanout_bench.sh; no root)
  logging    violation logging (bench/log_bench.sh)

Options:
  --quick            small sizes and few repeats (a minute or two); asserts only that every
                     workload ran and produced numbers. Writes the report into --out only.
  --only LIST        run only these workloads (comma- or space-separated)
  --build-dir DIR    build tree: configured Release and built here unless --no-build
                                                                       [REPO/build-release]
  --no-build         use the binaries already in --build-dir
  --out DIR          work directory: every workload's raw records, the report, the charts
                                                          [new /tmp/drawbridge-suite.*]
  --docs FILE        write the report here (charts beside it, in performance/)
                     [docs/performance.md in a full run; nowhere in --quick]
  --no-docs          do not write docs/performance.md
  --save             copy the raw records to bench/results/suite-<date>-<commit>/
                     [on in a full run]
  --log-args "..."   extra options for bench/log_bench.sh (e.g. "--repeats 1")
  -h, --help         this text

The commands every workload ran are in OUT/commands.txt and in the report.
EOF
}

QUICK=0
ONLY=$ALL_WORKLOADS
BUILD=$REPO/build-release
BUILD_IT=1
OUT=""
DOCS=""
NO_DOCS=0
SAVE=""
LOG_ARGS=""

die() { echo "run.sh: $*" >&2; exit 2; }

while (($#)); do
  case $1 in
    --quick) QUICK=1; shift ;;
    --only) ONLY=${2:?}; shift 2 ;;
    --build-dir) BUILD=${2:?}; shift 2 ;;
    --no-build) BUILD_IT=0; shift ;;
    --out) OUT=${2:?}; shift 2 ;;
    --docs) DOCS=${2:?}; shift 2 ;;
    --no-docs) NO_DOCS=1; shift ;;
    --save) SAVE=1; shift ;;
    --log-args) LOG_ARGS=${2:?}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
done
ONLY=${ONLY//,/ }
for w in $ONLY; do [[ " $ALL_WORKLOADS " == *" $w "* ]] || die "unknown workload '$w'"; done
wanted() { [[ " $ONLY " == *" $1 "* ]]; }
needs_root=0
for w in apply window packet footprint logging; do wanted "$w" && needs_root=1; done
if ((needs_root && EUID != 0)); then
  echo "run.sh: needs root (network namespaces, nftables); skipped" >&2
  exit 77  # CTest's SKIP_RETURN_CODE
fi
for tool in python3 cmake; do command -v "$tool" >/dev/null || die "$tool not found"; done
if ((QUICK)); then
  [[ -n $SAVE ]] || SAVE=0
else
  [[ -n $SAVE ]] || SAVE=1
  ((NO_DOCS)) || [[ -n $DOCS ]] || DOCS=$REPO/docs/performance.md
fi
((NO_DOCS)) && DOCS=""

# ---- sizes: the issue's in a full run, small ones in --quick
if ((QUICK)); then
  APPLY_SIZES="10 1000" APPLY_RUNS=1 APPLY_METHODS="apply nft nft-replace iptables check render"
  WINDOW_SIZES="10 1000" WINDOW_TOGGLES=20 WINDOW_COMMITS=2
  PACKET_ARGS=(--n 1000 --iptables-n 10 --repeats 1 --seconds 1)
  FOOT_N=1000 FOOT_ARGS=(--repeats 1 --idle-seconds 2 --settle 0.2)
  FANOUT_ARGS=(--sizes "1 10" --rounds 2)
  LOG_MODE=(--quick)
  MICRO_ARGS=(--benchmark_min_time=0.01 "--benchmark_filter=/(10|1000)$|Format|Community")
else
  APPLY_SIZES="10 1000 10000 100000" APPLY_RUNS=5
  APPLY_METHODS="apply nft reapply nft-replace dry-run nft-check check render iptables"
  WINDOW_SIZES="10 1000 10000 100000" WINDOW_TOGGLES=200 WINDOW_COMMITS=5
  PACKET_ARGS=(--n 100000 --iptables-n 1000 --repeats 3 --seconds 5)
  FOOT_N=100000 FOOT_ARGS=(--repeats 5 --idle-seconds 30)
  FANOUT_ARGS=(--sizes "1 100 1000" --rounds 5)
  LOG_MODE=()
  MICRO_ARGS=()
fi
# shellcheck disable=SC2206  # word splitting of the user's extra options is intended
LOG_MODE+=($LOG_ARGS)

# ---- build
if ((BUILD_IT)); then
  if [[ -f $BUILD/CMakeCache.txt ]]; then
    cmake -S "$REPO" -B "$BUILD" >/dev/null
  else
    cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  cmake --build "$BUILD" -j"$(nproc)" --target drawbridge-enforcer drawbridge-controller \
    drawbridge-fanout-bench drawbridge-flood drawbridge-window-bench
  # Only defined when Google Benchmark is installed; the micro workload says so if it is not.
  cmake --build "$BUILD" -j"$(nproc)" --target drawbridge_microbench 2>/dev/null ||
    echo "run.sh: drawbridge_microbench not built (libbenchmark-dev missing?)" >&2
fi
BUILD=$(cd "$BUILD" && pwd)
ENFORCER=$BUILD/enforcer/drawbridge-enforcer
CONTROLLER=$BUILD/controller/drawbridge-controller
WINDOW_BENCH=$BUILD/bench/drawbridge-window-bench
MICRO=$BUILD/bench/drawbridge_microbench
for b in "$ENFORCER" "$CONTROLLER"; do [[ -x $b ]] || die "no $b (build first, or drop --no-build)"; done

[[ -n $OUT ]] || OUT=$(mktemp -d /tmp/drawbridge-suite.XXXXXX)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
COMMANDS=$OUT/commands.txt
: >"$COMMANDS"
# step NAME CMD...: runs one workload's command, records it (with the repo path as "."), and
# keeps going on failure so that the report can say which workload did not produce numbers.
# With STEP_STDOUT=FILE, the command's standard output goes to FILE.
FAILED=()
step() {
  local name=$1; shift
  local shown rc=0
  shown=$(printf '%q ' "$@")
  shown=${shown% }
  [[ -n ${STEP_STDOUT:-} ]] && shown+=" > $STEP_STDOUT"
  shown=$(sed "s|$BUILD/|BUILD/|g; s|$REPO/|./|g; s|$OUT/|OUT/|g" <<<"$shown")
  printf '%s\t%s\n' "$name" "$shown" >>"$COMMANDS"
  echo
  echo "==== $name: $shown"
  if [[ -n ${STEP_STDOUT:-} ]]; then
    "$@" >"$STEP_STDOUT" || rc=$?
  else
    "$@" || rc=$?
  fi
  if ((rc != 0)); then
    echo "run.sh: workload $name failed (exit status $rc)" >&2
    FAILED+=("$name")
  fi
}

# ---- the machine, and how busy it was
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "cores: $(nproc)"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel: $(uname -r)"
  echo "hypervisor: $(lscpu 2>/dev/null | awk -F: '/^Hypervisor vendor/ {gsub(/^ +/, "", $2); print $2}')"
  echo "nft: $(nft --version 2>/dev/null || echo none)"
  echo "iptables: $(iptables -V 2>/dev/null || echo none)"
  echo "iperf3: $(iperf3 --version 2>/dev/null | head -n1 || echo none)"
  echo "compiler: $(c++ --version | head -n1)"
  echo "build: $BUILD ($(grep -s '^CMAKE_BUILD_TYPE:' "$BUILD/CMakeCache.txt" | cut -d= -f2))"
  echo "source: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(
    [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]] && echo ' (with uncommitted changes)')"
  echo "mode: $( ((QUICK)) && echo quick || echo full)"
  echo "workloads: $ONLY"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt"
echo "output: $OUT"
STARTED=$(date +%s)
# The records are named after the commit the run started from (others may commit meanwhile).
RESULTS_NAME=suite-$(date -u +%Y-%m-%d)-$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)

# ---- the workloads
if wanted micro; then
  if [[ -x $MICRO ]]; then
    step micro "$MICRO" --benchmark_out="$OUT/micro.json" --benchmark_out_format=json \
      "${MICRO_ARGS[@]}"
  else
    echo "run.sh: no $MICRO (Google Benchmark missing: apt-get install libbenchmark-dev)" >&2
    FAILED+=(micro)
  fi
fi

if wanted apply; then
  step apply bash "$BENCH_DIR/apply_bench.sh" --sizes "$APPLY_SIZES" --runs "$APPLY_RUNS" \
    --methods "$APPLY_METHODS" --enforcer "$ENFORCER" --out "$OUT/apply"
fi

if wanted apply || wanted window; then
  mkdir -p "$OUT/window"
  window_sizes=$WINDOW_SIZES
  wanted window || window_sizes=$APPLY_SIZES
  for n in $window_sizes; do
    python3 "$BENCH_DIR/gen_policy.py" "$n" -o "$OUT/window/bench-$n.toml"
    STEP_STDOUT=$OUT/window/n$n.json step "window-$n" "$WINDOW_BENCH" \
      --policy "$OUT/window/bench-$n.toml" --commits "$WINDOW_COMMITS" --toggles "$WINDOW_TOGGLES"
  done
fi

# Where the window edge's time goes: one CPU profile (all CPUs: the kernel's share runs partly
# in workers) of toggles at the smallest and the largest size, when perf can sample here.
if wanted window && command -v perf >/dev/null && perf record -q -o /dev/null true 2>/dev/null; then
  set -- $WINDOW_SIZES
  for n in "$1" "${!#}"; do
    perf record -q -a -g -o "$OUT/window/perf-n$n.data" "$WINDOW_BENCH" \
      --policy "$OUT/window/bench-$n.toml" --commits 0 --toggles "$WINDOW_TOGGLES" >/dev/null 2>&1 || true
    perf report -i "$OUT/window/perf-n$n.data" --no-children --sort comm,dso,sym --stdio 2>/dev/null |
      grep -E '^ +[0-9.]+%' | head -n 25 >"$OUT/window/perf-n$n.txt" || true
    rm -f "$OUT/window/perf-n$n.data"
  done
  set --
fi

if wanted packet; then
  if ((!QUICK)) && command -v perf >/dev/null && perf record -q -o /dev/null true 2>/dev/null; then
    PACKET_ARGS+=(--perf)
  fi
  step packet bash "$BENCH_DIR/packet_bench.sh" "${PACKET_ARGS[@]}" --enforcer "$ENFORCER" \
    --out "$OUT/packet"
fi

if wanted footprint; then
  mkdir -p "$OUT/footprint"
  python3 "$BENCH_DIR/gen_policy.py" "$FOOT_N" -o "$OUT/footprint/bench-$FOOT_N.toml"
  step footprint python3 "$BENCH_DIR/footprint.py" --enforcer "$ENFORCER" \
    --controller "$CONTROLLER" --policy "$OUT/footprint/bench-$FOOT_N.toml" \
    --out "$OUT/footprint" "${FOOT_ARGS[@]}"
fi

if wanted fanout; then
  step fanout bash "$BENCH_DIR/fanout_bench.sh" --no-build --build-dir "$BUILD" \
    "${FANOUT_ARGS[@]}" --out "$OUT/fanout.json"
fi

if wanted logging; then
  step logging bash "$BENCH_DIR/log_bench.sh" --no-build --build-dir "$BUILD" \
    --out "$OUT/logging" "${LOG_MODE[@]}"
fi

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
echo "duration: $(($(date +%s) - STARTED)) s" >>"$OUT/machine.txt"
printf '%s\n' "${FAILED[@]}" >"$OUT/failed.txt"

# ---- the report
report=(python3 "$BENCH_DIR/report.py" --out "$OUT" --workloads "$ONLY")
((QUICK)) && report+=(--quick)
[[ -n $DOCS ]] && report+=(--docs "$DOCS")
rc=0
"${report[@]}" || rc=$?
if ((SAVE)); then
  dest=$REPO/bench/results/$RESULTS_NAME
  python3 "$BENCH_DIR/report.py" --out "$OUT" --workloads "$ONLY" --save "$dest"
  echo "raw records saved in $dest"
fi
if ((${#FAILED[@]})); then
  echo "run.sh: workloads that failed: ${FAILED[*]}" >&2
  exit 1
fi
exit "$rc"
