#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A leg is who its superblock says, whatever the config (issue 10), on real mounts:
#   - a 3-leg mirror (a, b, c); the [leg b] group deleted: two restarts, each with c in slot 2
#     and slot 1 missing under the name and path its superblock recorded; written meanwhile;
#   - b back, the groups in another order (c, b, a): every slot keeps its leg (names, paths,
#     UUIDs), b is stale and never read (its data area holds garbage where it missed writes, and
#     the reads during its throttled resync return the mirror's data), the resync ends with
#     identical legs, and examine reads every superblock, names and paths included;
#   - legs that disagree on data_offset, data_size or region_size (one superblock rewritten with
#     a valid crc32c and more events, so that it would be the authority), and events at
#     2^64-2: fusemirrord refuses, naming the field, and every leg is byte-identical after.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires cmp dd truncate head python3
make_daemon_tmpdir

mib=1048576
size=$((16 * mib))
mirror=$tmpdir/mirror
a=$tmpdir/a.img
b=$tmpdir/b.img
c=$tmpdir/c.img

# legs_config FILE [KEY=VALUE...] NAME=PATH...: a config of mirror "memb" whose [leg NAME]
# groups come in the order given (KEY=VALUE goes to [mirror]).
legs_config ()
{
	_lc_file=$1
	shift
	{
		printf '[mirror]\nname = memb\nmetadata = internal\nregion-size = 1M\n'
		printf 'assemble-timeout = 1\nread-policy = round-robin\n'
		for _lc_arg in "$@"; do
			case $_lc_arg in
			*=/*) ;;
			*=*) echo "${_lc_arg%%=*} = ${_lc_arg#*=}" ;;
			esac
		done
		for _lc_arg in "$@"; do
			case $_lc_arg in
			*=/*) printf '\n[leg %s]\npath = %s\n' "${_lc_arg%%=*}" "${_lc_arg#*=}" ;;
			esac
		done
	} >"$_lc_file" || fail "cannot write $_lc_file"
}

# slot_uuids LEG: the leg UUIDs of the slots, as LEG's superblock lists them.
slot_uuids ()
{
	"$fusemirrorctl" examine --json "$1" >"$tmpdir/uuids.json" || fail "examine $1"
	python3 -S -c 'import json, sys; print(" ".join(r["uuid"] for r in json.load(open(sys.argv[1]))["roles"]))' \
		"$tmpdir/uuids.json"
}

# slot_is I NAME PATH STATE: leg I of the running mirror is NAME at PATH in STATE.
slot_is ()
{
	assert_eq "$(xattr "$mirror" user.fusemirror.leg.$1.name)" "$2" "leg.$1.name"
	assert_eq "$(xattr "$mirror" user.fusemirror.leg.$1.path)" "$3" "leg.$1.path"
	assert_eq "$(leg_state "$mirror" "$1")" "$4" "leg.$1.state"
}

# write_at MIB FILE: write FILE (1 MiB) through the mirror at MIB, and into $tmpdir/expect.
write_at ()
{
	timeout 60 dd if="$2" of="$mirror" bs=1M seek="$1" oflag=direct conv=notrunc status=none ||
		daemon_fail "dd $2 to the mirror at $1 MiB"
	dd if="$2" of="$tmpdir/expect" bs=1M seek="$1" conv=notrunc status=none
}

# check_reads WHEN: the whole mirror reads as $tmpdir/expect (round-robin over the legs read).
check_reads ()
{
	read_mirror "$mirror" "$tmpdir/read"
	cmp "$tmpdir/expect" "$tmpdir/read" >&2 ||
		daemon_fail "$1: the mirror does not read back what was written"
}

truncate -s $((size + mib)) "$a" "$b" "$c"
legs_config "$tmpdir/abc.conf" "a=$a" "b=$b" "c=$c"
"$fusemirrorctl" create --assume-clean "$tmpdir/abc.conf" >/dev/null || fail "fusemirrorctl create"
head -c $size /dev/urandom >"$tmpdir/expect"
start_daemon "$tmpdir/abc.conf" "$mirror"
timeout 60 dd if="$tmpdir/expect" of="$mirror" bs=1M oflag=direct conv=notrunc status=none ||
	daemon_fail "dd the first data to the mirror"
stop_daemon
uuids=$(slot_uuids "$a")
uuid1=$(printf '%s\n' $uuids | sed -n 2p)

# ---- The middle group deleted: c stays in slot 2, slot 1 is b, missing ----------------------

legs_config "$tmpdir/ac.conf" "a=$a" "c=$c"
cp "$b" "$tmpdir/b.before"
for run in 1 2; do
	start_daemon "$tmpdir/ac.conf" "$mirror"
	assert_eq "$(xattr "$mirror" user.fusemirror.legs)" 3 "legs without b (start $run)"
	slot_is 0 a "$a" in_sync
	slot_is 1 b "$b" failed
	slot_is 2 c "$c" in_sync
	assert_eq "$(xattr "$mirror" user.fusemirror.state)" degraded "state without b"
	# Three regions each time: b misses six, more than its throttled resync copies at once.
	for at in 1 2 3; do
		head -c $mib /dev/urandom >"$tmpdir/new"
		write_at $((run * 6 + at)) "$tmpdir/new"
	done
	check_reads "without b (start $run)"
	stop_daemon
	for leg in "$a" "$c"; do
		assert_eq "$(slot_uuids "$leg")" "$uuids" "the slots' UUIDs in $leg (start $run)"
	done
done
cmp "$tmpdir/b.before" "$b" >&2 || fail "leg b was written while it was out of the config"
# Where b missed the writes it now holds garbage: if the mirror ever reads b there, it shows.
head -c $mib /dev/urandom >"$tmpdir/garbage"
for at in 7 8 9 13 14 15; do
	dd if="$tmpdir/garbage" of="$b" bs=1M seek=$((at + 1)) conv=notrunc status=none
done

# ---- b back, the groups in another order: slots stay, b is stale, never read, resynced -------

legs_config "$tmpdir/cba.conf" resync-rate-min=256K resync-rate-max=256K "c=$c" "b=$b" "a=$a"
start_daemon "$tmpdir/cba.conf" "$mirror"
assert_grep "StaleLegRejected: leg 1 \(b, $b\) is stale" "$daemon_log" "b's StaleLegRejected"
slot_is 0 a "$a" in_sync
slot_is 2 c "$c" in_sync
case $(leg_state "$mirror" 1) in
stale | resyncing) ;;
*) daemon_fail "leg.1.state is '$(leg_state "$mirror" 1)' when b is back" ;;
esac
check_reads "during b's resync"
check_reads "during b's resync (again, round-robin)"
state_is resyncing || daemon_fail "the resync ended before the reads: they tested nothing"
wait_until 60 "state clean after b's resync" state_is clean
slot_is 1 b "$b" in_sync
check_reads "after b's resync"
stop_daemon
data_equal $size "$a" "$b" "$c"
for leg in "$a" "$b" "$c"; do
	assert_eq "$(slot_uuids "$leg")" "$uuids" "the slots' UUIDs in $leg after b is back"
done
cmp -i 0:$mib -n $size "$tmpdir/expect" "$a" >&2 || fail "the legs do not hold what was written"

# examine reads every superblock: one array, each slot's name and last path, every leg in sync.
for leg in "$a" "$b" "$c"; do
	"$fusemirrorctl" examine --json "$leg" >"$tmpdir/examine.json" ||
		fail "fusemirrorctl examine $leg"
	python3 -S - "$tmpdir/examine.json" "$a" "$b" "$c" <<'EOF' || fail "examine $leg"
import json, sys
sb = json.load(open(sys.argv[1]))
want = [{"name": n, "path": p, "role": "in_sync"} for n, p in zip("abc", sys.argv[2:5])]
got = [{k: r[k] for k in ("name", "path", "role")} for r in sb["roles"]]
if got != want or sb["state"] != "clean":
    sys.exit("roles %r, state %s; expected %r, clean" % (got, sb["state"], want))
EOF
done
"$fusemirrorctl" examine "$b" >"$tmpdir/examine.txt" || fail "fusemirrorctl examine $b"
assert_grep "^ +1 +$uuid1 +in_sync +b +$b +<- this leg\$" "$tmpdir/examine.txt" \
	"examine's table: slot 1 is b, this leg"

# ---- Refusals: geometry and events, nothing written ------------------------------------------

# edit_sb LEG FIELD VALUE: rewrite a field of LEG's superblock (bitmap_bytes follows data_size and
# region_size), with events one above the others' (it would be the authority) unless FIELD is
# events, and a valid crc32c.
edit_sb ()
{
	python3 -S - "$@" <<'EOF' || fail "edit_sb $*"
import struct, sys
path, field, value = sys.argv[1], sys.argv[2], int(sys.argv[3])
offsets = {"data_offset": 56, "data_size": 64, "region_size": 72, "events": 80}
with open(path, "r+b") as f:
    sb = bytearray(f.read(4096))
    struct.pack_into("<Q", sb, offsets[field], value)
    if field != "events":
        struct.pack_into("<Q", sb, 80, struct.unpack_from("<Q", sb, 80)[0] + 1)
    data_size, region_size = struct.unpack_from("<QQ", sb, 64)
    struct.pack_into("<Q", sb, 120, -(-(-(-data_size // region_size)) // 8))
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        table.append(c)
    crc = 0xFFFFFFFF
    for byte in sb[:4092]:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    struct.pack_into("<I", sb, 4092, crc ^ 0xFFFFFFFF)
    f.seek(0)
    f.write(sb)
EOF
}

# expect_refused WHAT TEXT: fusemirrord on cba.conf exits 1 with TEXT on one error line; no leg
# changed (cmp against copies taken before).
expect_refused ()
{
	for leg in "$a" "$b" "$c"; do
		cp "$leg" "$leg.before"
	done
	expect_daemon_exit 1 "$2" -f -c "$tmpdir/cba.conf" "$mirror"
	printf '%s\n' "$run_output" | grep -F "$2" >&2
	test "$(printf '%s\n' "$run_output" | grep -c '^fusemirrord: /')" -eq 1 ||
		fail "$1: not one error line: $run_output"
	is_mounted "$mirror" && fail "$1: $mirror is mounted"
	for leg in "$a" "$b" "$c"; do
		cmp "$leg.before" "$leg" >&2 || fail "$1: $leg was written"
	done
}

dd if="$c" of="$tmpdir/c.sb" bs=4096 count=1 status=none
edit_sb "$c" data_offset 524288
expect_refused "another data_offset" "disagree on the array's geometry: data_offset 524288 and 1048576"
dd if="$tmpdir/c.sb" of="$c" conv=notrunc status=none
edit_sb "$c" data_size $((8 * mib))
expect_refused "another data_size" "disagree on the array's geometry: data_size 8388608 and 16777216"
dd if="$tmpdir/c.sb" of="$c" conv=notrunc status=none
edit_sb "$c" region_size $((2 * mib))
expect_refused "another region_size" \
	"disagree on the array's geometry: region_size 2097152 and 1048576"
dd if="$tmpdir/c.sb" of="$c" conv=notrunc status=none

dd if="$a" of="$tmpdir/a.sb" bs=4096 count=1 status=none
dd if="$b" of="$tmpdir/b.sb" bs=4096 count=1 status=none
for leg in "$a" "$b" "$c"; do
	edit_sb "$leg" events 18446744073709551614
done
expect_refused "events at 2^64-2" "events 18446744073709551614 is too close to the counter's limit"
dd if="$tmpdir/a.sb" of="$a" conv=notrunc status=none
dd if="$tmpdir/b.sb" of="$b" conv=notrunc status=none
dd if="$tmpdir/c.sb" of="$c" conv=notrunc status=none

# Restored, the mirror starts as it was.
start_daemon "$tmpdir/cba.conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after the refusals"
check_reads "after the refusals"
stop_daemon
exit 0
