#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# fusemirrorctl status and fail, without a daemon: plain files carrying the user.fusemirror.*
# attributes that fusemirrord answers stand for clean, degraded and failed mirrors.  Checks
#   - the text report, --json (parsed by python3) and --export (compared, and read back by the
#     shell), with names and paths that need escaping;
#   - the exit statuses: 0 clean, 1 degraded or unknown state, 2 failed, 4 not a mirror / no
#     such file / malformed attributes, 2 usage errors, 1 for fail on an unknown leg;
#   - fail's resolution of a leg name or index to the "fail I" command (shown when it refuses
#     to send it to a file that no daemon serves; when bindfs can be mounted, sent through it);
#   - that the commands and options of --help and of man/fusemirrorctl.8 are the same, and that
#     the page lists every status attribute and exit status.
#
# Run by automake with srcdir, top_srcdir and top_builddir in the environment; by hand:
#   srcdir=tests top_srcdir=. top_builddir=_build sh tests/test-ctl-status.sh

if test -z "${srcdir:-}"; then
	srcdir=$(dirname "$0")
fi
. "$srcdir/functions.sh"
. "$srcdir/ctl-functions.sh"
set -u

top_srcdir=${top_srcdir:-$srcdir/..}
top_builddir=${top_builddir:-..}
ctl=$top_builddir/src/ctl/fusemirrorctl
page=$top_srcdir/man/fusemirrorctl.8
test -x "$ctl" || fail "$ctl is not built"
test -f "$page" || fail "$page not found"
requires setfattr getfattr python3 awk sed od

# The messages checked below are the C locale's (strerror texts).
LC_ALL=C
export LC_ALL
unset LANGUAGE

make_tmpdir

# ---- Simulated mirrors --------------------------------------------------------------------------

probe=$tmpdir/probe
: >"$probe"
set_attrs "$probe" state=clean 2>/dev/null ||
	skip "cannot set user.* extended attributes in $tmpdir (mount it with user_xattr)"

# A clean mirror of 1 GiB with two legs.
clean=$tmpdir/clean.img
truncate -s 1G "$clean" || fail "truncate"
set_attrs "$clean" name=data state=clean legs=2 events=1 error_bits=0x0 \
	leg.0.name=a leg.0.path=/var/tmp/a.img leg.0.state=in_sync \
	leg.0.read_errors=0 leg.0.write_errors=0 \
	leg.1.name=b leg.1.path=/dev/sdc leg.1.state=in_sync \
	leg.1.read_errors=0 leg.1.write_errors=0 || fail "setfattr on $clean"

# A degraded mirror of 1.5 MiB with three legs: b failed (bit 1), c's path needs quoting.
nl='
'
tab=$(printf '\t')
odd_path="/var/tmp/leg c's \"copy\" \$HOME;${tab}x"
degraded=$tmpdir/degraded.img
truncate -s 1572864 "$degraded" || fail "truncate"
set_attrs "$degraded" name=db state=degraded legs=3 events=5 error_bits=0x2 \
	leg.0.name=a leg.0.path=/var/tmp/a.img leg.0.state=in_sync \
	leg.0.read_errors=0 leg.0.write_errors=0 \
	leg.1.name=b leg.1.path=/dev/sdc leg.1.state=failed \
	leg.1.read_errors=7 leg.1.write_errors=1 \
	leg.2.name=c "leg.2.path=$odd_path" leg.2.state=in_sync \
	leg.2.read_errors=0 leg.2.write_errors=18446744073709551615 ||
	fail "setfattr on $degraded"

# A failed mirror: every leg failed.
failed=$tmpdir/failed.img
truncate -s 512 "$failed" || fail "truncate"
set_attrs "$failed" name=gone state=failed legs=1 events=9 error_bits=0x1 \
	leg.0.name=only leg.0.path=/var/tmp/only.img leg.0.state=failed \
	leg.0.read_errors=3 leg.0.write_errors=4 || fail "setfattr on $failed"

# copy_mirror FROM TO: a copy of a simulated mirror, attributes and all.
copy_mirror ()
{
	cp --preserve=xattr "$1" "$2"
}

# ---- status: the text report --------------------------------------------------------------------

run "$ctl" status "$clean"
expect_rc 0 "status of a clean mirror"
out_has "^$clean:\$" "status (clean) header"
out_has '^ +Name : data$' "status (clean) name"
out_has '^ +State : clean$' "status (clean) state"
out_has '^ +Size : 1073741824 \(1\.00 GiB\)$' "status (clean) size"
out_has '^ +Legs : 2$' "status (clean) legs"
out_has '^ +Events : 1$' "status (clean) events"
out_has '^ +Error Bits : 0x0$' "status (clean) error bits"
out_has '^ +Index +Name +State +Read Errors +Write Errors +Path$' "status (clean) leg table header"
out_has '^ +0 +a +in_sync +0 +0 +/var/tmp/a\.img$' "status (clean) leg 0"
out_has '^ +1 +b +in_sync +0 +0 +/dev/sdc$' "status (clean) leg 1"
# No daemon behind a plain file: said on stderr, the report is still made.
err_has 'warning: .*not on a FUSE file system' "status of a plain file"

