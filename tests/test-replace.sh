#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# fusemirrorctl replace (issue 11, md's --replace) on a real mount, two legs a and b:
#   - refusals, each one line and exit status 1, the mirror unchanged: an unknown LEG, a PATH
#     that is a leg already, a PATH too small, a second replace while one runs (EBUSY);
#   - while a slow replace runs (the resync rate-limited with set): status and fail answer at
#     once (the replace does not hold the control command's setxattr); failing the new leg
#     aborts the replace (ReplaceAborted), the old leg stays in sync;
#   - replace --wait of b under fio --verify=crc32c: it exits 0, the mirror never has fewer than
#     two in-sync legs (polled all along), b's slot is removed and the new leg in sync,
#     LegReplaced is logged, the config file names the new leg instead of b;
#   - replace --no-save --wait of a: done, the config file unchanged;
#   - SIGTERM during a replace: the daemon stops within 5 s, ReplaceAborted says why;
#   - the new legs' data areas equal what was written (cmp past the 1 MiB of metadata).
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires cmp dd truncate head fio python3

mib=1048576
size=$((16 * mib))
make_daemon_tmpdir
mirror=$tmpdir/mirror
conf=$tmpdir/m.conf
a=$tmpdir/a.img
b=$tmpdir/b.img
c=$tmpdir/c.img
d=$tmpdir/d.img
e=$tmpdir/e.img
slow=$tmpdir/slow.img
small=$tmpdir/small.img

cat >"$conf" <<EOF
[mirror]
name = rp
metadata = internal
stop-timeout = 0

[leg a]
path = $a

[leg b]
path = $b
EOF
truncate -s $((size + mib)) "$a" "$b" "$c" "$d" "$e" "$slow"
truncate -s "$size" "$small"
"$fusemirrorctl" create --assume-clean "$conf" >/dev/null || fail "fusemirrorctl create"
head -c $size /dev/urandom >"$tmpdir/expect"
start_daemon "$conf" "$mirror"
timeout 60 dd if="$tmpdir/expect" of="$mirror" bs=1M oflag=direct conv=notrunc status=none ||
	daemon_fail "dd the data to the mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.replace.leg)" none "replace.leg before any"
assert_eq "$(xattr "$mirror" user.fusemirror.replace.by)" none "replace.by before any"

# refuse TAG PATTERN ARGS...: fusemirrorctl replace ARGS exits 1 with one line matching PATTERN.
refuse ()
{
	_tag=$1
	_pattern=$2
	shift 2
	_status=0
	"$fusemirrorctl" replace "$@" 2>"$tmpdir/$_tag.err" || _status=$?
	test $_status -eq 1 ||
		daemon_fail "replace $*: exit status $_status, expected 1: $(cat "$tmpdir/$_tag.err")"
	test "$(wc -l <"$tmpdir/$_tag.err")" -eq 1 ||
		daemon_fail "replace $*: not one line: $(cat "$tmpdir/$_tag.err")"
	assert_grep "$_pattern" "$tmpdir/$_tag.err" "replace $*"
}

# ---- Refusals ---------------------------------------------------------------------------------

refuse unknown "replace $mirror x $c: mirror 'rp' has no leg 'x'; its legs are: a \(0\), b \(1\)" \
	"$mirror" x "$c"
refuse leg "the daemon refused 'replace 0 $b': $b is already leg 1 \(b\) of mirror rp" \
	"$mirror" a "$b"
refuse small "the daemon refused 'replace 1 $small': $small is $size bytes: a leg of mirror rp needs at least $((size + mib))" \
	"$mirror" b "$small"
assert_eq "$(ctl_reason "$mirror" "replace 0 $small")" \
	"ENOSPC $small is $size bytes: a leg of mirror rp needs at least $((size + mib))" \
	"the control command's errno"
assert_eq "$(xattr "$mirror" user.fusemirror.legs)" 2 "legs after the refusals"

# ---- A slow replace: status and fail answer at once; failing the new leg aborts it -----------

"$fusemirrorctl" set "$mirror" resync-rate-min=262144 resync-rate-max=262144 >/dev/null 2>&1 ||
	daemon_fail "set the resync rate"
# The daemon answers once the new leg is added: the copy (a minute at this rate) is its own.
timeout 10 "$fusemirrorctl" replace "$mirror" b "$slow" 2>"$tmpdir/slow.err" ||
	daemon_fail "replace b by slow (did it wait for the copy?): $(cat "$tmpdir/slow.err")"
assert_grep "replacing leg 1 \(b\) of $mirror by $slow as leg 2: resync started, 16.00 MiB to copy" \
	"$tmpdir/slow.err" "replace's line"
