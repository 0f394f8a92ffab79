#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A stale leg (metadata = internal): leg b of a 2-leg mirror is failed, pattern B is written
# over part of pattern A without it, the daemon stops cleanly.  Leg b's copy of that part is
# then overwritten with garbage (behind the daemon's back), and the mirror restarts with both
# legs:
#   - b is rejected as stale (StaleLegRejected), its state is stale or resyncing while the
#     resync runs (slowed down to be seen), and it is never read: every read through the mirror
#     (round-robin, which would alternate legs) returns B, never the garbage, during the resync
#     and after;
#   - the resync is bitmap-based: resync.total is the size of B's regions, not the device's;
#     writes during it reach b too (inside B's regions and outside);
#   - the daemon is killed (SIGKILL) in the middle of that resync and restarted: b is still
#     never read, its resync resumes and completes;
#   - at the end (state clean) leg b's data area equals leg a's, and a restart has nothing to do;
#   - an old copy of leg b (from before writes that were followed by a clean stop, which cleared
#     their bits) put back: stale, resynced in full (the bitmap cannot tell), never read.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires cmp dd truncate head python3
make_daemon_tmpdir
# The interpreter itself, not a wrapper (pyenv's shims cost a third of a second a call).
python=$(python3 -S -c 'import sys; print(sys.executable)') || fail "python3 does not run"

mib=1048576
size=$((64 * mib))
a=$tmpdir/a
b=$tmpdir/b
mirror=$tmpdir/mirror
# Pattern A covers [0, 32 MiB); pattern B [8 MiB, 16 MiB): 8 regions of 1 MiB.
boff=$((8 * mib))
blen=$((8 * mib))

# wait_attr_timeout: after a SIGKILL, let the kernel's cache of the dead mount's attributes (1 s)
# expire, so that the restart's stat() finds the mount dead.  (A restart at once: the end of
# test-crash-sigkill.sh.)
wait_attr_timeout ()
{
	sleep 1.5
}

# no_dirty_regions LEG: whether LEG's on-disk bitmap is all clear.
no_dirty_regions ()
{
	test "$(examine_field "$1" dirty_regions)" = 0
}

# check_reads WHAT: read the whole mirror (O_DIRECT) and fail unless it is exactly the expected
# contents (A with B over it, zeroes after A).
check_reads ()
{
	read_mirror "$mirror" "$tmpdir/through"
	if ! cmp "$tmpdir/expect" "$tmpdir/through" >"$tmpdir/cmp.out" 2>&1; then
		cat "$tmpdir/cmp.out" >&2
		_cr_at=$(sed -n 's/.* differ: byte \([0-9]*\),.*/\1/p' "$tmpdir/cmp.out")
		if test -n "$_cr_at" && cmp -s -i $((_cr_at - 1)):$((mib + _cr_at - 1)) -n 4096 \
		    "$tmpdir/through" "$b"; then
			daemon_fail "$1: the mirror served leg b's stale garbage at offset $((_cr_at - 1))"
		fi
		daemon_fail "$1: the mirror does not serve what was written"
	fi
}

# ---- Create, write A, fail b, write B, stop ----------------------------------------------------

truncate -s $((size + mib)) "$a" "$b"
# Round-robin reads would reach leg b if the mirror read it at all.
write_config "$tmpdir/m.conf" stale metadata=internal region-size=1M read-policy=round-robin \
	"$a" "$b"
# The same mirror with its resync slowed to 2 MiB/s, to be watched.
write_config "$tmpdir/slow.conf" stale metadata=internal region-size=1M read-policy=round-robin \
	resync-rate-min=2M resync-rate-max=2M "$a" "$b"
"$fusemirrorctl" create --assume-clean "$tmpdir/m.conf" >&2 || fail "fusemirrorctl create"
start_daemon "$tmpdir/m.conf" "$mirror"

head -c $((32 * mib)) /dev/urandom >"$tmpdir/A"
head -c $blen /dev/urandom >"$tmpdir/B"
head -c $blen /dev/urandom >"$tmpdir/garbage"
timeout 60 dd if="$tmpdir/A" of="$mirror" bs=1M oflag=direct conv=notrunc status=none ||
	daemon_fail "dd A to the mirror"
# A's bits are cleared once its regions have been idle (5 s) and flushed; then only what b
# misses from now on is in the bitmap.
wait_until 20 "A's bits to be cleared in leg a's bitmap" no_dirty_regions "$a"

timeout 20 "$fusemirrorctl" fail "$mirror" b >&2 || daemon_fail "fusemirrorctl fail $mirror b"
assert_eq "$(leg_state "$mirror" 1)" failed "leg.1.state after fail"
timeout 60 dd if="$tmpdir/B" of="$mirror" bs=1M seek=$((boff / mib)) oflag=direct conv=notrunc \
	status=none || daemon_fail "dd B to the mirror"
stop_daemon

# The expected contents: A, B over it, zeroes up to the end.
cp "$tmpdir/A" "$tmpdir/expect"
dd if="$tmpdir/B" of="$tmpdir/expect" bs=1M seek=$((boff / mib)) conv=notrunc status=none
truncate -s $size "$tmpdir/expect"
cmp -i 0:$mib -n $size "$tmpdir/expect" "$a" >&2 || fail "leg a does not hold A and B"
cmp -s -i $boff:$((mib + boff)) -n $blen "$tmpdir/expect" "$b" &&
	fail "leg b holds B, though it was failed before B was written"
