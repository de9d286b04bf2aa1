#!/usr/bin/env bash
# The hooks' "$1" is mmdebstrap's, expanded where the hook runs, not here.
# shellcheck disable=SC2016
# Builds the Drawbridge lab VM image: Debian 12 (bookworm) from Debian's packages only, the
# project's own .debs built from this tree, a kernel with a small initrd, a serial console.
# One image serves the three lab machines; the kernel command line chooses the role
# (drawbridge.role=msp|gw|lan, see vm/guest/usr/lib/drawbridge-lab/role-setup).
#
# Two stages, so that a second build is fast:
#   1. base: mmdebstrap of the Debian packages (including the runtime dependencies the .debs
#      declare) into a tarball under OUT/cache, keyed by everything that goes into it;
#   2. image: that tarball unpacked, the .debs installed with dpkg (offline), the lab's guest
#      files copied in, then an ext4 image made with `mke2fs -d` (no loop mount, no KVM).
# Reproducibility (SOURCE_DATE_EPOCH, fixed names, no keys baked in): see vm/README.md.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "${SCRIPT_DIR}/.." && pwd)"
readonly SCRIPT_DIR REPO_DIR
readonly SUITE="bookworm"
# A fixed UUID and directory-hash seed: mke2fs would otherwise pick random ones.
readonly FS_UUID="d7a3b1d9-1ab0-4c5e-9f00-0000000000d8"
readonly IMAGE_NAME="drawbridge-lab.img"

OUT_DIR="${REPO_DIR}/build/vm"
DEBS_DIR="${REPO_DIR}/build"
MIRROR="${DRAWBRIDGE_VM_MIRROR:-http://deb.debian.org/debian}"

# The Debian packages of the lab machines (the .debs' own dependencies are added to these).
readonly LAB_PACKAGES=(
  systemd-sysv udev kmod
  linux-image-amd64 initramfs-tools
  iproute2 nftables procps iputils-ping
  openssh-server openssh-client
  rsyslog
  python3
)

usage() {
  cat <<EOF
Usage: $(basename "$0") [--out DIR] [--debs DIR] [--mirror URL]

Builds ${IMAGE_NAME} (ext4, raw) with vmlinuz and initrd.img beside it into DIR.

Options:
  --out DIR     where the image goes (default: <repo>/build/vm); DIR/cache keeps the Debian base
  --debs DIR    where drawbridge-enforcer_*_amd64.deb and drawbridge-controller_*_amd64.deb are
                (default: <repo>/build; make them with: cmake --build build --target package)
  --mirror URL  Debian mirror (default: ${MIRROR}; env DRAWBRIDGE_VM_MIRROR); a
                snapshot.debian.org URL pins every package for a bit-for-bit rebuild
  -h, --help    this text

Environment: SOURCE_DATE_EPOCH (default: the commit time of HEAD) stamps every file.
Needs root, mmdebstrap and e2fsprogs; no KVM and no loop devices.
EOF
}

die() {
  echo "build-image.sh: $*" >&2
  exit 1
}

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