run "$ctl" status "$degraded"
expect_rc 1 "status of a degraded mirror"
out_has '^ +State : degraded$' "status (degraded) state"
out_has '^ +Size : 1572864 \(1\.50 MiB\)$' "status (degraded) size"
out_has '^ +Legs : 3$' "status (degraded) legs"
out_has '^ +Events : 5$' "status (degraded) events"
out_has '^ +Error Bits : 0x2$' "status (degraded) error bits"
out_has '^ +1 +b +failed +7 +1 +/dev/sdc$' "status (degraded) failed leg"
# The tab of the path is escaped, so that the row stays one line.
# shellcheck disable=SC2016 # a regular expression, not an expansion
out_has '^ +2 +c +in_sync +0 +18446744073709551615 +/var/tmp/leg c.s "copy" \$HOME;\\x09x$' \
	"status (degraded) leg with an odd path"
test "$(wc -l <"$tmpdir/out")" -eq 12 || problem "status (degraded) is not 12 lines"

run "$ctl" status "$failed"
expect_rc 3 "status of a failed mirror"
out_has '^ +State : failed$' "status (failed) state"
out_has '^ +Size : 512 \(512 B\)$' "status (failed) size"
out_has '^ +0 +only +failed +3 +4 +/var/tmp/only\.img$' "status (failed) leg"

# A state this version does not know (a newer daemon's) is printed, and exits as degraded.
resync=$tmpdir/resync.img
copy_mirror "$clean" "$resync" &&
	set_attrs "$resync" state=resyncing leg.1.state=resyncing || fail "setfattr on $resync"
run "$ctl" status "$resync"
expect_rc 1 "status of a resyncing mirror"
out_has '^ +State : resyncing$' "status (resyncing) state"
out_has '^ +1 +b +resyncing +0 +0 +/dev/sdc$' "status (resyncing) leg"

# ---- status --json ------------------------------------------------------------------------------

# check_json FILE EXPECTED-PYTHON-LITERAL: stdout is one JSON object equal to the expected one.
check_json ()
{
	if ! python3 -c '
import json, sys
with open(sys.argv[1]) as f:
    text = f.read()
got = json.loads(text)
want = eval(sys.argv[2])
if text.count("\n") != 1 or not text.endswith("\n"):
    sys.exit("not one line")
if list(got) != list(want):
    sys.exit("keys %r, expected %r" % (list(got), list(want)))
if got != want:
    for k in want:
        if got[k] != want[k]:
            print("%s: %r, expected %r" % (k, got[k], want[k]))
    sys.exit("values differ")
' "$tmpdir/out" "$2" >"$tmpdir/json.log" 2>&1; then
		problem "status --json of $1:"
		sed 's/^/    /' "$tmpdir/json.log" "$tmpdir/out"
	fi
}

run "$ctl" status --json "$clean"
expect_rc 0 "status --json of a clean mirror"
check_json "$clean" "{
	'file': '$clean', 'name': 'data', 'uuid': None, 'state': 'clean', 'size': 1073741824,
	'legs': [
		{'index': 0, 'name': 'a', 'path': '/var/tmp/a.img', 'state': 'in_sync',
		 'resync': None, 'uuid': None, 'read_errors': 0, 'write_errors': 0, 'corrected_errors': None, 'io_timeout': None, 'slow': False, 'behind': None, 'write_behind': None, 'reconnect': None},
		{'index': 1, 'name': 'b', 'path': '/dev/sdc', 'state': 'in_sync',
		 'resync': None, 'uuid': None, 'read_errors': 0, 'write_errors': 0, 'corrected_errors': None, 'io_timeout': None, 'slow': False, 'behind': None, 'write_behind': None, 'reconnect': None}],
	'events': 1, 'error_bits': '0x0', 'resync': None, 'replace': None, 'max_read_errors': None, 'check': None}"

run "$ctl" status --json "$degraded"
expect_rc 1 "status --json of a degraded mirror"
check_json "$degraded" "{
	'file': '$degraded', 'name': 'db', 'uuid': None, 'state': 'degraded', 'size': 1572864,
	'legs': [
		{'index': 0, 'name': 'a', 'path': '/var/tmp/a.img', 'state': 'in_sync',
		 'resync': None, 'uuid': None, 'read_errors': 0, 'write_errors': 0, 'corrected_errors': None, 'io_timeout': None, 'slow': False, 'behind': None, 'write_behind': None, 'reconnect': None},
		{'index': 1, 'name': 'b', 'path': '/dev/sdc', 'state': 'failed',
		 'resync': None, 'uuid': None, 'read_errors': 7, 'write_errors': 1, 'corrected_errors': None, 'io_timeout': None, 'slow': False, 'behind': None, 'write_behind': None, 'reconnect': None},
		{'index': 2, 'name': 'c', 'path': '/var/tmp/leg c\\'s \"copy\" \$HOME;\\tx',
		 'state': 'in_sync', 'resync': None, 'uuid': None, 'read_errors': 0,
		 'write_errors': 18446744073709551615, 'corrected_errors': None, 'io_timeout': None, 'slow': False, 'behind': None, 'write_behind': None, 'reconnect': None}],
	'events': 5, 'error_bits': '0x2', 'resync': None, 'replace': None, 'max_read_errors': None, 'check': None}"

