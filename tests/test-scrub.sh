#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Scrub (fusemirrorctl check and repair, issue 11) on a real mount, three legs:
#   - known ranges of two of the three legs overwritten directly while the daemon is stopped
#     (different ranges on each, sector-sized and block-sized, one across a 1 MiB chunk
#     boundary): check reports exactly those ranges (user.fusemirror.mismatches, status --json)
#     and the sector count (mismatch_cnt), logs MismatchesFound, and changes no byte of any leg;
#   - while a check runs: the state reads checking, a second check and a resync are refused
#     with their reasons, wait follows it to the end;
#   - repair (under fio --verify) rewrites the differing blocks from the majority: every leg
#     then equals the leg never overwritten, MismatchRepaired names leg, offset and length;
#     a check after finds 0; fio --verify runs during check and repair and passes;
#   - repair --source: a leg named as the source wins over the majority.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires cmp dd truncate head fio python3

mib=1048576
size=$((32 * mib))
make_daemon_tmpdir
mirror=$tmpdir/mirror
a=$tmpdir/a.img
b=$tmpdir/b.img
c=$tmpdir/c.img

cat >"$tmpdir/m.conf" <<EOF
[mirror]
name = scrub
metadata = internal
stop-timeout = 0
resync-rate-min = 8388608
resync-rate-max = 8388608

[leg a]
path = $a

[leg b]
path = $b

[leg c]
path = $c
EOF
truncate -s $((size + mib)) "$a" "$b" "$c"
"$fusemirrorctl" create --assume-clean "$tmpdir/m.conf" >/dev/null || fail "fusemirrorctl create"
head -c $size /dev/urandom >"$tmpdir/expect"
start_daemon "$tmpdir/m.conf" "$mirror"
timeout 60 dd if="$tmpdir/expect" of="$mirror" bs=1M oflag=direct conv=notrunc status=none ||
	daemon_fail "dd the data to the mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.mismatch_cnt)" 0 "mismatch_cnt before any check"
assert_eq "$(xattr "$mirror" user.fusemirror.mismatches)" "" "mismatches before any check"
stop_daemon

# smash LEG OFFSET LENGTH: overwrite LENGTH bytes of LEG's data at OFFSET (of the mirror).
smash ()
{
	head -c "$3" /dev/urandom >"$tmpdir/smash"
	dd if="$tmpdir/smash" of="$1" bs=512 seek=$((($2 + mib) / 512)) conv=notrunc \
		status=none || fail "dd into $1"
}
smash "$b" $((mib + 4096)) 8192
smash "$b" $((5 * mib + 512)) 1024
smash "$c" $((10 * mib)) 4096
smash "$c" $((20 * mib - 512)) 1024
ranges="1052672+8192 5243392+1024 10485760+4096 20971008+1024"
sectors=$(((8192 + 1024 + 4096 + 1024) / 512))
cp "$a" "$tmpdir/a.before"
cp "$b" "$tmpdir/b.before"
cp "$c" "$tmpdir/c.before"

start_daemon "$tmpdir/m.conf" "$mirror"

# ---- check: exactly the ranges, nothing changed --------------------------------------------

"$fusemirrorctl" check "$mirror" 2>"$tmpdir/check.err" ||
	daemon_fail "fusemirrorctl check: $(cat "$tmpdir/check.err")"
assert_grep "check of .* started" "$tmpdir/check.err" "check's message"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" checking "state during the check"
# Refusals while it runs (32 MiB at 8 MiB/s: about 4 s).
if "$fusemirrorctl" check "$mirror" 2>"$tmpdir/again.err"; then
	daemon_fail "a second check was not refused"
fi
assert_grep "a check of mirror scrub is running already" "$tmpdir/again.err" "second check"
if "$fusemirrorctl" resync --full "$mirror" 2>"$tmpdir/resync.err"; then
	daemon_fail "a resync during the check was not refused"
fi
assert_grep "a check of mirror scrub is running: resync once it is over" "$tmpdir/resync.err" \
	"resync during a check"
timeout 60 "$fusemirrorctl" wait --interval 0.2 "$mirror" 2>"$tmpdir/wait.err" ||
	daemon_fail "wait after the check: $(cat "$tmpdir/wait.err")"
assert_grep "the check is over; the mirror is clean" "$tmpdir/wait.err" "wait's last line"
assert_eq "$(xattr "$mirror" user.fusemirror.mismatches)" "$ranges" "mismatches"
assert_eq "$(xattr "$mirror" user.fusemirror.mismatch_cnt)" "$sectors" "mismatch_cnt"
ranges_re=$(printf '%s' "$ranges" | sed 's/+/[+]/g')
assert_grep "MismatchesFound.*found $sectors sectors .* at $ranges_re\$" "$daemon_log" \
	"MismatchesFound"