test "$(examine_field "$b" events)" -lt "$(examine_field "$a" events)" ||
	fail "leg b's events are not below leg a's"
# Where b missed B, it now holds garbage: if the mirror ever reads b there, it shows.
dd if="$tmpdir/garbage" of="$b" bs=1M seek=$(((mib + boff) / mib)) conv=notrunc status=none

# ---- Restart with both legs: b is stale, never read, resynced from its bitmap -----------------

start_daemon "$tmpdir/slow.conf" "$mirror"
assert_grep "StaleLegRejected: leg 1 \(b, $b\) is stale" "$daemon_log" "the log's StaleLegRejected"
case $(leg_state "$mirror" 1) in
stale | resyncing) ;;
*) daemon_fail "leg.1.state is '$(leg_state "$mirror" 1)' during the resync" ;;
esac
assert_eq "$(leg_state "$mirror" 0)" in_sync "leg.0.state during the resync"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" resyncing "state during the resync"
total=$(xattr "$mirror" user.fusemirror.resync.total)
echo "resync.total of the stale leg: $total (B: $blen, device: $size)" >&2
assert_eq "$total" $blen "resync.total (B's 8 regions, from the bitmap)"
# Reads during the resync.
check_reads "during the resync"
# Writes during the resync go to b too: one in B's last region (not copied yet), one outside B.
head -c $mib /dev/urandom >"$tmpdir/C"
for at in 15 40; do
	timeout 60 dd if="$tmpdir/C" of="$mirror" bs=1M seek=$at oflag=direct conv=notrunc status=none ||
		daemon_fail "dd C to the mirror at $at MiB"
	dd if="$tmpdir/C" of="$tmpdir/expect" bs=1M seek=$at conv=notrunc status=none
done
check_reads "during the resync (again)"
state_is resyncing ||
	daemon_fail "the resync ended before the reads: they did not test reads during it"

# ---- Killed in the middle of that resync, restarted --------------------------------------------

done_before=$(xattr "$mirror" user.fusemirror.resync.done)
kill -s KILL "$daemon_pid"
wait_daemon_exit 10
echo "killed with $done_before of $total bytes resynced" >&2
wait_attr_timeout
start_daemon "$tmpdir/slow.conf" "$mirror"
case $(leg_state "$mirror" 1) in
stale | resyncing) ;;
*) daemon_fail "leg.1.state is '$(leg_state "$mirror" 1)' after the restart" ;;
esac
test "$(xattr "$mirror" user.fusemirror.resync.total)" -gt 0 ||
	daemon_fail "nothing to resync after a crash in the middle of a resync"
check_reads "during the resumed resync"
stop_daemon
start_daemon "$tmpdir/m.conf" "$mirror"
check_reads "during the resumed resync, full speed"
wait_until 30 "state clean after the resync" state_is clean
assert_eq "$(leg_state "$mirror" 1)" in_sync "leg.1.state after the resync"
# (The state turns clean a moment before the event is logged.)
wait_until 10 "ResyncFinished in the log" grep -q "ResyncFinished: " "$daemon_log"
check_reads "after the resync"
stop_daemon
data_equal $size "$a" "$b"
cmp -i 0:$mib -n $size "$tmpdir/expect" "$b" >&2 || fail "leg b does not hold A and B"

# ---- Nothing left to do ------------------------------------------------------------------------

cp "$b" "$tmpdir/b.old"
start_daemon "$tmpdir/m.conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after the resync and a stop"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.total)" 0 "resync.total after a clean stop"
grep -q StaleLegRejected "$daemon_log" && daemon_fail "leg b is still called stale"
check_reads "after a clean restart"
head -c $blen /dev/urandom >"$tmpdir/D"
timeout 60 dd if="$tmpdir/D" of="$mirror" bs=1M seek=48 oflag=direct conv=notrunc status=none ||
	daemon_fail "dd D to the mirror"
dd if="$tmpdir/D" of="$tmpdir/expect" bs=1M seek=48 conv=notrunc status=none
stop_daemon

# ---- An old copy of leg b comes back: the bitmap was cleared since, b is copied in full --------

cp "$tmpdir/b.old" "$b"
# At 32 MiB/s the full copy takes 2 s: reads run during it.
write_config "$tmpdir/mid.conf" stale metadata=internal region-size=1M read-policy=round-robin \
	resync-rate-min=32M resync-rate-max=32M "$a" "$b"
start_daemon "$tmpdir/mid.conf" "$mirror"
assert_grep "StaleLegRejected: leg 1 \(b, $b\) is stale .*in full" "$daemon_log" \
	"the log's StaleLegRejected for the old copy of b"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.total)" $size \
	"resync.total of the old copy of b (in full)"
check_reads "with the old copy of b"
state_is resyncing || echo "(the full resync ended before the reads)" >&2
wait_until 30 "state clean after the full resync" state_is clean
check_reads "after the full resync"
stop_daemon
data_equal $size "$a" "$b"
exit 0
