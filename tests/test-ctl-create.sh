#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# fusemirrorctl create and examine, without a daemon, on file legs and (as root) a loop device.
# Checks
#   - create on 2 and 3 legs: examine --json of every leg (parsed by python3) has one array UUID,
#     distinct leg UUIDs, the config's order, events 1, the roles of an initial sync (leg 0
#     in_sync, the others resyncing from 0), the data size of the smallest leg, the default
#     region size, an all-clear bitmap; the text report of create and examine;
#   - --assume-clean (every leg in_sync), --region-size and the config's region-size;
#   - what create refuses, touching no leg (checksums before and after): legs that already carry
#     a fusemirror superblock (until --force), an ext4 file system, a leg too small, metadata =
#     none, two paths to one file, a region size that is not a power of two or whose bitmap does
#     not fit, a mounted block device (even with --force);
#   - what examine refuses: a plain file, a missing file, a superblock with one flipped byte
#     (checksum), a checksummed superblock with a field out of range (shown, then refused);
#   - examine's count of dirty regions, from bits set in the bitmap.
#
# Run by automake with srcdir, top_srcdir and top_builddir in the environment; by hand:
#   srcdir=tests top_srcdir=. top_builddir=_build sh tests/test-ctl-create.sh

if test -z "${srcdir:-}"; then
	srcdir=$(dirname "$0")
fi
. "$srcdir/functions.sh"
. "$srcdir/ctl-functions.sh"
set -u

top_srcdir=${top_srcdir:-$srcdir/..}
top_builddir=${top_builddir:-..}
ctl=$top_builddir/src/ctl/fusemirrorctl
test -x "$ctl" || fail "$ctl is not built"
requires python3 truncate dd cmp sha256sum mkfs.ext4

# The messages checked below are the C locale's (strerror texts).
LC_ALL=C
export LC_ALL
unset LANGUAGE

make_tmpdir