run "$ctl" status --json "$failed"
expect_rc 3 "status --json of a failed mirror"
check_json "$failed" "{
	'file': '$failed', 'name': 'gone', 'uuid': None, 'state': 'failed', 'size': 512,
	'legs': [{'index': 0, 'name': 'only', 'path': '/var/tmp/only.img', 'state': 'failed',
		  'resync': None, 'uuid': None, 'read_errors': 3, 'write_errors': 4, 'corrected_errors': None, 'io_timeout': None, 'slow': False, 'behind': None, 'write_behind': None, 'reconnect': None}],
	'events': 9, 'error_bits': '0x1', 'resync': None, 'replace': None, 'max_read_errors': None, 'check': None}"

# A daemon that corrects read errors: a Corrected column and the limit, in every form.
fixing=$tmpdir/fixing.img
copy_mirror "$clean" "$fixing" || fail "cp"
set_attrs "$fixing" max_read_errors=20 leg.0.corrected_errors=3 leg.1.corrected_errors=0 ||
	fail "setfattr on $fixing"
run "$ctl" status "$fixing"
expect_rc 0 "status of a mirror that corrects read errors"
out_has '^Read Err Limit : 20$' "status shows max-read-errors"
out_has '^ +Index +Name +State +Read Errors +Write Errors +Corrected +Path$' \
	"status (corrected errors) leg table header"
out_has '^ +0 +a +in_sync +0 +0 +3 +/var/tmp/a\.img$' "status shows leg 0's corrected errors"
run "$ctl" status --json "$fixing"
python3 -c '
import json, sys
got = json.load(open(sys.argv[1]))
assert got["max_read_errors"] == 20, got
assert [l["corrected_errors"] for l in got["legs"]] == [3, 0], got
' "$tmpdir/out" >"$tmpdir/json.log" 2>&1 || {
	problem "status --json does not give the corrected errors:"
	sed 's/^/    /' "$tmpdir/json.log" "$tmpdir/out"
}
run "$ctl" status --export "$fixing"
out_has '^MIRROR_MAX_READ_ERRORS=20$' "status --export gives max-read-errors"
out_has '^MIRROR_LEG_0_CORRECTED_ERRORS=3$' "status --export gives leg 0's corrected errors"
out_has '^MIRROR_LEG_1_CORRECTED_ERRORS=0$' "status --export gives leg 1's corrected errors"

# A remote leg trying to reconnect: a line under the table, and in --json and --export.
remote=$tmpdir/remote.img
copy_mirror "$clean" "$remote" || fail "cp"
set_attrs "$remote" leg.0.reconnect=idle "leg.1.reconnect=waiting 4 s, try 3 of 60" ||
	fail "setfattr on $remote"
run "$ctl" status "$remote"
expect_rc 0 "status of a mirror with a leg reconnecting"
out_has '^leg 1 reconnect: waiting 4 s, try 3 of 60$' "status shows leg 1's reconnect"
! grep -q '^leg 0 reconnect' "$tmpdir/out" || problem "status speaks of leg 0's idle reconnect"
run "$ctl" status --json "$remote"
python3 -c '
import json, sys
got = json.load(open(sys.argv[1]))
assert [l["reconnect"] for l in got["legs"]] == ["idle", "waiting 4 s, try 3 of 60"], got
' "$tmpdir/out" >"$tmpdir/json.log" 2>&1 || {
	problem "status --json does not give the reconnect:"
	sed 's/^/    /' "$tmpdir/json.log" "$tmpdir/out"
}
run "$ctl" status --export "$remote"
out_has "^MIRROR_LEG_1_RECONNECT='waiting 4 s, try 3 of 60'\$" "status --export gives leg 1's reconnect"

# Every character that JSON must escape, and UTF-8 that it must not.
escapes=$tmpdir/escapes.img
copy_mirror "$clean" "$escapes" || fail "cp"
set_attrs "$escapes" "name=q\"b\\s/${tab}n${nl}cr$(printf '\r\001\037')z" leg.0.name=é€ ||
	fail "setfattr on $escapes"
run "$ctl" status --json "$escapes"
expect_rc 0 "status --json with escapes"
python3 -c '
import json, sys
got = json.load(open(sys.argv[1]))
assert got["name"] == "q\"b\\s/\tn\ncr\r\x01\x1fz", repr(got["name"])
assert got["legs"][0]["name"] == "\u00e9\u20ac", repr(got["legs"][0]["name"])
' "$tmpdir/out" >"$tmpdir/json.log" 2>&1 || {
	problem "status --json does not escape names right:"
	sed 's/^/    /' "$tmpdir/json.log" "$tmpdir/out"
}
# In the text report, control characters are escaped too.
run "$ctl" status "$escapes"
out_has '^ +Name : q"b\\\\s/\\x09n\\x0acr\\x0d\\x01\\x1fz$' "status escapes control characters"

# ---- status --export ----------------------------------------------------------------------------

