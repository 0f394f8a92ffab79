#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# fuse-transport where the kernel does not offer FUSE over io_uring (enable_uring N, or a kernel
# without it), which passes everywhere: auto serves /dev/fuse and says so (the log line, the
# xattrs), io_uring refuses to start with its one line and exit status 1 and leaves nothing
# mounted, dev never uses the ring even when the kernel offers it, and a bad value is a config
# error (78).
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
. "${srcdir:-.}/ring.sh"
set -e
requires_fuse
requires flock dd cmp
make_daemon_tmpdir
mib=1048576
truncate -s 64M "$tmpdir/a" "$tmpdir/b"
mirror=$tmpdir/mirror

# ---- auto, with the parameter N: /dev/fuse, said so -------------------------------------------
write_config "$tmpdir/auto.conf" fallback fuse-transport=auto "$tmpdir/a" "$tmpdir/b"
with_ring_param N start_daemon "$tmpdir/auto.conf" "$mirror"
assert_grep 'FUSE over io_uring not available \((the kernel has no FUSE over io_uring|/sys/module/fuse/parameters/enable_uring was N at mount)\): serving /dev/fuse' \
	"$daemon_log" "the fallback notice"
assert_eq "$(xattr "$mirror" user.fusemirror.fuse_transport)" dev "fuse_transport (auto, N)"
head -c $((4 * mib)) /dev/urandom >"$tmpdir/data"
dd if="$tmpdir/data" of="$mirror" bs=1M oflag=direct conv=notrunc status=none ||
	daemon_fail "dd to the mirror"
dd if="$mirror" of="$tmpdir/back" bs=1M count=4 iflag=direct status=none ||
	daemon_fail "dd from the mirror"
cmp "$tmpdir/data" "$tmpdir/back" || daemon_fail "the data read back differs"
assert_eq "$(xattr "$mirror" user.fusemirror.fuse_requests.io_uring)" 0 \
	"requests over io_uring (auto, N)"
dev=$(xattr "$mirror" user.fusemirror.fuse_requests.dev)
test "$dev" -ge 8 || daemon_fail "only $dev requests over /dev/fuse for 8 MiB of I/O"
stop_daemon

# ---- io_uring, with the parameter N: refused, nothing mounted ----------------------------------
write_config "$tmpdir/ring.conf" fallback fuse-transport=io_uring "$tmpdir/a" "$tmpdir/b"
with_ring_param N expect_daemon_exit 1 \
	"fuse-transport = io_uring: FUSE over io_uring not available (" \
	-f -c "$tmpdir/ring.conf" "$mirror"
printf '%s\n' "$run_output" >&2
test "$(printf '%s\n' "$run_output" | grep -c 'fuse-transport = io_uring')" -eq 1 ||
	fail "the refusal is not one line"
is_mounted "$mirror" && fail "$mirror is mounted after the refusal"
cmp -n $((4 * mib)) "$tmpdir/data" "$tmpdir/a" || fail "leg a changed by the refused start"

# ---- dev, with the parameter Y (where the kernel has it): never the ring -----------------------
if ring_param_exists; then
	write_config "$tmpdir/dev.conf" fallback fuse-transport=dev "$tmpdir/a" "$tmpdir/b"
	with_ring_param Y start_daemon "$tmpdir/dev.conf" "$mirror"
	assert_grep 'FUSE over io_uring not used \(fuse-transport = dev\): serving /dev/fuse' \
		"$daemon_log" "the dev notice"
	dd if="$mirror" of="$tmpdir/back" bs=1M count=4 iflag=direct status=none ||
		daemon_fail "dd from the mirror"
	cmp "$tmpdir/data" "$tmpdir/back" || daemon_fail "the data read back differs (dev)"
	assert_eq "$(xattr "$mirror" user.fusemirror.fuse_transport)" dev "fuse_transport (dev, Y)"
	assert_eq "$(xattr "$mirror" user.fusemirror.fuse_requests.io_uring)" 0 \
		"requests over io_uring (dev, Y)"
	stop_daemon
else
	echo "the kernel has no FUSE over io_uring: the dev-with-Y case is skipped" >&2
fi

# ---- a bad value ------------------------------------------------------------------------------
write_config "$tmpdir/bad.conf" fallback fuse-transport=uring "$tmpdir/a" "$tmpdir/b"
expect_daemon_exit 78 "fuse-transport" -f -c "$tmpdir/bad.conf" "$mirror"
printf '%s\n' "$run_output" >&2
exit 0
