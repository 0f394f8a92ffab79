#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A leg that is an NBD export (issue 12): a mirror of a local file leg and a write-mostly leg
# served by a real nbdkit (file plugin, log filter), once over TCP on 127.0.0.1, once over a unix
# socket.  Each time: fusemirrorctl create from a config naming the leg by its URI, fusemirrord
# serves it, fio --verify=crc32c writes and reads through the mirror file, then
#   - the write-mostly remote leg got writes and not a single read of its data area while the
#     local leg served (nbdkit's log: superblock reads at assembly are below the data offset);
#   - after the stop, the data areas of the local leg and of the server's backing file are equal.
# The unix URI carries ?password=... (a parameter libnbd 1.14 ignores), the TCP one
# ?tls-psk-file=... (a local file's name, unused without TLS): neither value may appear in any
# output, log line, event, xattr, superblock or error message.  Then the remote leg fails for
# real (its server SIGKILLed), its failure is logged redacted, and a malformed URI in the config
# is refused in one line with exit status 78 (fusemirrord(8)).  On the way: create refuses an
# export holding an ext4 file system (libblkid reads it through libdmio), scan prints a config
# from a URI, replace puts a remote leg in the place of the local one, and the failed remote
# leg, its server back, is re-added by its URI from the bitmap, then failed and removed.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires nbdkit fio cmp dd truncate od awk
grep -q '^#define HAVE_LIBNBD 1' "${top_builddir:-..}/config.h" 2>/dev/null ||
	skip "libdmio was built without libnbd"
nbdkit file --version >/dev/null 2>&1 || skip "nbdkit has no file plugin"
nbdkit --filter=log null --version >/dev/null 2>&1 || skip "nbdkit has no log filter"
make_daemon_tmpdir

mib=1048576
leg_size=$((64 * mib))
data_offset=$mib
size=$((leg_size - data_offset)) # the mirror: the leg less its metadata
secret=hunter2-s3cr3t
psk=/etc/fusemirror/secret-psk-$$.keys
engine=$(fio_engine)

# start_nbdkit unix|tcp IMG LOG: serve IMG (nbdkit's file plugin, its requests logged in LOG) on
# a unix socket or a free port of 127.0.0.1; sets nbd_pid and nbd_where (the socket or the port).
start_nbdkit ()
{
	rm -f "$tmpdir/nbdkit.pid"
	if test "$1" = unix; then
		nbd_where=$tmpdir/nbd.sock
		rm -f "$nbd_where"
		nbdkit --unix "$nbd_where" --pidfile "$tmpdir/nbdkit.pid" --filter=log \
			file "$2" logfile="$3" || fail "nbdkit did not start on $nbd_where"
	else
		# nbdkit 1.32 cannot pick a port itself (-p 0): try random high ones.
		_tries=20
		while :; do
			nbd_where=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
			nbdkit -i 127.0.0.1 -p "$nbd_where" --pidfile "$tmpdir/nbdkit.pid" \
				--filter=log file "$2" logfile="$3" 2>"$tmpdir/nbdkit.err" && break
			_tries=$((_tries - 1))
			test $_tries -gt 0 || fail "nbdkit found no free port: $(cat "$tmpdir/nbdkit.err")"
		done
	fi
	wait_until 10 "the nbdkit pid file" test -s "$tmpdir/nbdkit.pid"
	nbd_pid=$(cat "$tmpdir/nbdkit.pid")
	cleanup_fn "kill -s KILL $nbd_pid 2>/dev/null"
}

# data_reads LOG FROM: the Read requests of nbdkit's LOG after its first FROM lines whose offset
# is at or past the data offset (1 MiB: hex offsets of 6 digits or more; nbdkit prints no
# leading zeroes).
data_reads ()
{
	tail -n "+$(($2 + 1))" "$1" | awk '
		/ Read id=/ && match($0, /offset=0x[0-9a-f]+/) {
			if (RLENGTH - 9 >= 6)
				n++
		}
		END { print n + 0 }'
}

# writes LOG FROM: the Write requests of LOG after its first FROM lines.
writes ()
{
	tail -n "+$(($2 + 1))" "$1" | grep -c ' Write id=' || true
}