mib=1048576
# write_config FILE NAME METADATA LEG-PATH...: a config whose legs are called a, b, c, ...
write_config ()
{
	_file=$1
	{
		printf '[mirror]\nname = %s\nmetadata = %s\n' "$2" "$3"
		shift 3
		_names=abcdefgh
		for _path in "$@"; do
			_n=$(printf '%s' "$_names" | cut -c1)
			_names=${_names#?}
			printf '\n[leg %s]\npath = %s\n' "$_n" "$_path"
		done
	} >"$_file"
}

# sums FILE...: the checksums of the files, to compare before and after a refused create.
sums ()
{
	sha256sum "$@"
}

# unchanged WHAT BEFORE-FILE: the legs listed in BEFORE-FILE still have those checksums.
unchanged ()
{
	sha256sum -c --quiet "$2" >"$tmpdir/sums.log" 2>&1 || {
		problem "$1: a leg was written:"
		sed 's/^/    /' "$tmpdir/sums.log"
	}
}

# examine_all JSON-OUT LEG...: examine --json of each leg, as one JSON array in JSON-OUT.
examine_all ()
{
	_out=$1
	shift
	printf '[' >"$_out"
	_sep=
	for _leg in "$@"; do
		run "$ctl" examine --json "$_leg"
		expect_rc 0 "examine --json $_leg"
		printf '%s' "$_sep" >>"$_out"
		cat "$tmpdir/out" >>"$_out"
		_sep=,
	done
	printf ']\n' >>"$_out"
}

# check_legs WHAT JSON-FILE NAME DATA-SIZE REGION-SIZE ROLES: the superblocks of the legs of one
# new array; ROLES is a word per leg (in_sync or resyncing).
check_legs ()
{
	python3 -c '
import json, sys
what, path, name, data_size, region_size, roles = sys.argv[1:7]
legs = json.load(open(path))
roles = roles.split()
errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)
check(len(legs) == len(roles), "%d legs, expected %d" % (len(legs), len(roles)))
uuids = {l["uuid"] for l in legs}
check(len(uuids) == 1, "array uuids differ: %r" % uuids)
leg_uuids = [l["leg_uuid"] for l in legs]
# Each slot records its config name (a, b, ...) and path: examined in the config order.
leg_names = ["abcdefghijklmnopqrstuvwxyz"[j] for j in range(len(legs))]
leg_paths = [l["file"] for l in legs]
check(len(set(leg_uuids)) == len(legs), "leg uuids are not distinct: %r" % leg_uuids)
for i, l in enumerate(legs):
    p = "leg %d: " % i
    for key, want in (("leg_index", i), ("legs", len(roles)), ("events", 1),
                      ("events_cleared", 1), ("state", "clean"), ("data_offset", 1048576),
                      ("data_size", int(data_size)), ("region_size", int(region_size)),
                      ("dirty_regions", 0), ("name", name), ("version", 1),
                      ("magic", "0x314d52494d4d5346")):
        check(l.get(key) == want, p + "%s is %r, expected %r" % (key, l.get(key), want))
    want_recovery = None if roles[i] == "in_sync" else 0
    check(l.get("recovery_offset", "missing") == want_recovery,
          p + "recovery_offset is %r, expected %r" % (l.get("recovery_offset"), want_recovery))
    regions = -(-int(data_size) // int(region_size))
    check(l.get("regions") == regions, p + "regions %r, expected %r" % (l.get("regions"), regions))
    check(l.get("bitmap_bytes") == -(-regions // 8), p + "bitmap_bytes %r" % l.get("bitmap_bytes"))
    want_roles = [{"slot": j, "uuid": leg_uuids[j], "role": roles[j], "name": leg_names[j],
                   "path": leg_paths[j]} for j in range(len(roles))]
    check(l.get("roles") == want_roles,
          p + "roles %r, expected %r" % (l.get("roles"), want_roles))
if errors:
    print(what + ":")
    for e in errors:
        print("    " + e)
    sys.exit(1)
' "$@" || problem "$1: the superblocks are not those of a new array"
}

# json_field FILE KEY: one value of an examine --json output.
json_field ()
{
	python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

# ---- create on two file legs, then examine ------------------------------------------------------

a=$tmpdir/a.img
b=$tmpdir/b.img
truncate -s 64M "$a" || fail "truncate"
# The mirror is as big as the smallest leg's data area: the rest of b is not used.
truncate -s $((80 * mib + 1000)) "$b" || fail "truncate"
write_config "$tmpdir/two.conf" two internal "$a" "$b"

run "$ctl" create "$tmpdir/two.conf"
expect_rc 0 "create on two legs"
out_has "^Created mirror 'two' on 2 legs from $tmpdir/two\.conf:\$" "create's report"
out_has '^ +Size : 66060288 \(63\.00 MiB\)$' "create's report: size"
out_has '^ +Region size : 524288 \(512\.00 KiB\), 126 regions$' "create's report: region size"
out_has "^ +0 +a +in_sync +[0-9a-f-]{36} +$a\$" "create's report: leg a"
out_has "^ +1 +b +resyncing +[0-9a-f-]{36} +$b\$" "create's report: leg b"
out_has "copies leg 'a' onto leg 'b'" "create's report: the initial sync"
created_uuid=$(sed -n 's/^ *Array UUID : //p' "$tmpdir/out")

examine_all "$tmpdir/two.json" "$a" "$b"
check_legs "create on two legs" "$tmpdir/two.json" two $((63 * mib)) 524288 "in_sync resyncing"
test "$(json_field "$tmpdir/out" uuid)" = "$created_uuid" ||
	problem "create reported array UUID '$created_uuid', examine shows another"

run "$ctl" examine "$b"
expect_rc 0 "examine of leg b"
out_has "^$b:\$" "examine: header"
out_has '^ +Magic : 0x314d52494d4d5346$' "examine: magic"
out_has "^ +Array UUID : $created_uuid\$" "examine: array uuid"
out_has '^ +Name : two$' "examine: name"
out_has '^ +Leg index : 1$' "examine: leg index"
out_has '^ +Legs : 2$' "examine: legs"
out_has "^ +Device size : $((80 * mib + 512)) " "examine: device size"
out_has '^ +Data offset : 1048576 \(1\.00 MiB\)$' "examine: data offset"
out_has '^ +Data size : 66060288 \(63\.00 MiB\)$' "examine: data size"
out_has '^ +Region size : 524288 \(512\.00 KiB\)$' "examine: region size"
out_has '^ +Events : 1$' "examine: events"
out_has '^ +Events cleared : 1$' "examine: events cleared"
out_has '^ +State : clean$' "examine: state"
out_has '^ *Recovery offset : 0 ' "examine: recovery offset of a resyncing leg"
out_has '^ +Bitmap : 16 bytes at offset 4096, 126 regions, 0 dirty$' "examine: bitmap"
out_has '^ +Created : [0-9]{4}-[0-9]{2}-[0-9]{2} ' "examine: created"
out_has '^ +0 +[0-9a-f-]{36} +in_sync +a +/[^ ]+/a\.img$' "examine: role, name and path of slot 0"
out_has '^ +1 +[0-9a-f-]{36} +resyncing +b +/[^ ]+/b\.img +<- this leg$' "examine: role of slot 1, this leg"
run "$ctl" examine "$a"
out_has '^ *Recovery offset : done$' "examine: recovery offset of an in-sync leg"
out_has '^ +0 +[0-9a-f-]{36} +in_sync +a +/[^ ]+/a\.img +<- this leg$' "examine of leg a: this leg"

# ---- A second create is refused, legs untouched; --force overwrites ------------------------------

sums "$a" "$b" >"$tmpdir/two.sums"
run "$ctl" create "$tmpdir/two.conf"
expect_rc 1 "create over an existing array"
err_has "^fusemirrorctl: create $tmpdir/two\.conf: leg 'a' \($a\) already belongs to fusemirror array 'two' \(uuid $created_uuid, .*use --force to overwrite it\$" \
	"create over an existing array (leg a)"
err_has "leg 'b' \($b\) already belongs to fusemirror array 'two'" \
	"create over an existing array (leg b)"
test ! -s "$tmpdir/out" || problem "a refused create printed on stdout"
unchanged "create over an existing array" "$tmpdir/two.sums"

# --force with --assume-clean: a new array, every leg in sync.
run "$ctl" create --force --assume-clean "$tmpdir/two.conf"
expect_rc 0 "create --force --assume-clean"
err_has "warning: leg 'a' \($a\) already belongs to fusemirror array 'two'.*overwriting it \(--force\)" \
	"create --force warns"
examine_all "$tmpdir/clean.json" "$a" "$b"
check_legs "create --assume-clean" "$tmpdir/clean.json" two $((63 * mib)) 524288 "in_sync in_sync"
test "$(json_field "$tmpdir/out" uuid)" != "$created_uuid" ||
	problem "create --force kept the old array UUID"
if grep -q "copies leg" "$tmpdir/out"; then
	problem "create --assume-clean announces an initial sync"
fi

# ---- Three legs, one a loop device (root only), the config's region size ------------------------

c=$tmpdir/c.img
d=$tmpdir/d.img
e=$tmpdir/e.img
truncate -s 72M "$c" "$d" || fail "truncate"
truncate -s 40M "$e" || fail "truncate"
loop=
if test "$(id -u)" -eq 0 && command -v losetup >/dev/null 2>&1 &&
	loop=$(losetup -f --show "$d" 2>/dev/null); then
	cleanup_fn "losetup -d '$loop'"
	third=$loop
else
	echo "note: no loop device (needs root and losetup); the third leg is a file"
	third=$d
fi
write_config "$tmpdir/three.conf" three internal "$c" "$third" "$e"
sed -i 's/^metadata = internal$/&\nregion-size = 1M/' "$tmpdir/three.conf"
run "$ctl" create "$tmpdir/three.conf"
expect_rc 0 "create on three legs"
out_has "copies leg 'a' onto legs 'b', 'c'" "create on three legs: the initial sync"
examine_all "$tmpdir/three.json" "$c" "$third" "$e"
check_legs "create on three legs" "$tmpdir/three.json" three $((39 * mib)) $mib \
	"in_sync resyncing resyncing"

# --region-size overrides the config.
run "$ctl" create --force --region-size 8K "$tmpdir/three.conf"
expect_rc 0 "create --region-size 8K"
examine_all "$tmpdir/three.json" "$c" "$third" "$e"
check_legs "create --region-size 8K" "$tmpdir/three.json" three $((39 * mib)) 8192 \
	"in_sync resyncing resyncing"

# A mounted block device is refused, even with --force.
if test -n "$loop" && command -v mount >/dev/null 2>&1; then
	m=$tmpdir/m.img
	truncate -s 64M "$m" && mkfs.ext4 -q -F "$m" || fail "mkfs.ext4"
	mloop=$(losetup -f --show "$m") || fail "losetup"
	cleanup_fn "losetup -d '$mloop'"
	mkdir "$tmpdir/mnt"
	if mount "$mloop" "$tmpdir/mnt" 2>/dev/null; then
		cleanup_fn "umount -l '$tmpdir/mnt' 2>/dev/null"
		write_config "$tmpdir/mounted.conf" mounted internal "$a" "$mloop"
		# (Mounting writes to the file system itself: only leg a can be compared.)
		sums "$a" >"$tmpdir/mounted.sums"
		run "$ctl" create --force "$tmpdir/mounted.conf"
		expect_rc 1 "create --force on a mounted device"
		err_has "leg 'b' \($mloop\) is mounted on $tmpdir/mnt$" "create --force on a mounted device"
		umount "$tmpdir/mnt"
		unchanged "create --force on a mounted device" "$tmpdir/mounted.sums"
	else
		echo "note: cannot mount ext4 here; the in-use check not run"
	fi
fi

# ---- Signatures of other kinds, sizes, metadata: refused, nothing written -----------------------

fresh=$tmpdir/fresh.img
ext4=$tmpdir/ext4.img
truncate -s 64M "$fresh" "$ext4" || fail "truncate"
mkfs.ext4 -q -F "$ext4" || fail "mkfs.ext4 $ext4"
write_config "$tmpdir/ext4.conf" withfs internal "$fresh" "$ext4"
sums "$fresh" "$ext4" >"$tmpdir/ext4.sums"
run "$ctl" create "$tmpdir/ext4.conf"
expect_rc 1 "create over an ext4 file system"
err_has "^fusemirrorctl: create $tmpdir/ext4\.conf: leg 'b' \($ext4\) holds an ext4 file system: use --force to overwrite it\$" \
	"create over an ext4 file system"
test "$(wc -l <"$tmpdir/err")" -eq 1 || problem "create over ext4: not one line on stderr"
unchanged "create over an ext4 file system" "$tmpdir/ext4.sums"
run "$ctl" create --force "$tmpdir/ext4.conf"
expect_rc 0 "create --force over an ext4 file system"
err_has "warning: leg 'b' \($ext4\) holds an ext4 file system: overwriting it" \
	"create --force over an ext4 file system"

small=$tmpdir/small.img
truncate -s $((2 * mib - 512)) "$small" || fail "truncate"
truncate -s 64M "$fresh.2" || fail "truncate"
write_config "$tmpdir/small.conf" small internal "$fresh.2" "$small"
sums "$fresh.2" "$small" >"$tmpdir/small.sums"
run "$ctl" create "$tmpdir/small.conf"
expect_rc 1 "create with a leg too small"
err_has "leg 'b' \($small\) is $((2 * mib - 512)) bytes .*smaller than the 2 MiB a leg needs" \
	"create with a leg too small"
unchanged "create with a leg too small" "$tmpdir/small.sums"

write_config "$tmpdir/none.conf" plain none "$fresh.2" "$tmpdir/other.img"
truncate -s 64M "$tmpdir/other.img" || fail "truncate"
sums "$fresh.2" "$tmpdir/other.img" >"$tmpdir/none.sums"
run "$ctl" create "$tmpdir/none.conf"
expect_rc 1 "create with metadata = none"
err_has "metadata = none: only a mirror with metadata = internal" "create with metadata = none"
unchanged "create with metadata = none" "$tmpdir/none.sums"

ln -s "$fresh.2" "$tmpdir/link.img"
write_config "$tmpdir/same.conf" same internal "$fresh.2" "$tmpdir/link.img"
run "$ctl" create "$tmpdir/same.conf"
expect_rc 1 "create with two paths to one file"
err_has "legs 'a' \($fresh\.2\) and 'b' \($tmpdir/link\.img\) are the same file" \
	"create with two paths to one file"
unchanged "create with two paths to one file" "$tmpdir/none.sums"

run "$ctl" create --region-size 3K "$tmpdir/none.conf"
expect_rc 2 "create --region-size 3K"
err_has "--region-size 3K: not a power of two" "create --region-size 3K"
run "$ctl" create --region-size 2G "$tmpdir/two.conf"
expect_rc 2 "create --region-size 2G"

# 40 GiB of data (sparse) needs more than 1020 KiB of bitmap at 4 KiB per bit.
truncate -s 40G "$tmpdir/big1.img" "$tmpdir/big2.img" || fail "truncate"
write_config "$tmpdir/big.conf" big internal "$tmpdir/big1.img" "$tmpdir/big2.img"
run "$ctl" create --region-size 4K "$tmpdir/big.conf"
expect_rc 1 "create with a bitmap that does not fit"
err_has "needs a bitmap of [0-9]+ bytes .*use a region size of at least 8\.00 KiB" \
	"create with a bitmap that does not fit"
# (Too big to checksum: create writes only the first MiB, which is still all zeroes.)
for big in "$tmpdir/big1.img" "$tmpdir/big2.img"; do
	cmp -s -n $mib "$big" /dev/zero ||
		problem "create with a bitmap that does not fit wrote $big"
done
rm -f "$tmpdir/big1.img" "$tmpdir/big2.img"

run "$ctl" create "$tmpdir/missing.conf"
expect_rc 1 "create with a missing config"
err_has "missing\.conf" "create with a missing config"

# ---- examine: what is not a leg -----------------------------------------------------------------

plain=$tmpdir/plain.img
truncate -s 8M "$plain" || fail "truncate"
run "$ctl" examine "$plain"
expect_rc 1 "examine of a plain file"
err_has "^fusemirrorctl: examine $plain: not a fusemirror leg" "examine of a plain file"
test ! -s "$tmpdir/out" || problem "examine of a plain file printed on stdout"
run "$ctl" examine --json "$plain"
expect_rc 1 "examine --json of a plain file"

run "$ctl" examine "$tmpdir/missing.img"
expect_rc 1 "examine of a missing file"
err_has "^fusemirrorctl: examine $tmpdir/missing\.img: No such file or directory\$" \
	"examine of a missing file"

truncate -s 100 "$tmpdir/tiny.img" || fail "truncate"
run "$ctl" examine "$tmpdir/tiny.img"
expect_rc 1 "examine of a file smaller than a superblock"
err_has "not a fusemirror leg: it is smaller than a superblock" "examine of a tiny file"

# One flipped byte inside the superblock (in its name): the checksum no longer matches.
flipped=$tmpdir/flipped.img
cp "$a" "$flipped" || fail "cp"
printf 'X' | dd of="$flipped" bs=1 seek=150 conv=notrunc 2>/dev/null || fail "dd"
run "$ctl" examine "$flipped"
expect_rc 1 "examine of a superblock with a flipped byte"
err_has "^fusemirrorctl: examine $flipped: .*checksum" "examine of a superblock with a flipped byte"

# A field out of range under a correct checksum: shown, then refused.
field=$tmpdir/field.img
cp "$a" "$field" || fail "cp"
python3 -c '
import struct, sys
def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff
with open(sys.argv[1], "r+b") as f:
    sb = bytearray(f.read(4096))
    struct.pack_into("<Q", sb, 72, 3000)          # region_size: not a power of two
    struct.pack_into("<I", sb, 4092, crc32c(bytes(sb[:4092])))
    f.seek(0)
    f.write(sb)
' "$field" || fail "cannot patch $field"
run "$ctl" examine "$field"
expect_rc 1 "examine of a superblock with a field out of range"
err_has "^fusemirrorctl: examine $field: corrupt superblock: .*region_size" \
	"examine of a superblock with a field out of range"
out_has '^ +Region size : 3000 ' "examine shows a superblock with a field out of range"

# ---- examine counts the dirty regions ----------------------------------------------------------

dirty=$tmpdir/dirty.img
cp "$a" "$dirty" || fail "cp"
# 0xff and 0x01 at the start of the bitmap: regions 0-7 and 8.  Bits past the 126th region do
# not count: set them too (byte 15 holds regions 120-127).
printf '\377\001' | dd of="$dirty" bs=1 seek=4096 conv=notrunc 2>/dev/null || fail "dd"
printf '\300' | dd of="$dirty" bs=1 seek=$((4096 + 15)) conv=notrunc 2>/dev/null || fail "dd"
run "$ctl" examine --json "$dirty"
expect_rc 0 "examine of a leg with dirty regions"
test "$(json_field "$tmpdir/out" dirty_regions)" = 9 ||
	problem "examine counts $(json_field "$tmpdir/out" dirty_regions) dirty regions, not 9"
run "$ctl" examine "$dirty"
out_has '^ +Bitmap : 16 bytes at offset 4096, 126 regions, 9 dirty$' "examine: dirty regions"

# ---- Usage errors -------------------------------------------------------------------------------

run "$ctl" create
expect_rc 2 "create without CONFIG"
err_has "missing CONFIG" "create without CONFIG"
run "$ctl" create "$tmpdir/two.conf" extra
expect_rc 2 "create with an extra argument"
run "$ctl" examine
expect_rc 2 "examine without LEG"
run "$ctl" examine --frobnicate "$a"
expect_rc 2 "examine with an unknown option"
run "$ctl" create --help
expect_rc 0 "create --help"
out_has 'fusemirrorctl create .*CONFIG' "create --help"
run "$ctl" examine --help
expect_rc 0 "examine --help"

if test "$problems" -gt 0; then
	fail "$problems problem(s)"
fi
exit 0
