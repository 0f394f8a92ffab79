#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# SIGKILL of fusemirrord in the middle of random writes (metadata = internal), then restart:
#   - before the crash, a fio --verify=crc32c job that completed (acknowledged, fsynced); then
#     8 writer threads doing random 4 KiB O_DIRECT writes of self-describing blocks (offset and
#     generation in every byte), each logging its intent before the write and its acknowledgment
#     after, until fusemirrord is killed with SIGKILL while they write;
#   - the killed daemon's superblocks say dirty; a block written behind the daemon's back onto
#     leg b only, in a dirty region, stands for a write that reached one leg when the crash came;
#   - the restart detaches the dead mount, and resyncs only the dirty regions: resync.total is
#     above 0, covers the regions written, and stays below 25% of the device; until its region is
#     resynced the torn block reads the same every time (round-robin reads), never b's version
#     alone; the state turns clean within 30 s;
#   - after a clean stop the two legs' data areas are identical, and through a restarted mirror
#     (nothing to resync after a clean stop) every acknowledged write reads back as its latest
#     acknowledged generation (or a later one that was in flight), fio's verify of the completed
#     job passes, and what was never written reads as zeroes;
#   - a restart at once after a SIGKILL (while the kernel still caches the dead mount's
#     attributes) detaches the dead mount and serves.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires fio python3 cmp dd truncate od
make_daemon_tmpdir
# The interpreter itself, not a wrapper (pyenv's shims cost a third of a second a call).
python=$(python3 -S -c 'import sys; print(sys.executable)') || fail "python3 does not run"

mib=1048576
size=$((256 * mib))
a=$tmpdir/a
b=$tmpdir/b
mirror=$tmpdir/mirror
# The writer covers [64 MiB, 96 MiB) but its last block, kept for the simulated torn write.
wstart=$((64 * mib))
wlen=$((32 * mib))
inject_block=$(((wstart + wlen) / 4096 - 1))

# ---- Helpers ------------------------------------------------------------------------------------

# crashio.py: the writer (write), the simulated torn write (inject) and the checker (verify).
cat >"$tmpdir/crashio.py" <<'EOF'
import mmap, os, struct, sys, threading, time, random

BS = 4096
MAGIC = b"FMCRASH1"


