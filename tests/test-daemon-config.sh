#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# fusemirrord's refusals and exit statuses: a bad config is one line naming the file (and line)
# and the problem, exit 78; legs that cannot be used, exit 1 naming the leg; usage errors, exit 2;
# --help and --version, exit 0.  None of them mounts anything, creates the mountpoint (but for a
# bad leg) or changes a leg.  Then the mountpoint from the config, and options that work.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires sha256sum truncate findmnt
make_daemon_tmpdir

a=$tmpdir/a
b=$tmpdir/b
mirror=$tmpdir/mirror
for leg in "$a" "$b"; do
	head -c 1048576 /dev/urandom >"$leg"
	truncate -s 8M "$leg"
done
sums=$(sha256sum "$a" "$b")

# no_trace: nothing mounted, mountpoint not created, legs unchanged.
no_trace ()
{
	is_mounted "$mirror" && fail "$*: $mirror got mounted"
	test ! -e "$mirror" || fail "$*: $mirror was created"
	assert_eq "$(sha256sum "$a" "$b")" "$sums" "$*: the legs' checksums"
}

# bad_config NAME TEXT: the config on stdin, saved as NAME.conf, must be refused with exit
# status 78 and one line "fusemirrord: FILE...: ...TEXT...".
bad_config ()
{
	_conf=$tmpdir/$1.conf
	cat >"$_conf"
	expect_daemon_exit 78 "$2" -f -c "$_conf" "$mirror"
	assert_eq "$(printf '%s\n' "$run_output" | wc -l)" 1 "$1: lines of output"
	case $run_output in
	"fusemirrord: $_conf:"*) ;;
	*) fail "$1: the message does not start with the file's name: $run_output" ;;
	esac
	echo "$1: $run_output" >&2
	no_trace "$1"
}

legs="
[leg a]
path = $a

[leg b]
path = $b"

# ---- Exit 78: bad configs ----------------------------------------------------------------------
bad_config unknown-key "$tmpdir/unknown-key.conf:4: unknown key 'rate' in group [mirror]" <<EOF
[mirror]
name = m
# a comment
rate = 10M
$legs
EOF
bad_config unknown-leg-key "unknown-leg-key.conf:9: unknown key 'size' in group [leg b]" <<EOF
[mirror]
metadata = none
$legs
size = 1G
EOF
bad_config unknown-group "unknown-group.conf:1: unknown group [mirrors]" <<EOF
[mirrors]
name = m
$legs
EOF
bad_config read-policy \
	"read-policy.conf:2: read-policy 'fastest' is not one of least-pending, round-robin, primary" <<EOF
[mirror]
read-policy = fastest
$legs
EOF
bad_config cache "cache.conf:3: cache 'always' is not one of none, writeback" <<EOF
[mirror]
name = m
cache = always
$legs
EOF
bad_config engine "engine.conf:2: engine 'aio' is not one of threads, io_uring" <<EOF
[mirror]
engine = aio
$legs
EOF
bad_config threads "threads.conf:2: threads '-4' is not a number" <<EOF
[mirror]
threads = -4
$legs
EOF
bad_config boolean "boolean.conf:2: allow-other 'sure' is not a boolean" <<EOF
[mirror]
allow-other = sure
$legs
EOF
bad_config missing-path "missing-path.conf:6: [leg b]: no path" <<EOF
[mirror]
name = m
[leg a]
path = $a

[leg b]
write-mostly = true
EOF
bad_config relative-path "relative-path.conf:3: [leg a]: path 'a.img' is not absolute" <<EOF
[mirror]
[leg a]
path = a.img
EOF
bad_config no-legs "no-legs.conf: no [leg NAME] group: a mirror needs at least one leg" <<EOF
[mirror]
name = m
EOF
bad_config empty "empty.conf: empty config" </dev/null
bad_config duplicate-leg "duplicate-leg.conf:9: duplicate leg name 'a'" <<EOF
[mirror]
$legs

