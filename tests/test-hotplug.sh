#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Hot add, re-add and remove of legs while the mirror serves I/O (metadata = internal), through
# fusemirrorctl add, remove, resync, wait and set, and assemble-timeout at start:
#   - a third leg added while fio writes: it is written at once, never read until its resync is
#     done; after `wait` all three data areas are identical and hold what fio wrote;
#   - a failed leg re-added: it catches up from the bitmap (resync.total is the regions written
#     while it was out, not the device), and equals the others after `wait`;
#   - remove refuses an in-sync leg without --force and the last in-sync leg with it; a forced
#     remove of the hot-added leg leaves the mirror clean with two legs; adding it back copies
#     it in full;
#   - refusals touch nothing: a leg too small, a live leg added twice, a leg of another array
#     (each with its message and exit status 1);
#   - a restart from a config that does not list the added leg: its slot is missing (degraded)
#     until the leg is added back into it;
#   - set changes the resync rates at run time;
#   - a leg that appears within assemble-timeout is waited for; one that does not is left out
#     (DegradedArray) once the timeout is over.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires cmp dd truncate head fio
make_daemon_tmpdir

mib=1048576
size=$((64 * mib))
a=$tmpdir/a
b=$tmpdir/b
c=$tmpdir/c
mirror=$tmpdir/mirror

# ctl_fails WHAT MESSAGE CMD...: fusemirrorctl CMD must exit 1 and say MESSAGE.
ctl_fails ()
{
	_cf_what=$1
	_cf_message=$2
	shift 2
	_cf_status=0
	"$fusemirrorctl" "$@" >"$tmpdir/ctl.out" 2>&1 || _cf_status=$?
	cat "$tmpdir/ctl.out" >&2
	test "$_cf_status" = 1 || daemon_fail "$_cf_what: fusemirrorctl $* exited $_cf_status, not 1"
	grep -qF -- "$_cf_message" "$tmpdir/ctl.out" ||
		daemon_fail "$_cf_what: no '$_cf_message' in what fusemirrorctl said"
}

truncate -s $((size + mib)) "$a" "$b"
truncate -s $((size + 2 * mib)) "$c"
write_config "$tmpdir/m.conf" hot metadata=internal region-size=1M read-policy=round-robin \
	resync-rate-min=16M "$a" "$b"
cp "$tmpdir/m.conf" "$tmpdir/m.conf.orig"
"$fusemirrorctl" create --assume-clean "$tmpdir/m.conf" >&2 || fail "fusemirrorctl create"
start_daemon "$tmpdir/m.conf" "$mirror"

# ---- set --------------------------------------------------------------------------------------

"$fusemirrorctl" set "$mirror" resync-rate-max=40M >&2 || daemon_fail "fusemirrorctl set"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.rate_max)" $((40 * mib)) "resync.rate_max"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.rate_min)" $((16 * mib)) "resync.rate_min"

# ---- Hot add a third leg while fio writes --------------------------------------------------------

fio --name=hot --filename="$mirror" --ioengine=psync --direct=1 --rw=randwrite --bs=64k \
	--size=$size --time_based --runtime=6 --randrepeat=0 --output="$tmpdir/fio.out" \
	>/dev/null 2>&1 &
fio_pid=$!
cleanup_fn "kill $fio_pid 2>/dev/null || :"
sleep 1
"$fusemirrorctl" add "$mirror" "$c" >&2 || daemon_fail "fusemirrorctl add $c"
assert_eq "$(xattr "$mirror" user.fusemirror.legs)" 3 "legs after add"
case $(leg_state "$mirror" 2) in
stale | resyncing) ;;
*) daemon_fail "leg 2 is $(leg_state "$mirror" 2) at once after add, not stale or resyncing" ;;
esac
assert_eq "$(xattr "$mirror" user.fusemirror.state)" resyncing "state during the add's resync"
assert_grep "LegAdded: leg 2 .c, " "$daemon_log" "the log's LegAdded"
wait $fio_pid || daemon_fail "fio during the hot add failed: $(cat "$tmpdir/fio.out")"
# Rate-limited to 40 MiB/s, 64 MiB: the copy outlasts fio; wait reports the end.
timeout 60 "$fusemirrorctl" wait "$mirror" >"$tmpdir/wait.out" 2>&1 ||
	daemon_fail "fusemirrorctl wait: $(cat "$tmpdir/wait.out")"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after wait"
