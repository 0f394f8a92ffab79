#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# A remote leg reconnects by itself (issue 12; RECONNECT in fusemirrord(8)), through the daemon:
# a mirror of a local file leg and a leg served by a real nbdkit (file plugin, unix socket).
#   - nbdkit is SIGKILLed while fio writes through the mirror file: the writes in flight return
#     within io-timeout + 1 s (measured: fio's slowest write, and a write issued right after the
#     kill), leg b is failed, LegDisconnected is logged, fio goes on degraded and ends well;
#   - nbdkit is started again on the same socket and file: leg.1.state is in_sync again by
#     itself (LegReconnected), leg.1.reconnect back to idle, and resync.total is far below the
#     size (the bitmap: only the regions fio wrote);
#   - fio --verify=crc32c reads everything back through the mirror; SIGHUP applies changed
#     reconnect-max and reconnect-delay; after the stop the data areas of the two legs are equal.
# Prints two figures: from the server's death to the mirror writing again, and from the server's
# return to the leg in sync.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires nbdkit fio cmp dd truncate python3
grep -q '^#define HAVE_LIBNBD 1' "${top_builddir:-..}/config.h" 2>/dev/null ||
	skip "libdmio was built without libnbd"
nbdkit file --version >/dev/null 2>&1 || skip "nbdkit has no file plugin"
make_daemon_tmpdir

mib=1048576
leg_size=$((64 * mib))
size=$((leg_size - mib)) # the mirror: the leg less its 1 MiB of metadata
io_timeout=3
engine=$(fio_engine)
a=$tmpdir/a
b=$tmpdir/b.img
sock=$tmpdir/nbd.sock
mirror=$tmpdir/mirror
truncate -s $leg_size "$a" "$b"

# start_nbdkit: serve $b on $sock, in the background; sets nbd_pid.
start_nbdkit ()
{
	rm -f "$tmpdir/nbdkit.pid" "$sock"
	nbdkit --unix "$sock" --pidfile "$tmpdir/nbdkit.pid" file "$b" ||
		fail "nbdkit did not start on $sock"
	wait_until 10 "the nbdkit pid file" test -s "$tmpdir/nbdkit.pid"
	nbd_pid=$(cat "$tmpdir/nbdkit.pid")
	cleanup_fn "kill -s KILL $nbd_pid 2>/dev/null"
}

now_ms ()
{
	echo $(($(date +%s%N) / 1000000))
}

start_nbdkit
cat >"$tmpdir/m.conf" <<EOF
[mirror]
name = reconnect
metadata = internal
stop-timeout = 0
io-timeout = $io_timeout
reconnect-delay = 0.2

[leg a]
path = $a

[leg b]
path = nbd+unix:///?socket=$sock
write-mostly = true
reconnect-max = 100
EOF
"$fusemirrorctl" create --assume-clean "$tmpdir/m.conf" >/dev/null || fail "fusemirrorctl create"
start_daemon "$tmpdir/m.conf" "$mirror"
assert_eq "$(leg_state "$mirror" 1)" in_sync "leg b at start"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.reconnect)" idle "leg b's reconnect at start"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.reconnect_delay)" 0.2 "leg b's reconnect-delay"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.reconnect_max)" 100 "leg b's reconnect-max"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.0.reconnect_max)" 60 "leg a's: the default"

# fio writes 8 MiB of 63 at 2 MiB/s (and verifies them at its end) while the server dies.
cat >"$tmpdir/write.fio" <<EOF
[global]
filename=$mirror
ioengine=$engine
direct=1
iodepth=8
bs=64k
verify=crc32c
verify_fatal=1
verify_state_save=0

[writes]
rw=randwrite
offset=0
size=8m
rate=2m
EOF
fio --output-format=json --output="$tmpdir/fio.json" "$tmpdir/write.fio" \
	>"$tmpdir/fio.log" 2>&1 &
fio_pid=$!
cleanup_fn "kill $fio_pid 2>/dev/null"
sleep 1.5

killed=$(now_ms)
kill -s KILL "$nbd_pid"
# A write right after the kill, away from fio's range: when it returns, the mirror writes again.
head -c $mib /dev/urandom >"$tmpdir/one"
timeout 20 dd if="$tmpdir/one" of="$mirror" bs=1M seek=40 count=1 oflag=direct conv=notrunc \
	status=none || daemon_fail "a write just after the server died failed"
