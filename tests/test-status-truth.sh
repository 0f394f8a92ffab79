#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The operator is told the truth (issue 10, item 5), on a real mount (metadata = internal):
#   - a config whose on-event program is missing or not executable, or whose resync-rate-min is
#     above resync-rate-max, is refused at start with exit status 78 and one line naming it,
#     and touches nothing;
#   - during a throttled resync --full, status in its three forms carries the array UUID, each
#     leg's UUID (those examine reads from the superblocks), the progress (done, total, rate,
#     ETA) and what is copied where: the rewritten leg says "rewrite" and stays in_sync;
#   - add says what it copies (a re-add from the bitmap, and how much), and a re-add the daemon
#     refuses (a copy of a live leg) is one line naming the slot and the reason, with no
#     "re-adding it" before it;
#   - a leg added on a tmpfs too small for the copy: the resync write fails with ENOSPC, and the
#     log says the leg, the data and leg offsets, the length and errno.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires cmp dd truncate head python3
make_daemon_tmpdir

mib=1048576
size=$((16 * mib))
a=$tmpdir/a
b=$tmpdir/b
mirror=$tmpdir/mirror
truncate -s $((size + mib)) "$a" "$b"

# The on-event program records its arguments, one event per line.
cat >"$tmpdir/on-event" <<EOF
#!/bin/sh
echo "\$*" >>"$tmpdir/events"
EOF
chmod +x "$tmpdir/on-event"

# ctl_out WHAT CMD...: run fusemirrorctl CMD, expecting exit status 0; output in $tmpdir/ctl.out.
ctl_out ()
{
	_co_what=$1
	shift
	_co_status=0
	"$fusemirrorctl" "$@" >"$tmpdir/ctl.out" 2>&1 || _co_status=$?
	cat "$tmpdir/ctl.out" >&2
	test "$_co_status" = 0 || daemon_fail "$_co_what: fusemirrorctl $* exited $_co_status"
}

# json_get FILE EXPR: a Python expression over the JSON object j of FILE.
json_get ()
{
	python3 -S -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$1" "$2"
}

# ---- Config checks at start: exit 78, one line, nothing touched ---------------------------------

write_config "$tmpdir/m.conf" truth metadata=internal region-size=1M resync-rate-min=1M \
	on-event="$tmpdir/on-event" "$a" "$b"
"$fusemirrorctl" create --assume-clean "$tmpdir/m.conf" >&2 || fail "fusemirrorctl create"
cp "$a" "$tmpdir/a.before"

# refused_at_start WHAT TEXT CONFIG: fusemirrord exits 78 saying TEXT in one line, leaving the
# mountpoint uncreated and leg a unchanged.
refused_at_start ()
{
	expect_daemon_exit 78 "$2" -f -c "$3" "$tmpdir/never"
	test "$(printf '%s\n' "$run_output" | wc -l)" -eq 1 ||
		fail "$1: not one line: $run_output"
	test ! -e "$tmpdir/never" || fail "$1: the mountpoint was created"
	cmp -s "$a" "$tmpdir/a.before" || fail "$1: leg a was written"
}

write_config "$tmpdir/missing.conf" truth metadata=internal on-event="$tmpdir/nope" "$a" "$b"
refused_at_start "a missing on-event program" \
	"fusemirrord: $tmpdir/missing.conf:4: on-event '$tmpdir/nope' cannot be run: No such file or directory" \
	"$tmpdir/missing.conf"
: >"$tmpdir/not-executable"
write_config "$tmpdir/noexec.conf" truth metadata=internal on-event="$tmpdir/not-executable" \
	"$a" "$b"
refused_at_start "an on-event program that is not executable" \
	"on-event '$tmpdir/not-executable' cannot be run: Permission denied" "$tmpdir/noexec.conf"
write_config "$tmpdir/dir.conf" truth metadata=internal on-event="$tmpdir" "$a" "$b"
refused_at_start "an on-event directory" "on-event '$tmpdir' is a directory, not a program" \
	"$tmpdir/dir.conf"
write_config "$tmpdir/rates.conf" truth metadata=internal resync-rate-max=10M \
	resync-rate-min=20M "$a" "$b"
refused_at_start "resync-rate-min above resync-rate-max" \
	"fusemirrord: $tmpdir/rates.conf:5: resync-rate-min (20.0 MiB/s) is above resync-rate-max (10.0 MiB/s)" \
	"$tmpdir/rates.conf"

# ---- A throttled resync --full: status in its three forms --------------------------------------

start_daemon "$tmpdir/m.conf" "$mirror"
head -c $size /dev/urandom >"$tmpdir/data"
dd if="$tmpdir/data" of="$mirror" bs=1M oflag=direct conv=notrunc status=none ||
	daemon_fail "dd to the mirror"
array_uuid=$(examine_field "$a" uuid)
uuid_a=$(examine_field "$a" leg_uuid)
uuid_b=$(examine_field "$b" leg_uuid)
assert_eq "$(xattr "$mirror" user.fusemirror.uuid)" "$array_uuid" "user.fusemirror.uuid"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.0.uuid)" "$uuid_a" "leg.0.uuid"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.uuid)" "$uuid_b" "leg.1.uuid"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.source)" "" "resync.source before"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.resync)" none "leg.1.resync before"

