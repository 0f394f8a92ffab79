#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# systemctl reload after an upgrade (fusemirrord(8), SIGNALS): SIGHUP to a daemon whose binary was
# replaced on disk (a new file renamed over it, as dpkg does) reloads and then restarts into the
# new binary without unmounting: the pid stays, user.fusemirror.restarts counts it, a descriptor
# held open across it still reads and writes, /proc/PID/exe is no longer the deleted file.  A
# SIGHUP without an upgrade does not restart; an upgrade whose configuration no longer loads is a
# warning and the old process serves on.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires truncate dd cmp
make_daemon_tmpdir

mib=1048576
a=$tmpdir/a
b=$tmpdir/b
mirror=$tmpdir/mirror
truncate -s $((32 * mib)) "$a" "$b"
write_config "$tmpdir/m.conf" upgrade "$a" "$b" metadata=internal
"$fusemirrorctl" create --assume-clean "$tmpdir/m.conf" >/dev/null || fail "fusemirrorctl create"
cp "$tmpdir/m.conf" "$tmpdir/m.conf.good"

# The daemon runs from a copy that the test "upgrades".
mkdir "$tmpdir/bin"
cp "$fusemirrord" "$tmpdir/bin/fusemirrord"
fusemirrord=$tmpdir/bin/fusemirrord
start_daemon "$tmpdir/m.conf" "$mirror"
pid=$daemon_pid

reloads_at_least ()
{
	test "$(grep -c 'reload: done' "$daemon_log")" -ge "$1"
}
restarts_are ()
{
	test "$(xattr "$mirror" user.fusemirror.restarts 2>/dev/null)" = "$1"
}
upgrade ()
{
	cp "$fusemirrord" "$tmpdir/bin/fusemirrord.new"
	mv -f "$tmpdir/bin/fusemirrord.new" "$fusemirrord"
}

head -c $((4 * mib)) /dev/urandom >"$tmpdir/data"
exec 3<>"$mirror"
dd if="$tmpdir/data" bs=1M count=2 conv=notrunc,fsync status=none >&3 ||
	daemon_fail "the first writes"

# No upgrade: a reload only.
kill -s HUP "$pid"
wait_until 10 "the first reload" reloads_at_least 1
sleep 0.5
restarts_are 0 || daemon_fail "a reload without an upgrade restarted the daemon"
! grep -q "binary was upgraded" "$daemon_log" || daemon_fail "an upgrade seen where there was none"

# An upgrade whose configuration no longer loads: a warning, no restart.
echo "this is not a key" >>"$tmpdir/m.conf"
upgrade
kill -s HUP "$pid"
wait_until 10 "the refusal" grep -q "not restarting into the upgraded binary" "$daemon_log"
assert_grep "configuration does not load" "$daemon_log" "the refusal's reason"
restarts_are 0 || daemon_fail "restarted with a configuration that does not load"
cmp -n $((2 * mib)) "$tmpdir/data" "$mirror" || daemon_fail "the data after the refusal"

# The upgrade proper.
cp "$tmpdir/m.conf.good" "$tmpdir/m.conf"
upgrade
case $(readlink "/proc/$pid/exe") in
*" (deleted)") ;;
*) daemon_fail "the test's upgrade did not replace the running binary" ;;
esac
kill -s HUP "$pid"
wait_until 20 "the restart into the new binary" restarts_are 1
assert_grep "the binary was upgraded on disk: the reload restarts into it" "$daemon_log" \
	"the upgrade's line"
assert_grep "took over the FUSE connection" "$daemon_log" "the takeover's line"
kill -0 "$pid" || daemon_fail "the daemon's pid is gone"
assert_eq "$(readlink "/proc/$pid/exe")" "$fusemirrord" "the binary the daemon runs now"
# The descriptor opened before it is the same open file (its offset is 2 MiB): it writes on.
dd if="$tmpdir/data" bs=1M skip=2 count=2 conv=notrunc,fsync status=none >&3 ||
	daemon_fail "writes through the descriptor held across the restart"
cmp -n $((4 * mib)) "$tmpdir/data" "$mirror" || daemon_fail "the data after the restart"
exec 3>&-
# Another reload, with nothing upgraded since: no restart.
kill -s HUP "$pid"
wait_until 10 "the reload after the restart" reloads_at_least 3
sleep 0.5
restarts_are 1 || daemon_fail "a reload after the restart restarted again"
stop_daemon
cmp -i 0:$mib -n $((4 * mib)) "$tmpdir/data" "$a" ||
	daemon_fail "leg a does not hold the data"
data_equal $((4 * mib)) "$a" "$b"
