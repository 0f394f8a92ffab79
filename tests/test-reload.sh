#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# SIGHUP (the unit's ExecReload=) re-reads the configuration: the runtime tunables are applied
# (resync rates, read policy, io-timeout of the mirror and of a leg, write-mostly, on-event),
# what takes a restart or a control command is refused with a message and kept, systemd hears
# RELOADING=1 then READY=1, and a file that does not parse changes nothing.  The daemon serves
# on throughout.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires python3 truncate dd cmp
make_daemon_tmpdir

mib=1048576
log=$tmpdir/notify.log
notify_listen "$tmpdir/notify.sock" "$log"
NOTIFY_SOCKET=$tmpdir/notify.sock
export NOTIFY_SOCKET

a=$tmpdir/a
b=$tmpdir/b
mirror=$tmpdir/mirror
truncate -s $((32 * mib)) "$a" "$b"
write_config "$tmpdir/m.conf" reload "$a" "$b" metadata=internal resync-rate-max=1M
"$fusemirrorctl" create --assume-clean "$tmpdir/m.conf" >/dev/null || fail "fusemirrorctl create"
cp "$tmpdir/m.conf" "$tmpdir/m.conf.orig"
start_daemon "$tmpdir/m.conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.rate_max)" 1048576 "resync.rate_max at start"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.io_timeout)" 30 "leg b's io-timeout at start"

# reload: SIGHUP, then wait for the daemon's summary line (the Nth one: $1).
reloads_at_least ()
{
	test "$(grep -c 'reload: done' "$daemon_log")" -ge "$1"
}
reload ()
{
	kill -s HUP "$daemon_pid"
	wait_until 10 "reload number $1" reloads_at_least "$1"
}

# The runtime tunables change; engine and a new [leg] group are refused.
cat >"$tmpdir/events.sh" <<EOS
#!/bin/sh
echo "\$@" >>"$tmpdir/events.log"
EOS
chmod +x "$tmpdir/events.sh"
{
	sed -e 's/^resync-rate-max = .*/resync-rate-max = 32M/' "$tmpdir/m.conf.orig"
} >"$tmpdir/m.conf.new"
awk -v ev="$tmpdir/events.sh" '
	/^\[mirror\]/ { print; print "io-timeout = 7"; print "read-policy = round-robin";
			print "engine = io_uring"; print "on-event = " ev; next }
	/^\[leg b\]/ { print; print "write-mostly = true"; print "io-timeout = 4.5"; next }
	{ print }
	END { print ""; print "[leg c]"; print "path = /nonexistent/c" }' \
	"$tmpdir/m.conf.new" >"$tmpdir/m.conf"
: >"$log"
reload 1
assert_grep "reload: resync-rate-min = [0-9]+, resync-rate-max = 33554432 bytes/s" "$daemon_log" \
	"the rate applied"
assert_grep "reload: read-policy = round-robin" "$daemon_log" "the read policy applied"
assert_grep "reload: leg 1 \(b\): write-mostly = true" "$daemon_log" "write-mostly applied"
assert_grep "engine changed from 'threads' to 'io_uring': it takes a restart; keeping 'threads'" \
	"$daemon_log" "the engine refused"
assert_grep "\[leg c\] \(/nonexistent/c\) is not a leg of the mirror" "$daemon_log" \
	"the new group refused"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.rate_max)" 33554432 "resync.rate_max"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.0.io_timeout)" 7 "leg a's io-timeout"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.io_timeout)" 4.5 "leg b's io-timeout"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.write_mostly)" 1 "leg b's write_mostly"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.0.write_mostly)" 0 "leg a's write_mostly"
grep -q '^RELOADING=1|MONOTONIC_USEC=[0-9]*$' "$log" || daemon_fail "no RELOADING=1"
test "$(grep -n -m1 '^READY=1$' "$log" | cut -d: -f1)" -gt \
	"$(grep -n -m1 '^RELOADING=1' "$log" | cut -d: -f1)" ||
	daemon_fail "READY=1 did not follow RELOADING=1"
# The new on-event program runs.
"$fusemirrorctl" fail "$mirror" b >/dev/null || daemon_fail "fusemirrorctl fail b"
wait_until 10 "the reloaded on-event program" grep -q '^LegFailed reload b' "$tmpdir/events.log"

# A file that does not parse changes nothing, and says why.
echo "this is not a key" >>"$tmpdir/m.conf"
reload_before=$(grep -c 'reload: done' "$daemon_log")
kill -s HUP "$daemon_pid"
wait_until 10 "the refused reload" grep -q 'reload: .*nothing changed' "$daemon_log"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.rate_max)" 33554432 "rate after a bad file"
assert_eq "$(grep -c 'reload: done' "$daemon_log")" "$reload_before" "a bad file's reload"

# Serving throughout: SIGHUP never stopped it.
head -c $mib /dev/urandom >"$tmpdir/data"
dd if="$tmpdir/data" of="$mirror" bs=1M count=1 oflag=direct conv=notrunc status=none ||
	daemon_fail "a write after the reloads"
dd if="$mirror" of="$tmpdir/back" bs=1M count=1 iflag=direct status=none ||
	daemon_fail "a read after the reloads"
cmp "$tmpdir/data" "$tmpdir/back" || daemon_fail "the data read back differs"
stop_daemon
check_daemon_log