# no_secret WHAT FILE...: fail when a secret of the URIs is in one of FILE.
no_secret ()
{
	_what=$1
	shift
	for _f in "$@"; do
		if grep -a -q -e "$secret" -e "$psk" "$_f"; then
			grep -a -n -e "$secret" -e "$psk" "$_f" | head -n 5 >&2
			daemon_fail "$_what: $_f shows a secret of the URI"
		fi
	done
}

cat >"$tmpdir/jobs.fio" <<EOF
[global]
filename=$tmpdir/mirror
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
size=8m

[rand-4k-1m-qd1-buffered]
rw=randwrite
bsrange=4k-1m
direct=0
ioengine=psync
offset=24m
size=16m
EOF

# run_case unix|tcp: the whole round on one transport.
run_case ()
{
	kind=$1
	dir=$tmpdir/$kind
	mkdir "$dir"
	truncate -s $leg_size "$dir/a.img" "$dir/b.img"
	start_nbdkit "$kind" "$dir/b.img" "$dir/nbd.log"
	if test "$kind" = unix; then
		uri="nbd+unix:///?socket=$nbd_where&password=$secret"
		shown="nbd+unix:///?socket=$nbd_where&password=***"
	else
		uri="nbd://127.0.0.1:$nbd_where/?tls-psk-file=$psk"
		shown="nbd://127.0.0.1:$nbd_where/?tls-psk-file=***"
	fi
	cat >"$dir/m.conf" <<EOF
[mirror]
name = nbd-$kind
metadata = internal
stop-timeout = 0

[leg a]
path = $dir/a.img

[leg b]
path = $uri
write-mostly = true
io-timeout = 10
EOF
	if test "$kind" = unix && command -v mkfs.ext4 >/dev/null 2>&1; then
		# libblkid cannot open a URI: create probes the export's first and last MiB.
		mkfs.ext4 -q -F "$dir/b.img" || fail "mkfs.ext4 $dir/b.img"
		status=0
		"$fusemirrorctl" create --assume-clean "$dir/m.conf" >"$dir/create.out" 2>&1 ||
			status=$?
		assert_eq "$status" 1 "exit status of create over an ext4 export"
		assert_grep "leg 'b' \(nbd\+unix:.*password=\*\*\*\) holds an ext4 file system: use --force" \
			"$dir/create.out" "create over an ext4 export"
		no_secret "create's refusal" "$dir/create.out"
		# Zeroed in place: nbdkit keeps the file open.
		dd if=/dev/zero of="$dir/b.img" bs=1M count=64 conv=notrunc status=none
	fi
	"$fusemirrorctl" create --assume-clean "$dir/m.conf" >"$dir/create.out" 2>&1 || {
		cat "$dir/create.out" >&2
		fail "fusemirrorctl create $dir/m.conf"
	}
	assert_grep "^ +1 +b +in_sync .*$(printf %s "$shown" | sed 's|[][\\.*^$?+(){}]|\\&|g')\$" \
		"$dir/create.out" "create shows the remote leg redacted"
	"$fusemirrorctl" examine "$uri" >"$dir/examine.out" 2>&1 ||
		fail "fusemirrorctl examine of the URI: $(cat "$dir/examine.out")"
	assert_grep "<- this leg" "$dir/examine.out" "examine of the URI"
	"$fusemirrorctl" scan "$dir/a.img" "$uri" >"$dir/scan.out" 2>"$dir/scan.err" ||
		fail "fusemirrorctl scan of a file and a URI: $(cat "$dir/scan.err")"
	assert_grep "^path = $(printf %s "$shown" | sed 's|[][\\.*^$?+(){}]|\\&|g')\$" "$dir/scan.out" \
		"scan prints the URI, redacted"
	assert_grep "^# .*secrets are shown as \*\*\*" "$dir/scan.out" "scan says it redacted"
	no_secret "create, examine and scan" "$dir/create.out" "$dir/examine.out" "$dir/scan.out" \
		"$dir/scan.err" "$dir/a.img" "$dir/b.img"

	start_daemon "$dir/m.conf" "$tmpdir/mirror"
	assert_eq "$(file_size "$tmpdir/mirror")" $size "the size of the mirror"
	assert_eq "$(xattr "$tmpdir/mirror" user.fusemirror.state)" clean "state at start"
	assert_eq "$(xattr "$tmpdir/mirror" user.fusemirror.leg.1.path)" "$shown" \
		"leg.1.path, redacted"
	"$fusemirrorctl" status "$tmpdir/mirror" >"$dir/status.out" 2>&1 ||
		fail "fusemirrorctl status: $(cat "$dir/status.out")"
	"$fusemirrorctl" status --json "$tmpdir/mirror" >"$dir/status.json" 2>&1 ||
		fail "fusemirrorctl status --json: $(cat "$dir/status.json")"
	assert_grep "password=\*\*\*|tls-psk-file=\*\*\*" "$dir/status.out" "status shows the URI"
	no_secret "status" "$dir/status.out" "$dir/status.json"

	# Assembly is over: from here on, every read of leg b's data area would be a served read.
	from=$(wc -l <"$dir/nbd.log")
	run_fio "$kind" "$tmpdir/jobs.fio"
	assert_eq "$(grep -Ec 'err= *0' "$tmpdir/fio-$kind.out")" 3 "fio jobs that ended well"
	read_mirror "$tmpdir/mirror" "$dir/through"
	not_zero "$dir/through"
	assert_eq "$(xattr "$tmpdir/mirror" user.fusemirror.state)" clean "state after fio"
	assert_eq "$(xattr "$tmpdir/mirror" user.fusemirror.error_bits)" 0x0 "error_bits"
	got_writes=$(writes "$dir/nbd.log" "$from")
	got_reads=$(data_reads "$dir/nbd.log" "$from")
	echo "$kind: the remote leg got $got_writes writes and $got_reads data reads" >&2
	test "$got_writes" -gt 0 || daemon_fail "the remote leg got no write (is the log filter on?)"
	assert_eq "$got_reads" 0 "reads of the write-mostly remote leg's data area"
	stop_daemon
	no_secret "the daemon's log" "$daemon_log"

	data_equal $size "$dir/a.img" "$dir/b.img"
	cmp -i $data_offset:0 -n $size "$dir/a.img" "$dir/through" >&2 ||
		daemon_fail "the local leg's data area differs from what the mirror served"
	no_secret "the superblocks" "$dir/a.img" "$dir/b.img"
}