assert_eq "$(leg_state "$mirror" 2)" in_sync "leg 2 after wait"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.total)" $size "resync.total of a new leg"
data_equal $size "$a" "$b" "$c"
# What the mirror serves is what the legs hold.
read_mirror "$mirror" "$tmpdir/through"
cmp -i 0:$mib -n $size "$tmpdir/through" "$c" >&2 || daemon_fail "the mirror does not serve leg c's data"

# ---- Fail and re-add: the bitmap tells what it missed ---------------------------------------------

# fio dirtied every region; once they are idle (5 s) the bitmap is clear again.
tries=200
until "$fusemirrorctl" examine --json "$a" | grep -q '"dirty_regions":0[,}]'; do
	tries=$((tries - 1))
	test $tries -gt 0 || daemon_fail "the bitmap bits of fio's writes were never cleared"
	sleep 0.1
done
"$fusemirrorctl" fail "$mirror" b >&2 || daemon_fail "fusemirrorctl fail b"
head -c $((3 * mib)) /dev/urandom >"$tmpdir/X"
dd if="$tmpdir/X" of="$mirror" bs=1M seek=20 oflag=direct conv=notrunc status=none ||
	daemon_fail "dd X"
"$fusemirrorctl" add "$mirror" "$b" >&2 || daemon_fail "fusemirrorctl add (re-add) $b"
timeout 60 "$fusemirrorctl" wait "$mirror" >&2 || daemon_fail "fusemirrorctl wait after re-add"
assert_eq "$(leg_state "$mirror" 1)" in_sync "leg 1 after re-add"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.name)" b "leg 1 keeps its name"
total=$(xattr "$mirror" user.fusemirror.resync.total)
test "$total" -le $((4 * mib)) ||
	daemon_fail "re-add copied $total bytes, not the 3 regions written while b was out"
data_equal $size "$a" "$b" "$c"

# ---- Refusals touch nothing ------------------------------------------------------------------------

events=$(xattr "$mirror" user.fusemirror.events)
truncate -s $((8 * mib)) "$tmpdir/small"
ctl_fails "a leg too small" "needs at least" add "$mirror" "$tmpdir/small"
ctl_fails "a live leg twice" "already leg 0" add "$mirror" "$a"
truncate -s $((size + mib)) "$tmpdir/o1" "$tmpdir/o2"
write_config "$tmpdir/other.conf" other metadata=internal "$tmpdir/o1" "$tmpdir/o2"
"$fusemirrorctl" create --assume-clean "$tmpdir/other.conf" >/dev/null 2>&1 ||
	fail "fusemirrorctl create other"
cp "$tmpdir/o1" "$tmpdir/o1.before"
ctl_fails "a leg of another array" "belongs to fusemirror array 'other'" add "$mirror" "$tmpdir/o1"
cmp "$tmpdir/o1" "$tmpdir/o1.before" || daemon_fail "a refused add changed the leg"
ctl_fails "remove an in-sync leg" "only a failed leg" remove "$mirror" 1
assert_eq "$(xattr "$mirror" user.fusemirror.events)" "$events" "events after refusals"
assert_eq "$(xattr "$mirror" user.fusemirror.legs)" 3 "legs after refusals"

# ---- Remove the hot-added leg, add it back -----------------------------------------------------------

"$fusemirrorctl" remove --force "$mirror" 2 >&2 || daemon_fail "fusemirrorctl remove --force 2"
assert_grep "LegRemoved: leg 2" "$daemon_log" "the log's LegRemoved"
assert_eq "$(xattr "$mirror" user.fusemirror.legs)" 2 "legs after removing the last slot"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after removing the added leg"
head -c $((2 * mib)) /dev/urandom >"$tmpdir/Y"
dd if="$tmpdir/Y" of="$mirror" bs=1M seek=40 oflag=direct conv=notrunc status=none ||
	daemon_fail "dd Y"
