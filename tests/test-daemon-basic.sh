#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# fusemirrord on two file legs: the file, its size and status attributes (listxattr against
# getxattr, ENODATA, EPERM), reads and writes through it (unaligned, O_TRUNC, fsync, fallocate,
# the fixed size), the mountpoint checks (created, directory, in use, a leg, a fifo), stops by
# SIGHUP, by SIGTERM during a slow writer and under a fio load, and by umount of a daemon started
# without -f.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires cmp dd truncate sha256sum findmnt mkfifo od
make_daemon_tmpdir

mib=1048576
size=$((64 * mib))
a=$tmpdir/a
b=$tmpdir/b
mirror=$tmpdir/mirror
truncate -s 64M "$a"
# The mirror is as big as its smallest leg; the rest of b is not used.
truncate -s $((80 * mib + 1000)) "$b"
write_config "$tmpdir/m.conf" basic "$a" "$b"

# ---- The mountpoint is created when missing; the file has the mirror's size ---------------------
test ! -e "$mirror"
start_daemon "$tmpdir/m.conf" "$mirror"
assert_grep "created the mountpoint" "$daemon_log" "the daemon's log"
# (GLib puts a no-break space between number and unit.)
assert_grep "leg 1 \(b\) is 80\.0.{1,2}MiB; the mirror uses the first 64\.0.{1,2}MiB" \
	"$daemon_log" "the daemon's log"
test -f "$mirror" || daemon_fail "$mirror is not a regular file"
assert_eq "$(file_size "$mirror")" $size "the size of $mirror"
assert_eq "$(findmnt -n -o FSTYPE --mountpoint "$mirror")" fuse.fusemirror "the mount's type"

# ---- Status attributes -----------------------------------------------------------------------
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state"
assert_eq "$(xattr "$mirror" user.fusemirror.name)" basic "name"
assert_eq "$(xattr "$mirror" user.fusemirror.legs)" 2 "legs"
assert_eq "$(xattr "$mirror" user.fusemirror.error_bits)" 0x0 "error_bits"
assert_eq "$(xattr "$mirror" user.fusemirror.events)" 0 "events"
for i in 0 1; do
	case $i in
	0) name=a path=$a ;;
	1) name=b path=$b ;;
	esac
	assert_eq "$(xattr "$mirror" user.fusemirror.leg.$i.name)" $name "leg.$i.name"
	assert_eq "$(xattr "$mirror" user.fusemirror.leg.$i.path)" "$path" "leg.$i.path"
	assert_eq "$(leg_state "$mirror" $i)" in_sync "leg.$i.state"
	assert_eq "$(xattr "$mirror" user.fusemirror.leg.$i.read_errors)" 0 "leg.$i.read_errors"
	assert_eq "$(xattr "$mirror" user.fusemirror.leg.$i.write_errors)" 0 "leg.$i.write_errors"
done

# listxattr lists exactly what getxattr answers: every listed name has the value getxattr gives,
# and the list is the mirror attributes plus the per-leg ones for each leg.  (getfattr -d shows an empty value,
# uuid with metadata = none and last_error, as the bare name.)
getfattr --absolute-names -d -m - "$mirror" >"$tmpdir/dump" ||
	daemon_fail "getfattr -d -m - $mirror"
