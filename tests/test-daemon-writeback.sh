#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# cache = writeback: the kernel's page cache in front of the mirror.  The file still has the
# mirror's size and contents, buffered fio --verify=crc32c passes, data written through the page
# cache reaches every leg by the time the writer has closed the file, and O_DIRECT still works.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires fio cmp dd truncate
make_daemon_tmpdir

mib=1048576
size=$((64 * mib))
a=$tmpdir/a
b=$tmpdir/b
mirror=$tmpdir/mirror
# Data already on the legs must show through the page cache.
head -c $((4 * mib)) /dev/urandom >"$tmpdir/old"
for leg in "$a" "$b"; do
	cp "$tmpdir/old" "$leg"
	truncate -s 64M "$leg"
done
write_config "$tmpdir/m.conf" wb cache=writeback "$a" "$b"
start_daemon "$tmpdir/m.conf" "$mirror"

assert_eq "$(file_size "$mirror")" $size "the size of the mirror file"
head -c $((4 * mib)) "$mirror" | cmp - "$tmpdir/old" ||
	daemon_fail "a buffered read does not show the legs' data"

# Buffered writes, closed without fsync: the close writes the dirty pages back.
head -c $((4 * mib)) /dev/urandom >"$tmpdir/new"
dd if="$tmpdir/new" of="$mirror" bs=64k seek=64 conv=notrunc status=none ||
	daemon_fail "a buffered write"
cmp -n $((4 * mib)) "$tmpdir/new" "$a" 0 $((4 * mib)) >&2 ||
	daemon_fail "leg a lacks a buffered write after the writer closed the file"

cat >"$tmpdir/wb.fio" <<EOF
[global]
filename=$mirror
verify=crc32c
verify_fatal=1
verify_state_save=0
end_fsync=1
ioengine=psync
direct=0
stonewall

[seq-4k-buffered]
rw=write
bs=4k
offset=8m
size=8m

[rand-1m-buffered]
rw=randwrite
bs=1m
offset=16m
size=16m

[rand-4k-1m-buffered]
rw=randwrite
bsrange=4k-1m
offset=32m
size=16m

[seq-1m-direct]
rw=write
bs=1m
direct=1
offset=48m
size=8m
EOF
run_fio wb "$tmpdir/wb.fio"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after fio"
read_mirror "$mirror" "$tmpdir/through"
assert_eq "$(file_size "$tmpdir/through")" $size "bytes read through the mirror"
stop_daemon
legs_equal $size "$tmpdir/through" "$a" "$b"
cmp -n $((4 * mib)) "$tmpdir/old" "$a" >&2 || daemon_fail "leg a lost its first 4 MiB"
exit 0
