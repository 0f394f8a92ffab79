#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# direct = auto|true|false (fusemirror.conf(5)): O_DIRECT legs.
#
# A mirror of three legs with metadata = internal, under direct = auto: a loop device over a file
# on the disk (O_DIRECT), a file on an ext4 image mounted on a loop device (O_DIRECT) and a file
# on tmpfs (page cache).  The daemon's descriptors of the first two have O_DIRECT
# (/proc/PID/fdinfo) and user.fusemirror.leg.N.direct says so.  Writes at unaligned offsets and
# of unaligned sizes by a buffered client, fio --verify by an O_DIRECT and by a buffered client,
# all read back identical through the mirror and on every leg.  A direct leg failed and re-added
# resyncs from the bitmap, with O_DIRECT again, and the mirror then starts clean from the
# superblocks written through O_DIRECT.  Refused, each with its line and nothing written:
# direct = true on ramfs (no O_DIRECT) and on a loop device of 4 KiB sectors (the mirror writes
# 512-byte sectors), a hot add --direct true on ramfs; a config error: a bad value, true on an NBD
# URI; a usage error: add --direct bogus.  direct = true on tmpfs is accepted (tmpfs takes it).
# The legs live under /var/tmp (a disk, not tmpfs), or $FUSEMIRROR_DIRECT_DIR.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires losetup mkfs.ext4 fio python3 cmp dd truncate
requires_file /dev/loop-control
make_daemon_tmpdir

mib=1048576
base=${FUSEMIRROR_DIRECT_DIR:-/var/tmp}
test "$(stat -f -c %T "$base")" != tmpfs || skip "$base is a tmpfs: O_DIRECT legs need a disk"
legdir=$(mktemp -d "$base/test-direct.XXXXXX") || fail "cannot create a directory under $base"
cleanup_fn "rm -rf '$legdir'"

# leg_config FILE METADATA PATH[,direct=MODE]...: a config of these legs, named a, b, c...
leg_config ()
{
	_lc_file=$1
	_lc_metadata=$2
	shift 2
	{
		printf '[mirror]\nname = direct\nmetadata = %s\nstop-timeout = 0\n' "$_lc_metadata"
		_lc_names=abcdefgh
		for _lc_leg in "$@"; do
			printf '\n[leg %.1s]\npath = %s\n' "$_lc_names" "${_lc_leg%%,*}"
			case $_lc_leg in
			*,direct=*) echo "direct = ${_lc_leg#*,direct=}" ;;
			esac
			_lc_names=${_lc_names#?}
		done
	} >"$_lc_file" || fail "cannot write $_lc_file"
}

# fd_direct PID PATH: print 1 when PID holds PATH open with O_DIRECT (octal 040000 in the flags
# of /proc/PID/fdinfo), 0 when it holds it without, nothing when it does not hold it.
fd_direct ()
{
	for _fd in /proc/"$1"/fd/*; do
		test "$(readlink "$_fd")" = "$2" || continue
		_flags=$(sed -n 's/^flags:[[:space:]]*//p' "/proc/$1/fdinfo/${_fd##*/}")
		echo $(((0$_flags >> 14) & 1))
		return 0
	done
}

# write_unaligned FILE SEED COUNT: COUNT writes of 1 to 70000 random bytes at random offsets in
# the first 8 MiB of FILE, through an ordinary (buffered) descriptor, then fsync; the expected
# 8 MiB go to FILE.expect (updated from what was there).
write_unaligned ()
{
	python3 - "$1" "$2" "$3" <<'EOF' || daemon_fail "unaligned writes to $1"
import os, random, sys
path, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
size = 8 << 20
rnd = random.Random(seed)
fd = os.open(path, os.O_RDWR)
expect = bytearray(os.pread(fd, size, 0))
for _ in range(count):
    off = rnd.randrange(0, size - 70000)
    n = rnd.randrange(1, 70000)
    data = rnd.randbytes(n)
    assert os.pwrite(fd, data, off) == n
    expect[off:off + n] = data
os.fsync(fd)
if os.pread(fd, size, 0) != expect:
    sys.exit("the mirror does not read back what was written")
os.close(fd)
with open(path + ".expect", "wb") as f:
    f.write(expect)
EOF
}

