#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# The exclusive claim (fusemirrord(8), CLAIM): a running mirror holds its legs (a file with an OFD
# lock, a loop device with O_EXCL) and its runtime record under /run/fusemirror names it.  While
# the running daemon is paused (SIGSTOP), with its legs' superblocks, bitmaps and data saved:
#   - a second daemon on the same config (another mountpoint) is refused, exit 3, naming it;
#   - fusemirrorctl create --force on the config is refused, naming it, for each leg;
#   - add of a held leg to another running mirror is refused: by fusemirrorctl, and by the daemon
#     itself (EBUSY, last_error names the holder);
#   - a leg that another program holds with O_EXCL is refused, "held by another program", and a
#     stale record of a dead daemon naming that leg is ignored and removed;
#   - mkfs.ext4 and an O_EXCL open of the held loop device fail;
# and then the legs are byte for byte what they were.  Running again: a second daemon on the same
# mountpoint is refused, naming it; a hot-added leg is named too; a failed and re-added leg is
# held again.  After a clean stop the record is gone and the claim released.

. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires losetup python3 mkfs.ext4 sha256sum
requires_file /dev/loop-control
make_daemon_tmpdir

rundir=${FUSEMIRROR_RUNTIME_DIR:-/run/fusemirror}
mib=1048576

# The legs of the mirror under test: a file and a loop device.
a=$tmpdir/a.img
truncate -s 64M "$a" "$tmpdir/b.img"
loop=$(loop_attach "$tmpdir/b.img")
mirror=$tmpdir/mirror
write_config "$tmpdir/m.conf" claim1 metadata=internal "$a" "$loop"
"$fusemirrorctl" create --assume-clean "$tmpdir/m.conf" >/dev/null ||
	fail "fusemirrorctl create $tmpdir/m.conf"

# A second mirror on legs of its own, for the add of a held leg.
truncate -s 64M "$tmpdir/c.img" "$tmpdir/d.img"
write_config "$tmpdir/other.conf" claim2 metadata=internal "$tmpdir/c.img" "$tmpdir/d.img"
"$fusemirrorctl" create --assume-clean "$tmpdir/other.conf" >/dev/null ||
	fail "fusemirrorctl create $tmpdir/other.conf"
mirror2=$tmpdir/mirror2
start_daemon "$tmpdir/other.conf" "$mirror2"
pid2=$daemon_pid

start_daemon "$tmpdir/m.conf" "$mirror"
pid=$daemon_pid
head -c $((4 * mib)) /dev/urandom >"$tmpdir/data"
dd if="$tmpdir/data" of="$mirror" bs=1M oflag=direct conv=notrunc status=none ||
	daemon_fail "writing to the mirror"

# ---- The runtime record --------------------------------------------------------------------------
record=$rundir/$pid.record
test -f "$record" || daemon_fail "no runtime record $record"
assert_grep "^name=claim1\$" "$record" "the record's name"
assert_grep "^mountpoint=$mirror\$" "$record" "the record's mountpoint"
assert_grep "^config=$tmpdir/m.conf\$" "$record" "the record's config"
assert_grep "^pid=$pid\$" "$record" "the record's pid"
assert_grep "^path=$a\$" "$record" "the record's leg a"
assert_grep "^inode=$(stat -c %i "$a")\$" "$record" "the inode of leg a"
rdev=$(printf '%d:%d' "0x$(stat -c %t "$loop")" "0x$(stat -c %T "$loop")")
assert_grep "^rdev=$rdev\$" "$record" "the device of leg b"

# ---- Refusals while the mirror is paused: nothing of it may change ------------------------------
held="is held by mirror 'claim1' at $mirror (pid $pid)"
snapshot ()
{
	for _leg in "$a" "$loop"; do
		dd if="$_leg" bs=1M count=1 status=none | od -An -tx1 -v | sha256sum
		sha256sum <"$_leg"
	done
}

kill -s STOP "$pid"
cleanup_fn "kill -s CONT $pid 2>/dev/null"
snapshot >"$tmpdir/before"