grep '^user\.' "$tmpdir/dump" | sed 's/=.*//' | sort >"$tmpdir/listed"
# The names come from xattr.c's two tables (mirror_keys, leg_fields), not from a list here.
xattr_c=${abs_top_srcdir:-${top_srcdir:-..}}/src/fuse/xattr.c
{
	awk '/mirror_keys\[\] = \{/ { on = 1; next } on && /\};/ { on = 0 }
		on { while (match($0, /"[a-z_.]+"/)) { n = substr($0, RSTART + 1, RLENGTH - 2)
			print "user.fusemirror." n; $0 = substr($0, RSTART + RLENGTH) } }' "$xattr_c"
	for i in 0 1; do
		awk -v i=$i '/leg_fields\[\] = \{/ { on = 1; next } on && /\};/ { on = 0 }
			on { while (match($0, /"[a-z_]+"/)) { n = substr($0, RSTART + 1, RLENGTH - 2)
				print "user.fusemirror.leg." i "." n; $0 = substr($0, RSTART + RLENGTH) } }' \
			"$xattr_c"
	done
} | LC_ALL=C sort >"$tmpdir/expected"
test "$(wc -l <"$tmpdir/expected")" -ge 30 || fail "the xattr tables of $xattr_c were not found"
diff -u "$tmpdir/expected" "$tmpdir/listed" >&2 || daemon_fail "listxattr lists other names"
while IFS= read -r name; do
	# Request counters: every getxattr is a request.
	case $name in
	*.fuse_requests.*) continue ;;
	esac
	want=$(grep "^$name=" "$tmpdir/dump" | sed 's/^[^=]*="\(.*\)"$/\1/')
	assert_eq "$(xattr "$mirror" "$name")" "$want" "getxattr $name against listxattr's dump"
done <"$tmpdir/listed"

# Names that are not listed are not answered.
for name in user.fusemirror.x user.fusemirror. user.fusemirror.leg.2.name \
    user.fusemirror.leg.01.name user.fusemirror.leg.0.bogus user.fusemirror.leg.-1.name \
    user.other security.capability trusted.fusemirror.ctl; do
	expect_getxattr_error "$mirror" "$name" "No such attribute"
done

# Status attributes are read-only; other names cannot be stored.
expect_setxattr_error "$mirror" user.fusemirror.state degraded "Operation not permitted"
expect_setxattr_error "$mirror" user.fusemirror.leg.1.state failed "Operation not permitted"
expect_setxattr_error "$mirror" user.fusemirror.x 1 "Operation not permitted"
expect_setxattr_error "$mirror" user.fusemirror.state -x "Operation not permitted"
expect_setxattr_error "$mirror" user.other 1 "Operation not supported"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after the refused setxattr"
assert_eq "$(leg_state "$mirror" 1)" in_sync "leg.1.state after the refused setxattr"

# ---- Writes and reads ------------------------------------------------------------------------
head -c $((8 * mib)) /dev/urandom >"$tmpdir/data"
dd if="$tmpdir/data" of="$mirror" bs=1M seek=4 oflag=direct conv=notrunc status=none ||
	daemon_fail "dd to the mirror"
dd if="$mirror" of="$tmpdir/back" bs=1M skip=4 count=8 iflag=direct status=none ||
	daemon_fail "dd from the mirror"
cmp "$tmpdir/data" "$tmpdir/back" || daemon_fail "the data read back differs"
# Through the page cache of the reader, in other sizes: the same bytes.
tail -c +$((4 * mib + 1)) "$mirror" | head -c $((8 * mib)) | cmp - "$tmpdir/data" ||
	daemon_fail "a buffered read differs"
# A write that is not sector-aligned (read-modify-write in the mirror).
printf 'fusemirror' | dd of="$mirror" bs=1 seek=$((4 * mib + 1000)) conv=notrunc status=none ||
	daemon_fail "an unaligned write"
printf 'fusemirror' | dd of="$tmpdir/data" bs=1 seek=1000 conv=notrunc status=none
assert_eq "$(dd if="$mirror" bs=1 skip=$((4 * mib + 995)) count=20 status=none | od -An -c |
	tr -d ' \n')" \
	"$(dd if="$tmpdir/data" bs=1 skip=995 count=20 status=none | od -An -c | tr -d ' \n')" \
	"the bytes around an unaligned write"