assert_eq "$(xattr "$mirror" user.fusemirror.replace.leg)" 1 "replace.leg while it runs"
assert_eq "$(xattr "$mirror" user.fusemirror.replace.by)" 2 "replace.by while it runs"
"$fusemirrorctl" status "$mirror" >"$tmpdir/status.txt" || true
assert_grep "Replacing : leg 1 \(b\) by leg 2 \(slow.img\)" "$tmpdir/status.txt" "status text"
"$fusemirrorctl" status --json "$mirror" >"$tmpdir/status.json" || true
python3 -S -c '
import json, sys
r = json.load(open(sys.argv[1]))["replace"]
assert r == {"running": True, "leg": 1, "by": 2}, r
' "$tmpdir/status.json" || daemon_fail "status --json: $(cat "$tmpdir/status.json")"
"$fusemirrorctl" status --export "$mirror" >"$tmpdir/status.env" || true
assert_grep "^MIRROR_REPLACE_LEG=1$" "$tmpdir/status.env" "status --export"
assert_grep "^MIRROR_REPLACE_BY=2$" "$tmpdir/status.env" "status --export"
refuse busy "the daemon refused 'replace 0 $c': a replace of leg 1 \(b\) by leg 2 \($slow\) is running on mirror rp: one at a time" \
	"$mirror" a "$c"
assert_eq "$(ctl_reason "$mirror" "replace 0 $c" | cut -d' ' -f1)" EBUSY "a second replace's errno"
assert_eq "$(xattr "$mirror" user.fusemirror.legs)" 3 "the refused replace added a leg"
# Promptly: a status read and a fail are not held behind the copy (4 s and more to go).
t0=$(date +%s%N)
timeout 5 "$fusemirrorctl" status "$mirror" >/dev/null || true
t1=$(date +%s%N)
timeout 5 "$fusemirrorctl" fail "$mirror" 2 2>/dev/null || daemon_fail "fail the new leg"
t2=$(date +%s%N)
test $(((t1 - t0) / 1000000)) -lt 1000 || daemon_fail "status took $(((t1 - t0) / 1000000)) ms"
test $(((t2 - t1) / 1000000)) -lt 2000 || daemon_fail "fail took $(((t2 - t1) / 1000000)) ms"
wait_until 5 "the replace to end" sh -c "test \"\$(getfattr --only-values --absolute-names -n user.fusemirror.replace.leg '$mirror')\" = none"
assert_grep "ReplaceAborted: replace of leg 1 \(b, $b\) of mirror rp by leg 2 \($slow\) aborted: the new leg 2 \($slow\) is failed; leg 1 is kept" \
	"$daemon_log" "ReplaceAborted"
assert_eq "$(leg_state "$mirror" 1)" in_sync "b after the aborted replace"
# The resync, left with nothing to copy onto, ends by itself: only then is the failed leg
# removed (removing it while that resync runs leaves the state resyncing for good: a bug of
# resync.c's stop, which this test is not about).
timeout 30 "$fusemirrorctl" wait "$mirror" 2>/dev/null || true
"$fusemirrorctl" remove "$mirror" 2 2>/dev/null || daemon_fail "remove the failed new leg"
assert_eq "$(xattr "$mirror" user.fusemirror.legs)" 2 "legs after removing the failed new leg"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after the aborted replace"

# ---- replace --wait under fio --verify: never fewer in-sync legs -----------------------------

cp "$conf" "$tmpdir/conf.before"
# At 4 MiB/s the copy of 16 MiB lasts about 4 s, as long as fio runs.
"$fusemirrorctl" set "$mirror" resync-rate-max=4194304 resync-rate-min=4194304 >/dev/null 2>&1 ||
	daemon_fail "set the resync rate"
: >"$tmpdir/counts"
(
	while ! test -e "$tmpdir/poll.stop"; do
		getfattr -d -m '^user\.fusemirror\.leg\.[0-9]*\.state$' --absolute-names \
			"$mirror" 2>/dev/null | grep -c '="in_sync"' >>"$tmpdir/counts" || true
		sleep 0.05
	done
) &
poller=$!
fio_args="--name=verify --filename=$mirror --offset=8m --size=8m --rw=randwrite --bs=4k
--direct=1 --ioengine=psync --verify=crc32c --verify_fatal=1 --verify_state_save=0
--time_based --runtime=4"
# shellcheck disable=SC2086
fio --output="$tmpdir/fio-replace.out" $fio_args &
fio_pid=$!
status=0
timeout 60 "$fusemirrorctl" replace --wait "$mirror" b "$c" 2>"$tmpdir/replace.err" || status=$?
fio_status=0
wait $fio_pid || fio_status=$?
: >"$tmpdir/poll.stop"
wait $poller || true
test "$(wc -l <"$tmpdir/counts")" -gt 20 || daemon_fail "the poller saw too little"
if grep -qvx '[2-9]' "$tmpdir/counts"; then
	daemon_fail "fewer than 2 in-sync legs during the replace: $(sort -u "$tmpdir/counts" | tr '\n' ' ')"
