#!/usr/bin/env bash
# Removes namespaces left behind by integration tests that crashed or were killed. A test lab's
# namespaces are named dbt<pid>-<n><role> (see NamespaceLab::unique_prefix); they are removed only
# when <pid> is gone, so labs of a test run still in progress (another developer's) are left alone.
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  echo "Usage: $(basename "$0")   remove stale dbt<pid>-<n>* network namespaces (needs root)"
  exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
  echo "cleanup_stale.sh: not root, nothing to clean (integration tests will skip)"
  exit 0
fi

removed=0
while read -r name _; do
  [[ "${name}" =~ ^dbt([0-9]+)-[0-9]+[a-z]+$ ]] || continue
  owner="${BASH_REMATCH[1]}"
  kill -0 "${owner}" 2>/dev/null && continue
  # Processes inside keep the namespace alive after 'ip netns delete'.
  for pid in $(ip netns pids "${name}" 2>/dev/null || true); do
    kill -KILL "${pid}" 2>/dev/null || true
  done
  ip netns delete "${name}" 2>/dev/null || true
  echo "cleanup_stale.sh: removed ${name}"
  removed=$((removed + 1))
done < <(ip netns list 2>/dev/null || true)
echo "cleanup_stale.sh: ${removed} stale namespace(s) removed"
