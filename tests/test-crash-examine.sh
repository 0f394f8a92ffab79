#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# What fusemirrorctl examine --json reads from the legs of a mirror through its life
# (metadata = internal), compared with what the daemon did:
#   - after create --assume-clean: both legs clean, events 1, no dirty region, one array UUID,
#     two leg UUIDs, every leg in_sync, sizes in bytes;
#   - while the daemon runs: dirty; after writes to 4 regions, exactly those 4 bits are on disk
#     on both legs (made durable before the writes);
#   - after a clean stop: clean, no dirty region, the same events on both legs, higher than
#     before;
#   - after SIGKILL right after writes: dirty, dirty_regions = the regions written, the same
#     events on both legs; the restart resyncs exactly those regions, after which a clean stop
#     leaves them clean again;
#   - after a leg is failed: the survivor's superblock has more events and records the failed
#     leg's role as failed; the failed leg's superblock is older.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires python3 dd truncate head
make_daemon_tmpdir
# The interpreter itself, not a wrapper (pyenv's shims cost a third of a second a call).
python=$(python3 -S -c 'import sys; print(sys.executable)') || fail "python3 does not run"

mib=1048576
size=$((32 * mib))
a=$tmpdir/a
b=$tmpdir/b
mirror=$tmpdir/mirror

# examine LEG: fusemirrorctl examine --json LEG into $tmpdir/LEG-NAME.json.
examine ()
{
	"$fusemirrorctl" examine --json "$1" >"$tmpdir/${1##*/}.json" ||
		fail "fusemirrorctl examine --json $1"
}

# field LEG EXPR: a Python expression over the JSON of LEG's last examine (j), printed.
field ()
{
	"$python" -S -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$tmpdir/${1##*/}.json" "$2"
}

# expect LEG EXPR VALUE WHAT: fail unless the expression prints VALUE.
expect ()
{
	_ex_got=$(field "$1" "$2")
	test "x$_ex_got" = "x$3" ||
		daemon_fail "examine ${1##*/} ($4): $2 is '$_ex_got', expected '$3'"
}

# examine_both WHAT STATE DIRTY: examine both legs; both have STATE, DIRTY dirty regions and the
# same events.  Sets events.
examine_both ()
{
	examine "$a"
	examine "$b"
	for _eb_leg in "$a" "$b"; do
		expect "$_eb_leg" "j['state']" "$2" "$1"
		expect "$_eb_leg" "j['dirty_regions']" "$3" "$1"
	done
	events=$(field "$a" "j['events']")
	expect "$b" "j['events']" "$events" "$1: the same events as leg a"
}

# ---- After create ------------------------------------------------------------------------------

truncate -s $((size + mib)) "$a" "$b"
write_config "$tmpdir/m.conf" ex metadata=internal region-size=1M "$a" "$b"
"$fusemirrorctl" create --assume-clean "$tmpdir/m.conf" >/dev/null || fail "fusemirrorctl create"
examine_both "after create" clean 0
assert_eq "$events" 1 "events after create"
for leg in "$a" "$b"; do
	expect "$leg" "j['legs']" 2 "after create"
	expect "$leg" "j['name']" ex "after create"
	expect "$leg" "j['data_offset']" $mib "after create"
	expect "$leg" "j['data_size']" $size "after create"
	expect "$leg" "j['region_size']" $mib "after create"
	expect "$leg" "j['recovery_offset']" None "after create"
	expect "$leg" "[r['role'] for r in j['roles']]" "['in_sync', 'in_sync']" "after create"
done
expect "$a" "j['leg_index']" 0 "after create"
expect "$b" "j['leg_index']" 1 "after create"
uuid=$(field "$a" "j['uuid']")
expect "$b" "j['uuid']" "$uuid" "after create: the array UUID"
test "$(field "$a" "j['leg_uuid']")" != "$(field "$b" "j['leg_uuid']")" ||
	fail "the legs have one leg UUID"
expect "$b" "[r['uuid'] for r in j['roles']]" "$(field "$a" "[r['uuid'] for r in j['roles']]")" \
	"after create: the roles table"

# ---- Running, writing, a clean stop ------------------------------------------------------------

start_daemon "$tmpdir/m.conf" "$mirror"
examine_both "while running" dirty 0
test "$events" -gt 1 || fail "events did not grow at the start ($events)"
head -c $((4 * mib)) /dev/urandom >"$tmpdir/data"
timeout 60 dd if="$tmpdir/data" of="$mirror" bs=1M seek=8 oflag=direct conv=notrunc status=none ||
	daemon_fail "dd to the mirror"
examine_both "after writing 4 regions" dirty 4
stop_daemon
before=$events
examine_both "after a clean stop" clean 0
test "$events" -gt "$before" || fail "events did not grow at the clean stop ($events)"

# ---- SIGKILL during writes ---------------------------------------------------------------------

start_daemon "$tmpdir/m.conf" "$mirror"
timeout 60 dd if=/dev/urandom of="$mirror" bs=64k count=256 seek=64 oflag=direct conv=notrunc \
	status=none ||
	daemon_fail "dd to the mirror"
kill -s KILL "$daemon_pid"
wait_daemon_exit 10
# Regions 4 to 19 were written less than 5 s ago: their bits are still set.
examine_both "after SIGKILL" dirty 16
sleep 1.5 # the dead mount's cached attributes expire: the restart sees it is dead
start_daemon "$tmpdir/m.conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.total)" $((16 * mib)) \
	"resync.total: the dirty regions examine counted"
wait_until 30 "state clean after the resync" state_is clean
stop_daemon
examine_both "after the resync and a clean stop" clean 0

# ---- A failed leg ------------------------------------------------------------------------------

start_daemon "$tmpdir/m.conf" "$mirror"
timeout 20 "$fusemirrorctl" fail "$mirror" b >&2 || daemon_fail "fusemirrorctl fail $mirror b"
stop_daemon
examine "$a"
examine "$b"
test "$(field "$a" "j['events']")" -gt "$(field "$b" "j['events']")" ||
	fail "leg a's events are not above failed leg b's"
expect "$a" "[r['role'] for r in j['roles']]" "['in_sync', 'failed']" "after failing b"
expect "$b" "[r['role'] for r in j['roles']]" "['in_sync', 'in_sync']" "failed leg b"
exit 0
