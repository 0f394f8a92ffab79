#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The initial sync of a mirror created without --assume-clean (metadata = internal): leg a holds
# data ("existing data", written into its data area before the first start), leg b garbage.
#   - 16 MiB at full speed: the resync copies all of a onto b (resync.total = the device), the
#     state turns clean, the legs are identical and hold a's data;
#   - 128 MiB at 8 MiB/s: while it runs the state is resyncing and leg b resyncing (or stale),
#     writes go on (before and after the resync's position), and reads return a's data and the
#     writes, never b's garbage; the daemon is killed (SIGKILL) halfway; a write that reached
#     leg a only when the crash came is simulated in a region below b's recovery offset that the
#     bitmap marks dirty; the restart resumes b's resync from its recovery offset (resync.total
#     below the device), and at the end the legs are identical and hold what was written.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires python3 cmp dd truncate head od
make_daemon_tmpdir
# The interpreter itself, not a wrapper (pyenv's shims cost a third of a second a call).
python=$(python3 -S -c 'import sys; print(sys.executable)') || fail "python3 does not run"

mib=1048576
mirror=$tmpdir/mirror

# resynced_at_least BYTES: whether resync.done reached BYTES.
resynced_at_least ()
{
	test "$(xattr "$mirror" user.fusemirror.resync.done 2>/dev/null)" -ge "$1"
}

# new_legs A B SIZE NAME [KEY=VALUE...]: legs A and B of SIZE bytes of data, B full of garbage,
# the config $tmpdir/NAME.conf, the mirror created without --assume-clean, and $tmpdir/NAME.P
# (random) written into A's data area.
new_legs ()
{
	_nl_a=$1
	_nl_b=$2
	_nl_size=$3
	_nl_name=$4
	shift 4
	truncate -s $((_nl_size + mib)) "$_nl_a"
	head -c $((_nl_size + mib)) /dev/urandom >"$_nl_b"
	write_config "$tmpdir/$_nl_name.conf" "$_nl_name" metadata=internal region-size=1M "$@" \
		"$_nl_a" "$_nl_b"
	"$fusemirrorctl" create "$tmpdir/$_nl_name.conf" >&2 || fail "fusemirrorctl create $_nl_name"
	head -c "$_nl_size" /dev/urandom >"$tmpdir/$_nl_name.P"
	dd if="$tmpdir/$_nl_name.P" of="$_nl_a" bs=1M seek=1 conv=notrunc status=none
	cmp -s -i $mib:$mib -n "$_nl_size" "$_nl_a" "$_nl_b" && fail "legs $_nl_a and $_nl_b agree"
	return 0
}

# ---- 16 MiB at full speed ----------------------------------------------------------------------

new_legs "$tmpdir/fast-a" "$tmpdir/fast-b" $((16 * mib)) fast
start_daemon "$tmpdir/fast.conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.total)" $((16 * mib)) \
	"resync.total of the initial sync"
wait_until 30 "state clean after the initial sync" state_is clean
assert_grep "leg 1 \(b, $tmpdir/fast-b\) is being rebuilt" "$daemon_log" "the log at the start"
assert_grep "ResyncStarted: " "$daemon_log" "the log's ResyncStarted"
# (The state turns clean a moment before the event is logged.)
wait_until 10 "ResyncFinished in the log" grep -q "ResyncFinished: " "$daemon_log"
grep -q StaleLegRejected "$daemon_log" && daemon_fail "a new leg is called stale"
assert_eq "$(leg_state "$mirror" 1)" in_sync "leg.1.state after the initial sync"
read_mirror "$mirror" "$tmpdir/through"
cmp "$tmpdir/fast.P" "$tmpdir/through" >&2 || daemon_fail "the mirror does not serve a's data"
stop_daemon
data_equal $((16 * mib)) "$tmpdir/fast-a" "$tmpdir/fast-b"
test "$(examine_field "$tmpdir/fast-b" recovery_offset)" = None ||
	fail "leg b's recovery offset is not 'done' after the initial sync"

# ---- 128 MiB at 8 MiB/s, killed halfway --------------------------------------------------------

size=$((128 * mib))
a=$tmpdir/a
b=$tmpdir/b
new_legs "$a" "$b" $size slow resync-rate-min=8M resync-rate-max=8M
write_config "$tmpdir/full.conf" slow metadata=internal region-size=1M "$a" "$b"
cp "$tmpdir/slow.P" "$tmpdir/expect"
head -c $mib /dev/urandom >"$tmpdir/W"
head -c $mib /dev/urandom >"$tmpdir/W2"
head -c 4096 /dev/urandom >"$tmpdir/torn"