# O_TRUNC is ignored, as on a block device: the first bytes change, the size and the rest stay.
head -c 4096 "$mirror" >"$tmpdir/first"
printf 'abc' >"$mirror" || daemon_fail "printf > $mirror"
assert_eq "$(file_size "$mirror")" $size "the size after an O_TRUNC open"
assert_eq "$(head -c 3 "$mirror")" abc "the first bytes after printf > $mirror"
cmp -n 4093 "$mirror" "$tmpdir/first" 3 3 >&2 || daemon_fail "printf > $mirror changed more"
# fsync reaches the daemon and succeeds.
dd if="$tmpdir/data" of="$mirror" bs=1M count=1 conv=notrunc,fsync status=none ||
	daemon_fail "dd conv=fsync"
dd if="$tmpdir/data" of="$mirror" bs=1M count=1 seek=63 oflag=direct,dsync conv=notrunc \
	status=none || daemon_fail "dd oflag=dsync"
# fallocate: punching a hole and zeroing a range make zeroes on every leg; allocating is refused.
if command -v fallocate >/dev/null 2>&1; then
	fallocate -p -o $((5 * mib)) -l $((mib + 512)) "$mirror" || daemon_fail "fallocate -p"
	fallocate -z -o $((7 * mib + 100)) -l 5000 "$mirror" || daemon_fail "fallocate -z"
	dd if=/dev/zero of="$tmpdir/data" bs=64k seek=$mib count=$((mib + 512)) \
		oflag=seek_bytes iflag=count_bytes conv=notrunc status=none
	dd if=/dev/zero of="$tmpdir/data" bs=64k seek=$((3 * mib + 100)) count=5000 \
		oflag=seek_bytes iflag=count_bytes conv=notrunc status=none
	dd if="$mirror" of="$tmpdir/back" bs=1M skip=4 count=8 iflag=direct status=none
	cmp "$tmpdir/data" "$tmpdir/back" >&2 || daemon_fail "the data after fallocate"
	if out=$(fallocate -o 0 -l $mib "$mirror" 2>&1); then
		daemon_fail "fallocate (mode 0) succeeded"
	fi
	case $out in
	*"Operation not supported"*) ;;
	*) daemon_fail "fallocate (mode 0): expected EOPNOTSUPP, got: $out" ;;
	esac
fi
# The size is fixed: a write at the end fails with ENOSPC, one across it is short, a read at
# the end returns nothing, and the file cannot be resized.
if out=$(dd if=/dev/zero of="$mirror" bs=4096 count=1 seek=$((size / 4096)) conv=notrunc \
    2>&1); then
	daemon_fail "a write at the end succeeded: $out"
fi
case $out in
*"No space left on device"*) ;;
*) daemon_fail "a write at the end: expected ENOSPC, got: $out" ;;
esac
# 8 KiB across the end: the first 4 KiB land, the rest is refused.
head -c 8192 /dev/zero | tr '\0' x >"$tmpdir/x8k"
if dd if="$tmpdir/x8k" of="$mirror" bs=8192 seek=$((size - 4096)) oflag=seek_bytes,direct \
    conv=notrunc status=none 2>/dev/null; then
	daemon_fail "a write across the end succeeded whole"
fi
assert_eq "$(tail -c 4096 "$mirror" | tr -d x | wc -c)" 0 \
	"the last 4 KiB after a write across the end"
assert_eq "$(dd if="$mirror" bs=4096 skip=$((size / 4096)) status=none | wc -c)" 0 \
	"bytes read at the end"
assert_eq "$(tail -c 5000 "$mirror" | wc -c)" 5000 "bytes read at the end, 5000 asked"
if truncate -s 1M "$mirror" 2>/dev/null; then
	daemon_fail "truncate -s 1M $mirror succeeded"
fi
assert_eq "$(file_size "$mirror")" $size "the size after a refused truncate"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after the writes"

