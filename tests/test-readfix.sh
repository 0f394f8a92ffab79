#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Read-error correction in a running fusemirrord (READ-ERROR CORRECTION in fusemirrord(8)), with
# leg a served by nbdkit behind nbdfuse (a FUSE file over NBD) and read first
# (read-policy = primary).  nbdkit's sh plugin (the script below) keeps the disk in a file and
# makes 4 KiB block N unreadable (EIO) while the file bad/N exists; a write of the block deletes
# it, as a disk remaps a pending sector on a rewrite.  (nbdkit's error filter cannot aim at one
# range once: its trigger file fails every read, the correction's own re-read too, and the
# kernel's page cache over the nbdfuse file hides an error that a retry no longer meets.)
#   - one bad block: a read through the mirror gets the right bytes, leg a stays in_sync,
#     leg.0.corrected_errors becomes 1, ReadErrorCorrected (offset, length, errno) is in the
#     daemon's log and the block is rewritten on the NBD disk;
#   - fusemirrorctl set max-read-errors=3 (the config says 5): a leg that keeps erroring (a
#     block after block) is corrected up to the limit and failed at the error after it, with
#     "too many corrected read errors: 4 > max-read-errors 3"; every read gets the right bytes.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires nbdkit nbdfuse fusermount3 cmp dd truncate head getfattr python3
nbdkit sh --dump-plugin >/dev/null 2>&1 || skip "nbdkit has no sh plugin (nbdkit-plugin-sh)"
make_daemon_tmpdir

mib=1048576
size=$((8 * mib))
nbd=$tmpdir/nbd
mkdir "$nbd" "$nbd/bad"
head -c $size /dev/urandom >"$tmpdir/data"
# The legs hold the same bytes before the daemon starts (metadata = none takes them as in sync):
# nothing of leg a is then in the page cache of the nbdfuse file, and every read reaches nbdkit.
cp "$tmpdir/data" "$nbd/disk"
cp "$tmpdir/data" "$tmpdir/b"

cat >"$nbd/plugin.sh" <<'EOF'
#!/bin/sh
dir=$(dirname "$0")
case "$1" in
get_size) stat -c %s "$dir/disk" ;;
can_write|can_flush) exit 0 ;;
flush) exit 0 ;;
pread)
	count=$3 off=$4 b=$(($4 / 4096))
	while test $((b * 4096)) -lt $((off + count)); do
		if test -e "$dir/bad/$b"; then
			echo "$b" >>"$dir/fired"
			echo "EIO injected read error in block $b" >&2
			exit 1
		fi
		b=$((b + 1))
	done
	exec dd if="$dir/disk" skip="$off" count="$count" iflag=skip_bytes,count_bytes status=none ;;
pwrite)
	count=$3 off=$4 b=$(($4 / 4096))
	while test $((b * 4096)) -lt $((off + count)); do
		rm -f "$dir/bad/$b"
		b=$((b + 1))
	done
	exec dd of="$dir/disk" seek="$off" oflag=seek_bytes conv=notrunc status=none ;;
*) exit 2 ;;
esac
EOF
chmod +x "$nbd/plugin.sh"

# nbdfuse mounts over the regular file leg-a (a "naked" mount) and runs nbdkit itself.
a=$tmpdir/leg-a
: >"$a"
nbdfuse -P "$nbd/nbdfuse.pid" "$a" [ nbdkit --exit-with-parent sh "$nbd/plugin.sh" ] \
	>"$nbd/nbdfuse.log" 2>&1 &
nbdfuse_pid=$!
cleanup_fn "fusermount3 -u '$a' 2>/dev/null || umount -l '$a' 2>/dev/null; kill $nbdfuse_pid 2>/dev/null; :"
wait_for 15 test -s "$nbd/nbdfuse.pid"
wait_for 15 is_mounted "$a"
test "$(stat -c %s "$a")" = $size || fail "nbdfuse serves $(stat -c %s "$a") bytes, not $size"

mirror=$tmpdir/mirror
write_config "$tmpdir/m.conf" readfix read-policy=primary max-read-errors=5 "$a" "$tmpdir/b"
start_daemon "$tmpdir/m.conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.max_read_errors)" 5 "max-read-errors from the config"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.0.corrected_errors)" 0 "corrected errors at start"

