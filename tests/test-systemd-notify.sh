#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# systemd's notification protocol, heard by a NOTIFY_SOCKET listener of our own (no systemd as
# PID 1 needed):
#   - while assembly waits for a missing leg: STATUS=waiting for leg b (PATH) (N of T s) about
#     once a second, with EXTEND_TIMEOUT_USEC= covering the rest of the wait; then READY=1;
#   - during a resync, STATUS= says how far it is;
#   - with WATCHDOG_USEC, WATCHDOG=1 every half of it; not with another WATCHDOG_PID; and the
#     pings stop while the engine is stuck (the only leg's NBD server under SIGSTOP, no
#     io-timeout), and come back with it.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires python3 nbdkit nbdfuse fusermount3 truncate
make_daemon_tmpdir

mib=1048576
sock=$tmpdir/notify.sock
log=$tmpdir/notify.log
notify_listen "$sock" "$log"
NOTIFY_SOCKET=$sock
export NOTIFY_SOCKET

# heard LINE WHAT: fail unless LINE was one datagram, word for word.
heard ()
{
	grep -Fxq -- "$1" "$log" || daemon_fail "$2: systemd was not sent '$1'"
}

# count PATTERN: how many datagrams so far match the grep pattern.
count ()
{
	grep -c -- "$1" "$log" || true
}

# more_than N PATTERN: whether more than N datagrams match (for wait_until, which reruns it).
more_than ()
{
	test "$(count "$2")" -gt "$1"
}

# ---- Assembly waits for leg b, which appears after about 2.5 s ------------------------------
a=$tmpdir/a
b=$tmpdir/b
truncate -s $((64 * mib)) "$a" "$b"
write_config "$tmpdir/m.conf" notify "$a" "$b" metadata=internal assemble-timeout=10 \
	resync-rate-max=16M
"$fusemirrorctl" create --assume-clean "$tmpdir/m.conf" >/dev/null || fail "fusemirrorctl create"
mv "$b" "$b.away"
(sleep 2.5 && mv "$b.away" "$b") &
mover=$!
start_daemon "$tmpdir/m.conf" "$tmpdir/mirror"
wait $mover
grep "waiting for leg" "$log" >/dev/null || daemon_fail "no STATUS= while assembly waited"
heard "STATUS=waiting for leg b ($b) (0 of 10 s)|EXTEND_TIMEOUT_USEC=70000000" "the wait's start"
heard "STATUS=waiting for leg b ($b) (2 of 10 s)|EXTEND_TIMEOUT_USEC=68000000" "2 s into it"
n=$(count "waiting for leg b")
test "$n" -ge 2 && test "$n" -le 4 || daemon_fail "$n STATUS= lines in a wait of 2.5 s"
wait_until 5 "READY=1" grep -q '^READY=1$' "$log"
# READY=1 comes after the wait, and no wait is told after it.
test "$(grep -n -m1 '^READY=1' "$log" | cut -d: -f1)" -gt \
	"$(grep -n 'waiting for leg' "$log" | tail -n1 | cut -d: -f1)" ||
	daemon_fail "READY=1 came before the wait ended"
heard "STATUS=clean, 2 of 2 legs in sync" "the state once ready"
echo "what systemd heard during the assembly wait:"
grep -E '^(STATUS|EXTEND_TIMEOUT_USEC|READY)=' "$log"

# ---- A resync says how far it is (16 MiB/s over 64 MiB: a few seconds) ---------------------
"$fusemirrorctl" resync --full "$tmpdir/mirror" >/dev/null || daemon_fail "resync --full"
wait_until 30 "a resync's STATUS=" grep -q '^STATUS=resyncing, .*resync [0-9]*% (' "$log"
wait_until 30 "a resync's STATUS= past 0%" grep -q '^STATUS=resyncing, .*resync [1-9][0-9]*% (' "$log"
"$fusemirrorctl" wait "$tmpdir/mirror" >/dev/null || daemon_fail "fusemirrorctl wait"
echo "what systemd heard during the resync:"
sed -n '/^STATUS=resyncing/,$p' "$log" | grep '^STATUS='
stop_daemon
test "$(count WATCHDOG=1)" -eq 0 || fail "WATCHDOG=1 sent without WATCHDOG_USEC"

# ---- The watchdog ----------------------------------------------------------------------------
# Another process's watchdog (WATCHDOG_PID): no pings.
: >"$log"
WATCHDOG_USEC=400000
WATCHDOG_PID=1
export WATCHDOG_USEC WATCHDOG_PID
start_daemon "$tmpdir/m.conf" "$tmpdir/mirror"
sleep 1.5
test "$(count WATCHDOG=1)" -eq 0 || daemon_fail "pings for another WATCHDOG_PID"
stop_daemon
unset WATCHDOG_PID

# One leg, on nbdfuse: its server stopped, the watchdog's read cannot be answered.
truncate -s $((64 * mib)) "$tmpdir/c.img"
nbdfuse_leg c "$tmpdir/c.img"
write_config "$tmpdir/one.conf" watchdog "$nbdfuse_file" metadata=internal io-timeout=0
"$fusemirrorctl" create --assume-clean "$tmpdir/one.conf" >/dev/null || fail "create one leg"
: >"$log"
start_daemon "$tmpdir/one.conf" "$tmpdir/mirror"
wait_until 5 "three pings" more_than 2 WATCHDOG=1
kill -s STOP "$nbdkit_pid"
# Whatever of the leg sits in the page cache would answer the read without the server.
sync
echo 3 >/proc/sys/vm/drop_caches
sleep 0.5
before=$(count WATCHDOG=1)
sleep 2
after=$(count WATCHDOG=1)
kill -s CONT "$nbdkit_pid"
echo "pings with the server stopped: $((after - before)) in 2 s"
test "$after" -eq "$before" || daemon_fail "the watchdog pinged while the engine was stuck"
wait_until 5 "the pings to come back" more_than "$after" WATCHDOG=1
stop_daemon
check_daemon_log