writing_again=$(($(now_ms) - killed))
wait_until 10 "leg b to fail" sh -c "test \"\$(getfattr --only-values --absolute-names \
	-n user.fusemirror.leg.1.state '$mirror')\" = failed"
echo "server killed -> the mirror writing again after $writing_again ms"
test $writing_again -lt $(((io_timeout + 1) * 1000)) ||
	daemon_fail "the write after the kill took $writing_again ms, more than io-timeout + 1 s"
grep -q 'LegDisconnected: leg 1 (b, nbd+unix:///?socket=.*) lost its server' "$daemon_log" ||
	daemon_fail "no LegDisconnected for leg b"

wait "$fio_pid" || { cat "$tmpdir/fio.log" >&2; daemon_fail "fio failed while leg b died"; }
slowest_ms=$(python3 -c '
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]
assert job["error"] == 0, job["error"]
print(job["write"]["clat_ns"]["max"] // 1000000)
' "$tmpdir/fio.json") || daemon_fail "fio's report: $(cat "$tmpdir/fio.json")"
echo "fio's slowest write: $slowest_ms ms (io-timeout $io_timeout s)"
test "$slowest_ms" -lt $(((io_timeout + 1) * 1000)) ||
	daemon_fail "a write waited $slowest_ms ms, more than io-timeout + 1 s"
assert_eq "$(leg_state "$mirror" 1)" failed "leg b while its server is away"
case $(xattr "$mirror" user.fusemirror.leg.1.reconnect) in
"waiting "*", try "*" of 100" | "connecting, try "*" of 100") ;;
*) daemon_fail "leg b's reconnect: $(xattr "$mirror" user.fusemirror.leg.1.reconnect)" ;;
esac
"$fusemirrorctl" status "$mirror" >"$tmpdir/status" || true
grep -q '^leg 1 reconnect: ' "$tmpdir/status" ||
	daemon_fail "status does not show leg b's reconnect: $(cat "$tmpdir/status")"

# The server back on the same socket and file: the leg comes back by itself.
back=$(now_ms)
start_nbdkit
wait_until 30 "leg b back in sync" sh -c "test \"\$(getfattr --only-values --absolute-names \
	-n user.fusemirror.leg.1.state '$mirror')\" = in_sync"
in_sync_after=$(($(now_ms) - back))
echo "server back -> leg b in sync after $in_sync_after ms"
grep -q 'LegReconnected: leg 1 (b, ' "$daemon_log" || daemon_fail "no LegReconnected for leg b"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.reconnect)" idle "leg b's reconnect once back"
total=$(xattr "$mirror" user.fusemirror.resync.total)
echo "resync.total: $total bytes of $size"
test "$total" -gt 0 || daemon_fail "resync.total is 0: nothing was copied onto leg b"
# fio's 8 MiB and the 1 MiB after the kill, in whole regions: far below the 63 MiB.
test "$total" -le $((size / 4)) ||
	daemon_fail "resync.total is $total bytes: more than the regions written (a full resync?)"

# Everything fio wrote reads back, and the write after the kill.
sed -e '/^rate=/d' "$tmpdir/write.fio" >"$tmpdir/verify.fio"
fio --verify_only "$tmpdir/verify.fio" >"$tmpdir/verify.log" 2>&1 ||
	{ cat "$tmpdir/verify.log" >&2; daemon_fail "fio --verify_only through the mirror"; }
timeout 10 dd if="$mirror" of="$tmpdir/back" bs=1M skip=40 count=1 iflag=direct status=none ||
	daemon_fail "cannot read the write made after the kill"
cmp "$tmpdir/one" "$tmpdir/back" || daemon_fail "the write made after the kill reads back wrong"

# SIGHUP applies a changed reconnect-max (leg b's own) and reconnect-delay (the mirror's).
sed -i -e 's/^reconnect-max = 100$/reconnect-max = 7/' -e 's/^reconnect-delay = 0.2$/reconnect-delay = 2.5/' \
	"$tmpdir/m.conf"
kill -s HUP "$daemon_pid"
wait_until 10 "the reload" grep -q 'reload: done' "$daemon_log"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.reconnect_max)" 7 "leg b's reconnect-max reloaded"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.reconnect_delay)" 2.5 \
	"leg b's reconnect-delay reloaded (the mirror's)"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.0.reconnect_max)" 60 "leg a's after the reload"
stop_daemon
data_equal $size "$a" "$b"