fi
test $status -eq 0 || daemon_fail "replace --wait b by c: exit status $status: $(cat "$tmpdir/replace.err")"
test $fio_status -eq 0 && grep -Eq 'err= *0' "$tmpdir/fio-replace.out" &&
	! grep -Eq 'err= *[1-9]' "$tmpdir/fio-replace.out" ||
	daemon_fail "fio --verify during the replace: $(grep -E 'err=|verify|bad' "$tmpdir/fio-replace.out" | head)"
assert_grep "leg 1 \(b\) of $mirror replaced by $c \(leg 1, in sync\)" "$tmpdir/replace.err" \
	"replace --wait's last line"
# The new leg took b's slot, as md's replacement does: two legs, no hole, clean.
assert_eq "$(leg_state "$mirror" 1)" in_sync "c, in b's slot, after the replace"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.1.path)" "$c" "leg 1's path"
assert_eq "$(xattr "$mirror" user.fusemirror.legs)" 2 "legs after the replace"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "the state after the replace"
assert_eq "$(xattr "$mirror" user.fusemirror.replace.leg)" none "replace.leg after it"
assert_grep "LegReplaced: leg 1 \(b, $b\) of mirror rp replaced by leg 1 \(c.img, $c\), in sync" \
	"$daemon_log" "LegReplaced"
# The config follows: [leg b] gone, a group for c.
cat >"$tmpdir/expected" <<EOF
[mirror]
name = rp
metadata = internal
stop-timeout = 0

[leg a]
path = $a

[leg c.img]
path = $c
EOF
cmp "$tmpdir/expected" "$conf" >&2 ||
	daemon_fail "the config after the replace: $(diff -u "$tmpdir/expected" "$conf")"

# ---- replace --no-save --wait: the config stays ----------------------------------------------

cp "$conf" "$tmpdir/conf.before"
"$fusemirrorctl" set "$mirror" resync-rate-min=0 resync-rate-max=0 >/dev/null 2>&1 ||
	daemon_fail "unlimit the resync rate"
timeout 60 "$fusemirrorctl" replace --no-save --wait "$mirror" a "$d" 2>"$tmpdir/nosave.err" ||
	daemon_fail "replace --no-save --wait a by d: $(cat "$tmpdir/nosave.err")"
assert_eq "$(leg_state "$mirror" 0)" in_sync "d, in a's slot, after the replace"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.0.path)" "$d" "leg 0's path"
cmp "$tmpdir/conf.before" "$conf" >&2 ||
	daemon_fail "replace --no-save rewrote the config: $(diff -u "$tmpdir/conf.before" "$conf")"
assert_grep "is not rewritten \(--no-save\)" "$daemon_log" "the log of replace --no-save"

# ---- The data: the new legs hold what was written -------------------------------------------

read_mirror "$mirror" "$tmpdir/now"

# ---- SIGTERM during a replace: the daemon stops at once, the replace aborted ------------------

"$fusemirrorctl" set "$mirror" resync-rate-max=262144 resync-rate-min=262144 >/dev/null 2>&1 ||
	daemon_fail "set the resync rate"
timeout 10 "$fusemirrorctl" replace "$mirror" c.img "$e" 2>/dev/null || daemon_fail "replace c.img by e"
t0=$(date +%s%N)
stop_daemon
t1=$(date +%s%N)
test $(((t1 - t0) / 1000000)) -lt 5000 ||
	fail "SIGTERM during a replace took $(((t1 - t0) / 1000000)) ms"
assert_grep "ReplaceAborted: .*aborted: mirror rp is closing before the new leg [0-9]+ \($e\) is in sync; leg 1 is kept" \
	"$daemon_log" "ReplaceAborted at the stop"
cmp -n $((8 * mib)) "$tmpdir/expect" "$tmpdir/now" >&2 ||
	fail "the first 8 MiB (not written by fio) changed"
data_equal $size "$c" "$d"
# The mirror's content is the legs' data area (cmp skips their 1 MiB of metadata).
cmp -i 0:$mib -n $size "$tmpdir/now" "$c" >&2 || fail "leg c's data area is not the mirror's"