"$fusemirrorctl" add "$mirror" "$c" >&2 || daemon_fail "fusemirrorctl add $c again"
timeout 60 "$fusemirrorctl" wait "$mirror" >&2 || daemon_fail "fusemirrorctl wait after add again"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.total)" $size \
	"a removed leg added back is copied in full"
data_equal $size "$a" "$b" "$c"
# The daemon keeps its config true: c, added back, has its group again.
assert_grep "^\[leg c\]\$" "$tmpdir/m.conf" "the config after adding c back"
# A restart from a config that does not list c (the first one): its slot is missing, the
# mirror degraded, until c is added back into it (by its leg UUID).
stop_daemon
cp "$tmpdir/m.conf.orig" "$tmpdir/m.conf"
start_daemon "$tmpdir/m.conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.legs)" 3 "legs after a restart without c"
assert_eq "$(leg_state "$mirror" 2)" failed "the unlisted slot after a restart"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" degraded "state without c"
assert_grep "does not list" "$daemon_log" "the warning about the unlisted leg"
head -c $((2 * mib)) /dev/urandom >"$tmpdir/Z"
dd if="$tmpdir/Z" of="$mirror" bs=1M seek=50 oflag=direct conv=notrunc status=none ||
	daemon_fail "dd Z"
"$fusemirrorctl" add "$mirror" "$c" >&2 || daemon_fail "fusemirrorctl add $c after the restart"
assert_eq "$(xattr "$mirror" user.fusemirror.legs)" 3 "c back in its own slot"
timeout 60 "$fusemirrorctl" wait "$mirror" >&2 || daemon_fail "fusemirrorctl wait, c back"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state with c back"
data_equal $size "$a" "$b" "$c"
"$fusemirrorctl" fail "$mirror" 0 >&2 || daemon_fail "fail leg 0"
"$fusemirrorctl" fail "$mirror" 1 >&2 || daemon_fail "fail leg 1"
ctl_fails "remove the last in-sync leg" "last in-sync" remove --force "$mirror" 2
# Reads come from leg c alone now: still what was written.
read_mirror "$mirror" "$tmpdir/through"
cmp -i 0:$mib -n $size "$tmpdir/through" "$a" >&2 || daemon_fail "leg c alone serves other data"
stop_daemon

# ---- assemble-timeout ----------------------------------------------------------------------------------

a=$tmpdir/t1
b=$tmpdir/t2
truncate -s $((size + mib)) "$a" "$b"
write_config "$tmpdir/t.conf" late metadata=internal assemble-timeout=2 "$a" "$b"
"$fusemirrorctl" create --assume-clean "$tmpdir/t.conf" >/dev/null 2>&1 || fail "create t.conf"
# b comes back while the daemon waits: assembled with it.
mv "$b" "$b.away"
(sleep 1 && mv "$b.away" "$b") &
mv_pid=$!
start_daemon "$tmpdir/t.conf" "$mirror"
wait $mv_pid
assert_grep "waiting up to 2 s for $b" "$daemon_log" "the log's wait for b"
case $(leg_state "$mirror" 1) in
failed) daemon_fail "leg b, back within assemble-timeout, was left out" ;;
esac
stop_daemon
# b never comes: the mirror starts degraded after the timeout.
mv "$b" "$b.away"
start=$(date +%s)
start_daemon "$tmpdir/t.conf" "$mirror"
test $(($(date +%s) - start)) -ge 2 || daemon_fail "the daemon did not wait assemble-timeout"
assert_grep "DegradedArray: " "$daemon_log" "the log's DegradedArray after the timeout"
assert_eq "$(leg_state "$mirror" 1)" failed "leg.1.state with b missing"
stop_daemon
mv "$b.away" "$b"
exit 0
