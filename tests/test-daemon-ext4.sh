#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The mirror file as a disk: losetup --direct-io=on, mkfs.ext4, mount, copy a tree of files,
# check their checksums, unmount, mount again, check again, fsck.  Afterwards the legs are
# identical, and each leg on its own holds the file system with the same files.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires losetup mkfs.ext4 e2fsck sha256sum cmp truncate
requires_file /dev/loop-control
make_daemon_tmpdir

mib=1048576
size=$((128 * mib))
a=$tmpdir/a
b=$tmpdir/b
mirror=$tmpdir/mirror
truncate -s 128M "$a" "$b"
write_config "$tmpdir/m.conf" ext4 "$a" "$b"
start_daemon "$tmpdir/m.conf" "$mirror"

# A tree of about 20 MiB: many small files, some big ones, nested directories.
src=$tmpdir/src
mkdir -p "$src/d1/d2/d3" "$src/big"
i=0
while test $i -lt 60; do
	head -c $((i * 4099 + 1)) /dev/urandom >"$src/d1/f$i"
	head -c $((i * 113)) /dev/urandom >"$src/d1/d2/d3/g$i"
	i=$((i + 1))
done
head -c $((6 * mib)) /dev/urandom >"$src/big/one"
head -c $((5 * mib + 12345)) /dev/urandom >"$src/big/two"
head -c $((3 * mib)) /dev/urandom >"$src/big/three"
(cd "$src" && find . -type f | sort | xargs sha256sum) >"$tmpdir/sums"
test "$(wc -l <"$tmpdir/sums")" -eq 123 || fail "the source tree has $(wc -l <"$tmpdir/sums") files"

loop=$(loop_attach "$mirror" --direct-io=on)
assert_eq "$(losetup -n -O DIO "$loop" | tr -d ' ')" 1 "direct I/O on $loop"
mkfs.ext4 -q -F "$loop" >&2 || daemon_fail "mkfs.ext4 $loop"

mount_at "$tmpdir/fs" "$loop"
cp -a "$src/." "$tmpdir/fs/" || daemon_fail "cp to the file system on the mirror"
(cd "$tmpdir/fs" && sha256sum -c --quiet "$tmpdir/sums") >&2 ||
	daemon_fail "checksums after the copy"
umount "$tmpdir/fs" || daemon_fail "umount $tmpdir/fs"

# Read from the mirror again, not from the loop device's page cache.
blockdev --flushbufs "$loop" 2>/dev/null || true
mount_at "$tmpdir/fs" "$loop"
(cd "$tmpdir/fs" && sha256sum -c --quiet "$tmpdir/sums") >&2 ||
	daemon_fail "checksums after mounting again"
umount "$tmpdir/fs" || daemon_fail "umount $tmpdir/fs"
e2fsck -f -n "$loop" >"$tmpdir/fsck" 2>&1 || {
	cat "$tmpdir/fsck" >&2
	daemon_fail "e2fsck finds errors in the file system on the mirror"
}
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state"
loop_detach "$loop" "$mirror"
stop_daemon

legs_equal $size "$a" "$b"
# Each leg alone holds the file system.
leg_loop=$(loop_attach "$a" -r)
mount_at "$tmpdir/fs" -o ro,noload "$leg_loop"
(cd "$tmpdir/fs" && sha256sum -c --quiet "$tmpdir/sums") >&2 ||
	daemon_fail "checksums on leg a alone"
umount "$tmpdir/fs"
loop_detach "$leg_loop" "$a"
exit 0
