# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers of the FUSE over io_uring tests (test-ring*.sh), sourced after daemon.sh.
#
# The kernel reads /sys/module/fuse/parameters/enable_uring when it sends a new mount's
# FUSE_INIT, and the parameter is the machine's: a test sets it only around its own mount, under
# a lock that every ring test takes (other tests, mounting meanwhile, see it as it was, except in
# that window), and puts the old value back at once.

ring_param=/sys/module/fuse/parameters/enable_uring
ring_lock=${TMPDIR:-/tmp}/fusemirror-test-enable-uring.lock

# ring_param_exists: whether the kernel has FUSE over io_uring (the parameter).
ring_param_exists ()
{
	test -e "$ring_param"
}

# with_ring_param VALUE CMD [ARGS...]: run CMD (start_daemon, run_daemon: in this shell) with
# the parameter set to VALUE (Y or N; nothing changes when the kernel lacks it), under the lock,
# and restore the old value after.  Returns CMD's status.
with_ring_param ()
{
	_rp_value=$1
	shift
	exec 9>"$ring_lock"
	flock 9
	_rp_old=
	if ring_param_exists; then
		_rp_old=$(cat "$ring_param")
		echo "$_rp_value" >"$ring_param"
	fi
	_rp_status=0
	"$@" || _rp_status=$?
	test -z "$_rp_old" || echo "$_rp_old" >"$ring_param"
	flock -u 9
	exec 9>&-
	return $_rp_status
}

# ring_probe MOUNTPOINT: fail unless the file answers a getxattr within 10 s; a request the ring
# lost would leave the reader in the kernel for good, so the connection is aborted first
# (fusectl, mounted when it is not) and the test fails instead of hanging.
ring_probe ()
{
	timeout 10 getfattr --only-values --absolute-names -n user.fusemirror.state "$1" \
	    >/dev/null 2>&1 &
	_rp_pid=$!
	_rp_tries=100
	while kill -0 $_rp_pid 2>/dev/null && test $_rp_tries -gt 0; do
		sleep 0.1
		_rp_tries=$((_rp_tries - 1))
	done
	if kill -0 $_rp_pid 2>/dev/null; then
		_rp_conn=$(awk -v p="$1" '$5 == p { split($3, d, ":"); print d[2] }' \
		    /proc/self/mountinfo)
		test -d /sys/fs/fuse/connections/"$_rp_conn" ||
			mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null || :
		echo 1 >/sys/fs/fuse/connections/"$_rp_conn"/abort 2>/dev/null || :
		wait $_rp_pid 2>/dev/null || :
		daemon_fail "$1 did not answer within 10 s (a request lost on the ring?):" \
			"connection $_rp_conn aborted"
	fi
	wait $_rp_pid || daemon_fail "getfattr on $1 failed"
}