# ---- Mountpoint checks -----------------------------------------------------------------------
# A second daemon on the same file is refused and leaves the first one serving.
expect_daemon_exit 3 "is in use: mirror 'basic' (pid $daemon_pid," -f -c "$tmpdir/m.conf" "$mirror"
# A directory is refused.
mkdir "$tmpdir/dir"
expect_daemon_exit 1 "is a directory" -f -c "$tmpdir/m.conf" "$tmpdir/dir"
is_mounted "$tmpdir/dir" && daemon_fail "$tmpdir/dir got mounted"
# A leg is refused as the mountpoint.
expect_daemon_exit 1 "is leg 'a' itself" -f -c "$tmpdir/m.conf" "$tmpdir/./a"
is_mounted "$a" && daemon_fail "$a got mounted"
# Anything but a regular file is refused.
mkfifo "$tmpdir/fifo"
expect_daemon_exit 1 "is not a regular file" -f -c "$tmpdir/m.conf" "$tmpdir/fifo"
is_mounted "$tmpdir/fifo" && daemon_fail "$tmpdir/fifo got mounted"
dd if="$mirror" of="$tmpdir/back" bs=1M skip=4 count=8 iflag=direct status=none ||
	daemon_fail "dd from the mirror after the refused daemons"
cmp "$tmpdir/back" "$tmpdir/data" || daemon_fail "the first daemon's data changed"

# SIGINT stops the daemon as SIGTERM does (SIGHUP reloads: test-reload.sh).
stop_daemon INT
assert_grep "stopped; $mirror unmounted" "$daemon_log" "the daemon's log"
legs_equal $size "$a" "$b"
cmp -n $((8 * mib)) "$tmpdir/data" "$a" 0 $((4 * mib)) >&2 ||
	daemon_fail "leg a does not hold what was written"
# The mountpoint the daemon created is left behind as an empty file.
assert_eq "$(file_size "$mirror")" 0 "the size of the mountpoint after the stop"

# ---- SIGTERM while a writer is running ---------------------------------------------------------
# A slow writer (one 1 MiB O_DIRECT write per 0.1 s, through one descriptor it keeps open) is in
# the middle of its work when SIGTERM comes.  The daemon must finish what it has, exit 0 and
# unmount; the legs must be identical and hold every block whose write returned.
head -c $((32 * mib)) /dev/urandom >"$tmpdir/pattern"
truncate -s 0 "$a" "$b"
truncate -s 64M "$a" "$b"
start_daemon "$tmpdir/m.conf" "$mirror"
echo 0 >"$tmpdir/acked"
(
	exec 3<>"$mirror"
	i=0
	while test $i -lt 32; do
		# To the descriptor's offset, which each write moves on by 1 MiB.
		dd if="$tmpdir/pattern" bs=1M skip=$i count=1 oflag=direct status=none \
			>&3 2>>"$tmpdir/dd.err" || exit 0
		i=$((i + 1))
		echo $i >"$tmpdir/acked"
		sleep 0.1
	done
) &
writer=$!
cleanup_fn "kill $writer 2>/dev/null"
# Wait until the writer is a few blocks in.
tries=100
while dd if="$a" bs=1M skip=4 count=1 status=none | cmp -s -n $mib - /dev/zero; do
	tries=$((tries - 1))
	test $tries -gt 0 || daemon_fail "the writer did not get 5 MiB through in 10 s"
	sleep 0.1
done
stop_daemon TERM
wait $writer || true
written=$(cat "$tmpdir/acked")
echo "the writer had $written MiB acknowledged; it then got: $(cat "$tmpdir/dd.err")" >&2
test "$written" -ge 4 || daemon_fail "the writer saw $written writes succeed, the legs more"
test "$written" -lt 32 || daemon_fail "the writer ended before SIGTERM: nothing was tested"
# ENOTCONN once the file is unmounted; ECONNABORTED for a request (or the close's flush) that
# reached the connection while the daemon was closing it (the unmount comes last).
grep -Eq "Transport endpoint is not connected|Software caused connection abort" "$tmpdir/dd.err" ||
	daemon_fail "the writer's next write after the stop did not fail with ENOTCONN or ECONNABORTED"