start_daemon "$tmpdir/slow.conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" resyncing "state during the initial sync"
assert_eq "$(leg_state "$mirror" 0)" in_sync "leg.0.state during the initial sync"
case $(leg_state "$mirror" 1) in
stale | resyncing) ;;
*) daemon_fail "leg.1.state is '$(leg_state "$mirror" 1)' during the initial sync" ;;
esac
assert_eq "$(xattr "$mirror" user.fusemirror.resync.total)" $size "resync.total of the initial sync"
# Writes during the sync: in region 0 (behind the copy's position soon) and region 120 (ahead).
timeout 60 dd if="$tmpdir/W" of="$mirror" bs=1M seek=0 oflag=direct conv=notrunc status=none ||
	daemon_fail "dd W to the mirror"
timeout 60 dd if="$tmpdir/W2" of="$mirror" bs=1M seek=120 oflag=direct conv=notrunc status=none ||
	daemon_fail "dd W2 to the mirror"
dd if="$tmpdir/W" of="$tmpdir/expect" bs=1M seek=0 conv=notrunc status=none
dd if="$tmpdir/W2" of="$tmpdir/expect" bs=1M seek=120 conv=notrunc status=none
# Reads come from a, never from b's garbage.
read_mirror "$mirror" "$tmpdir/through"
cmp "$tmpdir/expect" "$tmpdir/through" >&2 ||
	daemon_fail "during the initial sync the mirror does not serve a's data and the writes"
state_is resyncing || daemon_fail "the initial sync ended before the reads: too fast to test"
# Halfway through 16 MiB and its recovery offset saved (once a second): SIGKILL.
wait_until 30 "16 MiB resynced" resynced_at_least $((16 * mib))
sleep 1.2
kill -s KILL "$daemon_pid"
wait_daemon_exit 10
recovery=$(examine_field "$b" recovery_offset)
echo "killed; leg b's recovery offset: $recovery" >&2
test "$recovery" != None && test "$recovery" -gt $((2 * mib)) && test "$recovery" -lt $size ||
	fail "leg b's recovery offset after the crash is $recovery"
test "$(examine_field "$a" state)" = dirty || fail "leg a's superblock is not dirty after the crash"
# Region 0 was written during the sync: its bit is set (b is not in sync: no bit is cleared).
bit_set "$a" 0 || fail "region 0's bit is not set in leg a's bitmap"
# A write in flight at the crash, in region 0, below b's recovery offset, reached leg a only.
dd if="$tmpdir/torn" of="$a" bs=4096 seek=$((mib / 4096 + 2)) conv=notrunc status=none
sleep 1.5 # the dead mount's cached attributes expire: the restart sees it is dead

# ---- The restart resumes from the recovery offset ----------------------------------------------

start_daemon "$tmpdir/full.conf" "$mirror"
assert_grep "leg 1 \(b, $b\) is being rebuilt: its resync goes on from offset $recovery" \
	"$daemon_log" "the log at the restart"
total=$(xattr "$mirror" user.fusemirror.resync.total)
echo "resync.total after the restart: $total of $size" >&2
test "$total" -gt 0 && test "$total" -lt $size ||
	daemon_fail "resync.total after the restart is $total: not resumed from $recovery"
# From the recovery offset on, and the dirty regions below it (region 0).
test "$total" -ge $((size - recovery)) && test "$total" -le $((size - recovery + mib)) ||
	daemon_fail "resync.total after the restart is $total: not what is left from $recovery"
wait_until 30 "state clean after the resumed sync" state_is clean
done_at_end=$(xattr "$mirror" user.fusemirror.resync.done)
assert_eq "$(leg_state "$mirror" 1)" in_sync "leg.1.state after the resumed sync"
read_mirror "$mirror" "$tmpdir/through"
stop_daemon
# Either version of the torn block may win, but both legs hold the same.
cmp -i $mib:$mib -n $mib "$a" "$b" >&2 ||
	daemon_fail "region 0 (dirty at the crash, below b's recovery offset) differs between the" \
		"legs: the dirty regions below the recovery offset were not resynced onto b"
data_equal $size "$a" "$b"
cmp -s -i 8192:8192 -n 4096 "$tmpdir/through" "$tmpdir/W" ||
	cmp -s -i 8192:0 -n 4096 "$tmpdir/through" "$tmpdir/torn" ||
	fail "the block of the write torn by the crash holds neither its old nor its new data"
dd if="$tmpdir/through" of="$tmpdir/expect" bs=4096 skip=2 seek=2 count=1 conv=notrunc \
	status=none
cmp "$tmpdir/expect" "$tmpdir/through" >&2 ||
	fail "after the resumed sync the mirror does not hold a's data and the writes"
cmp -i 0:$mib -n $size "$tmpdir/through" "$a" >&2 ||
	fail "the mirror served something else than leg a holds"
# What was copied is what was announced.
assert_eq "$done_at_end" "$total" "resync.done at the end of the resumed sync"

start_daemon "$tmpdir/full.conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after the sync and a clean stop"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.total)" 0 "resync.total after a clean stop"
stop_daemon
exit 0
