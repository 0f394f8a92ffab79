#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Failing legs by hand: fusemirrorctl fail FILE LEG (by name and by index) and the
# trusted.fusemirror.ctl attribute.  A failed leg is never written or read again (round-robin
# reads would reach it), writes go on and verify, the last in-sync leg cannot be failed, bad
# commands are EINVAL and other users get EPERM.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires fio cmp dd truncate sha256sum python3
make_daemon_tmpdir

mib=1048576
size=$((32 * mib))
a=$tmpdir/a
b=$tmpdir/b
c=$tmpdir/c
mirror=$tmpdir/mirror
truncate -s 32M "$a" "$b" "$c"
# Can another user reach the file?  (The non-root checks need that.)
as_nobody=
if command -v setpriv >/dev/null 2>&1; then
	chmod 755 "$tmpdir"
	: >"$tmpdir/probe"
	if setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$tmpdir/probe"; then
		as_nobody="setpriv --reuid=65534 --regid=65534 --clear-groups"
	fi
fi
write_config "$tmpdir/m.conf" manual read-policy=round-robin allow-other=true "$a" "$b" "$c"
start_daemon "$tmpdir/m.conf" "$mirror"

# ctl_status: fusemirrorctl status's exit status.
ctl_status ()
{
	_st=0
	"$fusemirrorctl" status "$mirror" >"$tmpdir/status" 2>&1 || _st=$?
	echo $_st
}
# ctl_fail LEG: fusemirrorctl fail's exit status; its messages in $tmpdir/fail.
ctl_fail ()
{
	_st=0
	"$fusemirrorctl" fail "$mirror" "$1" >"$tmpdir/fail" 2>&1 || _st=$?
	echo $_st
}

assert_eq "$(ctl_status)" 0 "fusemirrorctl status exit status (clean)"
head -c $((8 * mib)) /dev/urandom >"$tmpdir/data1"
dd if="$tmpdir/data1" of="$mirror" bs=1M oflag=direct conv=notrunc status=none ||
	daemon_fail "dd to the mirror"

# ---- Fail leg b by name ------------------------------------------------------------------------
assert_eq "$(ctl_fail b)" 0 "fusemirrorctl fail $mirror b"
cat "$tmpdir/fail" >&2
assert_eq "$(leg_state "$mirror" 1)" failed "leg.1.state"
assert_eq "$(leg_state "$mirror" 0)" in_sync "leg.0.state"
assert_eq "$(leg_state "$mirror" 2)" in_sync "leg.2.state"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" degraded "state"
assert_eq "$(xattr "$mirror" user.fusemirror.events)" 1 "events"
assert_eq "$(ctl_status)" 1 "fusemirrorctl status exit status (degraded)"
assert_grep "LegFailed: leg 1 \(b, $b\) failed: failed by the operator .*2 of 3 legs in sync" \
	"$daemon_log" "the log's LegFailed"
assert_grep "DegradedArray: mirror manual is degraded: 2 of 3 legs in sync" "$daemon_log" \
	"the log's DegradedArray"
# Failing it again: EALREADY.
assert_eq "$(ctl_fail b)" 1 "fusemirrorctl fail of a failed leg"
cat "$tmpdir/fail" >&2
assert_eq "$(xattr "$mirror" user.fusemirror.events)" 1 "events after failing a failed leg"
# A leg that does not exist.
assert_eq "$(ctl_fail z)" 1 "fusemirrorctl fail of leg z"
assert_grep "no leg 'z'" "$tmpdir/fail" "fusemirrorctl fail z's message"

# Leg b is not written any more: writes go on, verified, on a and c.
sum_b=$(sha256sum <"$b")
run_fio after-b --name=after-b --filename="$mirror" --rw=randwrite --bsrange=4k-256k \
	--direct=1 --ioengine=psync --offset=8m --size=8m --verify=crc32c --verify_fatal=1 \
	--verify_state_save=0
assert_eq "$(sha256sum <"$b")" "$sum_b" "leg b's contents after it failed"
# Nor read: garbage on leg b never shows through the mirror, however often it is read.
dd if=/dev/urandom of="$b" bs=1M count=16 conv=notrunc status=none
dd if="$mirror" of="$tmpdir/expect16" bs=1M count=16 iflag=direct status=none
cmp -n $((8 * mib)) "$tmpdir/data1" "$tmpdir/expect16" >&2 ||
	daemon_fail "the mirror does not serve what was written before leg b failed"
cmp -n $((16 * mib)) "$a" "$tmpdir/expect16" >&2 || daemon_fail "leg a differs from the mirror"
i=0
while test $i -lt 12; do
	dd if="$mirror" bs=64k count=256 iflag=direct status=none | cmp - "$tmpdir/expect16" >&2 ||
		daemon_fail "read $i through the mirror shows data of the failed leg b"
	i=$((i + 1))