run "$ctl" status --export "$degraded"
expect_rc 1 "status --export of a degraded mirror"
cat >"$tmpdir/expected" <<EOF
MIRROR_FILE=$degraded
MIRROR_NAME=db
MIRROR_STATE=degraded
MIRROR_SIZE=1572864
MIRROR_LEGS=3
MIRROR_EVENTS=5
MIRROR_ERROR_BITS=0x2
MIRROR_LEG_0_NAME=a
MIRROR_LEG_0_PATH=/var/tmp/a.img
MIRROR_LEG_0_STATE=in_sync
MIRROR_LEG_0_READ_ERRORS=0
MIRROR_LEG_0_WRITE_ERRORS=0
MIRROR_LEG_1_NAME=b
MIRROR_LEG_1_PATH=/dev/sdc
MIRROR_LEG_1_STATE=failed
MIRROR_LEG_1_READ_ERRORS=7
MIRROR_LEG_1_WRITE_ERRORS=1
MIRROR_LEG_2_NAME=c
MIRROR_LEG_2_PATH='/var/tmp/leg c'\\''s "copy" \$HOME;${tab}x'
MIRROR_LEG_2_STATE=in_sync
MIRROR_LEG_2_READ_ERRORS=0
MIRROR_LEG_2_WRITE_ERRORS=18446744073709551615
EOF
if ! cmp -s "$tmpdir/expected" "$tmpdir/out"; then
	problem "status --export of $degraded differs from the expected (-) lines:"
	diff "$tmpdir/expected" "$tmpdir/out" | sed 's/^/    /'
fi
# And a shell reads back the exact values, whatever they hold.
(
	unset MIRROR_LEG_2_PATH
	eval "$(cat "$tmpdir/out")"
	test "$MIRROR_LEG_2_PATH" = "$odd_path" && test "$MIRROR_STATE" = degraded
) || problem "eval of status --export does not give back the leg path"

run "$ctl" status --export "$escapes"
expect_rc 0 "status --export with escapes"
(
	eval "$(cat "$tmpdir/out")"
	test "$MIRROR_NAME" = "q\"b\\s/${tab}n${nl}cr$(printf '\r\001\037')z"
) || problem "eval of status --export does not give back a name with control characters"

# ---- status of a resync: UUIDs, progress, ETA and what is copied where, in the three forms ------

# A daemon with superblocks, in a resync --full: leg 0 the source, leg 1 rewritten, 25 MiB of
# 100 MiB done at 5 MiB/s: 15 s left.
au=0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9
u0=11111111-2222-4333-8444-555555555555
u1=66666666-7777-4888-9999-aaaaaaaaaaaa
rs=$tmpdir/rs.img
copy_mirror "$clean" "$rs" &&
	set_attrs "$rs" state=resyncing uuid=$au resync.done=26214400 resync.total=104857600 \
		resync.rate=5242880 resync.source=0 leg.0.uuid=$u0 leg.1.uuid=$u1 \
		leg.0.resync=source leg.1.resync=rewrite || fail "setfattr on $rs"
run "$ctl" status "$rs"
expect_rc 1 "status of a resync"
out_has "^ +UUID : $au\$" "status (resync) array UUID"
out_has '^ +Resync : 25\.0% \(26214400 of 104857600 bytes, 25\.00 MiB of 100\.00 MiB\) at 5\.00 MiB/s, ETA 15s$' \
	"status (resync) progress"
out_has '^ +Resyncing : from leg 0 \(a\) onto leg 1 \(b, rewrite\)$' "status (resync) what onto what"
out_has '^ +Index +Name +State +Resync +Read Errors +Write Errors +UUID +Path$' \
	"status (resync) leg table header"
out_has "^ +0 +a +in_sync +source +0 +0 +$u0 +/var/tmp/a\.img\$" "status (resync) leg 0"
out_has "^ +1 +b +in_sync +rewrite +0 +0 +$u1 +/dev/sdc\$" "status (resync) leg 1"

run "$ctl" status --json "$rs"
expect_rc 1 "status --json of a resync"
check_json "$rs" "{
	'file': '$rs', 'name': 'data', 'uuid': '$au', 'state': 'resyncing', 'size': 1073741824,
	'legs': [
		{'index': 0, 'name': 'a', 'path': '/var/tmp/a.img', 'state': 'in_sync',
		 'resync': 'source', 'uuid': '$u0', 'read_errors': 0, 'write_errors': 0, 'corrected_errors': None, 'io_timeout': None, 'slow': False, 'behind': None, 'write_behind': None, 'reconnect': None},
		{'index': 1, 'name': 'b', 'path': '/dev/sdc', 'state': 'in_sync',
		 'resync': 'rewrite', 'uuid': '$u1', 'read_errors': 0, 'write_errors': 0, 'corrected_errors': None, 'io_timeout': None, 'slow': False, 'behind': None, 'write_behind': None, 'reconnect': None}],
	'events': 1, 'error_bits': '0x0',
	'resync': {'active': True, 'done': 26214400, 'total': 104857600, 'rate': 5242880,
		   'eta': 15, 'source': 0}, 'replace': None, 'max_read_errors': None, 'check': None}"

