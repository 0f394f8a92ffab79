#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# splice = true (fusemirror.conf(5)): large writes' payloads come from FUSE in a pipe and are
# spliced into each leg.  Through a mounted mirror of two tmpfs legs:
#   - 1 MiB writes with O_DIRECT, buffered writes of an odd number of sectors (192.5 KiB) and of
#     an odd number of bytes (the read-modify-write, which reads the pipe out), and small ones:
#     the legs are identical and hold the data, and user.fusemirror.splice.spliced counted two
#     leg writes per spliced request (the path was taken), none copied;
#   - a leg on a small full tmpfs fails with ENOSPC in the middle of spliced writes: it is failed,
#     the mirror degraded, the other leg has every byte;
#   - a leg behind nbdkit (memory plugin, a unix socket) takes no splice: its writes are copied
#     (splice.copied), the local leg's spliced, and both hold the data;
#   - with splice = false nothing is spliced.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
. "${srcdir:-.}/splice.sh"
set -e
requires_fuse
requires_ctl
requires dd cmp truncate head
make_daemon_tmpdir
requires_splice_pipes

mib=1048576
size=$((64 * mib))
mount_tmpfs "$tmpdir/legs" 200M
a=$tmpdir/legs/a
b=$tmpdir/legs/b
mirror=$tmpdir/mirror
truncate -s 64M "$a" "$b"
dd if=/dev/urandom of="$tmpdir/data" bs=1M count=16 status=none

# ---- Two file legs -------------------------------------------------------------------------
write_config "$tmpdir/m.conf" splice splice=true "$a" "$b"
start_daemon "$tmpdir/m.conf" "$mirror"
assert_eq "$(splice_counts "$mirror")" "0 0" "counts before any write"

# 8 x 1 MiB with O_DIRECT at 0: 16 leg writes spliced.
dd if="$tmpdir/data" of="$mirror" bs=1M count=8 oflag=direct conv=notrunc status=none ||
	daemon_fail "O_DIRECT 1 MiB writes"
assert_eq "$(splice_counts "$mirror")" "16 0" "counts after 8 MiB of 1 MiB direct writes"
# 40 buffered writes of 385 sectors (197120 bytes) from 8 MiB on: spliced too (cache = none).
dd if="$tmpdir/data" of="$mirror" bs=197120 count=40 seek=$((8 * mib)) oflag=seek_bytes \
	conv=notrunc,fsync status=none || daemon_fail "buffered 197120-byte writes"
assert_eq "$(splice_counts "$mirror")" "96 0" "counts after the buffered writes"
# Odd bytes at an odd offset (read-modify-write) and small writes: from memory, not counted.
dd if="$tmpdir/data" of="$mirror" bs=100001 count=5 skip=100001 seek=$((20 * mib + 7)) \
	iflag=skip_bytes oflag=seek_bytes conv=notrunc status=none || daemon_fail "odd writes"
dd if="$tmpdir/data" of="$mirror" bs=4096 count=16 seek=$((30 * mib)) oflag=seek_bytes,direct \
	conv=notrunc status=none || daemon_fail "4 KiB writes"
assert_eq "$(splice_counts "$mirror")" "96 0" "counts after the odd and small writes"
stop_daemon

cmp "$a" "$b" >&2 || daemon_fail "the legs differ after spliced writes"
cmp -n $((8 * mib)) "$tmpdir/data" "$a" >&2 || daemon_fail "leg a lacks the 1 MiB writes"
cmp -n $((40 * 197120)) "$tmpdir/data" "$a" 0 $((8 * mib)) >&2 ||
	daemon_fail "leg a lacks the buffered writes"
cmp -n 500005 "$tmpdir/data" "$a" 100001 $((20 * mib + 7)) >&2 ||
	daemon_fail "leg a lacks the odd writes"
cmp -n 65536 "$tmpdir/data" "$a" 0 $((30 * mib)) >&2 || daemon_fail "leg a lacks the 4 KiB writes"