# read_block N: read 4 KiB block N through the mirror and compare it with the data.
read_block ()
{
	timeout 30 dd if="$mirror" of="$tmpdir/got" bs=4096 skip="$1" count=1 iflag=direct \
		status=none || daemon_fail "reading block $1 through the mirror failed"
	dd if="$tmpdir/data" of="$tmpdir/want" bs=4096 skip="$1" count=1 status=none
	cmp -s "$tmpdir/got" "$tmpdir/want" || daemon_fail "block $1 reads back wrong"
}

# corrected_is N: leg a's corrected_errors is N.
corrected_is ()
{
	test "$(xattr "$mirror" user.fusemirror.leg.0.corrected_errors)" = "$1"
}

# leg_a_is STATE: leg a's state is STATE.
leg_a_is ()
{
	test "$(leg_state "$mirror" 0)" = "$1"
}

# ---- One bad block: corrected -------------------------------------------------------------------
touch "$nbd/bad/64"
read_block 64
grep -qx 64 "$nbd/fired" 2>/dev/null || daemon_fail "the read did not meet the bad block"
wait_for 10 corrected_is 1
assert_eq "$(leg_state "$mirror" 0)" in_sync "leg a after one corrected read error"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "the mirror after one corrected error"
assert_eq "$(xattr "$mirror" user.fusemirror.leg.0.read_errors)" 1 "leg a's read errors"
test ! -e "$nbd/bad/64" || daemon_fail "the bad block was not rewritten on the NBD disk"
cmp -s -i $((64 * 4096)):$((64 * 4096)) -n 4096 "$nbd/disk" "$tmpdir/data" ||
	daemon_fail "the NBD disk does not hold the right bytes in block 64"
assert_grep 'ReadErrorCorrected: leg 0 \(a, .*\): read error at data offset 262144 length 4096: .*\(errno 5\), corrected from leg 1 \(b\)' \
	"$daemon_log" "ReadErrorCorrected in the daemon's log"
"$fusemirrorctl" status "$mirror" >"$tmpdir/status" || daemon_fail "status of a clean mirror"
assert_grep '^ +0 +a +in_sync +1 +0 +1 ' "$tmpdir/status" "status shows the corrected error"
"$fusemirrorctl" status --json "$mirror" >"$tmpdir/status.json" ||
	daemon_fail "status --json of a clean mirror"
python3 -c '
import json, sys
st = json.load(open(sys.argv[1]))
assert [l["corrected_errors"] for l in st["legs"]] == [1, 0], st["legs"]
assert st["max_read_errors"] == 5, st
' "$tmpdir/status.json" || daemon_fail "status --json does not say leg a corrected one error"

# ---- A leg that keeps erroring: failed after max-read-errors ------------------------------------
"$fusemirrorctl" set "$mirror" max-read-errors=3 >"$tmpdir/set" ||
	daemon_fail "fusemirrorctl set max-read-errors=3 failed: $(cat "$tmpdir/set")"
assert_grep '^max-read-errors = 3$' "$tmpdir/set" "set prints the new max-read-errors"
assert_eq "$(xattr "$mirror" user.fusemirror.max_read_errors)" 3 "max-read-errors after set"
for n in 1 2 3; do
	touch "$nbd/bad/$((200 + n * 8))"
done
for n in 1 2; do
	read_block $((200 + n * 8))
	wait_for 10 corrected_is $((n + 1))
	assert_eq "$(leg_state "$mirror" 0)" in_sync "leg a after $((n + 1)) corrected errors"
done
read_block 224
wait_for 10 leg_a_is failed
assert_eq "$(xattr "$mirror" user.fusemirror.leg.0.corrected_errors)" 3 "leg a's corrections"
assert_grep 'LegFailed: leg 0 \(a, .*\) failed: too many corrected read errors: 4 > max-read-errors 3' \
	"$daemon_log" "the failure says why"
assert_eq "$(leg_state "$mirror" 1)" in_sync "leg b"
read_block 224
timeout 60 cmp "$mirror" "$tmpdir/data" || daemon_fail "the mirror does not read back the data"
stop_daemon