# A second daemon on the same config, another mountpoint.
expect_daemon_exit 3 "leg 'a' ($a) $held" -f -c "$tmpdir/m.conf" "$tmpdir/second"
test -e "$tmpdir/second" && fail "the refused daemon left its mountpoint $tmpdir/second behind"

# create --force on the held legs: one line per leg.
run_status=0
"$fusemirrorctl" create --force "$tmpdir/m.conf" >"$tmpdir/out" 2>"$tmpdir/err" || run_status=$?
test $run_status -eq 1 || { cat "$tmpdir/err" >&2; fail "create --force: exit $run_status"; }
grep -qxF "fusemirrorctl: create $tmpdir/m.conf: leg 'a' ($a) $held" "$tmpdir/err" ||
	{ cat "$tmpdir/err" >&2; fail "create --force: leg a's holder not named"; }
grep -qxF "fusemirrorctl: create $tmpdir/m.conf: leg 'b' ($loop) $held" "$tmpdir/err" ||
	{ cat "$tmpdir/err" >&2; fail "create --force: leg b's holder not named"; }

# add of a held leg to the other mirror: fusemirrorctl refuses before sending...
run_status=0
"$fusemirrorctl" add --force "$mirror2" "$loop" >"$tmpdir/out" 2>"$tmpdir/err" || run_status=$?
test $run_status -eq 1 || { cat "$tmpdir/err" >&2; fail "add of a held leg: exit $run_status"; }
grep -qF "add $mirror2 $loop: $loop $held" "$tmpdir/err" ||
	{ cat "$tmpdir/err" >&2; fail "add of a held leg: the holder is not named"; }
# ... and the daemon refuses the command itself, naming the holder in last_error.
assert_eq "$(ctl_reason "$mirror2" "add --force $a")" "EBUSY $a $held" "add through the xattr"
assert_eq "$(ctl_reason "$mirror2" "add --force $loop")" "EBUSY $loop $held" \
	"add of the loop device through the xattr"
assert_eq "$(xattr "$mirror2" user.fusemirror.legs)" 2 "the legs of the other mirror"

# A leg that another program holds with O_EXCL, and a stale record that names it.
truncate -s 64M "$tmpdir/e.img" "$tmpdir/f.img"
loop2=$(loop_attach "$tmpdir/f.img")
python3 -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL)
print("held", flush=True)
time.sleep(600)
' "$loop2" >"$tmpdir/holder.out" &
holder=$!
cleanup_fn "kill $holder 2>/dev/null"
wait_for 10 grep -q held "$tmpdir/holder.out"
sh -c 'exit 0' &
dead=$!
wait $dead || true
rdev2=$(printf '%d:%d' "0x$(stat -c %t "$loop2")" "0x$(stat -c %T "$loop2")")
stale=$rundir/$dead.record
printf '[daemon]\npid=%s\nname=ghost\nmountpoint=/nowhere\nconfig=/none.conf\n\n[leg 0]\nname=f\npath=%s\nrdev=%s\n' \
	"$dead" "$loop2" "$rdev2" >"$stale"
cleanup_fn "rm -f '$stale'"
write_config "$tmpdir/excl.conf" claim3 "$tmpdir/e.img" "$loop2"
expect_daemon_exit 3 "leg 'b' ($loop2) is held by another program (opened exclusively)" \
	-f -c "$tmpdir/excl.conf" "$tmpdir/third"
case $run_output in
*ghost*) fail "a dead daemon's record was believed: $run_output" ;;
esac
test -e "$stale" && fail "the record of the dead pid $dead was not removed"
write_config "$tmpdir/excl-internal.conf" claim3 metadata=internal "$tmpdir/e.img" "$loop2"
run_status=0
"$fusemirrorctl" create "$tmpdir/excl-internal.conf" >"$tmpdir/out" 2>"$tmpdir/err" ||
	run_status=$?
test $run_status -eq 1 || { cat "$tmpdir/err" >&2; fail "create on an O_EXCL leg: exit $run_status"; }
grep -qxF "fusemirrorctl: create $tmpdir/excl-internal.conf: leg 'b' ($loop2) is held by another program (opened exclusively)" \
	"$tmpdir/err" || { cat "$tmpdir/err" >&2; fail "create on an O_EXCL leg: message"; }