# ---- Three legs under direct = auto ---------------------------------------------------------------
truncate -s 72M "$legdir/a.img"
loop_a=$(loop_attach "$legdir/a.img")
truncate -s 200M "$legdir/fs.img"
loop_fs=$(loop_attach "$legdir/fs.img")
mkfs.ext4 -q -F "$loop_fs" >&2 || fail "mkfs.ext4 $loop_fs"
mount_at "$legdir/fs" "$loop_fs"
b=$legdir/fs/b.img
truncate -s 72M "$b"
mount_tmpfs "$tmpdir/tmpfs" 100M
c=$tmpdir/tmpfs/c.img
truncate -s 72M "$c"
mkdir -p "$tmpdir/ramfs"
mount -t ramfs ramfs "$tmpdir/ramfs" || fail "cannot mount a ramfs"
cleanup_fn "umount -l '$tmpdir/ramfs'"
r=$tmpdir/ramfs/r.img
head -c $((72 * mib)) /dev/urandom >"$r"
cp "$r" "$tmpdir/r.orig"

conf=$tmpdir/m.conf
leg_config "$conf" internal "$loop_a" "$b" "$c"
"$fusemirrorctl" create --assume-clean "$conf" >/dev/null || fail "fusemirrorctl create"
mirror=$tmpdir/mirror
start_daemon "$conf" "$mirror"
size=$(file_size "$mirror")

assert_eq "$(xattr "$mirror" user.fusemirror.leg.0.direct)" on "leg.0.direct (loop device)"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.direct)" on "leg.1.direct (file on ext4)"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.2.direct)" off "leg.2.direct (file on tmpfs)"
assert_eq "$(fd_direct "$daemon_pid" "$loop_a")" 1 "O_DIRECT on the daemon's $loop_a"
assert_eq "$(fd_direct "$daemon_pid" "$b")" 1 "O_DIRECT on the daemon's $b"
assert_eq "$(fd_direct "$daemon_pid" "$c")" 0 "no O_DIRECT on the daemon's $c"
assert_grep "leg 'c' \\($c\\): no O_DIRECT, through the page cache: it is on tmpfs" \
	"$daemon_log" "the notice of the tmpfs leg"

# Unaligned writes by a buffered client, then fio by an O_DIRECT and by a buffered client.
write_unaligned "$mirror" 1 400
engine=$(fio_engine)
run_fio direct --name=direct --filename="$mirror" --ioengine="$engine" --direct=1 \
	--rw=randwrite --bsrange=4k-256k --iodepth=8 --offset=8M --size=24M \
	--verify=crc32c --verify_fatal=1 --do_verify=1 --randrepeat=1
run_fio buffered --name=buffered --filename="$mirror" --ioengine=psync --direct=0 \
	--rw=randwrite --bsrange=1k-67k --offset=32M --size=16M \
	--verify=crc32c --verify_fatal=1 --do_verify=1 --fsync_on_close=1
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after the writes"
assert_eq "$(xattr "$mirror" user.fusemirror.error_bits)" 0x0 "error_bits after the writes"
read_mirror "$mirror" "$tmpdir/mirror.data"
not_zero "$tmpdir/mirror.data"
cmp -n $((8 * mib)) "$tmpdir/mirror.data" "$mirror.expect" >&2 ||
	daemon_fail "the unaligned writes do not read back"
for leg in "$loop_a" "$b" "$c"; do
	cmp -n "$size" -i 0:$mib "$tmpdir/mirror.data" "$leg" >&2 ||
		daemon_fail "leg $leg differs from what the mirror reads"
done

# Refused at run time: a bad --direct, a hot add --direct true of a leg on ramfs.
status=0
"$fusemirrorctl" add --direct bogus "$mirror" "$r" 2>"$tmpdir/add.err" || status=$?
assert_eq $status 2 "fusemirrorctl add --direct bogus exit status"
assert_grep "direct takes auto, true or false, not 'bogus'" "$tmpdir/add.err" "its message"
status=0
"$fusemirrorctl" add --direct true "$mirror" "$r" 2>"$tmpdir/add.err" || status=$?
assert_eq $status 1 "fusemirrorctl add --direct true of a ramfs leg exit status"
assert_grep "direct = true, but its file system does not take O_DIRECT" "$tmpdir/add.err" \
	"its message"
cmp "$r" "$tmpdir/r.orig" >&2 || daemon_fail "the refused hot add wrote to $r"
assert_eq "$(xattr "$mirror" user.fusemirror.legs)" 3 "legs after the refused add"

# Leg b fails, misses writes, comes back: resynced from the bitmap, with O_DIRECT again.
"$fusemirrorctl" fail "$mirror" 1 >/dev/null 2>&1 || daemon_fail "fusemirrorctl fail 1"
assert_eq "$(leg_state "$mirror" 1)" failed "b after fail"
write_unaligned "$mirror" 2 200
"$fusemirrorctl" add "$mirror" "$b" >"$tmpdir/readd.out" 2>&1 || {
	cat "$tmpdir/readd.out" >&2
	daemon_fail "fusemirrorctl add (re-add of b)"
}
wait_until 60 "b in sync again" sh -c \
	"test \"\$(getfattr --only-values --absolute-names -n user.fusemirror.leg.1.state '$mirror')\" = in_sync"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.direct)" on "leg.1.direct after the re-add"