# 16 MiB at 1 MiB/s: about 16 s, so that the three forms below are read while it runs even on
# a loaded machine (at 4 MiB/s a CI run once read --export after the end); then unlimited.
ctl_out "set" set "$mirror" resync-rate-max=1M
ctl_out "resync --full" resync --full "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" resyncing "state during resync --full"
assert_eq "$(leg_state "$mirror" 1)" in_sync "leg 1 (rewritten) stays in sync"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.resync)" rewrite "leg.1.resync"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.0.resync)" source "leg.0.resync"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.source)" 0 "resync.source"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.total)" $size "resync.total"
sleep 1.2

status=0
"$fusemirrorctl" status "$mirror" >"$tmpdir/status" 2>&1 || status=$?
cat "$tmpdir/status" >&2
assert_eq $status 1 "status exit status during a resync"
assert_grep "^ +UUID : $array_uuid\$" "$tmpdir/status" "status: the array UUID"
assert_grep '^ +Resync : [0-9.]+% \([0-9]+ of 16777216 bytes, [0-9.]+ [KM]iB of 16\.00 MiB\) at [0-9.]+ [KM]iB/s, ETA [0-9]+s$' \
	"$tmpdir/status" "status: the progress"
assert_grep '^ +Resyncing : from leg 0 \(a\) onto leg 1 \(b, rewrite\)$' "$tmpdir/status" \
	"status: what is copied where"
assert_grep "^ +0 +a +in_sync +source +0 +0 +0 +$uuid_a +$a\$" "$tmpdir/status" "status: leg 0"
assert_grep "^ +1 +b +in_sync +rewrite +0 +0 +0 +$uuid_b +$b\$" "$tmpdir/status" "status: leg 1"

status=0
"$fusemirrorctl" status --json "$mirror" >"$tmpdir/status.json" || status=$?
assert_eq $status 1 "status --json exit status during a resync"
assert_eq "$(json_get "$tmpdir/status.json" 'j["uuid"]')" "$array_uuid" "--json uuid"
assert_eq "$(json_get "$tmpdir/status.json" '[l["uuid"] for l in j["legs"]]')" \
	"['$uuid_a', '$uuid_b']" "--json leg uuids"
assert_eq "$(json_get "$tmpdir/status.json" '[l["resync"] for l in j["legs"]]')" \
	"['source', 'rewrite']" "--json leg resync"
assert_eq "$(json_get "$tmpdir/status.json" '[l["state"] for l in j["legs"]]')" \
	"['in_sync', 'in_sync']" "--json leg states"
r='j["resync"]'
assert_eq "$(json_get "$tmpdir/status.json" "$r[\"active\"], $r[\"total\"], $r[\"source\"]")" \
	"(True, $size, 0)" "--json resync"
test "$(json_get "$tmpdir/status.json" "0 < $r[\"done\"] < $size and $r[\"rate\"] > 0")" = True ||
	daemon_fail "--json resync: done or rate: $(cat "$tmpdir/status.json")"
test "$(json_get "$tmpdir/status.json" "$r[\"eta\"] > 0")" = True ||
	daemon_fail "--json resync: no ETA: $(cat "$tmpdir/status.json")"

status=0
"$fusemirrorctl" status --export "$mirror" >"$tmpdir/status.env" || status=$?
assert_eq $status 1 "status --export exit status during a resync"
(
	eval "$(cat "$tmpdir/status.env")"
	test "$MIRROR_UUID" = "$array_uuid" && test "$MIRROR_LEG_0_UUID" = "$uuid_a" &&
		test "$MIRROR_LEG_1_UUID" = "$uuid_b" && test "$MIRROR_RESYNC_ACTIVE" = 1 &&
		test "$MIRROR_RESYNC_TOTAL" = $size && test "$MIRROR_RESYNC_DONE" -gt 0 &&
		test "$MIRROR_RESYNC_RATE" -gt 0 && test "$MIRROR_RESYNC_ETA" -gt 0 &&
		test "$MIRROR_RESYNC_SOURCE" = 0 && test "$MIRROR_LEG_1_RESYNC" = rewrite &&
		test "$MIRROR_LEG_1_STATE" = in_sync
) || daemon_fail "status --export during a resync: $(cat "$tmpdir/status.env")"

ctl_out "set" set "$mirror" resync-rate-max=0
timeout 60 "$fusemirrorctl" wait "$mirror" >&2 || daemon_fail "fusemirrorctl wait"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after resync --full"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.resync)" none "leg.1.resync after"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.source)" "" "resync.source after"
assert_eq "$(xattr "$mirror" user.fusemirror.resync.done)" $size "resync.done after"
"$fusemirrorctl" status "$mirror" >"$tmpdir/status" 2>&1 || daemon_fail "status after"
grep -q '^ *Resync' "$tmpdir/status" && daemon_fail "status after the resync shows a Resync line"
data_equal $size "$a" "$b"

# ---- add: what it copies, and a refused re-add --------------------------------------------------

