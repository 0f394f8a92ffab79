#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Overlapping writers never diverge the legs (SPEC §5: "two overlapping writes in flight reach
# every leg in the same order"; §7: "overlapping writers leave identical legs").
#
# A mirror of 3 file legs (metadata = internal, fusemirrorctl create --assume-clean), mounted.
# Each round runs seven fio processes at once over the same 4 MiB of the file: O_DIRECT random
# writes of 4 KiB, of 64 KiB, of 512 B-16 KiB at any 512-byte boundary and of 512 B, queue
# depth 16 (8 for 512 B), fresh data in every write; then stops the daemon cleanly (every write
# was acknowledged, the superblocks say clean: nothing would ever resync a difference) and
# compares the legs' data areas byte for byte.  Between rounds the daemon restarts on the same
# legs.  Without a range lock, leg a can apply W1 then W2 while leg b applies W2 then W1, and
# the legs differ: the test prints which legs and the first offsets where they do.
#
# Environment: FUSEMIRROR_OVERLAP_ROUNDS (default 4), FUSEMIRROR_OVERLAP_SECONDS (seconds of fio
# per round, default 5).  About 30 s with the defaults.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires fio cmp awk dd
make_daemon_tmpdir

rounds=${FUSEMIRROR_OVERLAP_ROUNDS:-4}
seconds=${FUSEMIRROR_OVERLAP_SECONDS:-5}
case $rounds$seconds in
*[!0-9]*) fail "FUSEMIRROR_OVERLAP_ROUNDS and FUSEMIRROR_OVERLAP_SECONDS must be integers" ;;
esac
if test "$rounds" -lt 1 || test "$seconds" -lt 1; then
	fail "FUSEMIRROR_OVERLAP_ROUNDS and FUSEMIRROR_OVERLAP_SECONDS must be at least 1"
fi

mib=1048576
size=$((16 * mib))
mirror=$tmpdir/mirror
legs="a b c"
# Written in full with zeros, not sparse: writes into holes allocate blocks in the file system
# under the legs, which serialises them enough to hide the bug in a first round.
for leg in $legs; do
	dd if=/dev/zero of="$tmpdir/$leg" bs=1M count=$((size / mib + 1)) conv=fsync status=none ||
		fail "cannot write leg $leg"
done
write_config "$tmpdir/m.conf" overlap metadata=internal "$tmpdir/a" "$tmpdir/b" "$tmpdir/c"
"$fusemirrorctl" create --assume-clean "$tmpdir/m.conf" >&2 || fail "fusemirrorctl create"

# The data area, as the superblock has it (examine prints "Data offset : N (...)").
"$fusemirrorctl" examine "$tmpdir/a" >"$tmpdir/examine.out" || fail "fusemirrorctl examine"
data_offset=$(awk -F' *: *' '$1 ~ /Data offset$/ { split($2, v, " "); print v[1] }' \
	"$tmpdir/examine.out")
data_size=$(awk -F' *: *' '$1 ~ /Data size$/ { split($2, v, " "); print v[1] }' \
	"$tmpdir/examine.out")
test -n "$data_offset" || data_offset=$mib
test -n "$data_size" || data_size=$size
echo "data area: $data_size bytes from offset $data_offset" >&2

engine=$(fio_engine)
echo "fio engine: $engine; $rounds rounds of $seconds s" >&2

# Four writers (and, with numjobs, seven processes) over the same 4 MiB at 1 MiB into the file.
cat >"$tmpdir/overlap.fio" <<EOF
[global]
filename=$mirror
rw=randwrite
direct=1
ioengine=$engine
iodepth=16
offset=1m
size=4m
time_based=1
runtime=$seconds
randrepeat=0
norandommap=1
refill_buffers=1
fallocate=none

[w4k]
bs=4k
numjobs=2

[w64k]
bs=64k
numjobs=2

[w512-16k]
bsrange=512-16k
blockalign=512
numjobs=2

[w512]
bs=512
iodepth=8
EOF
jobs=7 # with numjobs

# compare_legs ROUND: fail, saying which legs differ and where, unless the data areas of all
# legs are identical.
compare_legs ()
{
	_cl_round=$1
	_cl_bad=
	for _cl_pair in a-b a-c b-c; do
		set -- "${_cl_pair%-*}" "${_cl_pair#*-}"
		if cmp -s -i "$data_offset:$data_offset" -n "$data_size" \
		    "$tmpdir/$1" "$tmpdir/$2"; then
			continue
		fi
		_cl_bad="${_cl_bad:+$_cl_bad, }$1-$2"
		cmp -l -i "$data_offset:$data_offset" -n "$data_size" "$tmpdir/$1" "$tmpdir/$2" \
			>"$tmpdir/cmp-$1-$2" || :
		awk -v l1="$1" -v l2="$2" -v round="$_cl_round" '
			{ off = $1 - 1; s = int(off / 512); if (!(s in sec)) { sec[s] = 1; n++ } }
			NR <= 8 { first = first sprintf("\n    data offset %d (sector %d): %s %s, %s %s",
			                                off, int(off / 512), l1, $2, l2, $3) }
			END { printf "round %d: legs %s and %s differ in %d bytes, %d sectors;" \
			             " first differing offsets (octal bytes):%s\n",
			             round, l1, l2, NR, n, first }' "$tmpdir/cmp-$1-$2" >&2
	done
	test -z "$_cl_bad" || daemon_fail "round $_cl_round: the legs diverged ($_cl_bad) after" \
		"overlapping writes and a clean stop"
}

round=1
while test $round -le "$rounds"; do
	start_daemon "$tmpdir/m.conf" "$mirror"
	assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state at the start of round $round"
	run_fio "round$round" "$tmpdir/overlap.fio"
	assert_eq "$(grep -Ec 'err= *0' "$tmpdir/fio-round$round.out")" $jobs \
		"fio jobs that ended well in round $round"
	assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after round $round"
	assert_eq "$(xattr "$mirror" user.fusemirror.error_bits)" 0x0 "error_bits after round $round"
	stop_daemon TERM
	for leg in $legs; do
		"$fusemirrorctl" examine "$tmpdir/$leg" >"$tmpdir/examine.out" ||
			fail "fusemirrorctl examine $leg after round $round"
		assert_eq "$(awk -F' *: *' '$1 ~ /^ *State$/ { print $2 }' "$tmpdir/examine.out")" \
			clean "leg $leg's superblock state after round $round"
	done
	# Something was written (a test that wrote nothing tests nothing).
	! cmp -s -i "$((data_offset + mib)):0" -n $((4 * mib)) "$tmpdir/a" /dev/zero ||
		fail "round $round wrote nothing onto leg a"
	compare_legs $round
	echo "round $round: the legs' data areas are identical" >&2
	round=$((round + 1))
done
exit 0
