#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# test-restart.sh with splice = true on every mirror: a restart's parking keeps the requests a
# worker spliced into libfuse's pipe (read back out of it) for the next process, as it keeps the
# ones it read; fio's verification across the restarts says none was lost or damaged.  Run as a
# child, so that its harness is its own; fs.pipe-max-size is raised to 2 MiB for it (splice.sh).
test "$(id -u)" -eq 0 || { echo "${0##*/}: SKIP: not root" >&2; exit 77; }
old=$(cat /proc/sys/fs/pipe-max-size 2>/dev/null) || exit 77
if test "$old" -lt 2097152; then
	echo 2097152 >/proc/sys/fs/pipe-max-size 2>/dev/null ||
		{ echo "${0##*/}: SKIP: fs.pipe-max-size cannot be raised" >&2; exit 77; }
fi
status=0
FM_TEST_SPLICE=true ${SHELL:-/bin/sh} "${srcdir:-.}/test-restart.sh" || status=$?
test "$old" -ge 2097152 || echo "$old" >/proc/sys/fs/pipe-max-size
exit $status
