#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The mirror's I/O over FUSE over io_uring (fuse-transport = io_uring, enable_uring Y only around
# the mount), where the kernel has it (else skipped): the log line and xattrs say io_uring and
# the ring carried the requests; fio --verify=crc32c, O_DIRECT and buffered, 4 KiB to 1 MiB,
# queue depth 1 to 16, with fsync; a read that ends at the end of the file gets exactly its
# bytes and a short status value exactly its text (a reused payload buffer leaks nothing);
# overlapping concurrent writers leave identical legs; control commands (fusemirrorctl status,
# fail) over the ring; a leg failed mid-run while fio verifies; restart refused with its reason
# while the ring serves; a stop (unmount) that ends the ring's entries without hanging.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
. "${srcdir:-.}/ring.sh"
set -e
requires_fuse
requires_ctl
requires flock fio cmp dd python3
ring_param_exists || skip "the kernel has no FUSE over io_uring ($ring_param)"
make_daemon_tmpdir
mib=1048576
size=$((64 * mib))
a=$tmpdir/a
b=$tmpdir/b
mirror=$tmpdir/mirror
truncate -s 64M "$a" "$b"
engine=$(fio_engine)
write_config "$tmpdir/m.conf" ring fuse-transport=io_uring "$a" "$b"

# start_ring: start the daemon over the ring and check that it says so.
start_ring ()
{
	with_ring_param Y start_daemon "$tmpdir/m.conf" "$mirror"
	ring_probe "$mirror"
	assert_grep 'FUSE over io_uring: [0-9]+ queues x [0-9]+ entries' "$daemon_log" \
		"the ring's log line"
	assert_eq "$(xattr "$mirror" user.fusemirror.fuse_transport)" io_uring "fuse_transport"
}

# ---- fio verify over the ring ----------------------------------------------------------------
start_ring
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state"
before=$(xattr "$mirror" user.fusemirror.fuse_requests.io_uring)
cat >"$tmpdir/verify.fio" <<EOF2
[global]
filename=$mirror
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
size=16m

[rand-4k-qd16-direct]
rw=randwrite
bs=4k
direct=1
ioengine=$engine
iodepth=16
offset=16m
size=4m
numjobs=2
offset_increment=4m

[rand-4k-1m-qd8-direct]
rw=randwrite
bsrange=4k-1m
direct=1
ioengine=$engine
iodepth=8
offset=24m
size=16m

[seq-4k-qd1-buffered]
rw=write
bs=4k
direct=0
ioengine=psync
offset=40m
size=4m

[rand-1m-qd1-buffered]
rw=randwrite
bs=1m
direct=0
ioengine=psync
offset=44m
size=8m

[rand-4k-qd1-direct]
rw=randwrite
bs=4k
direct=1
ioengine=psync
offset=52m
size=2m
EOF2
run_fio verify "$tmpdir/verify.fio"
assert_eq "$(grep -Ec 'err= *0' "$tmpdir/fio-verify.out")" 7 "fio jobs that ended well"
after=$(xattr "$mirror" user.fusemirror.fuse_requests.io_uring)
dev=$(xattr "$mirror" user.fusemirror.fuse_requests.dev)
echo "requests: $((after - before)) over io_uring during fio, $dev over /dev/fuse in all" >&2
# Some 6000 reads and writes at least (the 4 KiB jobs alone): nearly all on the ring.
test $((after - before)) -ge 6000 ||
	daemon_fail "only $((after - before)) requests over io_uring during fio"
test "$dev" -lt $(((after - before) / 10)) ||
	daemon_fail "$dev requests over /dev/fuse against $((after - before)) over io_uring"

# ---- exact replies into reused payload buffers -----------------------------------------------
# The last 4 KiB of the file, asked as 1 MiB (a 1 MiB write just went through the same buffers).
head -c $((4 * mib)) /dev/urandom >"$tmpdir/tail"
dd if="$tmpdir/tail" of="$mirror" bs=1M seek=60 oflag=direct conv=notrunc status=none ||
	daemon_fail "dd to the end of the mirror"
python3 - "$mirror" "$tmpdir/tail" <<'EOF2' || daemon_fail "the read at the end of the file"
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
for _ in range(8):
    got = os.pread(fd, 1 << 20, (64 << 20) - 4096)
    want = open(sys.argv[2], "rb").read()[-4096:]
    if got != want:
        sys.exit("read at the end: %d bytes, expected the file's last 4096" % len(got))
EOF2
for i in 1 2 3 4; do
	"$fusemirrorctl" status "$mirror" >"$tmpdir/status" 2>&1 ||
		daemon_fail "fusemirrorctl status over the ring: $(cat "$tmpdir/status")"
	assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after a long reply"
	assert_eq "$(xattr "$mirror" user.fusemirror.legs)" 2 "legs after a long reply"
done

# ---- overlapping concurrent writers: identical legs ---------------------------------------------
pids=
for w in 4k-1 64k-2 4k-3 16k-4; do
	timeout -k 5 60 fio --name="overlap-$w" --filename="$mirror" --rw=randwrite \
	    --bs="${w%-*}" --direct=1 --ioengine="$engine" --iodepth=16 --offset=0 --size=4m \
	    --time_based --runtime=3 --refill_buffers --output="$tmpdir/overlap-$w.out" &
	pids="$pids $!"
done
for pid in $pids; do
	wait "$pid" || daemon_fail "an overlapping writer failed"
done
grep -h 'err=' "$tmpdir"/overlap-*.out >&2
test "$(cat "$tmpdir"/overlap-*.out | grep -c 'err= *0')" -eq 4 ||
	daemon_fail "an overlapping writer failed"
read_mirror "$mirror" "$tmpdir/through"
stop_daemon
legs_equal $size "$tmpdir/through" "$a" "$b"
assert_grep 'FUSE over io_uring: ' "$daemon_log" "the log"

# ---- a leg failed mid-run, restart refused, stop -----------------------------------------------
start_ring
timeout -k 5 120 fio --name=midrun --filename="$mirror" --rw=randwrite --bsrange=4k-256k \
    --direct=1 --ioengine="$engine" --iodepth=16 --size=32m --verify=crc32c --verify_fatal=1 \
    --verify_state_save=0 --end_fsync=1 --output="$tmpdir/midrun.out" &
fio_pid=$!
sleep 1
"$fusemirrorctl" fail "$mirror" b >"$tmpdir/fail" 2>&1 ||
	daemon_fail "fusemirrorctl fail over the ring: $(cat "$tmpdir/fail")"
wait $fio_pid || { cat "$tmpdir/midrun.out" >&2; daemon_fail "fio with a leg failed mid-run"; }
grep -q 'err= *0' "$tmpdir/midrun.out" || daemon_fail "fio with a leg failed mid-run"
assert_eq "$(leg_state "$mirror" 1)" failed "leg.1.state"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" degraded "state"
st=0
"$fusemirrorctl" restart "$mirror" >"$tmpdir/restart" 2>&1 || st=$?
cat "$tmpdir/restart" >&2
assert_eq "$st" 1 "fusemirrorctl restart's exit status over the ring"
assert_grep 'served over io_uring' "$tmpdir/restart" "restart's refusal"
assert_eq "$(xattr "$mirror" user.fusemirror.restarts)" 0 "restarts"
assert_eq "$(xattr "$mirror" user.fusemirror.fuse_transport)" io_uring "fuse_transport after"
read_mirror "$mirror" "$tmpdir/through"
stop_daemon
legs_equal $size "$tmpdir/through" "$a"
exit 0