run_case tcp
kill -s TERM "$nbd_pid"
run_case unix

# Assembled again (by the legs' UUIDs), the local leg is replaced by a second export, copied
# from it; then the first remote leg fails for real: its server killed, a write fails it; every
# word of it is redacted.
start_daemon "$tmpdir/unix/m.conf" "$tmpdir/mirror"
assert_eq "$(xattr "$tmpdir/mirror" user.fusemirror.leg.1.state)" in_sync "leg b after assembly"
first_pid=$nbd_pid
truncate -s $leg_size "$tmpdir/c.img"
nbdkit --unix "$tmpdir/c.sock" --pidfile "$tmpdir/c.pid" file "$tmpdir/c.img" ||
	fail "the second nbdkit did not start"
wait_until 10 "the second nbdkit's pid file" test -s "$tmpdir/c.pid"
cleanup_fn "kill -s KILL $(cat "$tmpdir/c.pid") 2>/dev/null"
uri_c="nbd+unix:///c?socket=$tmpdir/c.sock&password=$secret"
"$fusemirrorctl" replace --wait "$tmpdir/mirror" a "$uri_c" >"$tmpdir/replace.out" 2>&1 || {
	cat "$tmpdir/replace.out" >&2
	daemon_fail "fusemirrorctl replace of the local leg by a URI"
}
assert_eq "$(xattr "$tmpdir/mirror" user.fusemirror.leg.0.path)" \
	"nbd+unix:///c?socket=$tmpdir/c.sock&password=***" "the new leg 0, redacted"
assert_eq "$(xattr "$tmpdir/mirror" user.fusemirror.leg.0.name)" c "the new leg's name"
assert_eq "$(xattr "$tmpdir/mirror" user.fusemirror.state)" clean "state after the replace"
data_equal $size "$tmpdir/unix/a.img" "$tmpdir/c.img"
no_secret "replace" "$tmpdir/replace.out"
nbd_pid=$first_pid
kill -s KILL "$nbd_pid"
# Leg 0 (the second export) serves now; leg b is the write-mostly one.
dd if=/dev/urandom of="$tmpdir/mirror" bs=1M count=2 oflag=direct conv=notrunc status=none ||
	daemon_fail "a write with the remote leg gone must succeed on the local leg"
