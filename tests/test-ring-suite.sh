#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The mirror's own daemon tests again, over FUSE over io_uring (where the kernel has it, else
# skipped): FM_TEST_TRANSPORT=io_uring makes every mirror they write a config for use
# fuse-transport = io_uring, and start_daemon fails a start that is not served over the ring
# (daemon.sh).  enable_uring is Y, under ring.sh's lock, for the whole suite (a test that runs
# the daemon itself needs it too); other tests mounting meanwhile write fuse-transport = dev.
# Each test runs as a child, with its own harness; the restart tests are left out (a restart is
# refused while the ring serves: fusemirrord(8), FUSE TRANSPORT).
test "$(id -u)" -eq 0 || { echo "${0##*/}: SKIP: not root" >&2; exit 77; }
test -e /sys/module/fuse/parameters/enable_uring ||
	{ echo "${0##*/}: SKIP: the kernel has no FUSE over io_uring" >&2; exit 77; }
# Not test-hung-leg.sh: over the ring it hung once in three runs (a write to a hung leg not
# answered after io-timeout; the failfast reply commits the entry, which the kernel fills again
# while the entry's thread still waits in the hung leg): issue 13, open.
tests="test-daemon-basic.sh test-daemon-fio.sh test-daemon-overlap.sh test-daemon-fail.sh
	test-daemon-ext4.sh test-daemon-leg-full.sh test-readfix.sh test-direct.sh"
ring_param=/sys/module/fuse/parameters/enable_uring
exec 9>"${TMPDIR:-/tmp}/fusemirror-test-enable-uring.lock"
flock 9
old=$(cat "$ring_param")
trap 'echo "$old" >"$ring_param"' EXIT
echo Y >"$ring_param"
failed=
for t in $tests; do
	status=0
	FM_TEST_TRANSPORT=io_uring FM_TEST_RING_HELD=1 ${SHELL:-/bin/sh} "${srcdir:-.}/$t" \
	    >"${t%.sh}.ring.out" 2>&1 9>&- || status=$?
	case $status in
	0) echo "$t over io_uring: ok" ;;
	77) echo "$t over io_uring: skipped"; sed -n '$p' "${t%.sh}.ring.out" ;;
	*)
		echo "$t over io_uring: FAILED (exit $status); its output:"
		sed 's/^/    /' "${t%.sh}.ring.out"
		failed="$failed $t"
		;;
	esac
	rm -f "${t%.sh}.ring.out"
done
test -z "$failed" || { echo "${0##*/}: FAIL:$failed" >&2; exit 1; }