kill "$holder"
wait "$holder" 2>/dev/null || true

# The held loop device cannot be claimed by anyone else: mkfs, an O_EXCL open.
if mkfs.ext4 -q -F "$loop" </dev/null >"$tmpdir/mkfs.out" 2>&1; then
	fail "mkfs.ext4 $loop succeeded on a leg the mirror holds"
fi
python3 -c '
import errno, os, sys
try:
    os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL)
except OSError as e:
    sys.exit(0 if e.errno == errno.EBUSY else 2)
sys.exit(1)
' "$loop" || fail "an O_EXCL open of $loop did not fail with EBUSY (status $?)"

snapshot >"$tmpdir/after"
cmp -s "$tmpdir/before" "$tmpdir/after" ||
	daemon_fail "the paused mirror's legs changed while its claim was refused to others"
kill -s CONT "$pid"

# ---- Running again -------------------------------------------------------------------------------
# Another config, the same mountpoint: refused, naming the mirror that serves it.
write_config "$tmpdir/same-mp.conf" claim4 "$tmpdir/e.img"
expect_daemon_exit 3 "mountpoint $mirror is in use: mirror 'claim1' (pid $pid, config $tmpdir/m.conf) serves it" \
	-f -c "$tmpdir/same-mp.conf" "$mirror"
dd if="$mirror" of="$tmpdir/back" bs=1M count=4 iflag=direct status=none ||
	daemon_fail "reading the mirror after the refusals"
cmp "$tmpdir/back" "$tmpdir/data" || daemon_fail "the mirror's data changed"

# A hot-added leg is in the other mirror's rewritten record.
truncate -s 64M "$tmpdir/g.img"
"$fusemirrorctl" add "$mirror2" "$tmpdir/g.img" >&2 || daemon_fail "fusemirrorctl add $tmpdir/g.img"
write_config "$tmpdir/g.conf" claim5 metadata=internal "$tmpdir/g.img" "$tmpdir/e.img"
run_status=0
"$fusemirrorctl" create "$tmpdir/g.conf" >"$tmpdir/out" 2>"$tmpdir/err" || run_status=$?
grep -qxF "fusemirrorctl: create $tmpdir/g.conf: leg 'a' ($tmpdir/g.img) is held by mirror 'claim2' at $mirror2 (pid $pid2)" \
	"$tmpdir/err" || { cat "$tmpdir/err" >&2; daemon_fail "create on a hot-added leg: holder"; }
test $run_status -eq 1 || daemon_fail "create on a hot-added leg: exit $run_status"

# A failed leg keeps its claim, and its re-add takes it over onto the new descriptor.
"$fusemirrorctl" fail "$mirror" a >&2 || daemon_fail "fusemirrorctl fail a"
"$fusemirrorctl" add "$mirror" "$a" >&2 || daemon_fail "fusemirrorctl add (re-add) $a"
timeout 60 "$fusemirrorctl" wait "$mirror" >&2 || daemon_fail "fusemirrorctl wait after re-add"
assert_eq "$(leg_state "$mirror" 0)" in_sync "leg a after its re-add"
run_status=0
"$fusemirrorctl" create --force "$tmpdir/m.conf" >"$tmpdir/out" 2>"$tmpdir/err" || run_status=$?
grep -qxF "fusemirrorctl: create $tmpdir/m.conf: leg 'a' ($a) $held" "$tmpdir/err" ||
	{ cat "$tmpdir/err" >&2; daemon_fail "create --force after the re-add: leg a not held"; }
test $run_status -eq 1 || daemon_fail "create --force after the re-add: exit $run_status"

stop_daemon
test -e "$record" && fail "the runtime record $record is left after a clean stop"
# The claim went with the daemon.
python3 -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL))' "$loop" ||
	fail "$loop is still held after the daemon stopped"

daemon_pid=$pid2
daemon_mountpoint=$mirror2
daemon_log=$tmpdir/fusemirrord-1.log
stop_daemon
exit 0