# ---- splice = false: nothing spliced -------------------------------------------------------
write_config "$tmpdir/off.conf" nosplice splice=false "$a" "$b"
start_daemon "$tmpdir/off.conf" "$mirror"
dd if="$tmpdir/data" of="$mirror" bs=1M count=2 seek=40 oflag=direct conv=notrunc status=none ||
	daemon_fail "writes with splice = false"
assert_eq "$(splice_counts "$mirror")" "0 0" "counts with splice = false"
stop_daemon
cmp "$a" "$b" >&2 || daemon_fail "the legs differ after writes with splice = false"

# ---- A leg that runs out of room in the middle of spliced writes ---------------------------
mount_tmpfs "$tmpdir/small" 6M
c=$tmpdir/small/c
truncate -s 64M "$c"
: >"$a"
truncate -s 64M "$a"
write_config "$tmpdir/full.conf" full splice=true "$a" "$c"
start_daemon "$tmpdir/full.conf" "$mirror"
dd if="$tmpdir/data" of="$mirror" bs=1M count=16 oflag=direct conv=notrunc status=none ||
	daemon_fail "1 MiB writes while leg c fills up"
assert_eq "$(leg_state "$mirror" 1)" failed "the full leg's state"
assert_eq "$(leg_state "$mirror" 0)" in_sync "the other leg's state"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" degraded "state"
read_mirror "$mirror" "$tmpdir/back"
cmp -n $((16 * mib)) "$tmpdir/data" "$tmpdir/back" >&2 || daemon_fail "the mirror lost data"
stop_daemon
cmp -n $((16 * mib)) "$tmpdir/data" "$a" >&2 || daemon_fail "leg a lacks data written after the failure"

# ---- A leg behind NBD: copied, the file leg spliced ----------------------------------------
if command -v nbdkit >/dev/null 2>&1 && nbdkit memory --version >/dev/null 2>&1 &&
    grep -q '^#define HAVE_LIBNBD 1' "${top_builddir:-..}/config.h" 2>/dev/null; then
	sock=$tmpdir/nbd.sock
	nbdkit --unix "$sock" --pidfile "$tmpdir/nbd.pid" memory 64M ||
		fail "nbdkit did not start"
	wait_until 10 "the nbdkit pid file" test -s "$tmpdir/nbd.pid"
	nbd_pid=$(cat "$tmpdir/nbd.pid")
	cleanup_fn "kill $nbd_pid 2>/dev/null"
	: >"$a"
	truncate -s 64M "$a"
	# write_config takes legs by absolute path only: the URI's leg by hand.
	write_config "$tmpdir/nbd.conf" nbd splice=true "$a"
	printf '\n[leg b]\npath = nbd+unix:///?socket=%s\n' "$sock" >>"$tmpdir/nbd.conf"
	start_daemon "$tmpdir/nbd.conf" "$mirror"
	dd if="$tmpdir/data" of="$mirror" bs=1M count=4 oflag=direct conv=notrunc status=none ||
		daemon_fail "1 MiB writes to a mirror with an NBD leg"
	assert_eq "$(splice_counts "$mirror")" "4 4" "counts with an NBD leg"
	# Read it back from the NBD leg alone: fail the file leg first.
	"$fusemirrorctl" fail "$mirror" a 2>&1 || daemon_fail "fusemirrorctl fail a"
	read_mirror "$mirror" "$tmpdir/back-nbd"
	cmp -n $((4 * mib)) "$tmpdir/data" "$tmpdir/back-nbd" >&2 ||
		daemon_fail "the NBD leg lacks the copied writes"
	stop_daemon
	cmp -n $((4 * mib)) "$tmpdir/data" "$a" >&2 || daemon_fail "leg a lacks the spliced writes"
else
	echo "note: no nbdkit memory plugin or no libnbd: the NBD part is skipped" >&2
fi
exit 0