def block_data(blk, gen):
    unit = MAGIC + struct.pack("<QQ", blk, gen)  # 24 bytes
    unit += b"\0" * (32 - len(unit))
    return unit * (BS // 32)


def writer(path, logdir, t, first, count, deadline, seed):
    fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
    log = os.open(os.path.join(logdir, "log.%d" % t), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    buf = mmap.mmap(-1, BS)
    rnd = random.Random(seed * 1000 + t)
    gen = 0
    try:
        while time.monotonic() < deadline:
            blk = first + rnd.randrange(count)
            gen += 1
            buf.seek(0)
            buf.write(block_data(blk, gen))
            os.write(log, b"I %d %d\n" % (blk, gen))
            try:
                n = os.pwrite(fd, buf, blk * BS)
            except OSError as e:
                os.write(log, b"E %d %d %d\n" % (blk, gen, e.errno))
                return
            if n != BS:
                os.write(log, b"E %d %d short\n" % (blk, gen))
                return
            os.write(log, b"A %d %d\n" % (blk, gen))
    finally:
        os.close(fd)
        os.close(log)


def cmd_write(path, logdir, start, length, threads, seconds, seed):
    first = start // BS
    count = length // BS // threads
    deadline = time.monotonic() + seconds
    ts = [threading.Thread(target=writer, args=(path, logdir, t, first + t * count, count,
                                                deadline, seed)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def cmd_inject(leg, data_offset, logdir, blk):
    gen = 10**9
    fd = os.open(leg, os.O_WRONLY)
    os.pwrite(fd, block_data(blk, gen), data_offset + blk * BS)
    os.fsync(fd)
    os.close(fd)
    with open(os.path.join(logdir, "log.inject"), "a") as f:
        f.write("I %d %d\n" % (blk, gen))


def cmd_verify(image, logdir, start, length):
    acked, intents, errors = {}, {}, 0
    for name in os.listdir(logdir):
        for line in open(os.path.join(logdir, name)):
            f = line.split()
            if len(f) < 3:
                continue  # a line cut short: its write was not acknowledged
            blk, gen = int(f[1]), int(f[2])
            if f[0] == "A":
                acked[blk] = max(acked.get(blk, 0), gen)
            elif f[0] == "I":
                intents.setdefault(blk, set()).add(gen)
            elif f[0] == "E":
                errors += 1
    zero = bytes(BS)
    bad = seen_acked = seen_inflight = 0
    with open(image, "rb") as img:
        for blk in range(start // BS, (start + length) // BS):
            img.seek(blk * BS)
            data = img.read(BS)
            # What the block may hold: its last acknowledged generation, or a later one whose
            # write was in flight at the crash; zeroes when nothing was acknowledged.
            ok = set(g for g in intents.get(blk, ()) if g > acked.get(blk, 0))
            if blk in acked:
                ok.add(acked[blk])
            got = None
            if data == zero:
                got = 0
            elif data[:8] == MAGIC:
                b, g = struct.unpack("<QQ", data[8:24])
                if b == blk and data == block_data(blk, g):
                    got = g
            if (got == 0 and blk not in acked) or (got is not None and got in ok):
                if got == acked.get(blk):
                    seen_acked += got != 0
                elif got != 0:
                    seen_inflight += 1
                continue
            bad += 1
            if bad <= 10:
                print("block %d (offset %d): holds %s; acknowledged generation %s, in flight %s"
                      % (blk, blk * BS, "garbage" if got is None else "generation %d" % got,
                         acked.get(blk), sorted(ok - {acked.get(blk)})), file=sys.stderr)
    print("crashio verify: %d blocks hold their last acknowledged write, %d a write that was in "
          "flight; %d acknowledged blocks, %d writes ended with an error, %d bad blocks"
          % (seen_acked, seen_inflight, len(acked), errors, bad), file=sys.stderr)
    sys.exit(1 if bad or not acked else 0)


cmd = sys.argv[1]
if cmd == "write":
    cmd_write(sys.argv[2], sys.argv[3], *map(int, sys.argv[4:9]))
elif cmd == "inject":
    cmd_inject(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
elif cmd == "verify":
    cmd_verify(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
else:
    sys.exit("crashio.py: unknown command " + cmd)
EOF

# wait_attr_timeout: after a SIGKILL, let the kernel's cache of the dead mount's attributes (1 s)
# expire, so that the restart's stat() finds the mount dead.  (A restart at once: the end of
# test-crash-sigkill.sh.)
wait_attr_timeout ()
{
	sleep 1.5
}

# acked_at_least N: whether the writer logged N acknowledged writes.
acked_at_least ()
{
	test "$(cat "$tmpdir"/log/log.* 2>/dev/null | grep -c '^A ')" -ge "$1"
}

# ---- Create, write, kill -----------------------------------------------------------------------

truncate -s $((size + mib)) "$a" "$b"
write_config "$tmpdir/m.conf" crash metadata=internal region-size=1M "$a" "$b"
# For the restart after the crash: 16 MiB/s (the torn block's region is copied last, after 3 s),
# round-robin reads.
write_config "$tmpdir/resync.conf" crash metadata=internal region-size=1M read-policy=round-robin \
	resync-rate-min=16M resync-rate-max=16M "$a" "$b"
"$fusemirrorctl" create --assume-clean "$tmpdir/m.conf" >&2 || fail "fusemirrorctl create"
start_daemon "$tmpdir/m.conf" "$mirror"
assert_eq "$(file_size "$mirror")" $size "the size of the mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after create --assume-clean"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.total)" 0 "resync.total after create"

# A fio job that completes before the crash: acknowledged and fsynced, it must survive.
cat >"$tmpdir/done.fio" <<EOF
[done]
filename=$mirror
rw=randwrite
bs=4k
direct=1
ioengine=libaio
iodepth=16
offset=0
size=16m
randseed=4242
verify=crc32c
verify_fatal=1
verify_state_save=0
do_verify=1
end_fsync=1
EOF
run_fio done "$tmpdir/done.fio"

mkdir "$tmpdir/log"
"$python" -S "$tmpdir/crashio.py" write "$mirror" "$tmpdir/log" $wstart $((wlen - 4096)) 8 60 1 \
	2>"$tmpdir/writer.err" &
writer_pid=$!
cleanup_fn "kill $writer_pid 2>/dev/null"
# Kill in the middle of the writes: once they are well under way (2000 acknowledged).
wait_until 30 "2000 acknowledged writes" acked_at_least 2000
_daemon_alive $writer_pid || daemon_fail "the writer stopped before the crash"
kill -s KILL "$daemon_pid"
wait_daemon_exit 10
killed_log=$daemon_log
# The writer ends on its first failed write.
tries=200
while _daemon_alive $writer_pid; do
	tries=$((tries - 1))
	test $tries -gt 0 || fail "the writer did not stop within 20 s of the crash"
	sleep 0.1
done
wait $writer_pid || fail "the writer failed: $(cat "$tmpdir/writer.err")"
echo "writes: $(cat "$tmpdir"/log/log.* | grep -c '^A ') acknowledged;" \
	"$(cat "$tmpdir"/log/log.* | grep -c '^E ') failed at the crash" >&2
grep -q '^E ' "$tmpdir"/log/log.* || fail "no write of the writer failed: was it writing?"

# The write-intent bitmap on disk has the writer's regions.
for r in $((wstart / mib)) $((wstart / mib + 15)) $(((wstart + wlen) / mib - 1)); do
	bit_set "$a" $r || fail "region $r's bit is not set in leg a's bitmap after the crash"
done
# A write that reached leg b but not leg a when the crash came (in a dirty region).
"$python" -S "$tmpdir/crashio.py" inject "$b" $mib "$tmpdir/log" $inject_block
wait_attr_timeout

# ---- Restart: only the dirty regions are resynced ----------------------------------------------

start_daemon "$tmpdir/resync.conf" "$mirror"
assert_grep "detached the dead mount on $mirror" "$daemon_log" "the restart's log"
# Until its region is resynced, the torn block reads the same every time (round-robin reads would
# alternate legs): from the leg the resync copies from, not b's version.
timeout 60 dd if="$mirror" of="$tmpdir/torn.0" bs=4096 skip=$inject_block count=1 iflag=direct \
	status=none ||
	daemon_fail "cannot read the torn block"
for i in 1 2 3 4 5 6 7 8; do
	timeout 60 dd if="$mirror" of="$tmpdir/torn.$i" bs=4096 skip=$inject_block count=1 iflag=direct \
		status=none || daemon_fail "cannot read the torn block"
	cmp "$tmpdir/torn.0" "$tmpdir/torn.$i" >&2 ||
		daemon_fail "read $i of the torn block differs from the first: the legs alternate"
done
cmp -s -i 0:$((mib + inject_block * 4096)) -n 4096 "$tmpdir/torn.0" "$b" &&
	! cmp -s -i 0:$((mib + inject_block * 4096)) -n 4096 "$tmpdir/torn.0" "$a" &&
	daemon_fail "the torn block was read from leg b, which is not the resync's source"
state_is resyncing || echo "(the resync ended before the torn block was read)" >&2
total=$(xattr "$mirror" user.fusemirror.resync.total)
echo "resync.total after the crash: $total of $size bytes" >&2
test "$total" -gt 0 || daemon_fail "resync.total is $total after the crash"
test "$total" -lt $((size / 4)) ||
	daemon_fail "resync.total is $total: the resync is not limited to the dirty regions"
# It covers the writer's 32 regions, at most those and the fio job's 16.
test "$total" -ge $wlen ||
	daemon_fail "resync.total $total does not cover the $wlen bytes written at the crash"
test "$total" -le $((wlen + 16 * mib)) ||
	daemon_fail "resync.total $total is more than the regions written ($((wlen + 16 * mib)))"
assert_grep "ResyncStarted: .*after an unclean shutdown" "$daemon_log" "the log's ResyncStarted"
wait_until 30 "state clean after the resync" state_is clean
# (The state turns clean a moment before the event is logged.)
wait_until 10 "ResyncFinished in the log" grep -q "ResyncFinished: " "$daemon_log"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.done)" "$total" "resync.done at the end"
assert_eq "$(leg_state "$mirror" 0)" in_sync "leg.0.state after the resync"
assert_eq "$(leg_state "$mirror" 1)" in_sync "leg.1.state after the resync"
stop_daemon
data_equal $size "$a" "$b"

# ---- Restarted after a clean stop: the data verifies -------------------------------------------

start_daemon "$tmpdir/m.conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after a clean stop"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.total)" 0 "resync.total after a clean stop"
read_mirror "$mirror" "$tmpdir/through"
"$python" -S "$tmpdir/crashio.py" verify "$tmpdir/through" "$tmpdir/log" $wstart $wlen ||
	daemon_fail "writes acknowledged before the crash do not read back"
run_fio done-verify --verify_only "$tmpdir/done.fio"
cmp -i $((16 * mib)):0 -n $((wstart - 16 * mib)) "$tmpdir/through" /dev/zero >&2 ||
	daemon_fail "[16 MiB, 64 MiB) was never written but is not zero"
cmp -i $((wstart + wlen)):0 -n $((size - wstart - wlen)) "$tmpdir/through" /dev/zero >&2 ||
	daemon_fail "[96 MiB, 256 MiB) was never written but is not zero"
cmp -i 0:$mib -n $size "$tmpdir/through" "$a" >&2 ||
	daemon_fail "the mirror does not serve what leg a holds"
stop_daemon
check_daemon_log "$killed_log"

# ---- A restart at once after SIGKILL -----------------------------------------------------------

# For a second after the crash the dead mount still answers stat from the kernel's attribute
# cache: the restart must still see it is dead, detach it and serve.
start_daemon "$tmpdir/m.conf" "$mirror"
file_size "$mirror" >/dev/null # its attributes are in the kernel's cache
kill -s KILL "$daemon_pid"
wait_daemon_exit 10
start_daemon "$tmpdir/m.conf" "$mirror"
assert_grep "detached the dead mount on $mirror" "$daemon_log" "the log of a restart at once"
wait_until 30 "state clean" state_is clean
stop_daemon
data_equal $size "$a" "$b"
exit 0
