#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A crash with the FUSE connection in systemd's file descriptor store (fusemirrord(8), RESTART
# and SYSTEMD), without systemd: a NOTIFY_SOCKET listener of our own keeps the descriptors the
# daemon stores (FDSTORE=1, FDNAME=fuse and fuse-init), the daemon is SIGKILLed while writers
# write through the mirror, and the listener starts a new daemon with them as LISTEN_FDS (as
# Restart=on-failure would).  It takes the mount over without a remount; the kernel sends again
# the requests the dead process had taken (FUSE_NOTIFY_RESEND), so every writer ends without an
# error and the data is what they wrote.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires python3 dd cmp truncate
make_daemon_tmpdir

a=$tmpdir/a
b=$tmpdir/b
mirror=$tmpdir/mirror
truncate -s 128M "$a" "$b"
write_config "$tmpdir/m.conf" crash "$a" "$b" metadata=internal
"$fusemirrorctl" create --assume-clean "$tmpdir/m.conf" >/dev/null ||
	fail "fusemirrorctl create"
# Leg b behind libdmio's fault-injecting kind, each write delayed 100 ms: at the kill, writes
# are surely in the dead process's hands (read from /dev/fuse, not answered).
sed -i "s|^path = $b\$|path = fault:$b|" "$tmpdir/m.conf"
printf '%s\n' "delay write * ms=100" >"$b.fault"
FUSEMIRROR_TEST_DEVICES=1
export FUSEMIRROR_TEST_DEVICES

