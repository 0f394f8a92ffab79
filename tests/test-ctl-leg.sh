#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# fusemirrorctl add, remove, resync, wait and set, without a daemon: plain files carrying the
# user.fusemirror.* attributes stand for mirrors, as in test-ctl-status.sh.  Checks
#   - usage errors (exit 2, a message and a hint to --help): missing and extra arguments, bad
#     --interval, NAME=VALUE that is not one, an unknown NAME, a bad VALUE, a NAME given twice;
#   - what add refuses before sending anything (exit 1, one line naming the reason): a path
#     with an ext4 file system (until --force), with the superblock of another fusemirror array
#     or a damaged one, with a superblock while the mirror reports no UUID; a path that does not
#     exist, a directory, the mirror file itself; and that a superblock of this very array (a
#     re-add) is not refused;
#   - the command each one would send, shown when it refuses to send it to a file that no daemon
#     serves: add with PATH made absolute (relative path, symbolic link), remove by name and
#     index, --force, resync --full, set with K/M/G suffixes turned into bytes;
#   - wait: exit 4 on a plain file, a missing file, a copy of a mirror's attributes;
#   - through bindfs (as root, when it is installed): the commands really sent, add's report of
#     the new leg's index, set's values read back, and wait following a resync that a background
#     job advances (plain lines per 10% step, the final line, exit 0 / 1 / 2 by the end state);
#   - that man/fusemirrorctl.8 has each of these commands in SYNOPSIS and COMMANDS, each control
#     command, errno and new attribute under EXTENDED ATTRIBUTES (test-ctl-status.sh checks
#     that --help and the page agree on every option).
#
# Run by automake with srcdir, top_srcdir and top_builddir in the environment; by hand:
#   srcdir=tests top_srcdir=. top_builddir=_build sh tests/test-ctl-leg.sh

if test -z "${srcdir:-}"; then
	srcdir=$(dirname "$0")
fi
. "$srcdir/functions.sh"
. "$srcdir/ctl-functions.sh"
set -u