done
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.read_errors)" 0 "leg.1.read_errors"

# ---- Fail leg a by index; the last leg cannot be failed ---------------------------------------
assert_eq "$(ctl_fail 0)" 0 "fusemirrorctl fail $mirror 0"
assert_eq "$(leg_state "$mirror" 0)" failed "leg.0.state"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" degraded "state with one leg left"
assert_eq "$(ctl_status)" 1 "fusemirrorctl status exit status (one leg left)"
assert_eq "$(xattr "$mirror" user.fusemirror.events)" 2 "events"
assert_eq "$(ctl_fail c)" 1 "fusemirrorctl fail of the last in-sync leg"
cat "$tmpdir/fail" >&2
assert_grep "last in-sync leg" "$tmpdir/fail" "fusemirrorctl fail c's message"
expect_setxattr_error "$mirror" trusted.fusemirror.ctl "fail 2" "Device or resource busy"
assert_eq "$(leg_state "$mirror" 2)" in_sync "leg.2.state after the refusals"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" degraded "state after the refusals"
assert_eq "$(xattr "$mirror" user.fusemirror.events)" 2 "events after the refusals"
assert_eq "$(grep -c LegFailed "$daemon_log")" 2 "LegFailed lines in the log"

# ---- Bad commands, other users -----------------------------------------------------------------
for command in bogus "fail" "fail 3" "fail 99999999999999999999" "fail -1" "fail x" \
    "fail 1 2" "fail 01x" "add relative/path" "remove 7" "resync now" "set resync-rate-min" \
    "set resync-rate-min 10M" "set bogus 1" "fail --force 1" " "; do
	expect_setxattr_error "$mirror" trusted.fusemirror.ctl "$command" "Invalid argument"
done
# Hot add and resync on request need superblocks; this mirror has metadata = none.
expect_setxattr_error "$mirror" trusted.fusemirror.ctl "add /dev/null" "Operation not supported"
# The reason of a refusal is the sending process's own: it reads it back, another does not.
assert_eq "$(ctl_reason "$mirror" "add /dev/null")" \
	"ENOTSUP hot add needs metadata = internal (the superblocks remember the legs)" \
	"a refusal and its last_error, read by the process that sent it"
assert_eq "$(xattr "$mirror" user.fusemirror.last_error)" "" "last_error read by another process"
expect_setxattr_error "$mirror" trusted.fusemirror.ctl "resync" "Operation not supported"
if test -n "$as_nobody"; then
	# Anyone who may read the file reads the status...
	assert_eq "$($as_nobody getfattr --only-values --absolute-names -n user.fusemirror.state \
		"$mirror")" degraded "state read by nobody"
	# ... but only root controls the mirror.
	expect_setxattr_error "$mirror" trusted.fusemirror.ctl "fail 2" "Operation not permitted" \
		$as_nobody
	# The kernel lets trusted.* through for CAP_SYS_ADMIN: the daemon itself must say no to a
	# caller that is not root.
	expect_setxattr_error "$mirror" trusted.fusemirror.ctl "fail 2" "Operation not permitted" \
		$as_nobody --inh-caps=+sys_admin --ambient-caps=+sys_admin
	# (The kernel asks for write permission on the file before user.* reaches the daemon.)
	expect_setxattr_error "$mirror" user.fusemirror.state x "Permission denied" $as_nobody
	st=0
	$as_nobody "$fusemirrorctl" fail "$mirror" c >"$tmpdir/fail" 2>&1 || st=$?
	cat "$tmpdir/fail" >&2
	assert_eq $st 1 "fusemirrorctl fail run by nobody"
	assert_eq "$(leg_state "$mirror" 2)" in_sync "leg.2.state after nobody's attempts"
else
	echo "setpriv is missing or user 65534 cannot reach $tmpdir: no non-root checks" >&2
fi

# Writes go on with one leg.
head -c $((8 * mib)) /dev/urandom >"$tmpdir/data3"
dd if="$tmpdir/data3" of="$mirror" bs=1M seek=16 oflag=direct conv=notrunc status=none ||
	daemon_fail "dd to the mirror with one leg"
read_mirror "$mirror" "$tmpdir/through"
cmp -n $((8 * mib)) "$tmpdir/data3" "$tmpdir/through" 0 $((16 * mib)) >&2 ||
	daemon_fail "the mirror with one leg does not serve what was written"
stop_daemon
legs_equal $size "$tmpdir/through" "$c"
# Leg a has what was written before it failed and nothing after.
legs_equal $((16 * mib)) "$tmpdir/through" "$a"
cmp -n $((8 * mib)) "$a" /dev/zero $((16 * mib)) 0 >&2 ||
	daemon_fail "leg a was written after it failed"
exit 0
