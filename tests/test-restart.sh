#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# fusemirrorctl restart: the daemon hands its live FUSE connection to a new process of itself
# without unmounting (fusemirrord(8), RESTART).  A loop device with ext4 on the mirror file, under
# fio with verification, sees no error across two restarts; the daemon's pid stays; its log shows
# the takeovers; the legs are identical after the stop and clean.  A restart whose configuration
# no longer loads is refused on one line (exit 1) and changes nothing.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires losetup mkfs.ext4 e2fsck fio truncate cmp
requires_file /dev/loop-control
make_daemon_tmpdir

a=$tmpdir/a
b=$tmpdir/b
mirror=$tmpdir/mirror
truncate -s 256M "$a" "$b"
write_config "$tmpdir/m.conf" restart "$a" "$b" metadata=internal
"$fusemirrorctl" create --assume-clean "$tmpdir/m.conf" >/dev/null ||
	fail "fusemirrorctl create"
start_daemon "$tmpdir/m.conf" "$mirror"
pid=$daemon_pid
assert_eq "$(xattr "$mirror" user.fusemirror.restarts)" 0 "restarts before any"

# ---- Refused: the configuration does not load ----------------------------------------------
cp "$tmpdir/m.conf" "$tmpdir/m.conf.good"
echo "this is not a key" >>"$tmpdir/m.conf"
head -c 1M /dev/urandom >"$tmpdir/pattern"
dd if="$tmpdir/pattern" of="$mirror" bs=1M conv=notrunc,fsync status=none
status=0
out=$("$fusemirrorctl" restart "$mirror" 2>&1) || status=$?
assert_eq "$status" 1 "exit status of a restart with a broken configuration"
assert_eq "$(printf '%s\n' "$out" | wc -l)" 1 "lines of the refusal"
printf '%s\n' "$out" >"$tmpdir/refusal"
assert_grep "configuration does not load" "$tmpdir/refusal" "the refusal"
assert_eq "$(xattr "$mirror" user.fusemirror.restarts)" 0 "restarts after the refusal"
cmp -n 1048576 "$tmpdir/pattern" "$mirror" || daemon_fail "the data changed after a refusal"
cp "$tmpdir/m.conf.good" "$tmpdir/m.conf"

# ---- ext4 on a loop device under fio, two restarts meanwhile --------------------------------
dmesg_before=$(dmesg 2>/dev/null | grep -ci 'I/O error' || true)
loop=$(loop_attach "$mirror" --direct-io=on)
mkfs.ext4 -q -F "$loop" >&2 || daemon_fail "mkfs.ext4 $loop"
mount_at "$tmpdir/fs" "$loop"
cat >"$tmpdir/job.fio" <<EOF
[global]
directory=$tmpdir/fs
verify_state_save=0
verify=crc32c
verify_fatal=1
do_verify=1
size=48m
time_based=0
[seq]
rw=write
bs=128k
ioengine=psync
fsync=8
rate=8m
[rand]
rw=randwrite
bs=4k
ioengine=psync
direct=1
size=16m
rate=3m
[buffered]
rw=randrw
bs=64k
ioengine=psync
size=32m
rate=6m
EOF
(run_fio restart "$tmpdir/job.fio" && : >"$tmpdir/fio.ok") &
fio_pid=$!
for n in 1 2; do
	sleep 1.5
	"$fusemirrorctl" restart --timeout 60 "$mirror" 2>"$tmpdir/restart-$n.err" || {
		cat "$tmpdir/restart-$n.err" >&2
		daemon_fail "fusemirrorctl restart $n"
	}
	assert_grep "stayed mounted \(restart $n\)" "$tmpdir/restart-$n.err" "restart $n"
	kill -0 "$fio_pid" 2>/dev/null || echo "note: fio had ended before restart $n" >&2
done
wait "$fio_pid" || true
test -e "$tmpdir/fio.ok" || daemon_fail "fio failed across the restarts (see $tmpdir/fio-restart.out)"
grep -Eq 'err= *0' "$tmpdir/fio-restart.out" || daemon_fail "fio reported no job"
# What fio saw across the restarts, for the log.
grep -E "err=|WRITE:|READ:" "$tmpdir/fio-restart.out" >&2

assert_eq "$(xattr "$mirror" user.fusemirror.restarts)" 2 "restarts"
assert_eq "$daemon_pid" "$pid" "the daemon's pid"
_daemon_alive "$pid" || daemon_fail "the daemon is gone"
test "$(grep -c 'took over the FUSE connection' "$daemon_log")" -eq 2 ||
	daemon_fail "the log does not show two takeovers"
umount "$tmpdir/fs" || daemon_fail "umount $tmpdir/fs"
e2fsck -f -n "$loop" >"$tmpdir/fsck" 2>&1 || {
	cat "$tmpdir/fsck" >&2
	daemon_fail "e2fsck finds errors after the restarts"
}
loop_detach "$loop" "$mirror"
dmesg_after=$(dmesg 2>/dev/null | grep -ci 'I/O error' || true)
assert_eq "$dmesg_after" "$dmesg_before" "I/O errors in the kernel log"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after the restarts"
stop_daemon
data_equal $((255 * 1048576)) "$a" "$b"
check_daemon_log
exit 0