wait_until 20 "leg b to fail" sh -c \
	"test \"\$(getfattr --only-values --absolute-names -n user.fusemirror.leg.1.state '$tmpdir/mirror')\" = failed"
assert_eq "$(xattr "$tmpdir/mirror" user.fusemirror.state)" degraded "state with leg b failed"
# add of a URI whose server is gone: refused in one line, redacted.
status=0
"$fusemirrorctl" add "$tmpdir/mirror" "$uri" >"$tmpdir/add.out" 2>&1 || status=$?
assert_eq "$status" 1 "exit status of add with the server gone"
assert_eq "$(wc -l <"$tmpdir/add.out")" 1 "lines of add's refusal"
assert_grep "password=\*\*\*" "$tmpdir/add.out" "add's refusal names the URI"
# The server back: the failed leg is re-added by its URI (its superblock names its slot), caught
# up from the bitmap, then failed and removed by the operator.
start_nbdkit unix "$tmpdir/unix/b.img" "$tmpdir/unix/nbd-again.log"
"$fusemirrorctl" add "$tmpdir/mirror" "$uri" >"$tmpdir/readd.out" 2>&1 || {
	cat "$tmpdir/readd.out" >&2
	daemon_fail "fusemirrorctl add of the URI once its server is back"
}
assert_grep "^fusemirrorctl: leg re-added as index 1 " "$tmpdir/readd.out" "the re-add"
mirror=$tmpdir/mirror # for state_is
wait_until 30 "the re-added leg to catch up" state_is clean
assert_eq "$(xattr "$tmpdir/mirror" user.fusemirror.leg.1.state)" in_sync "leg b re-added"
"$fusemirrorctl" fail "$tmpdir/mirror" 1 2>"$tmpdir/fail.out" || daemon_fail "fail leg 1"
"$fusemirrorctl" remove "$tmpdir/mirror" 1 2>"$tmpdir/remove.out" ||
	daemon_fail "remove leg 1: $(cat "$tmpdir/remove.out")"
# The last slot removed, the mirror has one leg left.
assert_eq "$(xattr "$tmpdir/mirror" user.fusemirror.legs)" 1 "legs after the remove"
no_secret "re-add, fail and remove" "$tmpdir/readd.out" "$tmpdir/fail.out" "$tmpdir/remove.out"
stop_daemon
assert_grep "LegFailed: leg 1 \(b, nbd\+unix:///\?socket=.*password=\*\*\*\) failed" \
	"$daemon_log" "the LegFailed event"
assert_grep "LegAdded: leg 1 \(b, nbd\+unix:///\?socket=.*password=\*\*\*\) added .*re-added" \
	"$daemon_log" "the LegAdded event"
assert_grep "LegRemoved: leg 1 \(b, nbd\+unix:///\?socket=.*password=\*\*\*\) removed" \
	"$daemon_log" "the LegRemoved event"
no_secret "the rewritten config's comments" "$daemon_log"
no_secret "the daemon's log after the failure" "$daemon_log" "$tmpdir/add.out"

# A malformed URI: one line naming it (redacted), exit status 78, nothing touched.
cp "$tmpdir/unix/a.img" "$tmpdir/a.before"
sed "s|^path = nbd+unix:.*|path = nbd+unix:///?password=$secret|" "$tmpdir/unix/m.conf" \
	>"$tmpdir/bad.conf"
expect_daemon_exit 78 "path 'nbd+unix:///?password=***' names no socket" \
	-f -c "$tmpdir/bad.conf" "$tmpdir/mirror"
assert_eq "$(printf '%s\n' "$run_output" | wc -l)" 1 "lines of the config error"
case $run_output in
*"$secret"*) fail "the config error shows the password: $run_output" ;;
esac
cmp "$tmpdir/a.before" "$tmpdir/unix/a.img" || fail "a refused config touched a leg"
exit 0
