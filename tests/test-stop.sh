#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Stopping a mirror that is in use (fusemirrorctl(8) stop; fusemirrord(8) SIGNALS), on a real
# mount:
#   - fusemirrorctl stop with a loop device bound to the file is refused, naming the device, and
#     the mirror goes on serving; after losetup -d it stops: unmounted, superblocks clean;
#   - stop with a process holding the file open is refused naming the process; --force stops;
#   - SIGTERM with the file held waits about stop-timeout (2 s): still serving after 1 s, gone
#     after the timeout; a close during the wait (stop-timeout 30 s) ends it early, after the
#     holder was named again 10 s on; a second SIGTERM ends it too;
#   - a control command with control characters is refused (EINVAL) and logged escaped.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires losetup python3 sleep
make_daemon_tmpdir

a=$tmpdir/a
b=$tmpdir/b
mirror=$tmpdir/mirror
truncate -s 64M "$a" "$b"
write_config "$tmpdir/m.conf" stopper metadata=internal stop-timeout=2 "$a" "$b"
write_config "$tmpdir/long.conf" stopper metadata=internal stop-timeout=30 "$a" "$b"
"$fusemirrorctl" create --assume-clean "$tmpdir/m.conf" >&2 || fail "fusemirrorctl create"

# ctl_stop ARGS...: fusemirrorctl stop ARGS "$mirror"; sets rc, out, err.
ctl_stop ()
{
	rc=0
	"$fusemirrorctl" stop "$@" "$mirror" >"$tmpdir/out" 2>"$tmpdir/err" || rc=$?
	err=$(cat "$tmpdir/err")
}

# legs_clean WHAT: both legs' superblocks say clean.
legs_clean ()
{
	for leg in "$a" "$b"; do
		state=$(examine_field "$leg" state)
		assert_eq "$state" clean "$1: the superblock of $leg"
	done
}

# holder_start: a process (sleep) holding the mirror file open; sets holder.
holder_start ()
{
	sleep 600 <"$mirror" &
	holder=$!
	cleanup_fn "kill $holder 2>/dev/null || :"
	# Until its open reached the daemon.
	wait_until 5 "the holder's open" sh -c "test \"\$(readlink /proc/$holder/fd/0)\" = '$mirror'"
}

# ---- stop with a loop device bound: refused, then stops once it is detached -------------------

start_daemon "$tmpdir/m.conf" "$mirror"
loop=$(loop_attach "$mirror")
ctl_stop
test "$rc" -eq 1 || daemon_fail "stop with $loop bound exited $rc: $err"
case $err in
*"loop device $loop is bound to it"*) ;;
*) daemon_fail "stop with $loop bound does not name it: $err" ;;
esac
case $err in
*"the daemon refused 'stop'"*"is in use"*) ;;
*) daemon_fail "stop with $loop bound: not an 'in use' refusal: $err" ;;
esac
_daemon_alive "$daemon_pid" || daemon_fail "the daemon went away after a refused stop"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after the refused stop"
is_mounted "$mirror" || daemon_fail "$mirror is unmounted after a refused stop"

loop_detach "$loop" "$mirror"
# The kernel sends the release of the loop's file asynchronously: give it a moment.
tries=50
while :; do
	ctl_stop
	test "$rc" -eq 0 && break
	tries=$((tries - 1))
	test "$tries" -gt 0 || daemon_fail "stop after losetup -d still refused: $err"
	sleep 0.1
done
case $err in
*"stopped mirror 'stopper'"*) ;;
*) daemon_fail "stop did not report the stop: $err" ;;
esac
is_mounted "$mirror" && daemon_fail "$mirror is still mounted after stop returned"
wait_daemon_exit 10
assert_eq "$daemon_status" 0 "the exit status after stop"
check_daemon_log
assert_grep "the control command stop: stopping" "$daemon_log" "the log of the stop"
legs_clean "after stop"

# ---- stop with a process holding the file: refused naming it; --force stops --------------------

start_daemon "$tmpdir/m.conf" "$mirror"
holder_start
ctl_stop
test "$rc" -eq 1 || daemon_fail "stop with process $holder holding the file exited $rc: $err"
case $err in
*"process $holder (sleep) has it open"*) ;;
*) daemon_fail "stop does not name process $holder (sleep): $err" ;;
esac
_daemon_alive "$daemon_pid" || daemon_fail "the daemon went away after a refused stop"
ctl_stop --force
test "$rc" -eq 0 || daemon_fail "stop --force exited $rc: $err"
is_mounted "$mirror" && daemon_fail "$mirror is still mounted after stop --force"
wait_daemon_exit 10
assert_eq "$daemon_status" 0 "the exit status after stop --force"
check_daemon_log
legs_clean "after stop --force"
kill "$holder" 2>/dev/null || :
wait "$holder" 2>/dev/null || :