legs_equal $size "$a" "$b"
cmp -n $((written * mib)) "$tmpdir/pattern" "$a" >&2 ||
	daemon_fail "the legs lack blocks whose writes succeeded ($written MiB)"

# ---- SIGTERM under load -------------------------------------------------------------------------
# Many writes in flight (two fio processes at queue depth 32): the daemon must answer them all
# before it lets go of the session, exit 0 and leave identical legs.  fio keeps the file open
# for the whole run (time_based, not loops): with --loops it reopens the path at each pass, and
# a stop between two passes left it writing to the file under the mount point, which it then did
# for the whole minute (seen about once in 20 runs, with the old daemon too).
if command -v fio >/dev/null 2>&1; then
	start_daemon "$tmpdir/m.conf" "$mirror"
	timeout -k 5 60 fio --name=load --filename="$mirror" --rw=randwrite --bs=64k \
		--direct=1 --ioengine=libaio --iodepth=32 --numjobs=2 --size=32m \
		--offset_increment=32m --time_based --runtime=300 --output="$tmpdir/fio-load.out" \
		>/dev/null 2>&1 &
	load=$!
	cleanup_fn "kill $load 2>/dev/null"
	sum=$(sha256sum <"$a")
	tries=100
	while test "$(sha256sum <"$a")" = "$sum"; do
		tries=$((tries - 1))
		test $tries -gt 0 || daemon_fail "the fio load did not start writing in 10 s"
		sleep 0.1
	done
	sleep 0.5
	stop_daemon TERM
	status=0
	wait $load || status=$?
	test $status -ne 124 || daemon_fail "fio ran on for 60 s after the daemon stopped"
	legs_equal $size "$a" "$b"
fi

# ---- Without -f: the command returns once the file is served; umount stops the daemon -----------
status=0
out=$($daemon_env timeout 20 "$fusemirrord" -c "$tmpdir/m.conf" "$mirror" 2>&1) || status=$?
assert_eq "$status" 0 "exit status of fusemirrord without -f ($out)"
# No waiting: the file is served when the command returns.
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state right after fusemirrord returned"
is_mounted "$mirror" || fail "$mirror is not mounted when fusemirrord returned"
pid=
for p in /proc/[0-9]*; do
	test "$(cat "$p/comm" 2>/dev/null)" = fusemirrord || continue
	tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "-c $tmpdir/m.conf $mirror" || continue
	pid=${p#/proc/}
done
test -n "$pid" || fail "cannot find the daemon that serves $mirror"
cleanup_fn "_daemon_cleanup $pid '$mirror' '$tmpdir/daemon-mode'"
dd if="$tmpdir/pattern" of="$mirror" bs=1M seek=40 count=4 oflag=direct conv=notrunc \
	status=none || fail "dd to the mirror of the daemon without -f"
umount "$mirror" || fail "umount $mirror"
tries=100
while _daemon_alive "$pid"; do
	tries=$((tries - 1))
	test $tries -gt 0 || fail "the daemon did not exit within 10 s of umount $mirror"
	sleep 0.1
done
is_mounted "$mirror" && fail "$mirror is mounted again"
legs_equal $size "$a" "$b"
cmp -n $((4 * mib)) "$tmpdir/pattern" "$a" 0 $((40 * mib)) >&2 ||
	fail "the legs lack what was written through the daemon without -f"
# A failed start without -f returns the child's exit status, after its message.
status=0
out=$($daemon_env timeout 20 "$fusemirrord" -c "$tmpdir/m.conf" "$tmpdir/dir" 2>&1) || status=$?
assert_eq "$status" 1 "exit status of fusemirrord without -f on a directory"
case $out in
*"is a directory"*) ;;
*) fail "fusemirrord without -f on a directory says: $out" ;;
esac
exit 0
