# Helpers of the splice tests (splice = true in fusemirror.conf(5)), sourced after daemon.sh.

# requires_splice_pipes: libfuse splices a request only into a pipe of 2 MiB (a 1 MiB write and
# its headers), which needs fs.pipe-max-size >= 2097152 without CAP_SYS_RESOURCE: raise it for
# the test (put back at exit), or skip when it cannot be.
requires_splice_pipes ()
{
	_sp_max=$(cat /proc/sys/fs/pipe-max-size 2>/dev/null) || skip "no /proc/sys/fs/pipe-max-size"
	test "$_sp_max" -ge 2097152 && return 0
	echo 2097152 >/proc/sys/fs/pipe-max-size 2>/dev/null ||
		skip "fs.pipe-max-size is $_sp_max and cannot be raised to 2 MiB"
	cleanup_fn "echo $_sp_max >/proc/sys/fs/pipe-max-size"
}

# splice_counts FILE: print "SPLICED COPIED" (user.fusemirror.splice.*).
splice_counts ()
{
	echo "$(xattr "$1" user.fusemirror.splice.spliced) $(xattr "$1" user.fusemirror.splice.copied)"
}