run "$ctl" status --export "$rs"
expect_rc 1 "status --export of a resync"
cat >"$tmpdir/expected" <<EOF
MIRROR_FILE=$rs
MIRROR_NAME=data
MIRROR_UUID=$au
MIRROR_STATE=resyncing
MIRROR_SIZE=1073741824
MIRROR_LEGS=2
MIRROR_EVENTS=1
MIRROR_ERROR_BITS=0x0
MIRROR_RESYNC_ACTIVE=1
MIRROR_RESYNC_DONE=26214400
MIRROR_RESYNC_TOTAL=104857600
MIRROR_RESYNC_RATE=5242880
MIRROR_RESYNC_ETA=15
MIRROR_RESYNC_SOURCE=0
MIRROR_LEG_0_NAME=a
MIRROR_LEG_0_PATH=/var/tmp/a.img
MIRROR_LEG_0_STATE=in_sync
MIRROR_LEG_0_READ_ERRORS=0
MIRROR_LEG_0_WRITE_ERRORS=0
MIRROR_LEG_0_RESYNC=source
MIRROR_LEG_0_UUID=$u0
MIRROR_LEG_1_NAME=b
MIRROR_LEG_1_PATH=/dev/sdc
MIRROR_LEG_1_STATE=in_sync
MIRROR_LEG_1_READ_ERRORS=0
MIRROR_LEG_1_WRITE_ERRORS=0
MIRROR_LEG_1_RESYNC=rewrite
MIRROR_LEG_1_UUID=$u1
EOF
if ! cmp -s "$tmpdir/expected" "$tmpdir/out"; then
	problem "status --export of $rs differs from the expected (-) lines:"
	diff "$tmpdir/expected" "$tmpdir/out" | sed 's/^/    /'
fi

# A check that found mismatches (issue 11): the Check and Mismatches lines, --json, --export.
copy_mirror "$rs" "$rs.chk" && set_attrs "$rs.chk" state=checking resync.source= \
	leg.0.resync=none leg.1.resync=none mismatch_cnt=28 \
	"mismatches=1052672+8192 20971008+1024" || fail "setfattr"
run "$ctl" status "$rs.chk"
expect_rc 1 "status of a check"
out_has '^ +Check : 25\.0% \(26214400 of 104857600 bytes compared\)$' "status (check) progress"
out_has '^ +Mismatches : 28 sectors at 1052672\+8192 20971008\+1024$' "status (check) mismatches"
run "$ctl" status --json "$rs.chk"
python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))["check"]
assert c == {"running": True, "mismatch_cnt": 28,
	     "mismatches": ["1052672+8192", "20971008+1024"]}, c
' "$tmpdir/out" >"$tmpdir/json.log" 2>&1 ||
	problem "status --json of a check: $(cat "$tmpdir/json.log")"
run "$ctl" status --export "$rs.chk"
out_has "^MIRROR_CHECK_ACTIVE=1\$" "status --export of a check: active"
out_has "^MIRROR_MISMATCH_CNT=28\$" "status --export of a check: count"
out_has "^MIRROR_MISMATCHES='1052672\+8192 20971008\+1024'\$" "status --export of a check: ranges"

# A replace running (issue 11): the Replacing line, --json, --export; none when it is over.
copy_mirror "$rs" "$rs.rp" && set_attrs "$rs.rp" replace.leg=1 replace.by=0 || fail "setfattr"
run "$ctl" status "$rs.rp"
out_has '^ +Replacing : leg 1 \(b\) by leg 0 \(a\)$' "status (replace) line"
run "$ctl" status --json "$rs.rp"
python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["replace"]
assert r == {"running": True, "leg": 1, "by": 0}, r
' "$tmpdir/out" >"$tmpdir/json.log" 2>&1 ||
	problem "status --json of a replace: $(cat "$tmpdir/json.log")"
run "$ctl" status --export "$rs.rp"
out_has "^MIRROR_REPLACE_LEG=1\$" "status --export of a replace: leg"
out_has "^MIRROR_REPLACE_BY=0\$" "status --export of a replace: by"
set_attrs "$rs.rp" replace.leg=none replace.by=none || fail "setfattr"
run "$ctl" status "$rs.rp"
grep -q -e '^ *Replacing' "$tmpdir/out" && problem "status shows a replace that is over"
run "$ctl" status --json "$rs.rp"
python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["replace"]
assert r == {"running": False, "leg": None, "by": None}, r
' "$tmpdir/out" >"$tmpdir/json.log" 2>&1 ||
	problem "status --json after a replace: $(cat "$tmpdir/json.log")"
run "$ctl" status --export "$rs.rp"
out_has "^MIRROR_REPLACE_LEG=none\$" "status --export after a replace"
set_attrs "$rs.rp" replace.leg=x || fail "setfattr"
run "$ctl" status "$rs.rp"
expect_rc 4 "status with a malformed replace.leg"

# Once it is over: no Resync lines nor column, the last progress kept in --json, no ETA.
copy_mirror "$rs" "$rs.done" && set_attrs "$rs.done" state=clean resync.done=104857600 \
	resync.rate=0 resync.source= leg.0.resync=none leg.1.resync=none || fail "setfattr"
