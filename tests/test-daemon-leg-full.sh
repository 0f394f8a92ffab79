#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A leg that fills up in the middle of a fio verify run: leg b is a sparse 64 MiB file on an 8 MiB
# tmpfs.  fio must finish without an error, leg b must be failed and the mirror degraded (the
# xattrs, fusemirrorctl status exiting 1, LegFailed with the error bits in the log, the on-event
# program run), the data must still verify, and leg a must hold what the mirror serves.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires fio cmp dd truncate
make_daemon_tmpdir

mib=1048576
size=$((64 * mib))
a=$tmpdir/a
mount_tmpfs "$tmpdir/small" 8M
b=$tmpdir/small/b
mirror=$tmpdir/mirror
truncate -s 64M "$a" "$b"

# The on-event program records its arguments, one event per line.
cat >"$tmpdir/on-event" <<EOF
#!/bin/sh
echo "\$*" >>"$tmpdir/events"
EOF
chmod +x "$tmpdir/on-event"
write_config "$tmpdir/m.conf" full on-event="$tmpdir/on-event" "$a" "$b"
start_daemon "$tmpdir/m.conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state before"

engine=$(fio_engine)
cat >"$tmpdir/full.fio" <<EOF
[global]
filename=$mirror
verify=crc32c
verify_fatal=1
verify_state_save=0
end_fsync=1
direct=1
stonewall

[seq-1m-qd16]
rw=write
bs=1m
ioengine=$engine
iodepth=16
offset=0
size=20m

[rand-4k-qd16]
rw=randwrite
bs=4k
ioengine=$engine
iodepth=16
offset=20m
size=4m

[seq-64k-qd1]
rw=write
bs=64k
ioengine=psync
offset=24m
size=8m
EOF
run_fio full "$tmpdir/full.fio"

# Leg b is failed; the mirror serves on from leg a.
assert_eq "$(leg_state "$mirror" 1)" failed "leg.1.state"
assert_eq "$(leg_state "$mirror" 0)" in_sync "leg.0.state"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" degraded "state"
assert_eq "$(xattr "$mirror" user.fusemirror.error_bits)" 0x2 "error_bits"
assert_eq "$(xattr "$mirror" user.fusemirror.events)" 1 "events"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.0.write_errors)" 0 "leg.0.write_errors"
errors=$(xattr "$mirror" user.fusemirror.leg.1.write_errors)
test "$errors" -ge 1 || daemon_fail "leg.1.write_errors is $errors"
status=0
"$fusemirrorctl" status "$mirror" >"$tmpdir/status" || status=$?
cat "$tmpdir/status" >&2
assert_eq $status 1 "fusemirrorctl status exit status (degraded)"
assert_grep "degraded" "$tmpdir/status" "fusemirrorctl status"
status=0
"$fusemirrorctl" status --json "$mirror" >"$tmpdir/status.json" || status=$?
assert_eq $status 1 "fusemirrorctl status --json exit status (degraded)"
assert_grep '"degraded"' "$tmpdir/status.json" "fusemirrorctl status --json"

# The log: the I/O error (bitset, leg, range, errno), LegFailed with the bitset, DegradedArray.
enospc="No space left on device \(error bits 0x2\)"
assert_grep "IOError: write error on leg 1 \(b, $b\) at data offset [0-9]+ \(leg offset [0-9]+\) length [0-9]+: No space left on device \(errno 28, error bits 0x2\)" \
	"$daemon_log" "the log's I/O error"
assert_grep "LegFailed: leg 1 \(b, $b\) failed: write error at data offset [0-9]+ length [0-9]+: $enospc; 1 of 2 legs in sync" \
	"$daemon_log" "the log's LegFailed"
assert_grep "DegradedArray: mirror full is degraded: 1 of 2 legs in sync" "$daemon_log" \
	"the log's DegradedArray"
assert_eq "$(grep -c LegFailed "$daemon_log")" 1 "LegFailed lines in the log"
# The on-event program ran (off the I/O path, so it may lag).
tries=50
until grep -qx "LegFailed full b" "$tmpdir/events" 2>/dev/null; do
	tries=$((tries - 1))
	test $tries -gt 0 || daemon_fail "the on-event program was not run with 'LegFailed full b'"
	sleep 0.1
done
tries=50
until grep -qx "DegradedArray full " "$tmpdir/events" 2>/dev/null; do
	tries=$((tries - 1))
	test $tries -gt 0 || daemon_fail "the on-event program was not run with 'DegradedArray full'"
	sleep 0.1
done

# Reading back still verifies, and writes go on.
run_fio full-verify --verify_only "$tmpdir/full.fio"
run_fio after --name=after --filename="$mirror" --rw=randwrite --bs=16k --direct=1 \
	--ioengine=psync --offset=40m --size=4m --verify=crc32c --verify_fatal=1 \
	--verify_state_save=0
assert_eq "$(xattr "$mirror" user.fusemirror.state)" degraded "state after more writes"

read_mirror "$mirror" "$tmpdir/through"
stop_daemon
legs_equal $size "$tmpdir/through" "$a"
# Leg b took what fitted and no more.
test "$(du -k "$b" | cut -f1)" -le 8192 || daemon_fail "leg b outgrew its tmpfs"
exit 0
