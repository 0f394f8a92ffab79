#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# A hung leg, for real: leg b is a file of nbdfuse, whose NBD server (nbdkit, on a unix socket)
# is stopped with SIGSTOP while a 1 MiB write is in flight.  With io-timeout = 3:
#   - the write completes in under 5 s with the right data, and the mirror itself fails leg b;
#   - reads of other ranges and close() return, status answers;
#   - SIGTERM stops serving in bounded time, and leg a's superblock records the failure;
#   - the server goes on (SIGCONT): the process exits, a restart keeps leg b stale.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires nbdkit nbdfuse fusermount3 dd cmp head truncate
make_daemon_tmpdir

mib=1048576
a=$tmpdir/a
truncate -s $((64 * mib)) "$a" "$tmpdir/b.img"

# The NBD server and its FUSE file.
nbdfuse_leg b "$tmpdir/b.img"
b=$nbdfuse_file
test "$(file_size "$b")" -eq $((64 * mib)) || fail "the nbdfuse file is not 64 MiB"

mirror=$tmpdir/mirror
write_config "$tmpdir/m.conf" hang "$a" "$b" metadata=internal io-timeout=3
"$fusemirrorctl" create --assume-clean "$tmpdir/m.conf" >/dev/null || fail "fusemirrorctl create"
start_daemon "$tmpdir/m.conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.io_timeout)" 3 "leg b's io-timeout"
# set changes every leg's at run time; a bad value is a usage error and changes nothing.
"$fusemirrorctl" set "$mirror" io-timeout=2.5 >/dev/null || daemon_fail "set io-timeout=2.5"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.0.io_timeout)" 2.5 "leg a's io-timeout after set"
rc=0
"$fusemirrorctl" set "$mirror" io-timeout=1e3 >/dev/null 2>&1 || rc=$?
assert_eq $rc 2 "set io-timeout=1e3"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.io_timeout)" 2.5 "leg b's after a refused set"
"$fusemirrorctl" set "$mirror" io-timeout=3 >/dev/null || daemon_fail "set io-timeout=3"
head -c $mib /dev/urandom >"$tmpdir/one"
head -c $mib /dev/urandom >"$tmpdir/two"
dd if="$tmpdir/one" of="$mirror" bs=1M count=1 oflag=direct conv=notrunc,fsync status=none ||
	daemon_fail "a write with both legs up failed"

# The server stops answering; the write in flight waits for it, then for the io-timeout.
kill -s STOP "$nbdkit_pid"
start=$(date +%s%N)
timeout 20 dd if="$tmpdir/two" of="$mirror" bs=1M seek=8 count=1 oflag=direct conv=notrunc \
	status=none || daemon_fail "the write in flight failed or hung"
took_ms=$((($(date +%s%N) - start) / 1000000))
echo "the write in flight was answered after $took_ms ms (io-timeout 3 s)"
test $took_ms -lt 5000 || daemon_fail "the write took $took_ms ms, not under 5 s"
test $took_ms -ge 2500 || daemon_fail "the write was answered in $took_ms ms, before the timeout"
assert_eq "$(leg_state "$mirror" 1)" failed "leg b, hung"
assert_eq "$(leg_state "$mirror" 0)" in_sync "leg a"
grep -q "I/O timeout" "$daemon_log" || daemon_fail "the log does not say why leg b failed"

# Reads, close and status do not wait on the hung leg.
timeout 10 dd if="$mirror" of="$tmpdir/back" bs=1M skip=8 count=1 iflag=direct status=none ||
	daemon_fail "cannot read the write back"
cmp "$tmpdir/two" "$tmpdir/back" || daemon_fail "the write in flight reads back wrong"
timeout 10 dd if="$mirror" of=/dev/null bs=4k skip=100 count=1 status=none ||
	daemon_fail "a 4 KiB read of another range did not return"
timeout 10 dd if="$tmpdir/one" of="$mirror" bs=1M seek=16 count=1 oflag=direct conv=notrunc,fsync \
	status=none || daemon_fail "a write and fsync after the failure did not return"
# (status exits 1 for a degraded mirror, 124 is timeout's.)
rc=0
timeout 10 "$fusemirrorctl" status "$mirror" >"$tmpdir/status" || rc=$?
test $rc -ne 124 || daemon_fail "status did not answer"
grep -q failed "$tmpdir/status" || daemon_fail "status does not show the failed leg"

# SIGTERM with the server still stopped: the daemon stops serving in bounded time, recording
# the failure on leg a.  The process itself exits only once the kernel lets go of its thread
# that waits, uninterruptibly, in nbdfuse's fdatasync: a FUSE request already taken by its
# server cannot be given up on (a real disk's D state is the same).
start=$(date +%s%N)
kill -s TERM "$daemon_pid"
wait_until 15 "the daemon to stop serving" grep -q "stopped; .* unmounted" "$daemon_log"
took_ms=$((($(date +%s%N) - start) / 1000000))
echo "SIGTERM with a hung leg: stopped and unmounted after $took_ms ms"
test $took_ms -lt 10000 || daemon_fail "stopping took $took_ms ms"
is_mounted "$mirror" && daemon_fail "the mirror is still mounted"
"$fusemirrorctl" examine "$a" >"$tmpdir/examine" || fail "examine leg a"
grep -q failed "$tmpdir/examine" ||
	fail "leg a's superblock does not record leg b as failed: $(cat "$tmpdir/examine")"
cmp -i $((9 * mib)):0 -n $mib "$a" "$tmpdir/two" || fail "leg a lacks the write in flight"

# The server answers at last: the process exits, and what leg b answers late changes nothing.
kill -s CONT "$nbdkit_pid"
wait_daemon_exit 15
test "$daemon_status" -eq 0 || daemon_fail "fusemirrord exited $daemon_status"
check_daemon_log

# A restart assembles with leg b stale, never in sync by itself, and the data is leg a's.
start_daemon "$tmpdir/m.conf" "$mirror"
grep -q "leg 1 (b, .*) is stale" "$daemon_log" || daemon_fail "leg b was not taken as stale"
wait_until 30 "the resync of leg b" state_is clean
data_equal $((62 * mib)) "$a" "$tmpdir/b.img"
timeout 10 dd if="$mirror" of="$tmpdir/back" bs=1M skip=8 count=1 iflag=direct status=none ||
	daemon_fail "cannot read after the restart"
cmp "$tmpdir/two" "$tmpdir/back" || daemon_fail "the write in flight is lost after the restart"
stop_daemon