run "$ctl" status "$rs.done"
expect_rc 0 "status after a resync"
grep -q -e '^ *Resync' "$tmpdir/out" && problem "status after a resync shows a Resync line"
out_has '^ +Index +Name +State +Read Errors +Write Errors +UUID +Path$' \
	"status after a resync: no Resync column"
run "$ctl" status --json "$rs.done"
python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["resync"]
assert r == {"active": False, "done": 104857600, "total": 104857600, "rate": 0, "eta": None,
	     "source": None}, r
' "$tmpdir/out" >"$tmpdir/json.log" 2>&1 ||
	problem "status --json after a resync: $(cat "$tmpdir/json.log")"
run "$ctl" status --export "$rs.done"
grep -q -e '^MIRROR_RESYNC_ETA=' -e '^MIRROR_RESYNC_SOURCE=' "$tmpdir/out" &&
	problem "status --export after a resync gives an ETA or a source"
out_has '^MIRROR_RESYNC_ACTIVE=0$' "status --export after a resync"

# A write-mostly leg left behind (write-behind): "(behind N)" after its state, and in --json.
copy_mirror "$rs" "$rs.wb" && set_attrs "$rs.wb" "leg.1.behind=3 writes, 12288 bytes" \
	"leg.0.behind=0 writes, 0 bytes" || fail "setfattr"
run "$ctl" status "$rs.wb"
out_has '^ +1 +b +in_sync \(behind 3\) ' "status of a leg behind"
out_has '^ +0 +a +in_sync +source ' "status of a leg not behind"
run "$ctl" status --json "$rs.wb"
python3 -c '
import json, sys
legs = json.load(open(sys.argv[1]))["legs"]
assert [l["behind"] for l in legs] == [0, 3], legs
' "$tmpdir/out" >"$tmpdir/json.log" 2>&1 ||
	problem "status --json of a leg behind: $(cat "$tmpdir/json.log")"

# A leg UUID, a source or a behind that is not one is refused, naming the attribute.
for broken in "leg.1.uuid=xyz:user.fusemirror.leg.1.uuid" \
	"leg.1.behind=3:user.fusemirror.leg.1.behind" \
	"resync.source=x:user.fusemirror.resync.source" \
	"resync.source=64:user.fusemirror.resync.source"; do
	copy_mirror "$rs" "$tmpdir/bad-rs.img" && set_attrs "$tmpdir/bad-rs.img" "${broken%%:*}" ||
		fail "setfattr"
	run "$ctl" status "$tmpdir/bad-rs.img"
	expect_rc 4 "status with ${broken%%:*}"
	err_has "${broken#*:}" "status with ${broken%%:*}"
done

# ---- status: what cannot be read ----------------------------------------------------------------

plain=$tmpdir/plain.img
truncate -s 1M "$plain" || fail "truncate"
run "$ctl" status "$plain"
expect_rc 4 "status of a plain file"
err_has "^fusemirrorctl: status $plain: not a fusemirror mirror" "status of a plain file"
test ! -s "$tmpdir/out" || problem "status of a plain file printed on stdout"
test "$(wc -l <"$tmpdir/err")" -eq 1 || problem "status of a plain file: not one line on stderr"

run "$ctl" status "$tmpdir/missing.img"
expect_rc 4 "status of a missing file"
err_has "^fusemirrorctl: status $tmpdir/missing.img: No such file or directory\$" \
	"status of a missing file"

run "$ctl" status --json "$plain"
expect_rc 4 "status --json of a plain file"

# Malformed or missing attributes: exit 4, naming the attribute.
bad=$tmpdir/bad.img
for broken in "legs=x:user.fusemirror.legs" "legs=65:user.fusemirror.legs" \
	"legs=3:user.fusemirror.leg.2.name" "events=-1:user.fusemirror.events" \
	"error_bits=2:user.fusemirror.error_bits" "error_bits=0xz:user.fusemirror.error_bits" \
	"leg.1.read_errors=1 :user.fusemirror.leg.1.read_errors"; do
	copy_mirror "$clean" "$bad" && set_attrs "$bad" "${broken%%:*}" ||
		fail "setfattr on $bad"
	run "$ctl" status "$bad"
	expect_rc 4 "status with ${broken%%:*}"
	err_has "^fusemirrorctl: status $bad: .*${broken#*:}" "status with ${broken%%:*}"
done
copy_mirror "$clean" "$bad" && setfattr -x user.fusemirror.name "$bad" ||
	fail "setfattr -x on $bad"
run "$ctl" status "$bad"
expect_rc 4 "status without a name"
err_has "user\.fusemirror\.name: No data available" "status without a name"

# ---- Usage errors -------------------------------------------------------------------------------