# The listener: systemd's store and Restart=, in one small process.  Once $tmpdir/go exists it
# starts "$@" with the stored descriptors as fds 3 and 4 (LISTEN_PID set by the exec'ing shell
# to its own pid, which the daemon then has), and writes the new pid to $tmpdir/go.pid.
sock=$tmpdir/notify
python3 -c '
import os, socket, subprocess, sys
sock, log, go, dlog = sys.argv[1:5]
cmd = sys.argv[5:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sock)
s.settimeout(0.05)
store = {}
started = False
out = open(log, "a", buffering=1)
out.write("listening\n")
while True:
    try:
        msg, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(4 * 4))
    except socket.timeout:
        if not started and os.path.exists(go):
            started = True
            os.dup2(store["fuse"], 7)
            os.dup2(store["fuse-init"], 8)
            env = dict(os.environ, NOTIFY_SOCKET=sock, LISTEN_FDS="2",
                       LISTEN_FDNAMES="fuse:fuse-init")
            p = subprocess.Popen(["sh", "-c",
                                  "exec 3<&7 4<&8 7<&- 8<&-; export LISTEN_PID=$$; exec \"$@\"",
                                  "sh"] + cmd, pass_fds=(7, 8), env=env,
                                 stdin=subprocess.DEVNULL, stdout=open(dlog, "w"),
                                 stderr=subprocess.STDOUT)
            os.close(7)
            os.close(8)
            with open(go + ".pid", "w") as f:
                f.write("%d\n" % p.pid)
        continue
    fds = []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += list(memoryview(data).cast("i")[: len(data) // 4])
    text = msg.decode()
    fields = dict(l.split("=", 1) for l in text.split("\n") if "=" in l)
    name = fields.get("FDNAME", "stored")
    if fields.get("FDSTOREREMOVE") == "1" and name in store:
        os.close(store.pop(name))
    if fields.get("FDSTORE") == "1":
        for fd in fds:
            if name in store:
                os.close(store[name])
            store[name] = fd
    else:
        for fd in fds:
            os.close(fd)
    out.write(text.replace("\n", "|") + (" [%d fd]" % len(fds) if fds else "") + "\n")
' "$sock" "$tmpdir/notify.log" "$tmpdir/go" "$tmpdir/fusemirrord-new.log" \
	env G_DEBUG=fatal-criticals "$fusemirrord" -f -c "$tmpdir/m.conf" "$mirror" &
listener=$!
cleanup_fn "kill $listener 2>/dev/null"
wait_until 10 "the notify listener" grep -q listening "$tmpdir/notify.log"

NOTIFY_SOCKET=$sock
export NOTIFY_SOCKET
start_daemon "$tmpdir/m.conf" "$mirror"
unset NOTIFY_SOCKET
wait_until 10 "the stored connection" grep -q 'FDSTORE=1|FDNAME=fuse-init' "$tmpdir/notify.log"
grep -qF 'FDSTORE=1|FDNAME=fuse [1 fd]' "$tmpdir/notify.log" ||
	daemon_fail "the daemon did not store its /dev/fuse descriptor"
old_pid=$daemon_pid

# Four writers, each its own 16 MiB of the mirror, direct 1 MiB writes, fsync at the end.
head -c 64M /dev/urandom >"$tmpdir/pattern"
for w in 0 1 2 3; do
	(dd if="$tmpdir/pattern" of="$mirror" bs=1M skip=$((w * 16)) seek=$((w * 16)) count=16 \
	    iflag=fullblock oflag=direct conv=notrunc,fsync status=none &&
	    : >"$tmpdir/writer-$w.ok") 2>"$tmpdir/writer-$w.err" &
	eval "writer_$w=\$!"
done
sleep 0.5
kill -s KILL "$old_pid"
wait "$old_pid" 2>/dev/null || true
: >"$daemon_log.stopped"
# Dead, and the mount is alive (its descriptor is in the store): requests wait in the kernel.
: >"$tmpdir/go"
wait_until 20 "the new daemon" test -s "$tmpdir/go.pid"
new_pid=$(cat "$tmpdir/go.pid")
cleanup_fn "kill $new_pid 2>/dev/null"
# writers_done: every writer has exited (a request never answered keeps its writer waiting).
writers_done ()
{
	for _w in 0 1 2 3; do
		eval "kill -0 \$writer_$_w" 2>/dev/null && return 1
	done
	return 0
}
wait_until 60 "the writers, across the crash" writers_done
for w in 0 1 2 3; do
	eval "wait \$writer_$w" || true
	test -e "$tmpdir/writer-$w.ok" || {
		cat "$tmpdir/writer-$w.err" "$tmpdir/fusemirrord-new.log" >&2
		daemon_fail "writer $w failed across the crash"
	}
done
cmp -n 67108864 "$tmpdir/pattern" "$mirror" ||
	daemon_fail "the mirror does not hold what the writers wrote"
grep -q 'systemd passed the FUSE connection back' "$tmpdir/fusemirrord-new.log" ||
	daemon_fail "the new daemon did not take the connection from LISTEN_FDS"
grep -q 'took over the FUSE connection' "$tmpdir/fusemirrord-new.log" ||
	daemon_fail "the new daemon did not take the mount over"
grep -q 'asked the kernel to send again' "$tmpdir/fusemirrord-new.log" ||
	daemon_fail "the new daemon did not ask for the requests again"
grep -E 'passed|took over|send again|not shut down cleanly' "$tmpdir/fusemirrord-new.log" >&2 || true
assert_eq "$(xattr "$mirror" user.fusemirror.restarts)" 1 "restarts after the crash"
is_mounted "$mirror" || daemon_fail "$mirror is not mounted"
# The new daemon stored the connection again, for the next crash.
test "$(grep -c 'FDSTORE=1|FDNAME=fuse-init' "$tmpdir/notify.log")" -ge 2 ||
	daemon_fail "the new daemon did not store the connection again"

# A graceful restart of the taken-over daemon (all workers on the one stored descriptor), under
# a writer: it too ends well, and the connection is stored again.
dd if="$tmpdir/pattern" of="$mirror" bs=1M count=8 oflag=direct conv=notrunc,fsync status=none &
writer=$!
"$fusemirrorctl" restart "$mirror" 2>"$tmpdir/restart.err" || {
	cat "$tmpdir/restart.err" >&2
	daemon_fail "fusemirrorctl restart after the crash's takeover"
}
wait "$writer" || daemon_fail "a write across the restart after the crash failed"
assert_eq "$(xattr "$mirror" user.fusemirror.restarts)" 2 "restarts after the second restart"
test "$(grep -c 'FDSTORE=1|FDNAME=fuse-init' "$tmpdir/notify.log")" -ge 3 ||
	daemon_fail "the restarted daemon did not store the connection again"
_daemon_alive "$new_pid" || daemon_fail "the daemon's pid changed across the restart"
cmp -n 67108864 "$tmpdir/pattern" "$mirror" || daemon_fail "the data changed across the restart"

kill -s TERM "$new_pid"
tries=300
while _daemon_alive "$new_pid"; do
	tries=$((tries - 1))
	test $tries -gt 0 || daemon_fail "the new daemon did not stop"
	sleep 0.1
done
check_daemon_log "$tmpdir/fusemirrord-new.log"
rm -f "$b.fault"
data_equal $((127 * 1048576)) "$a" "$b"
exit 0