# ---- SIGTERM while held: waits stop-timeout (2 s), then stops ---------------------------------

start_daemon "$tmpdir/m.conf" "$mirror"
holder_start
t0=$(date +%s%N)
kill -s TERM "$daemon_pid"
sleep 1
_daemon_alive "$daemon_pid" || daemon_fail "SIGTERM did not wait for the holder's close"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state 1 s after SIGTERM"
assert_grep "SIGTERM while $mirror is in use \(process $holder \(sleep\) has it open\): waiting up to 2 s" \
	"$daemon_log" "the log of the wait"
wait_daemon_exit 6
t1=$(date +%s%N)
elapsed_ms=$(((t1 - t0) / 1000000))
test "$elapsed_ms" -ge 1900 || daemon_fail "SIGTERM stopped after $elapsed_ms ms, before stop-timeout"
assert_eq "$daemon_status" 0 "the exit status after the stop-timeout"
is_mounted "$mirror" && daemon_fail "$mirror is still mounted after the stop-timeout"
assert_grep "stop-timeout \(2 s\) is over" "$daemon_log" "the log of the timeout"
check_daemon_log
legs_clean "after the stop-timeout"
kill "$holder" 2>/dev/null || :
wait "$holder" 2>/dev/null || :

# ---- SIGTERM while held, stop-timeout 30 s: the last close ends the wait early -----------------

start_daemon "$tmpdir/long.conf" "$mirror"
holder_start
t0=$(date +%s%N)
kill -s TERM "$daemon_pid"
# Past the first "still waiting" message (every 10 s).
sleep 10.5
_daemon_alive "$daemon_pid" || daemon_fail "SIGTERM did not wait for the holder's close"
assert_grep "still waiting for the last close of $mirror \(process $holder \(sleep\) has it open\); stopping in [0-9]+ s" \
	"$daemon_log" "the log of the wait, 10 s on"
kill "$holder"
wait "$holder" 2>/dev/null || :
wait_daemon_exit 10
t1=$(date +%s%N)
elapsed_ms=$(((t1 - t0) / 1000000))
test "$elapsed_ms" -lt 18000 || daemon_fail "the last close did not end the wait ($elapsed_ms ms)"
assert_eq "$daemon_status" 0 "the exit status after the last close"
assert_grep "the last close of $mirror came: stopping" "$daemon_log" "the log of the last close"
check_daemon_log
legs_clean "after the last close"

# ---- ... and a second SIGTERM stops at once ------------------------------------------------------

start_daemon "$tmpdir/long.conf" "$mirror"
holder_start
t0=$(date +%s%N)
kill -s TERM "$daemon_pid"
sleep 0.5
_daemon_alive "$daemon_pid" || daemon_fail "SIGTERM did not wait for the holder's close"
kill -s TERM "$daemon_pid"
wait_daemon_exit 10
t1=$(date +%s%N)
elapsed_ms=$(((t1 - t0) / 1000000))
test "$elapsed_ms" -lt 8000 || daemon_fail "a second SIGTERM did not stop at once ($elapsed_ms ms)"
assert_eq "$daemon_status" 0 "the exit status after a second SIGTERM"
assert_grep "second SIGTERM: stopping at once" "$daemon_log" "the log of the second SIGTERM"
check_daemon_log
legs_clean "after a second SIGTERM"
kill "$holder" 2>/dev/null || :
wait "$holder" 2>/dev/null || :

# ---- control characters: refused, and logged escaped ------------------------------------------

start_daemon "$tmpdir/m.conf" "$mirror"
# Hex, so that setfattr passes ESC and newline byte for byte.
value=0x$(printf 'add /tmp/x\033[31m\nLegFailed: forged' | od -An -v -tx1 | tr -d ' \n')
expect_setxattr_error "$mirror" trusted.fusemirror.ctl "$value" "Invalid argument"
reason=$(ctl_reason "$mirror" "$(printf 'add /tmp/x\033[31m')")
assert_eq "$reason" "EINVAL the path contains control character 0x1b" "last_error of the ESC"
assert_eq "$(xattr "$mirror" user.fusemirror.legs)" 2 "legs after the refused adds"
stop_daemon
assert_grep 'refused: the path contains control character 0x1b' "$daemon_log" "the log of the refusal"
assert_grep 'add /tmp/x\\033\[31m\\nLegFailed: forged' "$daemon_log" "the escaped command"
if grep -q "$(printf '\033')" "$daemon_log"; then
	daemon_fail "a raw ESC reached the daemon's log"
fi
if grep -q '^LegFailed: forged' "$daemon_log"; then
	daemon_fail "a forged log line reached the daemon's log"
fi
legs_clean "at the end"
exit 0
