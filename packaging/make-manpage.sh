#!/bin/sh
# make-manpage.sh BINARY SECTION "WHAT IT DOES" OUT.gz
# A man page from the program's own --help and every subcommand's --help (help2man), plus the
# hand-written sections in man/<program>.h2m (files, signals, see also). help2man dates the page
# from SOURCE_DATE_EPOCH when it is set, so a pinned epoch gives the same bytes every build.
set -eu

bin=$1 section=$2 what=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
prog=$(basename "$bin")
# Run by bare name so that usage lines say `drawbridge-enforcer`, not the build path.
PATH="$(cd "$(dirname "$bin")" && pwd):$PATH"
export PATH

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Subcommands as CLI11 lists them: the indented words under "Subcommands:".
subcommands=$("$prog" --help | awk '/^Subcommands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }')
[ -n "$subcommands" ] || { echo "make-manpage.sh: no subcommands in $prog --help" >&2; exit 1; }

{
	cat "$here/man/$prog.h2m"
	echo "[COMMANDS]"
	printf '%s\n' 'Every command takes \fB\-\-help\fR. Exit codes: 0 ok, 1 refused or failed, 2 usage error.'
	for sub in $subcommands; do
		echo ".SS $sub"
		echo ".nf"
		# roff: a backslash is \e; a line starting with . or ' would be a request.
		"$prog" "$sub" --help | sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
		echo ".fi"
	done
} >"$tmp/include.h2m"

help2man --no-info --section="$section" --name="$what" --include="$tmp/include.h2m" \
	--no-discard-stderr "$prog" >"$tmp/page"
mkdir -p "$(dirname "$out")"
gzip -n -9 <"$tmp/page" >"$out"
