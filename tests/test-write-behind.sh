#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Write-behind through the daemon: leg b is a file of nbdfuse whose NBD server (nbdkit, on a unix
# socket) adds 20 ms to every write (its delay filter); b is write-mostly with write-behind.
#   - the config, the xattrs, "set write-behind" (a leg that is not write-mostly is refused) and
#     a reload (SIGHUP) of write-behind;
#   - acknowledged writes go on at local speed with write-behind, at the remote's without it
#     (set write-behind 1 0): 32 O_DIRECT writes of 64 KiB, timed both ways;
#   - the remote catches up: leg.1.behind reaches "0 writes, 0 bytes", the legs are identical;
#   - a SIGKILL of the daemon while writes are behind (a backlog of 4 KiB writes that takes b
#     seconds, two engine threads), kept past the cleaner's idle time: their regions are still
#     dirty on leg a, and the restart resyncs them (a resync happens, not a full one:
#     resync.total < size); the legs are identical after it.
# (The cleaner's flush of leg b waits behind its backlog in the engine's queue, so here a bit
# cleared too early would stay on disk anyway: test-writebehind checks the bit itself, on an NBD
# leg whose flush does not wait.)
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires nbdkit nbdfuse fusermount3 dd cmp head truncate date
make_daemon_tmpdir

mib=1048576
size=$((64 * mib))
a=$tmpdir/a
truncate -s $size "$a" "$tmpdir/b.img"

nbdfuse_leg b "$tmpdir/b.img" --filter=delay delay-write=20ms
b=$nbdfuse_file
test "$(file_size "$b")" -eq $size || fail "the nbdfuse file is not 64 MiB"

# A bad config first: write-behind on a leg that is not write-mostly is one line, exit 78.
cat >"$tmpdir/bad.conf" <<EOF
[mirror]
metadata = internal
[leg a]
path = $a
write-behind = 8
[leg b]
path = $b
write-mostly = true
EOF
rc=0
"$fusemirrord" -f -c "$tmpdir/bad.conf" "$tmpdir/nowhere" >"$tmpdir/bad.out" 2>&1 || rc=$?
assert_eq $rc 78 "fusemirrord with write-behind on a leg that is not write-mostly"
assert_grep "bad.conf:5: \[leg a\]: write-behind needs write-mostly = true" "$tmpdir/bad.out" \
	"the config error"

mirror=$tmpdir/mirror
cat >"$tmpdir/m.conf" <<EOF
[mirror]
name = wb
metadata = internal
region-size = 1M
stop-timeout = 0
io-timeout = 60
threads = 2
[leg a]
path = $a
[leg b]
path = $b
write-mostly = true
write-behind = 4096
EOF
"$fusemirrorctl" create --assume-clean "$tmpdir/m.conf" >/dev/null || fail "fusemirrorctl create"
start_daemon "$tmpdir/m.conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.write_behind)" 4096 "leg b's write-behind"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.0.write_behind)" 0 "leg a's write-behind"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.behind)" "0 writes, 0 bytes" "leg b, idle"
assert_eq "$(ctl_reason "$mirror" "set write-behind 0 8")" \
	"EPERM leg 0 is not write-mostly: write-behind is for write-mostly legs" \
	"set write-behind on leg a"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.0.write_behind)" 0 "leg a's, after the refusal"

behind_is_zero ()
{
	test "$(xattr "$mirror" user.fusemirror.leg.1.behind)" = "0 writes, 0 bytes"
}

# timed_writes SEEK_MIB: 32 O_DIRECT writes of 64 KiB at SEEK_MIB, each answered before the next;
# prints the milliseconds they took.
timed_writes ()
{
	_tw_start=$(date +%s%N)
	dd if="$tmpdir/data" of="$mirror" bs=64k seek=$(($1 * 16)) count=32 oflag=direct \
		conv=notrunc status=none || daemon_fail "the writes at $1 MiB failed"
	echo $((($(date +%s%N) - _tw_start) / 1000000))
}

head -c $((2 * mib)) /dev/urandom >"$tmpdir/data"
# The first write to a clean region waits for its bit on every leg (b too): warm them up.
for r in 8 9 10 11; do
	dd if="$tmpdir/data" of="$mirror" bs=4k seek=$((r * 256 + 255)) count=1 oflag=direct \
		conv=notrunc status=none || daemon_fail "the warm-up write of region $r"
done
wait_until 20 "leg b to catch up" behind_is_zero
on_ms=$(timed_writes 8)
wait_until 20 "leg b to catch up after the writes behind" behind_is_zero
answered=$(xattr "$mirror" user.fusemirror.leg.1.behind_answered)
setfattr -n trusted.fusemirror.ctl -v "set write-behind 1 0" "$mirror" ||
	daemon_fail "set write-behind 1 0"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.write_behind)" 0 "leg b's write-behind, off"
off_ms=$(timed_writes 10)
echo "32 writes of 64 KiB: $on_ms ms with write-behind ($answered answered early)," \
	"$off_ms ms without"
test "$answered" -ge 16 || daemon_fail "only $answered writes were answered before leg b had them"
test "$off_ms" -ge 600 || daemon_fail "without write-behind the writes took $off_ms ms, not >= 640"
test $((on_ms * 2)) -le "$off_ms" ||
	daemon_fail "with write-behind the writes took $on_ms ms, not half of $off_ms ms"
