#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Legs fusemirrord must refuse to assemble (metadata = internal).  Each refusal exits 1 with a
# one-line message that names the leg and says what is wrong, and writes nothing: every leg file
# (superblock, bitmap and data) has the same checksum before and after.
#   - a leg of another array (two mirrors created, one leg swapped): "belongs to another array";
#   - a leg whose superblock has one flipped byte: "bad superblock: bad checksum";
#   - a truncated leg: "truncated?";
#   - a leg without a superblock (never created): "has no fusemirror superblock";
#   - two copies of one leg: "carry the same leg UUID";
#   - split brain: leg b missing, the mirror runs and is written on a alone; then a missing, it
#     runs and is written on b alone; with both back: "split brain" (also after a SIGKILL of one
#     side), and --force-source naming no leg is refused too; --force-source a assembles, resyncs
#     all of b from a (resync.total = the device), and afterwards the legs are identical and
#     hold a's history.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires cmp dd truncate head sha256sum
make_daemon_tmpdir

mib=1048576
size=$((16 * mib))
mirror=$tmpdir/mirror

# new_mirror NAME LEG...: truncate the legs to size + 1 MiB, write the config $tmpdir/NAME.conf
# and create the mirror on them (--assume-clean).
new_mirror ()
{
	_nm_name=$1
	shift
	truncate -s $((size + mib)) "$@"
	write_config "$tmpdir/$_nm_name.conf" "$_nm_name" metadata=internal region-size=1M assemble-timeout=1 "$@"
	"$fusemirrorctl" create --assume-clean "$tmpdir/$_nm_name.conf" >/dev/null ||
		fail "fusemirrorctl create $_nm_name"
}

# sums LEG...: the checksums of the leg files that exist.
sums ()
{
	for _s_leg in "$@"; do
		test -e "$_s_leg" && sha256sum "$_s_leg"
	done
	return 0
}

# expect_refusal WHAT TEXT CONFIG [ARGS...]: fusemirrord -f -c CONFIG ARGS... $mirror must exit
# 1 with one error line containing TEXT, touch none of the config's legs and leave nothing
# mounted or created on $mirror.
expect_refusal ()
{
	_er_what=$1
	_er_text=$2
	_er_config=$3
	shift 3
	_er_legs=$(sed -n 's/^path = //p' "$_er_config")
	# shellcheck disable=SC2086
	_er_before=$(sums $_er_legs)
	_er_existed=
	{ is_mounted "$mirror" || test -e "$mirror"; } && _er_existed=1
	expect_daemon_exit 1 "$_er_text" -f -c "$_er_config" "$@" "$mirror"
	printf '%s\n' "$run_output" >"$tmpdir/refusal.out"
	echo "$_er_what: $(grep -F "$_er_text" "$tmpdir/refusal.out")" >&2
	# One line says what is wrong: the message is not spread over several lines.
	test "$(grep -c '^fusemirrord: /' "$tmpdir/refusal.out")" -eq 1 ||
		fail "$_er_what: not one error line: $run_output"
	grep -F "$_er_text" "$tmpdir/refusal.out" | grep -q '^fusemirrord: /' ||
		fail "$_er_what: the error line does not say '$_er_text': $run_output"
	# shellcheck disable=SC2086
	test "x$(sums $_er_legs)" = "x$_er_before" || fail "$_er_what: a leg was written"
	is_mounted "$mirror" && fail "$_er_what: $mirror is mounted"
	test -n "$_er_existed" || test ! -e "$mirror" ||
		fail "$_er_what: the refused start left $mirror behind"
}

# ---- Legs of two different arrays --------------------------------------------------------------

new_mirror one "$tmpdir/one-a" "$tmpdir/one-b"
new_mirror two "$tmpdir/two-a" "$tmpdir/two-b"
write_config "$tmpdir/swapped.conf" one metadata=internal "$tmpdir/one-a" "$tmpdir/two-b"
expect_refusal "foreign leg" "leg 'b' ($tmpdir/two-b) belongs to another array ('two'" \
	"$tmpdir/swapped.conf"

# ---- A corrupt superblock ----------------------------------------------------------------------

cp "$tmpdir/one-b" "$tmpdir/one-b.good"
byte=$(od -An -tu1 -j 100 -N1 "$tmpdir/one-b" | tr -d ' ')
printf "\\$(printf %03o $((byte ^ 0x20)))" |
	dd of="$tmpdir/one-b" bs=1 seek=100 conv=notrunc status=none
cmp -s "$tmpdir/one-b" "$tmpdir/one-b.good" && fail "the byte at offset 100 did not change"
expect_refusal "corrupt superblock" "leg 'b' ($tmpdir/one-b) has a bad superblock: bad checksum" \
	"$tmpdir/one.conf"
