#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# fio --verify=crc32c through the mirror file: 2 legs (least-pending reads), 3 legs (round-robin
# reads, the io_uring engine when built in); O_DIRECT and buffered, sequential and random, 4 KiB,
# 1 MiB and 4 KiB-1 MiB blocks, queue depth 1 and 16.  Afterwards every leg holds exactly what
# the mirror served, and fio's replay (--verify_only) verifies each leg on its own.
# (cache = writeback: test-daemon-writeback.sh.)
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires fio cmp dd truncate
make_daemon_tmpdir

mib=1048576
size=$((64 * mib))
engine=$(fio_engine)
echo "fio engine for queue depth 16: $engine" >&2

# write_jobs FILE TARGET: the job file, on disjoint ranges of the 64 MiB file TARGET (the last
# 4 MiB stay unwritten).  The jobs run one after the other; one is two processes at once.
write_jobs ()
{
	cat >"$1" <<EOF
[global]
filename=$2
verify=crc32c
verify_fatal=1
verify_state_save=0
end_fsync=1
stonewall

[seq-1m-qd16-direct]
rw=write
bs=1m
direct=1
ioengine=$engine
iodepth=16
offset=0
size=12m

[rand-4k-qd16-direct]
rw=randwrite
bs=4k
direct=1
ioengine=$engine
iodepth=16
offset=12m
size=4m
numjobs=2
offset_increment=4m

[rand-4k-1m-qd16-direct]
rw=randwrite
bsrange=4k-1m
direct=1
ioengine=$engine
iodepth=16
offset=20m
size=12m

[seq-4k-qd1-buffered]
rw=write
bs=4k
direct=0
ioengine=psync
offset=32m
size=4m

[rand-1m-qd1-buffered]
rw=randwrite
bs=1m
direct=0
ioengine=psync
offset=36m
size=12m

[seq-1m-qd1-direct]
rw=write
bs=1m
direct=1
ioengine=psync
offset=48m
size=8m

[rand-4k-qd1-buffered]
rw=randwrite
bs=4k
direct=0
ioengine=psync
offset=56m
size=4m
EOF
}
jobs=8 # with numjobs

# run_mirror NAME CONFIG-OPTION... -- LEG...: serve the legs, run the jobs through the mirror,
# read it all back, stop, compare the legs, replay the jobs' verification on each leg.
run_mirror ()
{
	name=$1
	shift
	legs=
	for arg in "$@"; do
		case $arg in
		/*) legs="$legs $arg"; truncate -s 64M "$arg" ;;
		esac
	done
	write_config "$tmpdir/$name.conf" "$name" "$@"
	start_daemon "$tmpdir/$name.conf" "$tmpdir/$name"
	assert_eq "$(file_size "$tmpdir/$name")" $size "the size of the mirror $name"

	write_jobs "$tmpdir/$name.fio" "$tmpdir/$name"
	run_fio "$name" "$tmpdir/$name.fio"
	assert_eq "$(grep -Ec 'err= *0' "$tmpdir/fio-$name.out")" $jobs "fio jobs that ended well"
	assert_eq "$(xattr "$tmpdir/$name" user.fusemirror.state)" clean "state after fio"
	assert_eq "$(xattr "$tmpdir/$name" user.fusemirror.error_bits)" 0x0 "error_bits after fio"

	read_mirror "$tmpdir/$name" "$tmpdir/$name.through"
	assert_eq "$(file_size "$tmpdir/$name.through")" $size "bytes read through the mirror"
	not_zero "$tmpdir/$name.through"
	stop_daemon

	# shellcheck disable=SC2086
	legs_equal $size "$tmpdir/$name.through" $legs
	for leg in $legs; do
		write_jobs "$tmpdir/$name.verify.fio" "$leg"
		run_fio "$name-verify-${leg##*/}" --verify_only "$tmpdir/$name.verify.fio"
	done
}

# The daemon's io_uring engine when it is built in, else 4 threads.
if grep -q '^#define HAVE_LIBURING 1' "${top_builddir:-..}/config.h" 2>/dev/null; then
	three_engine=engine=io_uring
else
	three_engine=threads=4
fi
echo "the 3-leg mirror's engine: $three_engine" >&2
run_mirror two "$tmpdir/two-a" "$tmpdir/two-b"
run_mirror three read-policy=round-robin $three_engine \
	"$tmpdir/three-a" "$tmpdir/three-b" "$tmpdir/three-c"
exit 0
