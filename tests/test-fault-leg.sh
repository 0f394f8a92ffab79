#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A leg behind libdmio's fault-injecting kind (path = fault:PATH, libdmio(3)) in a running
# fusemirrord, driven through its control file PATH.fault:
#   - without FUSEMIRROR_TEST_DEVICES=1 the daemon refuses the leg (EPERM) and touches nothing;
#   - with it, and no rules, the mirror serves and both legs get every write;
#   - "fail write *" on leg b: the next write still succeeds with the right data (leg a has it),
#     leg b is failed by the mirror and never got that write;
#   - a "hang" rule holds the flush on the failed leg no longer (it is not asked), SIGTERM stops
#     the daemon.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires cmp dd truncate head sha256sum
make_daemon_tmpdir

mib=1048576
a=$tmpdir/a
b=$tmpdir/b
mirror=$tmpdir/mirror
truncate -s $((16 * mib)) "$a" "$b"
write_config "$tmpdir/m.conf" faulty "$a" "$b"
sed -i "s|^path = $b\$|path = fault:$b|" "$tmpdir/m.conf"
grep -q "^path = fault:$b\$" "$tmpdir/m.conf" || fail "the config does not name fault:$b"

# control TEXT: replace leg b's control file (a new file renamed over the old one).
control ()
{
	printf '%s\n' "$1" >"$b.fault.new" && mv -f "$b.fault.new" "$b.fault"
}

# Refused without the variable, nothing touched.
before=$(sha256sum "$a" "$b")
unset FUSEMIRROR_TEST_DEVICES
expect_daemon_exit 1 "Operation not permitted" -f -c "$tmpdir/m.conf" "$mirror"
printf '%s\n' "$run_output" | grep -q "fault:$b" ||
	fail "the refusal does not name the leg: $run_output"
test "$before" = "$(sha256sum "$a" "$b")" || fail "a refused start wrote to a leg"

FUSEMIRROR_TEST_DEVICES=1
export FUSEMIRROR_TEST_DEVICES
start_daemon "$tmpdir/m.conf" "$mirror"
assert_eq "$(leg_state "$mirror" 1)" in_sync "leg b with no rules"
head -c $mib /dev/urandom >"$tmpdir/one"
head -c $mib /dev/urandom >"$tmpdir/two"
dd if="$tmpdir/one" of="$mirror" bs=1M count=1 oflag=direct conv=notrunc,fsync status=none ||
	daemon_fail "a write with no rules failed"
cmp -n $mib "$tmpdir/one" "$a" || daemon_fail "leg a lacks the first write"
cmp -n $mib "$tmpdir/one" "$b" || daemon_fail "leg b lacks the first write (no rules)"

control "fail write * error=EIO"
dd if="$tmpdir/two" of="$mirror" bs=1M seek=2 count=1 oflag=direct conv=notrunc,fsync \
	status=none || daemon_fail "a write failed with one good leg left"
assert_eq "$(leg_state "$mirror" 1)" failed "leg b after its write failed"
assert_eq "$(leg_state "$mirror" 0)" in_sync "leg a"
timeout 30 dd if="$mirror" of="$tmpdir/back" bs=1M skip=2 count=1 iflag=direct status=none ||
	daemon_fail "cannot read the write back"
cmp "$tmpdir/two" "$tmpdir/back" || daemon_fail "the write reads back wrong"
cmp -i $((2 * mib)):0 -n $mib "$a" "$tmpdir/two" || daemon_fail "leg a lacks the second write"
if cmp -s -i $((2 * mib)):0 -n $mib "$b" "$tmpdir/two"; then
	daemon_fail "the failed write reached leg b"
fi

# A failed leg is not asked again: even a hang on it does not hold a flush or the stop.
control "hang all *"
timeout 20 dd if="$tmpdir/one" of="$mirror" bs=1M seek=4 count=1 oflag=direct conv=notrunc,fsync \
	status=none || daemon_fail "a write waited on the failed leg"
stop_daemon