[leg a]
path = /dev/null
EOF
bad_config duplicate-key \
	"duplicate-key.conf:3: duplicate key 'name' in group [mirror] (first at line 2)" <<EOF
[mirror]
name = m
name = n
$legs
EOF
bad_config same-path \
	"same-path.conf:6: [leg b]: path '$tmpdir//a' is also the path of leg 'a'" <<EOF
[leg a]
path = $a

[leg b]
write-mostly = true
path = $tmpdir//a
EOF
bad_config mountpoint-is-leg \
	"mountpoint-is-leg.conf:2: mountpoint '$b' is also the path of leg 'b'" <<EOF
[mirror]
mountpoint = $b
$legs
EOF
bad_config all-write-mostly "all-write-mostly.conf: every leg is write-mostly" <<EOF
[leg a]
path = $a
write-mostly = yes
EOF
bad_config syntax "syntax.conf:2:" <<EOF
[mirror]
this is not a key file line
$legs
EOF
# Files that cannot be read.
expect_daemon_exit 78 "fusemirrord: $tmpdir/missing.conf: cannot read: No such file or directory" \
	-f -c "$tmpdir/missing.conf" "$mirror"
no_trace "a missing config"
mkdir "$tmpdir/dir.conf"
expect_daemon_exit 78 "fusemirrord: $tmpdir/dir.conf: cannot read: Is a directory" \
	-f -c "$tmpdir/dir.conf" "$mirror"
no_trace "a directory as config"
if command -v setpriv >/dev/null 2>&1; then
	# Unreadable for its user (root reads anything, so run as nobody).
	printf '[leg a]\npath = %s\n' "$a" >"$tmpdir/secret.conf"
	chmod 600 "$tmpdir/secret.conf"
	chmod 755 "$tmpdir"
	run_output=$(setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$fusemirrord" -f -c "$tmpdir/secret.conf" "$mirror" 2>&1) && run_status=0 ||
		run_status=$?
	assert_eq "$run_status" 78 "exit status for an unreadable config"
	assert_eq "$run_output" "fusemirrord: $tmpdir/secret.conf: cannot read: Permission denied" \
		"the message for an unreadable config"
	no_trace "an unreadable config"
fi

# ---- Exit 1: legs that cannot be used (the message names the leg) -------------------------------
# bad_leg NAME TEXT: the config on stdin must fail at assembly, exit 1, saying TEXT.
bad_leg ()
{
	_conf=$tmpdir/$1.conf
	cat >"$_conf.in"
	# Without a [mirror] group the legs are plain data (the default, internal, wants superblocks).
	grep -q '^\[mirror\]' "$_conf.in" || printf '[mirror]\nmetadata = none\n' >"$_conf"
	cat "$_conf.in" >>"$_conf"
	expect_daemon_exit 1 "$2" -f -c "$_conf" "$mirror"
	echo "$1: $run_output" >&2
	is_mounted "$mirror" && fail "$1: $mirror got mounted"
	rm -f "$mirror"
	assert_eq "$(sha256sum "$a" "$b")" "$sums" "$1: the legs' checksums"
}
bad_leg missing-leg "leg 'b' ($tmpdir/nothing): cannot open: No such file or directory" <<EOF
[leg a]
path = $a
[leg b]
path = $tmpdir/nothing
EOF
test ! -e "$tmpdir/nothing" || fail "the missing leg was created"
mkdir "$tmpdir/leg-dir"
bad_leg directory-leg "leg 'b' ($tmpdir/leg-dir): cannot open" <<EOF
[leg a]
path = $a
[leg b]
path = $tmpdir/leg-dir
EOF
bad_leg no-superblock "leg 'a' ($a) has no fusemirror superblock: create the mirror with 'fusemirrorctl create' first" <<EOF
[mirror]
metadata = internal
[leg a]
path = $a
[leg b]
path = $b
EOF
bad_leg char-device-leg "leg 'b' (/dev/null): cannot open: not a regular file or block device" <<EOF
[leg a]
path = $a
[leg b]
path = /dev/null
EOF
ln -s "$a" "$tmpdir/link-to-a"
bad_leg same-file "legs 'a' ($a) and 'b' ($tmpdir/link-to-a) are the same file" <<EOF
[leg a]
path = $a
[leg b]
path = $tmpdir/link-to-a
EOF
: >"$tmpdir/empty-leg"
bad_leg empty-leg "leg 'b' ($tmpdir/empty-leg) is 0 bytes: a leg needs at least 4 KiB" <<EOF
[leg a]
path = $a
[leg b]
path = $tmpdir/empty-leg
EOF
printf '[mirror]\nmetadata = none\n[leg a]\npath = %s\n[leg b]\npath = %s\n' "$a" "$b" >"$tmpdir/good.conf"
# (libfuse's own complaint comes first, as "critical" lines: not checked here.)
run_daemon -f -c "$tmpdir/good.conf" -o no_such_fuse_option "$mirror"
assert_eq "$run_status" 1 "exit status for an unknown FUSE option"
case $run_output in
*"FUSE rejected the options"*no_such_fuse_option*) ;;
*) fail "an unknown FUSE option: $run_output" ;;
esac
is_mounted "$mirror" && fail "-o no_such_fuse_option: $mirror got mounted"
rm -f "$mirror"
assert_eq "$(sha256sum "$a" "$b")" "$sums" "-o no_such_fuse_option: the legs' checksums"

