#!/bin/bash
# package_install_test.sh BUILD_DIR
#
# The packages as a gateway gets them: builds the two .debs (`--target package`), installs them
# with apt into a fresh minimal Debian 12 tree (debootstrap minbase + systemd, as on a real
# gateway), and checks what they put there — binaries, units (systemd-analyze verify), conffiles,
# man pages, the state directory, the controller's user —, that both programs run there, that an
# upgrade keeps a changed conffile, and what remove and purge leave behind.
#
# Root only (debootstrap, chroot). Needs network access to deb.debian.org (or DRAWBRIDGE_MIRROR).
# The debootstrapped tree and the downloaded .debs are cached under BUILD_DIR/packaging-test/, so
# a second run takes about a minute; delete that directory to start from nothing.
set -euo pipefail

build=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
mirror=${DRAWBRIDGE_MIRROR:-http://deb.debian.org/debian}
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
work=$build/packaging-test
root=$work/root
base=$work/bookworm-minbase.tar
archives=$work/apt-archives

if [ "$(id -u)" != 0 ]; then
	echo "SKIP: needs root (debootstrap, chroot)"
	exit 77
fi
for tool in debootstrap chroot tar; do
	command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed (.ci/debian-packages.txt)"; exit 1; }
done

failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
check() { # check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}
quiet() { "$@" >/dev/null; }
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

# Everything mounted under the tree comes off before it is deleted: a bind mount left in place
# would let `rm -rf` reach into the host.
unmount_all() {
	local m
	for m in $(findmnt -rn -o TARGET | grep -F "$root/" | sort -r); do umount -l "$m" || true; done
}
nspawn=
remove_tree() {
	if [ -n "$nspawn" ] && kill -0 "$nspawn" 2>/dev/null; then
		kill "$nspawn" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$nspawn" 2>/dev/null || true
	fi
	unmount_all
	if findmnt -rn -o TARGET | grep -qF "$root/"; then
		echo "not deleting $root: something is still mounted under it" >&2
		return 1
	fi
	rm -rf "$root"
}
trap 'remove_tree' EXIT

t0=$(date +%s)
step() { echo "--- $* ($(($(date +%s) - t0)) s)"; }

step "building the packages"
rm -f "$build"/drawbridge-*.deb
mkdir -p "$work"
# What `--target package` does, without building every test binary first (`package` depends on
# `all`): the packaged targets, then cpack.
if ! { cmake --build "$build" --target drawbridge-enforcer drawbridge-controller man -j2 &&
	(cd "$build" && cpack); } >"$work/package.log" 2>&1; then
	tail -30 "$work/package.log"
	echo "FAIL: building the packages"
	exit 1
fi
enforcer_deb=$build/drawbridge-enforcer_${version}_amd64.deb
controller_deb=$build/drawbridge-controller_${version}_amd64.deb
check "exactly the two packages in $build" \
	test "$(ls "$build"/*.deb | sort | tr '\n' ' ')" = "$controller_deb $enforcer_deb "
for deb in "$enforcer_deb" "$controller_deb"; do
	[ -f "$deb" ] || { echo "FAIL: $deb was not built"; exit 1; }
done
depends=$(dpkg-deb -f "$enforcer_deb" Depends)
echo "drawbridge-enforcer Depends: $depends"
for lib in libnftnl11 libmnl0 libsodium23 libzmq5 libssl3 libsystemd0 tzdata; do
	check "drawbridge-enforcer depends on $lib" grep -q "\b$lib\b" <<<"$depends"
done
check "drawbridge-enforcer does not depend on nftables" bash -c "! grep -q nftables <<<'$depends'"
echo "drawbridge-controller Depends: $(dpkg-deb -f "$controller_deb" Depends)"
check "drawbridge-controller depends on libsqlite3-0" \
	grep -q libsqlite3-0 <<<"$(dpkg-deb -f "$controller_deb" Depends)"

step "a fresh Debian 12 tree"
mkdir -p "$archives"
remove_tree
if [ ! -s "$base" ]; then
	# minbase plus systemd: what a gateway runs, and what `systemd-analyze verify` needs.
	debootstrap --variant=minbase --include=systemd bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
		{ tail -20 "$work/debootstrap.log"; echo "FAIL: debootstrap (is $mirror reachable?)"; exit 1; }
	tar -C "$root" -cf "$base.tmp" . && mv "$base.tmp" "$base"
	rm -rf "$root"
fi
mkdir -p "$root"
tar -C "$root" -xf "$base"
mount -t proc proc "$root/proc"
mount --bind "$archives" "$root/var/cache/apt/archives"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$enforcer_deb" "$controller_deb" "$root/tmp/"

step "apt-get install ./drawbridge-enforcer ./drawbridge-controller"
in_root apt-get update -qq >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; exit 1; }
if in_root apt-get install -y -q --no-install-recommends \
	"/tmp/$(basename "$enforcer_deb")" "/tmp/$(basename "$controller_deb")" >>"$work/apt.log" 2>&1; then
	pass "apt installs both packages with their dependencies"
else
	cat "$work/apt.log"
	fail "apt installs both packages with their dependencies"
	exit 1
fi

step "files"
for f in /usr/sbin/drawbridge-enforcer /usr/bin/drawbridge-controller \
	/lib/systemd/system/drawbridge-enforcer.service /lib/systemd/system/drawbridge-controller.service \
	/etc/drawbridge/enforcer.toml /etc/drawbridge/controller.toml \
	/usr/share/man/man8/drawbridge-enforcer.8.gz /usr/share/man/man8/drawbridge-controller.8.gz \
	/usr/share/doc/drawbridge-enforcer/copyright /usr/share/doc/drawbridge-controller/copyright \
	/usr/share/doc/drawbridge-enforcer/deployment.md; do
	check "installed $f" test -s "$root$f"
done
check "enforcer.toml is a conffile" grep -qx /etc/drawbridge/enforcer.toml \
	"$root/var/lib/dpkg/info/drawbridge-enforcer.conffiles"
check "controller.toml is a conffile" grep -qx /etc/drawbridge/controller.toml \
	"$root/var/lib/dpkg/info/drawbridge-controller.conffiles"
check "/var/lib/drawbridge is 0750 root:root" \
	test "$(stat -c '%a %U:%G' "$root/var/lib/drawbridge")" = "750 root:root"
check "the drawbridge system user exists" quiet in_root getent passwd drawbridge
check "the man page is a man page" bash -c "zcat '$root/usr/share/man/man8/drawbridge-enforcer.8.gz' | grep -q '^\.SH SIGNALS'"
check "units enabled for boot" test -L "$root/etc/systemd/system/multi-user.target.wants/drawbridge-enforcer.service" \
	-a -L "$root/etc/systemd/system/multi-user.target.wants/drawbridge-controller.service"
# The shipped configs are all comments: the units' ExecCondition must skip them.
check "unconfigured enforcer is skipped (ExecCondition)" \
	bash -c "! grep -Eq '^[[:space:]]*(policy[[:space:]]*=|[[]controller[]])' '$root/etc/drawbridge/enforcer.toml'"
check "unconfigured controller is skipped (ExecCondition)" \
	bash -c "! grep -Eq '^[[:space:]]*[[][[]enforcer[]][]]' '$root/etc/drawbridge/controller.toml'"

step "units and programs inside the tree"
# --man=no: the Documentation= man pages are checked above; man-db is not in a minimal system.
verify_out=$(in_root systemd-analyze verify --man=no drawbridge-enforcer.service drawbridge-controller.service 2>&1) &&
	[ -z "$verify_out" ] && pass "systemd-analyze verify: both units clean" ||
	{ echo "$verify_out"; fail "systemd-analyze verify: both units clean"; }
check "drawbridge-enforcer --version" test "$(in_root drawbridge-enforcer --version)" = "drawbridge-enforcer $version"
check "drawbridge-controller --version" test "$(in_root drawbridge-controller --version)" = "drawbridge-controller $version"
# The time zone database comes with the package's dependencies: the example policy's windows are
# in a named zone.
example=/usr/share/doc/drawbridge-enforcer/examples/clinic-east.toml
check "drawbridge-enforcer check on the shipped example (tzdata present)" \
	in_root drawbridge-enforcer check "$example"
# The example config's top-level keys, uncommented, are a valid config.
awk '/^#\[/ { exit } { sub(/^#([a-z_]+ *=)/, substr($0, 2, index($0, "=") - 1)); print }' \
	"$root/etc/drawbridge/enforcer.toml" >"$root/tmp/enforcer-uncommented.toml"
check "the shipped enforcer.toml's keys, uncommented, are valid" \
	in_root drawbridge-enforcer render "$example" --config /tmp/enforcer-uncommented.toml --at 2026-11-26T15:00:00Z >/dev/null

step "the units under a real systemd (systemd-nspawn --boot, private network)"
# A configured gateway: a policy that is valid for ten more days, named in the config.
expires=$(date -u -d '+10 days' +%Y-%m-%dT%H:%M:%SZ)
sed -e "s/^expires *=.*/expires = $expires/" "$root$example" >"$root/etc/drawbridge/policy.toml"
echo 'policy = "/etc/drawbridge/policy.toml"  # local change' >>"$root/etc/drawbridge/enforcer.toml"
unmount_all
# The container's own network namespace holds the table; the host's is never touched.
systemd-nspawn -D "$root" --boot --private-network --console=passive --register=no --keep-unit \
	-q >"$work/nspawn.log" 2>&1 &
nspawn=$!
leader=
for _ in $(seq 100); do
	leader=$(pgrep -P "$nspawn" | head -1) && [ -n "$leader" ] &&
		state=$(nsenter -t "$leader" -a systemctl is-system-running 2>/dev/null) &&
		case $state in running | degraded) break ;; esac
	sleep 0.3