top_srcdir=${top_srcdir:-$srcdir/..}
top_builddir=${top_builddir:-..}
ctl=$top_builddir/src/ctl/fusemirrorctl
page=$top_srcdir/man/fusemirrorctl.8
test -x "$ctl" || fail "$ctl is not built"
test -f "$page" || fail "$page not found"
requires setfattr getfattr od truncate dd mkfs.ext4 python3
case $ctl in
/*) ;;
*) ctl=$(pwd)/$ctl ;;
esac

# The messages checked below are the C locale's (strerror texts).
LC_ALL=C
export LC_ALL
unset LANGUAGE

make_tmpdir
# realpath: add sends the path with symbolic links resolved, $TMPDIR's too.
tmpdir=$(cd "$tmpdir" && pwd -P) || fail "cd $tmpdir"

probe=$tmpdir/probe
: >"$probe"
set_attrs "$probe" state=clean 2>/dev/null ||
	skip "cannot set user.* extended attributes in $tmpdir (mount it with user_xattr)"

# refused N WHAT REGEX CMD...: exit N, nothing on stdout, one line on stderr matching REGEX.
refused ()
{
	_n=$1
	_what=$2
	_re=$3
	shift 3
	run "$@"
	expect_rc "$_n" "$_what"
	test ! -s "$tmpdir/out" || problem "$_what: printed on stdout: $(cat "$tmpdir/out")"
	test "$(wc -l <"$tmpdir/err")" -eq 1 ||
		problem "$_what: not one line on stderr: $(cat "$tmpdir/err")"
	err_has "$_re" "$_what"
}

# not_sent WHAT COMMAND CMD...: refused (exit 1) for want of a daemon, naming COMMAND.
not_sent ()
{
	_what=$1
	_cmd=$2
	shift 2
	refused 1 "$_what" "not sending $_cmd: the file is not on a FUSE file system" "$@"
}

# ---- Simulated mirrors --------------------------------------------------------------------------

uuid=0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0
mirror=$tmpdir/mirror.img
truncate -s 4M "$mirror" || fail "truncate"
set_attrs "$mirror" name=data state=degraded legs=2 events=4 error_bits=0x2 "uuid=$uuid" \
	leg.0.name=a leg.0.path=/var/tmp/a.img leg.0.state=in_sync \
	leg.0.read_errors=0 leg.0.write_errors=0 \
	leg.1.name=b leg.1.path=/dev/sdc leg.1.state=failed \
	leg.1.read_errors=0 leg.1.write_errors=3 \
	resync.done=0 resync.total=0 resync.rate=0 \
	resync.rate_min=16777216 resync.rate_max=0 || fail "setfattr on $mirror"

# The same without uuid (a daemon with metadata = none, or an older one).
nouuid=$tmpdir/nouuid.img
cp --preserve=xattr "$mirror" "$nouuid" && setfattr -x user.fusemirror.uuid "$nouuid" ||
	fail "cp/setfattr -x on $nouuid"

plain=$tmpdir/plain.img
truncate -s 1M "$plain" || fail "truncate"

# Legs to add: an ext4 file system, nothing at all, and the legs of another fusemirror array.
ext4=$tmpdir/ext4.img
truncate -s 8M "$ext4" && mkfs.ext4 -q -F "$ext4" >/dev/null 2>&1 || fail "mkfs.ext4 $ext4"
blank=$tmpdir/blank.img
truncate -s 8M "$blank" || fail "truncate"
ln -s blank.img "$tmpdir/link.img" || fail "ln -s"
mkdir "$tmpdir/dir" || fail "mkdir"

truncate -s 4M "$tmpdir/other-a.img" "$tmpdir/other-b.img" || fail "truncate"
cat >"$tmpdir/other.conf" <<EOF
[mirror]
name = other
metadata = internal

[leg a]
path = $tmpdir/other-a.img

[leg b]
path = $tmpdir/other-b.img
EOF
run "$ctl" create --assume-clean "$tmpdir/other.conf"
test "$rc" -eq 0 || fail "fusemirrorctl create of the other array: $(cat "$tmpdir/err")"
run "$ctl" examine --json "$tmpdir/other-a.img"
other_uuid=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["uuid"])' \
	"$tmpdir/out") || fail "examine --json of $tmpdir/other-a.img"
# A damaged superblock: one byte of leg b's changed, so that its checksum fails.
printf 'X' | dd of="$tmpdir/other-b.img" bs=1 seek=300 conv=notrunc 2>/dev/null ||
	fail "dd on $tmpdir/other-b.img"

# ---- Usage errors -------------------------------------------------------------------------------

# usage_error WHAT ARGS...: exit 2, nothing on stdout, one line and a hint to --help on stderr.
usage_error ()
{
	_what=$1
	shift
	run "$ctl" "$@"
	expect_rc 2 "$_what"
	test ! -s "$tmpdir/out" || problem "$_what: printed on stdout"
	if test "$(wc -l <"$tmpdir/err")" -ne 2 ||
		! sed -n 2p "$tmpdir/err" | grep -q -e "--help"; then
		problem "$_what: not a message and a hint to --help on stderr:"
		sed 's/^/    /' "$tmpdir/err"
	fi
}
usage_error "add without arguments" add
usage_error "add without PATH" add "$mirror"
usage_error "add with an extra argument" add "$mirror" "$blank" x
usage_error "add with an unknown option" add --frobnicate "$mirror" "$blank"
usage_error "remove without arguments" remove
usage_error "remove without LEG" remove "$mirror"
usage_error "remove with an extra argument" remove "$mirror" a b
usage_error "resync without FILE" resync
usage_error "resync with two files" resync "$mirror" "$mirror"
usage_error "resync with an unknown option" resync --quick "$mirror"
usage_error "wait without FILE" wait
usage_error "wait with two files" wait "$mirror" "$mirror"
usage_error "wait --interval 0" wait --interval 0 "$mirror"
usage_error "wait --interval -1" wait --interval -1 "$mirror"
usage_error "wait --interval x" wait --interval x "$mirror"
usage_error "wait --interval 1s" wait --interval 1s "$mirror"
usage_error "set without arguments" set
usage_error "set without NAME=VALUE" set "$mirror"
usage_error "set with no '='" set "$mirror" resync-rate-min
usage_error "set of an unknown name" set "$mirror" resync-speed=1M
usage_error "set with an empty value" set "$mirror" resync-rate-max=
usage_error "set with a bad suffix" set "$mirror" resync-rate-max=12Q
usage_error "set with a negative value" set "$mirror" resync-rate-max=-1
usage_error "set with a blank in the value" set "$mirror" "resync-rate-max= 1M"
usage_error "set with a name given twice" set "$mirror" resync-rate-min=1 resync-rate-min=2
usage_error "set max-read-errors with a suffix" set "$mirror" max-read-errors=2K
usage_error "set max-read-errors negative" set "$mirror" max-read-errors=-1
usage_error "set max-read-errors above a million" set "$mirror" max-read-errors=1000001
usage_error "set with three assignments" set "$mirror" resync-rate-min=1 resync-rate-max=2 x=3
run "$ctl" set "$mirror"
err_has "missing NAME=VALUE" "set without NAME=VALUE"
run "$ctl" set "$mirror" resync-speed=1M
err_has "unknown setting 'resync-speed'.*resync-rate-min, resync-rate-max, io-timeout, max-read-errors" \
	"set of an unknown name"
run "$ctl" add "$mirror"
err_has "missing PATH" "add without PATH"

for cmd in add remove resync wait set; do
	run "$ctl" "$cmd" --help
	expect_rc 0 "$cmd --help"
	out_has "fusemirrorctl $cmd " "$cmd --help"
done

# ---- add: what it refuses before sending --------------------------------------------------------

refused 1 "add of an ext4 leg" \
	"^fusemirrorctl: add $mirror $ext4: $ext4 holds an ext4 file system: use --force to overwrite it\$" \
	"$ctl" add "$mirror" "$ext4"
refused 1 "add of a missing path" "^fusemirrorctl: add $mirror $tmpdir/missing.img: No such file or directory\$" \
	"$ctl" add "$mirror" "$tmpdir/missing.img"
refused 1 "add of a directory" "not a regular file or a block device" \
	"$ctl" add "$mirror" "$tmpdir/dir"
refused 1 "add of the mirror file itself" "the mirror file itself" \
	"$ctl" add "$mirror" "$mirror"
refused 1 "add to a plain file" "^fusemirrorctl: add $plain $blank: not a fusemirror mirror" \
	"$ctl" add "$plain" "$blank"
refused 1 "add to a missing mirror" "No such file or directory" \
	"$ctl" add "$tmpdir/missing-mirror.img" "$blank"
refused 1 "add of a leg of another array" \
	"other-a\.img already belongs to fusemirror array 'other' \(uuid $other_uuid, leg index 0 of 2\): use --force" \
	"$ctl" add "$mirror" "$tmpdir/other-a.img"
refused 1 "add of a leg with a damaged superblock" \
	"other-b\.img holds a damaged fusemirror superblock \(.*\): use --force" \
	"$ctl" add "$mirror" "$tmpdir/other-b.img"
refused 1 "add of a leg to a mirror without a uuid" \
	"already belongs to fusemirror array 'other'.*no user\.fusemirror\.uuid.*: use --force" \
	"$ctl" add "$nouuid" "$tmpdir/other-a.img"

# What passes the checks is refused only for want of a daemon, naming the command.
not_sent "add of a blank leg" "'add $blank'" "$ctl" add "$mirror" "$blank"
not_sent "add of an ext4 leg with --force" "'add --force $ext4'" \
	"$ctl" add --force "$mirror" "$ext4"
not_sent "add of another array's leg with --force" "'add --force $tmpdir/other-a.img'" \
	"$ctl" add --force "$mirror" "$tmpdir/other-a.img"
# Relative paths and symbolic links go to the daemon absolute and resolved.
(cd "$tmpdir" && run "$ctl" add mirror.img blank.img && echo "$rc" >"$tmpdir/rc")
rc=$(cat "$tmpdir/rc")
expect_rc 1 "add of a relative path"
err_has "not sending 'add $blank'" "add of a relative path"
not_sent "add of a symbolic link" "'add $blank'" "$ctl" add "$mirror" "$tmpdir/link.img"
# A leg of this very array (its superblock has the mirror's uuid): a re-add, no --force needed.
reused=$tmpdir/reused.img
cp --preserve=xattr "$mirror" "$reused" && set_attrs "$reused" "uuid=$other_uuid" ||
	fail "cp/setfattr on $reused"
not_sent "re-add of a former leg" "'add $tmpdir/other-a.img'" \
	"$ctl" add "$reused" "$tmpdir/other-a.img"
# An upper-case uuid is the same uuid.
set_attrs "$reused" "uuid=$(printf '%s' "$other_uuid" | tr a-f A-F)" || fail "setfattr"
not_sent "re-add with an upper-case uuid" "'add $tmpdir/other-a.img'" \
	"$ctl" add "$reused" "$tmpdir/other-a.img"

# ---- remove, resync, set: the commands they would send ------------------------------------------

refused 1 "remove of an unknown leg" \
	"^fusemirrorctl: remove $mirror c: mirror 'data' has no leg 'c'; its legs are: a \(0\), b \(1\)\$" \
	"$ctl" remove "$mirror" c
refused 1 "remove on a plain file" "not a fusemirror mirror" "$ctl" remove "$plain" a
not_sent "remove by name" "'remove 1'" "$ctl" remove "$mirror" b
not_sent "remove by index" "'remove 0'" "$ctl" remove "$mirror" 0
not_sent "remove --force" "'remove --force 0'" "$ctl" remove --force "$mirror" a

refused 1 "resync on a plain file" "not a fusemirror mirror" "$ctl" resync "$plain"
not_sent "resync" "'resync'" "$ctl" resync "$mirror"
not_sent "resync --full" "'resync --full'" "$ctl" resync --full "$mirror"

refused 1 "set on a plain file" "not a fusemirror mirror" \
	"$ctl" set "$plain" resync-rate-min=1M
not_sent "set of both rates" "'set resync-rate-min 10485760' and 'set resync-rate-max 0'" \
	"$ctl" set "$mirror" resync-rate-min=10M resync-rate-max=0
not_sent "set with a K suffix" "'set resync-rate-max 524288'" \
	"$ctl" set "$mirror" resync-rate-max=512K
not_sent "set with a G suffix" "'set resync-rate-min 1073741824'" \
	"$ctl" set "$mirror" resync-rate-min=1G
not_sent "set of plain bytes" "'set resync-rate-max 123456789'" \
	"$ctl" set "$mirror" resync-rate-max=123456789

# Nothing above reached a file: as root, setxattr would have stored the command.
for f in "$mirror" "$nouuid" "$reused" "$plain"; do
	if getfattr -n trusted.fusemirror.ctl "$f" >/dev/null 2>&1; then
		problem "a command was stored in trusted.fusemirror.ctl of $f"
	fi
done

# ---- wait: what it cannot wait for --------------------------------------------------------------

refused 4 "wait on a plain file" "^fusemirrorctl: wait $plain: not a fusemirror mirror" \
	"$ctl" wait "$plain"
refused 4 "wait on a missing file" "No such file or directory" "$ctl" wait "$tmpdir/missing.img"
refused 4 "wait on a copy of a mirror's attributes" "not on a FUSE file system" \
	"$ctl" wait "$mirror"

# ---- Through bindfs: the commands sent ----------------------------------------------------------

# advance_resync STATE: advance the resync of $src/m.img by 10% every 0.2 s (run it in the
# background), then set the mirror's state to STATE.
advance_resync ()
{
	for _i in 1 2 3 4 5 6 7 8 9 10; do
		sleep 0.2
		set_attrs "$src/m.img" "resync.done=$((_i * 104858))" "resync.rate=$((_i * 1024))"
	done
	set_attrs "$src/m.img" "state=$1"
}

if test "$(id -u)" -eq 0 && command -v bindfs >/dev/null 2>&1 && test -c /dev/fuse &&
	mkdir "$tmpdir/src" "$tmpdir/mnt" && cp --preserve=xattr "$mirror" "$tmpdir/src/m.img" &&
	bindfs "$tmpdir/src" "$tmpdir/mnt" 2>/dev/null; then
	cleanup_fn "umount -l '$tmpdir/mnt'"
	src=$tmpdir/src
	live=$tmpdir/mnt/m.img
	sent ()
	{
		getfattr --only-values -n trusted.fusemirror.ctl "$src/m.img" 2>/dev/null
	}

	# The daemon would list the new leg; here the attributes say so beforehand.
	set_attrs "$src/m.img" legs=3 leg.2.name=leg2 "leg.2.path=$blank" leg.2.state=resyncing \
		leg.2.read_errors=0 leg.2.write_errors=0 || fail "setfattr on $src/m.img"
	run "$ctl" add "$live" "$tmpdir/link.img"
	expect_rc 0 "add through bindfs"
	test "$(sent)" = "add $blank" || problem "add through bindfs sent '$(sent)', not 'add $blank'"
	err_has "leg added as index 2 of $live: $blank, resyncing, resync started" \
		"add through bindfs"
	refused 1 "add of an ext4 leg through bindfs" "holds an ext4 file system" \
		"$ctl" add "$live" "$ext4"
	test "$(sent)" = "add $blank" || problem "a refused add sent '$(sent)'"
	run "$ctl" add --force "$live" "$ext4"
	expect_rc 0 "add --force through bindfs"
	test "$(sent)" = "add --force $ext4" || problem "add --force through bindfs sent '$(sent)'"
	err_has "warning: $ext4 holds an ext4 file system: overwriting it \(--force\)" \
		"add --force through bindfs"
	err_has "added to $live; its leg index is not in the status" "add --force through bindfs"

	run "$ctl" remove "$live" b
	expect_rc 0 "remove through bindfs"
	test "$(sent)" = "remove 1" || problem "remove b through bindfs sent '$(sent)'"
	err_has "leg 'b' \(index 1\) removed from $live" "remove through bindfs"
	run "$ctl" remove --force "$live" leg2
	test "$(sent)" = "remove --force 2" || problem "remove --force leg2 sent '$(sent)'"

	run "$ctl" resync --full "$live"
	expect_rc 0 "resync --full through bindfs"
	test "$(sent)" = "resync --full" || problem "resync --full through bindfs sent '$(sent)'"
	err_has "no resync of $live is running" "resync --full through bindfs"

	run "$ctl" set "$live" resync-rate-min=1M resync-rate-max=2G
	expect_rc 0 "set through bindfs"
	test "$(sent)" = "set resync-rate-max 2147483648" ||
		problem "set through bindfs sent '$(sent)' last"
	# Read back: what the attributes say (bindfs does not change them).
	out_has '^resync-rate-min = 16777216 \(16\.00 MiB/s\)$' "set through bindfs"
	out_has '^resync-rate-max = 0 \(unlimited\)$' "set through bindfs"

	# wait: at once when nothing runs, else until the state changes, exiting by that state.
	run "$ctl" wait "$live"
	expect_rc 1 "wait on a degraded mirror with no resync"
	err_has "no resync is running; the mirror is degraded" "wait with no resync"
	for end in clean:0 degraded:1 failed:3; do
		set_attrs "$src/m.img" state=resyncing resync.done=0 resync.total=1048576 \
			resync.rate=0 || fail "setfattr on $src/m.img"
		advance_resync "${end%:*}" &
		job=$!
		run "$ctl" wait --interval 0.05 "$live"
		wait "$job"
		expect_rc "${end#*:}" "wait for a resync that ends ${end%:*}"
		err_has "wait $live: resync 0% \(0 B of 1\.00 MiB\)" "wait (${end%:*}): first line"
		err_has "wait $live: resync [1-9]0% \([0-9.]+ KiB of 1\.00 MiB\) at [0-9.]+ KiB/s, [0-9]+s left\$" \
			"wait (${end%:*}): a line of a 10% step"
		err_has "the resync is over; the mirror is ${end%:*}\$" "wait (${end%:*}): last line"
		lines=$(grep -c 'resync [0-9]*%' "$tmpdir/err")
		test "$lines" -le 11 || problem "wait printed $lines progress lines, more than 11"
	done
else
	echo "note: bindfs cannot be mounted here (needs root, bindfs, /dev/fuse); nothing sent"
fi

# ---- The man page -------------------------------------------------------------------------------

# The page without font escapes and with \- as -.
sed -e 's/\\f[BIRP]//g' -e 's/\\-/-/g' "$page" >"$tmpdir/page"
for cmd in add remove resync wait set; do
	grep -q -E -e "^fusemirrorctl $cmd " "$tmpdir/page" ||
		problem "man/fusemirrorctl.8: SYNOPSIS has no line for $cmd"
	grep -q -E -e "^\.SS \"$cmd " "$tmpdir/page" ||
		problem "man/fusemirrorctl.8: COMMANDS has no .SS for $cmd"
done
# The control commands, errnos and attributes under EXTENDED ATTRIBUTES.
sed -n '/^\.SH "EXTENDED ATTRIBUTES"/,/^\.SH/p' "$tmpdir/page" >"$tmpdir/attrs"
for word in '"add " PATH' '"add --force " PATH' '"remove " I' '"remove --force " I' \
	'^\.B resync$' 'resync --full' 'set resync-rate-min' 'set resync-rate-max' \
	EEXIST ENOSPC EMLINK EALREADY EBUSY EINVAL EPERM \
	user.fusemirror.uuid user.fusemirror.resync.done user.fusemirror.resync.total \
	user.fusemirror.resync.rate user.fusemirror.resync.rate_min \
	user.fusemirror.resync.rate_max user.fusemirror.last_error; do
	grep -q -E -e "$word" "$tmpdir/attrs" ||
		problem "man/fusemirrorctl.8: EXTENDED ATTRIBUTES does not mention $word"
done

if test "$problems" -gt 0; then
	fail "$problems problem(s)"
fi
exit 0