# ---- Exit 2: usage errors ------------------------------------------------------------------
expect_daemon_exit 2 "Unknown option --bogus" -f --bogus -c "$tmpdir/good.conf" "$mirror"
no_trace "--bogus"
expect_daemon_exit 2 "one mountpoint only, got '$mirror' and '$tmpdir/other'" \
	-f -c "$tmpdir/good.conf" "$mirror" "$tmpdir/other"
no_trace "two mountpoints"
test ! -e "$tmpdir/other" || fail "the second mountpoint was created"
expect_daemon_exit 2 \
	"no mountpoint: give MOUNTPOINT or set 'mountpoint' in [mirror] of $tmpdir/good.conf" \
	-f -c "$tmpdir/good.conf"
no_trace "no mountpoint"
expect_daemon_exit 2 "Missing argument for -c" -f -c
no_trace "-c without its argument"

# ---- Exit 0: --help, --version ---------------------------------------------------------------
expect_daemon_exit 0 "Usage:" --help
for word in --foreground --debug --config --options --version "Exit status" 78; do
	case $run_output in
	*"$word"*) ;;
	*) fail "--help does not mention $word" ;;
	esac
done
expect_daemon_exit 0 "fusemirrord " --version
printf '%s\n' "$run_output" | grep -Eqx 'fusemirrord [0-9]+\.[0-9]+(\.[0-9]+)?.*' ||
	fail "--version prints '$run_output'"
no_trace "--help and --version"

# ---- What works: the mountpoint of the config, -o, allow-other -----------------------------------
cat >"$tmpdir/from-config.conf" <<EOF
# The smallest config but for the mountpoint; the mirror is named after the file.
[mirror]
mountpoint = $mirror
metadata = none
$legs
EOF
start_daemon -n "$tmpdir/from-config.conf" "$mirror" -o ro
assert_eq "$(xattr "$mirror" user.fusemirror.name)" from-config "the name from the file name"
assert_eq "$(findmnt -n -o SOURCE --mountpoint "$mirror")" fusemirror:from-config \
	"the mount's source"
findmnt -n -o OPTIONS --mountpoint "$mirror" | grep -Eq '(^|,)ro(,|$)' ||
	daemon_fail "-o ro did not reach the mount"
if dd if=/dev/zero of="$mirror" bs=4096 count=1 conv=notrunc status=none 2>/dev/null; then
	daemon_fail "a write to a mirror mounted with -o ro succeeded"
fi
stop_daemon
assert_eq "$(sha256sum "$a" "$b")" "$sums" "the legs after the read-only mount"
exit 0
