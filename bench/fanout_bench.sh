#!/usr/bin/env bash
# Fan-out benchmark: publish → applied-ack latency and controller memory per connected enforcer,
# with N simulated enforcers (one process) connected over CURVE on loopback to the real
# drawbridge-controller. Builds a Release tree, runs drawbridge-fanout-bench, writes
# bench/results/fanout-<date>.json and prints the table. No root needed.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bench/fanout_bench.sh [options] [-- extra drawbridge-fanout-bench options]

Options:
  --build-dir DIR   Release build tree to use (configured and built here)  [REPO/build-release]
  --no-build        do not configure or build; use the binaries already in --build-dir
  --sizes "N..."    numbers of connected enforcers                        [1 100 1000]
  --rounds R        publications per size                                 [5]
  --out FILE        JSON results                     [REPO/bench/results/fanout-<date>.json]
  -h, --help        this text

Everything after `--` goes to the tool (drawbridge-fanout-bench --help lists its options, e.g.
--prefixes K for a bundle with K more provider addresses, --heartbeat, --keep, --tmpdir).
EOF
}

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
BUILD=$REPO/build-release
BUILD_IT=1
SIZES="1 100 1000"
ROUNDS=5
OUT=""
EXTRA=()

die() { echo "fanout_bench: $*" >&2; exit 2; }

while (($#)); do
  case $1 in
    --build-dir) BUILD=${2:?}; shift 2 ;;
    --no-build) BUILD_IT=0; shift ;;
    --sizes) SIZES=${2:?}; shift 2 ;;
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
done

for n in $SIZES; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "bad size '$n'"; done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
[[ -n $OUT ]] || OUT=$REPO/bench/results/fanout-$(date -u +%Y-%m-%d).json
mkdir -p "$(dirname "$OUT")"

if ((BUILD_IT)); then
  cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" --target drawbridge-fanout-bench drawbridge-controller
fi
BUILD=$(cd "$BUILD" && pwd)
TOOL=$BUILD/bench/drawbridge-fanout-bench
CONTROLLER=$BUILD/controller/drawbridge-controller
[[ -x $TOOL && -x $CONTROLLER ]] || die "no drawbridge-fanout-bench or drawbridge-controller in $BUILD"
build_type=$(grep -s '^CMAKE_BUILD_TYPE:' "$BUILD/CMakeCache.txt" | cut -d= -f2 || true)
[[ $build_type == Release ]] || echo "fanout_bench: WARNING: $BUILD is a '$build_type' build, not Release" >&2

commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
if [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
  commit="$commit (with uncommitted changes)"
fi
note="commit $commit; build $BUILD ($build_type)"

echo "fanout_bench: $note"
echo "fanout_bench: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores, kernel $(uname -r)"
"$TOOL" --controller "$CONTROLLER" --sizes "$(tr -s ' ' ',' <<<"$SIZES" | sed 's/^,//; s/,$//')" \
  --rounds "$ROUNDS" --out "$OUT" --note "$note" "${EXTRA[@]}"