while (($#)); do
  case "$1" in
  --out)
    [[ $# -ge 2 ]] || die "--out needs a value"
    OUT_DIR="$2"
    shift 2
    ;;
  --debs)
    [[ $# -ge 2 ]] || die "--debs needs a value"
    DEBS_DIR="$2"
    shift 2
    ;;
  --mirror)
    [[ $# -ge 2 ]] || die "--mirror needs a value"
    MIRROR="$2"
    shift 2
    ;;
  -h | --help)
    usage
    exit 0
    ;;
  *) die "unknown argument: $1 (see --help)" ;;
  esac
done

[[ "$(id -u)" -eq 0 ]] || die "needs root (mmdebstrap installs packages into a chroot)"
command -v mmdebstrap >/dev/null || die "mmdebstrap not found (apt-get install mmdebstrap)"
command -v mke2fs >/dev/null || die "mke2fs not found (apt-get install e2fsprogs)"

shopt -s nullglob
enforcer_debs=("${DEBS_DIR}"/drawbridge-enforcer_*_amd64.deb)
controller_debs=("${DEBS_DIR}"/drawbridge-controller_*_amd64.deb)
shopt -u nullglob
((${#enforcer_debs[@]} == 1 && ${#controller_debs[@]} == 1)) ||
  die "expected one drawbridge-enforcer and one drawbridge-controller .deb in ${DEBS_DIR}" \
    "(build them: cmake --build ${DEBS_DIR} --target package)"
DEBS=("$(realpath "${enforcer_debs[0]}")" "$(realpath "${controller_debs[0]}")")

# The image's files are dated by SOURCE_DATE_EPOCH (default: the commit time of HEAD); the Debian
# base by the last commit that changed what goes into it, so that it stays cached across commits
# that do not. Given SOURCE_DATE_EPOCH, both use it.
if [[ -z "${SOURCE_DATE_EPOCH:-}" ]]; then
  SOURCE_DATE_EPOCH="$(git -C "${REPO_DIR}" log -1 --format=%ct 2>/dev/null || true)"
  BASE_EPOCH="$(git -C "${REPO_DIR}" log -1 --format=%ct -- vm/build-image.sh \
    vm/guest/initramfs 2>/dev/null || true)"
fi
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1764547200}"
BASE_EPOCH="${BASE_EPOCH:-${SOURCE_DATE_EPOCH}}"
export SOURCE_DATE_EPOCH
export LC_ALL=C.UTF-8 TZ=UTC

mkdir -p "${OUT_DIR}/cache"
OUT_DIR="$(realpath "${OUT_DIR}")"
WORK="${OUT_DIR}/work"
started=$(date +%s)

# --- stage 1: the Debian base -----------------------------------------------------------------

# "libfoo1 (>= 1.2), bar | baz" -> libfoo1 bar: the first choice of every dependency.
deb_dependencies() {
  local deb
  for deb in "$@"; do
    dpkg-deb -f "${deb}" Depends Pre-Depends | sed -e 's/^[A-Za-z-]*: //' | tr ',' '\n' |
      sed -e 's/|.*//' -e 's/(.*)//' -e 's/:any//' -e 's/[[:space:]]//g' | grep -v '^$' || true
  done
}

mapfile -t base_packages < <({
  printf '%s\n' "${LAB_PACKAGES[@]}"
  deb_dependencies "${DEBS[@]}"
} | sort -u)

# Everything stage 1 depends on, so that any change makes a new base.
base_key="$(
  {
    echo "suite=${SUITE} mirror=${MIRROR} epoch=${BASE_EPOCH}"
    printf '%s\n' "${base_packages[@]}"
    cat "${SCRIPT_DIR}/guest/initramfs/"*
    sed -n '/^# --- stage 1/,/^# --- stage 2/p' "${BASH_SOURCE[0]}"
  } | sha256sum | cut -c1-16
)"
base_tar="${OUT_DIR}/cache/base-${base_key}.tar"

if [[ -f "${base_tar}" ]]; then
  log "stage 1: Debian base from the cache (${base_tar##*/})"
else
  log "stage 1: mmdebstrap ${SUITE} from ${MIRROR} (${#base_packages[@]} packages and their dependencies)"
  rm -f "${OUT_DIR}"/cache/base-*.tar "${base_tar}.partial"
  # Documentation, man pages, translations and hardware the VMs never see stay out of the image.
  # The initramfs configuration goes in before the kernel is installed, so its postinst builds
  # the small initrd once. SSH host keys made by openssh-server's postinst are removed: every
  # machine makes its own at first boot (drawbridge-lab-sshkeys.service).
  # The downloaded .debs are kept in OUT/cache/debs (sync-in/sync-out), so a rebuild of the base
  # downloads only what changed on the mirror.
  mkdir -p "${OUT_DIR}/cache/debs"
  SOURCE_DATE_EPOCH="${BASE_EPOCH}" mmdebstrap --variant=minbase --mode=root --format=tar --skip=essential/unlink \
    --setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
    --setup-hook="sync-in '${OUT_DIR}/cache/debs' /var/cache/apt/archives" \
    --include="$(
      IFS=,
      echo "${base_packages[*]}"
    )" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/sound/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/gpu/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/media/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/net/wireless/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/infiniband/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/staging/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/bluetooth/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/net/bluetooth/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/net/wireless/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/net/mac80211/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/isdn/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/net/ethernet/*' \
    --dpkgopt='path-exclude=/lib/modules/*/kernel/drivers/iio/*' \
    --dpkgopt='path-exclude=/lib/firmware/*' \
    --essential-hook="mkdir -p \"\$1/etc/initramfs-tools/conf.d\" \"\$1/etc/initramfs-tools/hooks\"" \
    --essential-hook="cp '${SCRIPT_DIR}/guest/initramfs/drawbridge-lab.conf' \"\$1/etc/initramfs-tools/conf.d/\"" \
    --essential-hook="install -m 0755 '${SCRIPT_DIR}/guest/initramfs/drawbridge-lab-hook' \"\$1/etc/initramfs-tools/hooks/drawbridge-lab\"" \
    --customize-hook="sync-out /var/cache/apt/archives '${OUT_DIR}/cache/debs'" \
    --customize-hook='rm -rf "$1/var/cache/apt/archives/partial" "$1/var/cache/apt/archives/lock"' \
    --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
    --customize-hook='rm -f "$1/etc/resolv.conf" "$1/etc/hostname"' \
    --customize-hook=': > "$1/etc/machine-id"; rm -f "$1/var/lib/dbus/machine-id"' \
    "${SUITE}" "${base_tar}.partial" "${MIRROR}" ||
    die "mmdebstrap failed (is ${MIRROR} reachable?)"
  mv "${base_tar}.partial" "${base_tar}"
fi
stage1_done=$(date +%s)

# --- stage 2: the image -----------------------------------------------------------------------

ROOT="${WORK}/rootfs"
rm -rf "${WORK}"
mkdir -p "${ROOT}"
log "stage 2: unpacking the base"
tar -C "${ROOT}" --numeric-owner -xpf "${base_tar}"

log "stage 2: installing $(basename "${DEBS[0]}") and $(basename "${DEBS[1]}")"
mkdir -p "${ROOT}/tmp/debs"
cp "${DEBS[@]}" "${ROOT}/tmp/debs/"
# Offline: stage 1 holds every dependency, so dpkg alone resolves them. No daemon may start in
# the chroot (policy-rc.d), and nothing here may see the host's /proc or network.
printf '#!/bin/sh\nexit 101\n' >"${ROOT}/usr/sbin/policy-rc.d"
chmod 0755 "${ROOT}/usr/sbin/policy-rc.d"
chroot "${ROOT}" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH}" \
  DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 \
  sh -c 'dpkg -i /tmp/debs/*.deb' >"${OUT_DIR}/dpkg.log" 2>&1 ||
  die "installing the .debs failed: $(tail -n 20 "${OUT_DIR}/dpkg.log")"
rm -rf "${ROOT}/tmp/debs" "${ROOT}/usr/sbin/policy-rc.d"
# Logs with the time of this build, as mmdebstrap removes them after stage 1.
rm -f "${ROOT}/var/log/dpkg.log" "${ROOT}/var/log/alternatives.log" \
  "${ROOT}/var/cache/ldconfig/aux-cache"

log "stage 2: lab configuration"
cp -a --no-preserve=ownership "${SCRIPT_DIR}/guest/etc/." "${ROOT}/etc/"
cp -a --no-preserve=ownership "${SCRIPT_DIR}/guest/usr/." "${ROOT}/usr/"
chmod 0755 "${ROOT}"/usr/lib/drawbridge-lab/*
echo "drawbridge-lab" >"${ROOT}/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tdrawbridge-lab\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
  >"${ROOT}/etc/hosts"
echo "/dev/vda / ext4 rw,noatime 0 1" >"${ROOT}/etc/fstab"
# Daemons the roles start themselves (role-setup): off at boot for every machine.
for unit in ssh.service rsyslog.service; do
  systemctl --root="${ROOT}" disable "${unit}" >/dev/null 2>&1 || true
done
# Units a throwaway lab machine does not need, each seconds of boot under emulation.
systemctl --root="${ROOT}" mask e2scrub_reap.service e2scrub_all.timer getty-static.service \
  systemd-binfmt.service >/dev/null 2>&1
systemctl --root="${ROOT}" enable drawbridge-lab-role.service drawbridge-lab-agent.service \
  drawbridge-lab-sshkeys.service >/dev/null
# Root logs in on the serial console without a password (serial-getty autologin); the account
# has no password anywhere else, so ssh and other ttys cannot log in as root.
passwd --root "${ROOT}" --lock root >/dev/null 2>&1 || true

# Every file dated at most SOURCE_DATE_EPOCH, as mmdebstrap did for stage 1.
find "${ROOT}" -xdev -newermt "@${SOURCE_DATE_EPOCH}" -print0 |
  xargs -0r touch --no-dereference --date="@${SOURCE_DATE_EPOCH}"

# What is in the tree, file by file: equal manifests mean equal trees (see "Reproducible" in
# vm/README.md for why the ext4 image itself is not bit-for-bit equal).
(cd "${ROOT}" && find . -xdev -printf '%y %#m %U:%G %s %T@ %p -> %l\n' | sort -k7 |
  sed 's/ -> $//' >"${OUT_DIR}/rootfs.manifest.partial" &&
  find . -xdev -type f -print0 | sort -z | xargs -0 sha256sum >>"${OUT_DIR}/rootfs.manifest.partial")

log "stage 2: kernel and initrd"
kernel="$(find "${ROOT}/boot" -name 'vmlinuz-*' | sort | tail -n 1)"
initrd="$(find "${ROOT}/boot" -name 'initrd.img-*' | sort | tail -n 1)"
[[ -n "${kernel}" && -n "${initrd}" ]] || die "no kernel or initrd in ${ROOT}/boot"
cp "${kernel}" "${OUT_DIR}/vmlinuz.partial"
cp "${initrd}" "${OUT_DIR}/initrd.img.partial"

log "stage 2: ext4 image (mke2fs -d)"
# mke2fs copies access times too, and reading the tree (the manifest, the kernel copy) moved
# them. The list is made first: find reading a directory after touch would move it again.
find "${ROOT}" -xdev -print0 >"${WORK}/all-files"
xargs -0r touch --no-dereference -a --date="@${SOURCE_DATE_EPOCH}" <"${WORK}/all-files"
used_mib=$(du -sm --apparent-size "${ROOT}" | cut -f1)
size_mib=$((used_mib + used_mib / 4 + 384)) # room for logs, spools and the SSH keys
rm -f "${OUT_DIR}/${IMAGE_NAME}.partial"
truncate -s "${size_mib}M" "${OUT_DIR}/${IMAGE_NAME}.partial"
E2FSPROGS_FAKE_TIME="${SOURCE_DATE_EPOCH}" mke2fs -q -t ext4 -L drawbridge-lab -U "${FS_UUID}" \
  -E "hash_seed=${FS_UUID},root_owner=0:0" -d "${ROOT}" "${OUT_DIR}/${IMAGE_NAME}.partial" ||
  die "mke2fs failed"
# mke2fs also copies each file's change time, which no tool can set on the host, and reads each
# directory (moving its access time) before it copies its times: set both in the image. mke2fs -d
# allocates inodes in order, so the ones in use are 1..N.
inodes_used=$(dumpe2fs -h "${OUT_DIR}/${IMAGE_NAME}.partial" 2>/dev/null |
  awk -F: '/^Inode count/ { n = $2 } /^Free inodes/ { f = $2 } END { print n - f }')
seq 1 "${inodes_used}" |
  sed "s/.*/sif <&> ctime @${SOURCE_DATE_EPOCH}\nsif <&> atime @${SOURCE_DATE_EPOCH}/" \
    >"${WORK}/ctime.debugfs"
E2FSPROGS_FAKE_TIME="${SOURCE_DATE_EPOCH}" debugfs -w -f "${WORK}/ctime.debugfs" \
  "${OUT_DIR}/${IMAGE_NAME}.partial" >"${WORK}/debugfs.log" 2>&1 ||
  die "debugfs failed: $(tail -n 5 "${WORK}/debugfs.log")"
e2fsck -fn "${OUT_DIR}/${IMAGE_NAME}.partial" >"${WORK}/fsck.log" 2>&1 ||
  die "the new file system does not check clean: $(tail -n 5 "${WORK}/fsck.log")"

# What went in: package versions (the base is otherwise identified only by its cache key).
chroot "${ROOT}" dpkg-query -W -f '${Package} ${Version}\n' >"${OUT_DIR}/packages.txt"
for f in "${IMAGE_NAME}" vmlinuz initrd.img rootfs.manifest; do
  mv "${OUT_DIR}/${f}.partial" "${OUT_DIR}/${f}"
done
(cd "${OUT_DIR}" && sha256sum "${IMAGE_NAME}" vmlinuz initrd.img packages.txt rootfs.manifest >SHA256SUMS)
rm -rf "${WORK}"

finished=$(date +%s)
log "done in $((finished - started)) s (stage 1: $((stage1_done - started)) s," \
  "stage 2: $((finished - stage1_done)) s): ${OUT_DIR}/${IMAGE_NAME} (${size_mib} MiB)," \
  "vmlinuz, initrd.img"
