#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Which leg serves reads.  The mirror is filled with one byte (0x5a) through the daemon; then one
# leg's file is overwritten behind the daemon's back with another byte (0xa5), so a read shows
# which leg it came from.  A write-mostly leg is never read while another leg is in sync, nor is
# the second leg under read-policy = primary; round-robin reads it; and once the other leg is
# failed, the write-mostly leg serves (which shows that the test sees such reads).
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires fio cmp dd truncate tr
make_daemon_tmpdir

mib=1048576
size=$((16 * mib))
a=$tmpdir/a
b=$tmpdir/b
mirror=$tmpdir/mirror
engine=$(fio_engine)
head -c $size /dev/zero | tr '\0' '\245' >"$tmpdir/garbage"

# serve CONFIG-OPTION... LEG...: start a mirror of fresh legs, fill it with 0x5a, then put 0xa5
# on leg b behind the daemon's back.
serve ()
{
	rm -f "$a" "$b"
	truncate -s 16M "$a" "$b"
	write_config "$tmpdir/m.conf" policy "$@"
	start_daemon "$tmpdir/m.conf" "$mirror"
	run_fio fill --name=fill --filename="$mirror" --rw=write --bs=1m --direct=1 \
		--ioengine=psync --size=16m --verify=pattern --verify_pattern=0x5a \
		--verify_state_save=0
	cp "$tmpdir/garbage" "$b"
}

# reads_verify: concurrent random reads of the whole mirror (4 KiB-256 KiB, queue depth 16, two
# processes) that must all see 0x5a.
reads_verify ()
{
	run_fio reads --name=reads --filename="$mirror" --rw=randread --bsrange=4k-256k \
		--direct=1 --ioengine="$engine" --iodepth=16 --numjobs=2 --size=16m \
		--verify=pattern --verify_pattern=0x5a --verify_fatal=1 --verify_state_save=0 \
		--loops=3
}

# reads_see_b: whether some read through the mirror shows leg b's bytes (64 reads of 4 KiB).
reads_see_b ()
{
	_i=0
	while test $_i -lt 64; do
		if dd if="$mirror" bs=4k count=1 skip=$_i iflag=direct status=none |
		    cmp -s -n 4096 - "$tmpdir/garbage"; then
			return 0
		fi
		_i=$((_i + 1))
	done
	return 1
}

# ---- A write-mostly leg is not read while another leg can serve ---------------------------------
serve "$a" "$b,write-mostly"
reads_verify
reads_see_b && daemon_fail "a read came from the write-mostly leg b"
# With leg a failed, b is all that is left: now the reads do come from it.
setfattr -n trusted.fusemirror.ctl -v "fail 0" "$mirror" || daemon_fail "fail leg a"
reads_see_b || daemon_fail "no read came from leg b, the only leg in sync"
stop_daemon

# ---- read-policy = primary: the first leg only ------------------------------------------------
serve read-policy=primary "$a" "$b"
reads_verify
reads_see_b && daemon_fail "a read came from leg b under read-policy = primary"
stop_daemon

# ---- read-policy = round-robin reads every leg ------------------------------------------------
serve read-policy=round-robin "$a" "$b"
reads_see_b || daemon_fail "no read came from leg b under read-policy = round-robin"
stop_daemon
exit 0