# usage_error WHAT ARGS...: exit 2, nothing on stdout, one line and a hint to --help on stderr.
usage_error ()
{
	_what=$1
	shift
	run "$ctl" "$@"
	expect_rc 2 "$_what"
	test ! -s "$tmpdir/out" || problem "$_what: printed on stdout"
	if test "$(wc -l <"$tmpdir/err")" -ne 2 ||
		! sed -n 2p "$tmpdir/err" | grep -q -e "--help"; then
		problem "$_what: not a message and a hint to --help on stderr:"
		sed 's/^/    /' "$tmpdir/err"
	fi
}
usage_error "no command"
usage_error "an unknown command" frobnicate "$clean"
usage_error "an unknown global option" --frobnicate status "$clean"
usage_error "status without FILE" status
usage_error "status with two files" status "$clean" "$clean"
usage_error "status with an unknown option" status --frobnicate "$clean"
usage_error "status --json --export" status --json --export "$clean"
usage_error "fail without LEG" fail "$clean"
usage_error "fail without arguments" fail
usage_error "fail with an extra argument" fail "$clean" a b
run "$ctl" frobnicate
err_has "unknown command 'frobnicate'" "an unknown command"
run "$ctl" fail "$clean"
err_has "missing LEG" "fail without LEG"

run "$ctl" --version
expect_rc 0 "--version"
out_has '^fusemirrorctl \(fusemirror\) [0-9]' "--version"
run "$ctl" --help
expect_rc 0 "--help"
run "$ctl" status --help
expect_rc 0 "status --help"
out_has 'fusemirrorctl status .*FILE' "status --help"

# ---- fail ---------------------------------------------------------------------------------------

run "$ctl" fail "$degraded" nosuch
expect_rc 1 "fail with an unknown leg"
err_has "^fusemirrorctl: fail $degraded nosuch: .*no leg 'nosuch'.*: a \(0\), b \(1\), c \(2\)\$" \
	"fail with an unknown leg"
run "$ctl" fail "$degraded" 3
expect_rc 1 "fail with an index out of range"
err_has "no leg '3'" "fail with an index out of range"
run "$ctl" fail "$plain" a
expect_rc 1 "fail on a plain file"
err_has "^fusemirrorctl: fail $plain a: not a fusemirror mirror" "fail on a plain file"
run "$ctl" fail "$tmpdir/missing.img" a
expect_rc 1 "fail on a missing file"

# A leg named like an index: the name wins.
named=$tmpdir/named.img
copy_mirror "$clean" "$named" && set_attrs "$named" leg.0.name=1 leg.1.name=0 ||
	fail "setfattr on $named"

# No daemon serves a plain file: fail names the command it would send, and does not send it
# (as root, setxattr would store it on the file and succeed).
# expect_command FILE LEG COMMAND
expect_command ()
{
	run "$ctl" fail "$1" "$2"
	expect_rc 1 "fail $2 on a file no daemon serves"
	err_has "not sending '$3'.*not on a FUSE file system" "fail $2 on a file no daemon serves"
	if getfattr -n trusted.fusemirror.ctl "$1" >/dev/null 2>&1; then
		problem "fail $2 set trusted.fusemirror.ctl on a file no daemon serves"
	fi
}
expect_command "$degraded" b "fail 1"
expect_command "$degraded" c "fail 2"
expect_command "$degraded" 0 "fail 0"
expect_command "$named" 0 "fail 1"
expect_command "$named" 1 "fail 0"

# Through a FUSE file system that passes extended attributes through (bindfs), the command is
# sent: the file beneath stores what fusemirrord would be told.
if test "$(id -u)" -eq 0 && command -v bindfs >/dev/null 2>&1 && test -c /dev/fuse &&
	mkdir "$tmpdir/src" "$tmpdir/mnt" && copy_mirror "$degraded" "$tmpdir/src/m.img" &&
	bindfs "$tmpdir/src" "$tmpdir/mnt" 2>/dev/null; then
	cleanup_fn "umount -l '$tmpdir/mnt'"
	run "$ctl" status "$tmpdir/mnt/m.img"
	expect_rc 1 "status through bindfs"
	test ! -s "$tmpdir/err" ||
		problem "status through FUSE printed on stderr: $(cat "$tmpdir/err")"
	run "$ctl" fail "$tmpdir/mnt/m.img" c
	expect_rc 0 "fail through bindfs"
	err_has "leg 'c' \(index 2\) of $tmpdir/mnt/m.img is now failed" "fail through bindfs"
	sent=$(getfattr --only-values -n trusted.fusemirror.ctl "$tmpdir/src/m.img" 2>/dev/null)
	test "$sent" = "fail 2" || problem "fail c through bindfs sent '$sent', not 'fail 2'"
else
	echo "note: bindfs cannot be mounted here (needs root, bindfs, /dev/fuse); fail not sent"
fi

# ---- --help and the man page agree ---------------------------------------------------------------

# The page without comments and with the escapes that sit inside names resolved.
clean_page ()
{
	sed -e '/^[.'\'']\\"/d' -e 's/\\".*$//' \
		-e 's/\\f[BIRP1-4]//g' -e 's/\\f\[[^]]*\]//g' -e 's/\\[&%]//g' \
		-e 's/\\-/-/g' -e "s/\\\\(aq/'/g" -e 's/\\e/\\/g' "$page"
}
clean_page >"$tmpdir/page"

