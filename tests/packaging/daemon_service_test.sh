#!/bin/bash
# daemon_service_test.sh ENFORCER_BINARY SOURCE_DIR
#
# What the systemd unit relies on, checked on the real binary, the real kernel and a real
# sd_notify socket, in a network namespace of its own (deleted at the end, whatever happens):
#  - it runs with CAP_NET_ADMIN as its only capability (the unit's CapabilityBoundingSet),
#    NoNewPrivileges, and NOTIFY_SOCKET pointing at a datagram socket this script reads;
#  - READY=1 arrives, and by then the table is in the kernel;
#  - SIGHUP re-reads the config: expiry_warning_hours takes effect at once, a changed table or
#    log_group is logged as needing a restart (and not applied), an invalid config is refused
#    with the running settings kept, a new policy path is applied; RELOADING=1 then READY=1;
#  - SIGTERM: STOPPING=1, exit status 0, and the table is still in the kernel;
#  - stderr that is not a terminal carries no ANSI colour codes (journald).
set -euo pipefail

enforcer=${1:?usage: $0 ENFORCER_BINARY SOURCE_DIR}
source_dir=${2:?usage: $0 ENFORCER_BINARY SOURCE_DIR}
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: needs root (network namespace, nftables)"
	exit 77
fi

ns=dbpkg$$
tmp=$(mktemp -d)
daemon=
listener=
cleanup() {
	[ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null || true
	[ -n "$listener" ] && kill "$listener" 2>/dev/null || true
	ip netns delete "$ns" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up

failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
check() {
	local what=$1
	shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}
# wait_for FILE REGEX [SECONDS]: until a line of FILE matches.
wait_for() {
	local deadline=$((SECONDS + ${3:-10}))
	until grep -Eq "$2" "$1" 2>/dev/null; do
		[ "$SECONDS" -ge "$deadline" ] && return 1
		sleep 0.1
	done
}
table_exists() { ip netns exec "$ns" nft list table inet "$1" >/dev/null 2>&1; }

# The service manager's side of sd_notify: one line per datagram, newlines as " | ".
python3 -u -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    print(s.recv(4096).decode().replace("\n", " | "), flush=True)
' "$tmp/notify.sock" >"$tmp/notify.log" &
listener=$!
wait_for "$tmp/notify.log" '^listening'

# A policy that expires in ten days: outside the default 24 h warning, inside a 1000 h one.
expires=$(date -u -d '+10 days' +%Y-%m-%dT%H:%M:%SZ)
sed -e "s/^expires *=.*/expires = $expires/" "$source_dir/policies/clinic-east.toml" >"$tmp/policy.toml"
sed -e 's/^serial *=.*/serial = 8/' "$tmp/policy.toml" >"$tmp/policy-8.toml"
write_config() { # write_config POLICY TABLE LOG_GROUP EXPIRY_HOURS
	cat >"$tmp/enforcer.toml" <<EOT
policy = "$1"
table = "$2"
log_group = $3
state_dir = "$tmp/state"
expiry_warning_hours = $4
EOT
}
write_config "$tmp/policy.toml" dbpkg 100 24
mkdir -m 0750 "$tmp/state"

# As the unit runs it: root with CAP_NET_ADMIN only, no new privileges.
ip netns exec "$ns" env NOTIFY_SOCKET="$tmp/notify.sock" \
	setpriv --bounding-set=-all,+net_admin --inh-caps=-all,+net_admin \
	--ambient-caps=-all,+net_admin --no-new-privs -- \
	"$enforcer" run --config "$tmp/enforcer.toml" 2>"$tmp/daemon.log" &
daemon=$!

check "READY=1 at start" wait_for "$tmp/notify.log" '^READY=1 \| STATUS=enforcing site clinic-east serial 7'
check "the table is in the kernel once READY=1 is sent" table_exists dbpkg
check "it runs with CAP_NET_ADMIN only" \
	test "$(sed -n 's/^CapEff:\t*//p' "/proc/$daemon/status")" = "0000000000001000"
check "no expiry warning with 24 h" bash -c "! grep -q 'expires .* (in' '$tmp/daemon.log'"
check "stderr (not a terminal) has no ANSI colour codes" bash -c "! grep -q $'\e\\[' '$tmp/daemon.log'"
check "NFLOG capture works with CAP_NET_ADMIN only" bash -c "! grep -qi 'operation not permitted' '$tmp/daemon.log'"

# SIGHUP 1: a live setting and two that need a restart.
write_config "$tmp/policy.toml" other 101 1000
kill -HUP "$daemon"
check "SIGHUP: RELOADING=1, then READY=1" wait_for "$tmp/notify.log" '^RELOADING=1'
check "SIGHUP: expiry_warning_hours applies at once" wait_for "$tmp/daemon.log" 'policy serial 7 expires .* \(in [0-9]+ min\)'
check "SIGHUP: a changed table is logged as needing a restart" \
	grep -q 'table changed in the config; takes effect at the next restart' "$tmp/daemon.log"
check "SIGHUP: a changed log_group likewise" \
	grep -q 'log_group changed in the config; takes effect at the next restart' "$tmp/daemon.log"
check "SIGHUP: the running table is kept, no other is made" \
	bash -c "ip netns exec $ns nft list table inet dbpkg >/dev/null && ! ip netns exec $ns nft list table inet other >/dev/null 2>&1"
check "SIGHUP: READY=1 again after the reload" \
	bash -c "test \$(grep -c '^READY=1' '$tmp/notify.log') -ge 2"

# SIGHUP 2: an invalid config is refused and nothing changes.
echo 'table = [' >>"$tmp/enforcer.toml"
kill -HUP "$daemon"
check "SIGHUP: an invalid config is refused, running settings kept" \
	wait_for "$tmp/daemon.log" 'SIGHUP: the config is invalid, keeping the running settings'
check "the daemon survives an invalid config" kill -0 "$daemon"

# SIGHUP 3: a new policy path is applied.
write_config "$tmp/policy-8.toml" dbpkg 100 1000
kill -HUP "$daemon"
check "SIGHUP: a new policy path is applied" wait_for "$tmp/daemon.log" "SIGHUP: reloading $tmp/policy-8.toml"
check "SIGHUP: serial 8 is in the kernel" wait_for "$tmp/notify.log" '^READY=1 \| STATUS=enforcing site clinic-east serial 8'

# SIGTERM: a stop never leaves the gateway unprotected.
kill -TERM "$daemon"
status=0
wait "$daemon" || status=$?
daemon=
check "SIGTERM: exit status 0" test "$status" = 0
check "SIGTERM: STOPPING=1" grep -q '^STOPPING=1' "$tmp/notify.log"
check "SIGTERM: the table stays in the kernel" table_exists dbpkg

echo "--- daemon stderr"
cat "$tmp/daemon.log"
echo "--- notifications"
cat "$tmp/notify.log"
echo "$failures failure(s)"
[ "$failures" = 0 ]