# A copy of live leg a carries a's identity: the daemon refuses it, in one line naming the slot.
cp "$a" "$tmpdir/a-copy"
status=0
"$fusemirrorctl" add "$mirror" "$tmpdir/a-copy" >"$tmpdir/ctl.out" 2>&1 || status=$?
cat "$tmpdir/ctl.out" >&2
assert_eq $status 1 "add of a copy of a live leg"
assert_eq "$(cat "$tmpdir/ctl.out")" \
	"fusemirrorctl: add $mirror $tmpdir/a-copy (a re-add: its superblock names leg index 0): the daemon refused 'add $tmpdir/a-copy': $tmpdir/a-copy carries the identity of leg 0 (a), which is live: is it a copy?" \
	"the refusal of a re-add"

# Leg b fails, misses one region (1 MiB), and is re-added: the bitmap's 1 MiB, at 512 KiB/s.
# First the bits that resync --full set are cleared, once idle (5 s).
tries=200
until "$fusemirrorctl" examine --json "$a" | grep -q '"dirty_regions":0[,}]'; do
	tries=$((tries - 1))
	test $tries -gt 0 || daemon_fail "the bitmap bits of resync --full were never cleared"
	sleep 0.1
done
ctl_out "fail b" fail "$mirror" b
dd if=/dev/urandom of="$mirror" bs=1M count=1 seek=5 oflag=direct conv=notrunc status=none ||
	daemon_fail "dd while b is out"
# The minimum first: a maximum below it is refused.
ctl_out "set" set "$mirror" resync-rate-min=256K
ctl_out "set" set "$mirror" resync-rate-max=512K
ctl_out "re-add b" add "$mirror" "$b"
grep -Eq "^fusemirrorctl: leg re-added as index 1 of $mirror: $b, resyncing, resync started: 1\.00 MiB to copy, the regions it missed, from the write-intent bitmap \([0-9.]+ [KM]?i?B done\) \('fusemirrorctl wait $mirror' follows it\)\$" \
	"$tmpdir/ctl.out" || daemon_fail "what add says of a re-add: $(cat "$tmpdir/ctl.out")"
test "$(wc -l <"$tmpdir/ctl.out")" -eq 1 || daemon_fail "add said more than one line"
grep -q "re-adding it" "$tmpdir/ctl.out" && daemon_fail "add said 're-adding it'"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.resync)" bitmap "leg.1.resync of a re-add"
ctl_out "set" set "$mirror" resync-rate-max=0
timeout 60 "$fusemirrorctl" wait "$mirror" >&2 || daemon_fail "fusemirrorctl wait after re-add"
assert_eq "$(leg_state "$mirror" 1)" in_sync "leg 1 after its re-add"
data_equal $size "$a" "$b"

# ---- A resync write that fails: ENOSPC on a tmpfs leg, logged with leg, offsets and errno -------

mount_tmpfs "$tmpdir/small" 8M
c=$tmpdir/small/c
truncate -s $((size + mib)) "$c"
# The copy runs at full speed: add may find c resyncing, or failed already (exit status 1).
status=0
"$fusemirrorctl" add "$mirror" "$c" >"$tmpdir/ctl.out" 2>&1 || status=$?
cat "$tmpdir/ctl.out" >&2
case $status in
0) grep -Eq "^fusemirrorctl: leg added as index 2 of $mirror: $c, resyncing, resync started: 16\.00 MiB to copy, in full \([0-9.]+ [KMG]?i?B done\)" \
	"$tmpdir/ctl.out" ;;
1) grep -q "^fusemirrorctl: leg added as index 2 of $mirror: $c, but it has failed already (the daemon's log says why)$" \
	"$tmpdir/ctl.out" ;;
*) false ;;
esac || daemon_fail "what add says of a new leg (exit status $status): $(cat "$tmpdir/ctl.out")"
wait_until 30 "leg 2 to fail on its full tmpfs" sh -c \
	"test \"\$(getfattr --only-values --absolute-names -n user.fusemirror.leg.2.state '$mirror')\" = failed"
enospc="No space left on device \(errno 28, error bits 0x4\)"
assert_grep "IOError: resync write error on leg 2 \(c, $c\) at data offset [0-9]+ \(leg offset [0-9]+\) length [0-9]+: $enospc" \
	"$daemon_log" "the log's resync write error"
assert_grep "LegFailed: leg 2 \(c, $c\) failed: resync write error at data offset [0-9]+ \(leg offset [0-9]+\) length [0-9]+ while being resynced: No space left on device" \
	"$daemon_log" "the log's LegFailed of the resync write"
timeout 60 "$fusemirrorctl" wait "$mirror" >&2 || :
assert_eq "$(leg_state "$mirror" 0)" in_sync "leg 0 after c failed"
assert_eq "$(leg_state "$mirror" 1)" in_sync "leg 1 after c failed"

read_mirror "$mirror" "$tmpdir/through"
stop_daemon
cmp -n $size "$tmpdir/through" "$a" -i 0:$mib >&2 || daemon_fail "the mirror does not serve leg a"
grep -q "^LegFailed truth c$" "$tmpdir/events" || daemon_fail "on-event did not see LegFailed of c"
exit 0