# Lines of the page as SECTION<TAB>SUBSECTION<TAB>LINE, where SUBSECTION is the first word of
# the .SS heading; TAGGED=1 keeps only the tags of .TP paragraphs.
page_lines ()
{
	awk -v TAB="$tab" -v tagged="$1" '
	/^\.SH/ { sh = $0; sub(/^\.SH[ \t]*/, "", sh); gsub(/"/, "", sh); ss = ""; next }
	/^\.SS/ { ss = $0; sub(/^\.SS[ \t]*/, "", ss); gsub(/"/, "", ss); sub(/ .*/, "", ss); next }
	/^\.TP/ { tag = 1; next }
	!tagged || tag { print sh TAB ss TAB $0; tag = 0 }' "$tmpdir/page"
}
page_lines 1 >"$tmpdir/tags"
page_lines 0 >"$tmpdir/lines"

# option_words: the -x and --long words of stdin, one per line, sorted.
option_words ()
{
	awk '{ gsub(/[][ ",|=()]/, "\n"); print }' | grep -E -e '^--?[A-Za-z?][A-Za-z0-9-]*$' |
		sort -u
}
# help_options ARGS...: the options that fusemirrorctl ARGS --help lists.
help_options ()
{
	"$ctl" "$@" --help | sed -n -e 's/^ *\(-.*\)$/\1/p' | sed -e 's/  .*//' | option_words
}
# page_options SECTION SUBSECTION: the options of the .TP tags of that part of the page.
page_options ()
{
	awk -F "$tab" -v sh="$1" -v ss="$2" '$1 == sh && $2 == ss { print $3 }' "$tmpdir/tags" |
		option_words
}
# compare WHAT HELP-LIST PAGE-LIST
compare ()
{
	for _w in $2; do
		printf '%s\n' "$3" | grep -q -x -e "$_w" ||
			problem "$1: $_w is in --help but not in man/fusemirrorctl.8"
	done
	for _w in $3; do
		printf '%s\n' "$2" | grep -q -x -e "$_w" ||
			problem "$1: $_w is in man/fusemirrorctl.8 but not in --help"
	done
}

help_commands=$("$ctl" --help |
	awk '/^Commands:/ { c = 1; next } c && /^$/ { exit } c { print $1 }')
page_commands=$(awk -F "$tab" '$1 == "COMMANDS" && $2 != "" { print $2 }' "$tmpdir/lines" | sort -u)
test -n "$help_commands" || problem "fusemirrorctl --help lists no command"
test -n "$page_commands" || problem "man/fusemirrorctl.8 has no .SS subsection in COMMANDS"
compare "commands" "$help_commands" "$page_commands"

global_help=$(help_options)
global_page=$(page_options OPTIONS "")
test -n "$global_help" || problem "fusemirrorctl --help lists no option"
compare "global options (OPTIONS)" "$global_help" "$global_page"

synopsis=$(awk -F "$tab" '$1 == "SYNOPSIS" { print $3 }' "$tmpdir/lines")
for cmd in $help_commands; do
	cmd_help=$(help_options "$cmd" | grep -v -x -e -h -e --help)
	"$ctl" "$cmd" --help | grep -q -e '--help' || problem "$cmd --help does not list --help"
	compare "options of $cmd (COMMANDS, .SS $cmd)" "$cmd_help" "$(page_options COMMANDS "$cmd")"
	line=$(printf '%s\n' "$synopsis" | grep -E -e "^fusemirrorctl $cmd( |\$)")
	if test -z "$line"; then
		problem "SYNOPSIS has no line for fusemirrorctl $cmd"
		continue
	fi
	for opt in $cmd_help; do
		printf '%s\n' "$line" | option_words | grep -q -x -e "$opt" ||
			problem "SYNOPSIS of fusemirrorctl $cmd does not show $opt"
	done
done

# Every attribute that fusemirrorctl reads (those set above on a clean mirror and on one in a
# resync, leg.0 standing for leg.I) and the control attribute are listed in EXTENDED ATTRIBUTES.
attributes=$(getfattr -d -m '^user\.fusemirror\.' "$clean" "$rs" 2>/dev/null |
	sed -n -e '/^user\./{s/=.*//' -e 's/\.leg\.[0-9]*\./.leg.I./' -e 'p;}' | sort -u)
test -n "$attributes" || problem "getfattr lists no attribute of $clean"
for attr in $attributes trusted.fusemirror.ctl; do
	awk -F "$tab" '$1 == "EXTENDED ATTRIBUTES" { print $3 }' "$tmpdir/tags" |
		sed 's/^\.[BIR]*[ \t]*//; s/"//g; s/ //g' | grep -q -x -F -e "$attr" ||
		problem "EXTENDED ATTRIBUTES does not list $attr"
done

# Every exit status is in EXIT STATUS.
codes=$(awk -F "$tab" '$1 == "EXIT STATUS" { print $3 }' "$tmpdir/tags" | sed 's/^\.B[ \t]*//')
for code in 0 1 2 3 4; do
	printf '%s\n' "$codes" | grep -q -x -e "$code" || problem "EXIT STATUS does not list $code"
done

if command -v groff >/dev/null 2>&1; then
	warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
	test -z "$warnings" || problem "groff -man -ww warns about man/fusemirrorctl.8: $warnings"
else
	echo "note: groff is not installed; the page's warnings not checked"
fi

if test "$problems" -gt 0; then
	fail "$problems problem(s)"
fi
exit 0