done
in_container() { nsenter -t "$leader" -a /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
if [ -z "$leader" ]; then
	cat "$work/nspawn.log"
	fail "systemd boots in the tree"
else
	echo "systemd in the container: $(in_container systemctl is-system-running || true)"
	check "boot: drawbridge-enforcer.service is active (enabled by the package, configured)" \
		test "$(in_container systemctl is-active drawbridge-enforcer.service)" = active
	check "boot: the table is in the kernel (status inside the container)" \
		quiet in_container drawbridge-enforcer status --config /etc/drawbridge/enforcer.toml
	check "boot: the unconfigured controller was skipped by its condition, not failed" \
		test "$(in_container systemctl show -P ConditionResult drawbridge-controller.service)" = no \
		-a "$(in_container systemctl is-failed drawbridge-controller.service || true)" != failed
	check "systemctl reload drawbridge-enforcer" in_container systemctl reload drawbridge-enforcer.service
	check "reload: the daemon re-read its config and policy" \
		bash -c "nsenter -t $leader -a journalctl -q -u drawbridge-enforcer.service | grep -q 'SIGHUP: reloading /etc/drawbridge/policy.toml'"
	# The MSP side in the same container: the controller under its unit (user drawbridge, no
	# capabilities) pushes a signed bundle over CURVE to the enforcer under its unit.
	in_container bash -ec '
		cd /etc/drawbridge
		drawbridge-controller keygen --out msp-signing >/dev/null
		drawbridge-controller keygen --out controller --curve >/dev/null
		chown drawbridge:drawbridge controller.curve
		drawbridge-controller keygen --out gw1 --curve >/dev/null
		cat >>controller.toml <<EOT
curve_key = "/etc/drawbridge/controller.curve"
[[enforcer]]
site = "clinic-east"
name = "gw1"
key  = "$(cat gw1.curve.pub)"
EOT
		cat >trust.toml <<EOT
site          = "clinic-east"
provider_keys = ["$(cat msp-signing.pub)"]
EOT
		cat >>enforcer.toml <<EOT
trust = "/etc/drawbridge/trust.toml"
[controller]
endpoint   = "tcp://127.0.0.1:7400"
server_key = "$(cat controller.curve.pub)"
client_key = "/etc/drawbridge/gw1.curve"
EOT
		sed -e "s/^serial .*/serial = 8/" policy.toml >/root/policy-8.toml
		drawbridge-controller sign /root/policy-8.toml --key msp-signing --out /root/ce-8.bundle >/dev/null'
	check "systemctl start drawbridge-controller (configured now)" \
		in_container systemctl start drawbridge-controller.service
	check "systemctl restart drawbridge-enforcer (with [controller])" \
		in_container systemctl restart drawbridge-enforcer.service
	sleep 1
	check "publish: the controller sends the bundle" quiet in_container \
		drawbridge-controller publish /root/ce-8.bundle --config /etc/drawbridge/controller.toml
	applied=no
	for _ in $(seq 50); do
		in_container drawbridge-controller status --config /etc/drawbridge/controller.toml |
			grep -q 'applied 8' && applied=yes && break
		sleep 0.2
	done
	check "the enforcer applied the controller's bundle, both under their hardened units" test "$applied" = yes
	check "systemctl status shows what is enforced (sd_notify STATUS)" test \
		"$(in_container systemctl show -P StatusText drawbridge-enforcer.service)" = \
		"enforcing site clinic-east serial 8 in table inet drawbridge"
	check "systemctl stop drawbridge-controller" in_container systemctl stop drawbridge-controller.service
	echo "--- the controller's journal in the container"
	in_container journalctl -q -o cat -u drawbridge-controller.service || true
	check "systemctl stop drawbridge-enforcer" in_container systemctl stop drawbridge-enforcer.service
	check "stop: the table stays in the kernel" \
		quiet in_container drawbridge-enforcer status --config /etc/drawbridge/enforcer.toml
	check "stop: inactive, not failed" \
		test "$(in_container systemctl is-active drawbridge-enforcer.service || true)" = inactive
	echo "--- the enforcer's journal in the container"
	in_container journalctl -q -o cat -u drawbridge-enforcer.service || true
	check "the daemon wrote no error under the hardened unit" \
		bash -c "! nsenter -t $leader -a journalctl -q -p warning -u drawbridge-enforcer.service -o cat | grep -v 'expires' | grep -q ."
	in_container systemctl poweroff >/dev/null 2>&1 || true
fi
for _ in $(seq 100); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.2; done
kill "$nspawn" 2>/dev/null || true
wait "$nspawn" 2>/dev/null || true
mount -t proc proc "$root/proc"
mount --bind "$archives" "$root/var/cache/apt/archives"

step "upgrade keeps a changed conffile"
in_root dpkg -i "/tmp/$(basename "$enforcer_deb")" >>"$work/apt.log" 2>&1 ||
	{ tail "$work/apt.log"; fail "dpkg -i over the installed package"; }
check "the local change survives the upgrade" grep -q 'local change' "$root/etc/drawbridge/enforcer.toml"
check "no .dpkg-new/.dpkg-dist left beside it" \
	bash -c "! ls '$root/etc/drawbridge/' | grep -q dpkg"

step "remove, then purge"
echo "state" >"$root/var/lib/drawbridge/accepted.json"
in_root apt-get remove -y -q drawbridge-enforcer >>"$work/apt.log" 2>&1 || fail "apt-get remove"
check "remove: the binary is gone" test ! -e "$root/usr/sbin/drawbridge-enforcer"
check "remove: the config stays" test -f "$root/etc/drawbridge/enforcer.toml"
check "remove: the state stays" test -f "$root/var/lib/drawbridge/accepted.json"
in_root apt-get purge -y -q drawbridge-enforcer drawbridge-controller >>"$work/apt.log" 2>&1 || fail "apt-get purge"
check "purge: the conffiles are gone" \
	test ! -e "$root/etc/drawbridge/enforcer.toml" -a ! -e "$root/etc/drawbridge/controller.toml"
# dpkg deletes only what it installed: keys, trust file and policies are the administrator's.
check "purge: files the administrator made stay (policy.toml)" test -f "$root/etc/drawbridge/policy.toml"
check "purge: /var/lib/drawbridge is gone" test ! -e "$root/var/lib/drawbridge"
check "purge: the units are no longer enabled" \
	test ! -e "$root/etc/systemd/system/multi-user.target.wants/drawbridge-enforcer.service" \
	-a ! -e "$root/etc/systemd/system/multi-user.target.wants/drawbridge-controller.service"
check "purge: no package files left" bash -c "! ls '$root/usr/share/doc/' | grep -q drawbridge"
check "purge: the drawbridge user stays (Debian keeps system users)" quiet in_root getent passwd drawbridge

step "done: $failures failure(s)"
[ "$failures" = 0 ]