# A reload (SIGHUP) applies the file's write-behind: 4096 again, then 2048.
kill -s HUP "$daemon_pid"
wait_until 10 "the reload to restore write-behind" \
	test "$(xattr "$mirror" user.fusemirror.leg.1.write_behind)" = 4096
sed -i 's/^write-behind = 4096$/write-behind = 2048/' "$tmpdir/m.conf"
kill -s HUP "$daemon_pid"
wait_until 10 "the reload of write-behind = 2048" \
	test "$(xattr "$mirror" user.fusemirror.leg.1.write_behind)" = 2048
data_equal $((size - mib)) "$a" "$tmpdir/b.img"
# fusemirrorctl set write-behind=N: every write-mostly leg's, shown by status; out of range is a
# usage error (2) that sends nothing.
"$fusemirrorctl" set "$mirror" write-behind=512 >/dev/null ||
	daemon_fail "fusemirrorctl set write-behind=512"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.write_behind)" 512 "leg b's, after set"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.0.write_behind)" 0 "leg a's, after set"
"$fusemirrorctl" status "$mirror" >"$tmpdir/status" || daemon_fail "fusemirrorctl status"
assert_grep "^leg 1 write-behind: 512 writes$" "$tmpdir/status" "status's write-behind line"
! grep -q "^leg 0 write-behind" "$tmpdir/status" ||
	daemon_fail "status shows a write-behind for leg a"
"$fusemirrorctl" status --json "$mirror" | grep -q '"write_behind":512' ||
	daemon_fail "status --json has no write_behind of 512"
rc=0
"$fusemirrorctl" set "$mirror" write-behind=16384 2>"$tmpdir/set.err" || rc=$?
assert_eq $rc 2 "fusemirrorctl set write-behind=16384"
assert_grep "not a number of writes from 0 to 16383" "$tmpdir/set.err" "its message"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.write_behind)" 512 \
	"leg b's, after the usage error"
"$fusemirrorctl" set "$mirror" write-behind=2048 >/dev/null ||
	daemon_fail "fusemirrorctl set write-behind=2048"

# ---- SIGKILL while writes are behind ------------------------------------------------------------

# 1024 writes of 4 KiB into 4 regions: answered at local speed, leg b seconds behind (two engine
# threads, 20 ms a write).  Killed past the cleaner's idle time (5 s): the regions must be dirty.
# Warmed first: a region's bit would be written to leg b behind the backlog.
for r in 32 33 34 35; do
	dd if="$tmpdir/data" of="$mirror" bs=4k seek=$((r * 256 + 255)) count=1 oflag=direct \
		conv=notrunc status=none || daemon_fail "the warm-up write of region $r"
done
wait_until 20 "leg b to catch up" behind_is_zero
start=$(date +%s%N)
dd if="$tmpdir/data" of="$mirror" bs=4k seek=$((32 * 256)) count=512 oflag=direct conv=notrunc \
	status=none || daemon_fail "the backlog writes failed"
dd if="$tmpdir/data" of="$mirror" bs=4k seek=$((34 * 256)) count=512 oflag=direct conv=notrunc \
	status=none || daemon_fail "the backlog writes failed"
answered_ms=$((($(date +%s%N) - start) / 1000000))
echo "1024 writes of 4 KiB answered in $answered_ms ms"
test $answered_ms -lt 5000 || daemon_fail "the backlog took $answered_ms ms to answer"
sleep 6.5
behind=$(xattr "$mirror" user.fusemirror.leg.1.behind)
echo "behind at the kill: $behind"
case $behind in
"0 writes,"*) daemon_fail "leg b caught up before the kill: the backlog is too short" ;;
esac
for r in 32 33 34 35; do
	bit_set "$a" $r || daemon_fail "region $r's bit is clear on leg a while leg b is behind"
done
"$fusemirrorctl" status "$mirror" >"$tmpdir/status" || daemon_fail "fusemirrorctl status"
grep -Eq '^ +1 +b +in_sync \(behind [1-9][0-9]*\) ' "$tmpdir/status" ||
	daemon_fail "status does not show leg b behind: $(cat "$tmpdir/status")"
kill -s KILL "$daemon_pid"
wait_daemon_exit 10
sleep 1.5
# What was behind died with the daemon: leg b lacks it (else this tests nothing).
if cmp -s -i $((33 * mib)):$((33 * mib)) -n $((2 * mib)) "$a" "$tmpdir/b.img"; then
	daemon_fail "leg b has every write behind after the SIGKILL: nothing was behind"
fi

start_daemon "$tmpdir/m.conf" "$mirror"
total=$(xattr "$mirror" user.fusemirror.resync.total)
echo "resync.total after the crash: $total of $size bytes"
test "$total" -gt 0 || daemon_fail "no resync after a crash with writes behind"
test "$total" -lt $((size - mib)) || daemon_fail "resync.total $total: a full resync"
wait_until 60 "the resync" state_is clean
wait_until 20 "leg b to catch up after the restart" behind_is_zero
data_equal $((size - mib)) "$a" "$tmpdir/b.img"
cmp -i $((33 * mib)):0 -n $((2 * mib)) "$a" "$tmpdir/data" ||
	daemon_fail "leg a lacks the backlog"
stop_daemon
data_equal $((size - mib)) "$a" "$tmpdir/b.img"