assert_eq "$(fd_direct "$daemon_pid" "$b")" 1 "O_DIRECT on the re-added $b"
wait_until 30 "the mirror clean" state_is clean
read_mirror "$mirror" "$tmpdir/mirror.data"
cmp -n $((8 * mib)) "$tmpdir/mirror.data" "$mirror.expect" >&2 ||
	daemon_fail "the writes while b was failed do not read back"
stop_daemon
for leg in "$loop_a" "$b" "$c"; do
	cmp -n "$size" -i 0:$mib "$tmpdir/mirror.data" "$leg" >&2 ||
		daemon_fail "leg $leg differs from the mirror after the resync"
done

# The superblocks and bitmaps written through O_DIRECT assemble a clean mirror.
start_daemon "$conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after a restart"
for i in 0 1 2; do
	assert_eq "$(leg_state "$mirror" $i)" in_sync "leg $i after a restart"
done
stop_daemon

# ---- Refusals and what is accepted ---------------------------------------------------------------
# direct = true on ramfs: no O_DIRECT there.
leg_config "$tmpdir/ramfs.conf" none "$loop_a" "$r,direct=true"
expect_daemon_exit 1 "leg 'b' ($r): direct = true, but its file system does not take O_DIRECT" \
	-f -c "$tmpdir/ramfs.conf" "$tmpdir/mirror"
cmp "$r" "$tmpdir/r.orig" >&2 || fail "the refused daemon wrote to $r"

# direct = true on a loop device of 4 KiB sectors: its O_DIRECT needs more than 512 bytes.
head -c $((16 * mib)) /dev/urandom >"$legdir/k.img"
cp "$legdir/k.img" "$tmpdir/k.orig"
loop_k=$(loop_attach "$legdir/k.img" -b 4096)
leg_config "$tmpdir/4k.conf" none "$loop_a" "$loop_k,direct=true"
expect_daemon_exit 1 "direct = true, but its O_DIRECT needs 4096-byte aligned offsets" \
	-f -c "$tmpdir/4k.conf" "$tmpdir/mirror"
cmp "$loop_k" "$tmpdir/k.orig" >&2 || fail "the refused daemon wrote to $loop_k"
# ... and under auto it goes through the page cache.
leg_config "$tmpdir/4k.conf" none "$loop_a" "$loop_k"
start_daemon "$tmpdir/4k.conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.direct)" off "leg.1.direct on 4 KiB sectors"
assert_eq "$(fd_direct "$daemon_pid" "$loop_k")" 0 "no O_DIRECT on the daemon's $loop_k"
assert_grep "needs 4096-byte aligned offsets" "$daemon_log" "the notice of the 4 KiB leg"
stop_daemon
loop_detach "$loop_k" "$legdir/k.img"

# direct = true on tmpfs is accepted: tmpfs takes O_DIRECT; false is the page cache anywhere.
# (metadata = none: both legs start all zero, so that they start identical.)
dd if=/dev/zero of="$loop_a" bs=1M count=72 oflag=direct status=none || fail "zero $loop_a"
truncate -s 0 "$c" && truncate -s 72M "$c"
leg_config "$tmpdir/tmpfs.conf" none "$loop_a,direct=false" "$c,direct=true"
start_daemon "$tmpdir/tmpfs.conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.0.direct)" off "leg.0.direct with false"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.direct)" on "leg.1.direct, true on tmpfs"
assert_eq "$(fd_direct "$daemon_pid" "$loop_a")" 0 "no O_DIRECT on $loop_a with false"
assert_eq "$(fd_direct "$daemon_pid" "$c")" 1 "O_DIRECT on $c with true"
write_unaligned "$mirror" 3 100
stop_daemon
cmp -n $((8 * mib)) -i 0:0 "$mirror.expect" "$loop_a" >&2 || fail "leg a after direct = false"
cmp -n $((8 * mib)) "$mirror.expect" "$c" >&2 || fail "leg c after direct = true on tmpfs"

# Config errors (status 78): a bad value; true on an NBD export.
leg_config "$tmpdir/bad.conf" none "$loop_a" "$c,direct=maybe"
expect_daemon_exit 78 "[leg b]: direct 'maybe' is not one of auto, true, false" \
	-f -c "$tmpdir/bad.conf" "$tmpdir/mirror"
leg_config "$tmpdir/nbd.conf" none "$loop_a" "nbd://127.0.0.1:1/x,direct=true"
expect_daemon_exit 78 "[leg b]: direct = true does not apply to an NBD export" \
	-f -c "$tmpdir/nbd.conf" "$tmpdir/mirror"
exit 0