mv "$tmpdir/one-b.good" "$tmpdir/one-b"

# ---- A truncated leg ---------------------------------------------------------------------------

cp "$tmpdir/one-a" "$tmpdir/one-a.good"
truncate -s $((size + mib - 4096)) "$tmpdir/one-a"
expect_refusal "truncated leg" "leg 'a' ($tmpdir/one-a) is $((size + mib - 4096)) bytes" \
	"$tmpdir/one.conf"
assert_grep "truncated\\?" "$tmpdir/refusal.out" "the truncated leg's message"
mv "$tmpdir/one-a.good" "$tmpdir/one-a"

# ---- A leg without a superblock ----------------------------------------------------------------

truncate -s $((size + mib)) "$tmpdir/blank"
write_config "$tmpdir/blank.conf" one metadata=internal "$tmpdir/one-a" "$tmpdir/blank"
expect_refusal "no superblock" "leg 'b' ($tmpdir/blank) has no fusemirror superblock" \
	"$tmpdir/blank.conf"

# ---- Two copies of one leg ---------------------------------------------------------------------

cp "$tmpdir/one-a" "$tmpdir/one-a.copy"
write_config "$tmpdir/dup.conf" one metadata=internal "$tmpdir/one-a" "$tmpdir/one-a.copy"
expect_refusal "duplicate leg" "carry the same leg UUID" "$tmpdir/dup.conf"
assert_grep "legs 'a' \($tmpdir/one-a\) and 'b' \($tmpdir/one-a.copy\)" "$tmpdir/refusal.out" \
	"the duplicate legs' message"

# The legs refused above are fine together.
start_daemon "$tmpdir/one.conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state of mirror one"
stop_daemon

# ---- Split brain -------------------------------------------------------------------------------

a=$tmpdir/sb-a
b=$tmpdir/sb-b
new_mirror sb "$a" "$b"
head -c $size /dev/urandom >"$tmpdir/X"
head -c $size /dev/urandom >"$tmpdir/Y"
# b missing: a goes on alone, written with X.
mv "$b" "$b.away"
start_daemon "$tmpdir/sb.conf" "$mirror"
assert_grep "DegradedArray: " "$daemon_log" "the log's DegradedArray without b"
assert_eq "$(leg_state "$mirror" 1)" failed "leg.1.state with b missing"
timeout 60 dd if="$tmpdir/X" of="$mirror" bs=1M oflag=direct conv=notrunc status=none ||
	daemon_fail "dd X"
stop_daemon
# a missing: b goes on alone (it does not know a went on), written with Y.
mv "$a" "$a.away"
mv "$b.away" "$b"
start_daemon "$tmpdir/sb.conf" "$mirror"
assert_eq "$(leg_state "$mirror" 0)" failed "leg.0.state with a missing"
timeout 60 dd if="$tmpdir/Y" of="$mirror" bs=1M oflag=direct conv=notrunc status=none ||
	daemon_fail "dd Y"
stop_daemon
mv "$a.away" "$a"
expect_refusal "split brain" "split brain: legs 'a' (events" "$tmpdir/sb.conf"
assert_grep "--force-source" "$tmpdir/refusal.out" "the split brain message's advice"
expect_refusal "--force-source of no leg" "the mirror has no leg named 'z'" "$tmpdir/sb.conf" \
	--force-source z
# Still split after b's side crashed (SIGKILL leaves its superblock dirty).
mv "$a" "$a.away"
start_daemon "$tmpdir/sb.conf" "$mirror"
timeout 60 dd if="$tmpdir/Y" of="$mirror" bs=1M count=1 oflag=direct conv=notrunc status=none ||
	daemon_fail "dd Y again"
kill -s KILL "$daemon_pid"
wait_daemon_exit 10
sleep 1.5 # the dead mount's cached attributes expire: the next start sees it is dead
mv "$a.away" "$a"
expect_refusal "split brain after a crash" "split brain: legs 'a' (events" "$tmpdir/sb.conf"

# The operator keeps a: b is resynced from it in full.
start_daemon "$tmpdir/sb.conf" "$mirror" --force-source a
assert_eq "$(xattr "$mirror" user.fusemirror.resync.total)" $size "resync.total with --force-source"
wait_until 30 "state clean after --force-source a" state_is clean
read_mirror "$mirror" "$tmpdir/through"
cmp "$tmpdir/X" "$tmpdir/through" >&2 || daemon_fail "the mirror does not hold a's data (X)"
stop_daemon
cmp -i $mib:$mib -n $size "$a" "$b" >&2 || fail "legs a and b differ after the forced resync"
# Settled: the next start needs no force.
start_daemon "$tmpdir/sb.conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after the split brain was settled"
stop_daemon
exit 0