"$fusemirrorctl" status --json "$mirror" >"$tmpdir/status.json" || true
python3 -S -c '
import json, sys
c = json.load(open(sys.argv[1]))["check"]
assert c["running"] is False, c
assert c["mismatch_cnt"] == int(sys.argv[2]), c
assert c["mismatches"] == sys.argv[3].split(), c
' "$tmpdir/status.json" "$sectors" "$ranges" || daemon_fail "status --json: $(cat "$tmpdir/status.json")"
"$fusemirrorctl" status "$mirror" >"$tmpdir/status.txt" || true
assert_grep "Mismatches : $sectors sectors at $ranges_re\$" "$tmpdir/status.txt" "status"
# The data areas (the superblocks count the daemon's starts).
data_equal $size "$tmpdir/a.before" "$a"
data_equal $size "$tmpdir/b.before" "$b"
data_equal $size "$tmpdir/c.before" "$c"

# ---- check under fio --verify: the same ranges (fio writes every leg alike) -----------------

fio_args="--name=verify --filename=$mirror --offset=24m --size=8m --rw=randwrite --bs=4k
--direct=1 --ioengine=psync --verify=crc32c --verify_fatal=1 --verify_state_save=0
--time_based --runtime=3"
"$fusemirrorctl" check "$mirror" 2>/dev/null || daemon_fail "the check under fio"
# shellcheck disable=SC2086
run_fio check $fio_args
timeout 60 "$fusemirrorctl" wait "$mirror" 2>/dev/null || daemon_fail "wait (check under fio)"
assert_eq "$(xattr "$mirror" user.fusemirror.mismatches)" "$ranges" "mismatches under fio"

# ---- repair under fio: the majority wins ------------------------------------------------------

start=$(date +%s.%N)
"$fusemirrorctl" repair "$mirror" 2>/dev/null || daemon_fail "fusemirrorctl repair"
# shellcheck disable=SC2086
run_fio repair $fio_args
timeout 60 "$fusemirrorctl" wait "$mirror" 2>/dev/null || daemon_fail "wait (repair)"
assert_eq "$(xattr "$mirror" user.fusemirror.mismatch_cnt)" "$sectors" "repair's mismatch_cnt"
# The first 24 MiB (fio wrote the rest): every leg equals a, which was never overwritten.
data_equal $((24 * mib)) "$tmpdir/a.before" "$a"
data_equal $size "$a" "$b" "$c"
assert_grep "MismatchRepaired.*repair rewrote leg 1 \(b\) at offset 1052672 length 8192 from leg 0 \(a\), the majority" \
	"$daemon_log" "repair's log of b's first range"
assert_grep "MismatchRepaired.*repair rewrote leg 2 \(c\) at offset 20967424 length 4096 from leg 0 \(a\), the majority" \
	"$daemon_log" "repair's log of c's last block"

# ---- a check after the repair finds nothing -------------------------------------------------

"$fusemirrorctl" check "$mirror" 2>/dev/null || daemon_fail "the check after the repair"
timeout 60 "$fusemirrorctl" wait "$mirror" 2>/dev/null || daemon_fail "wait (check after)"
assert_eq "$(xattr "$mirror" user.fusemirror.mismatch_cnt)" 0 "mismatch_cnt after the repair"
assert_eq "$(xattr "$mirror" user.fusemirror.mismatches)" "" "mismatches after the repair"

# ---- repair --source: the named leg wins over the majority -----------------------------------

"$fusemirrorctl" repair --source x "$mirror" 2>"$tmpdir/src.err" && daemon_fail "--source x"
assert_grep "repair .*: --source: no leg 'x' \(the legs are a \(0\), b \(1\), c \(2\)\)" \
	"$tmpdir/src.err" "repair --source of no leg"
stop_daemon
smash "$c" $((3 * mib)) 4096
dd if="$c" of="$tmpdir/c.block" bs=4096 skip=$(((3 * mib + mib) / 4096)) count=1 status=none
start_daemon "$tmpdir/m.conf" "$mirror"
"$fusemirrorctl" repair --source c "$mirror" 2>/dev/null || daemon_fail "repair --source c"
timeout 60 "$fusemirrorctl" wait "$mirror" 2>/dev/null || daemon_fail "wait (repair --source)"
assert_eq "$(xattr "$mirror" user.fusemirror.mismatches)" "$((3 * mib))+4096" \
	"mismatches of repair --source"
for leg in "$a" "$b"; do
	dd if="$leg" of="$tmpdir/block" bs=4096 skip=$(((3 * mib + mib) / 4096)) count=1 \
		status=none
	cmp "$tmpdir/block" "$tmpdir/c.block" >&2 || daemon_fail "repair --source c: $leg"
done
assert_grep "repair rewrote leg 0 \(a\) at offset $((3 * mib)) length 4096 from leg 2 \(c\), the source named" \
	"$daemon_log" "repair --source's log"
stop_daemon
