# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers of the fusemirrord integration tests (real FUSE mounts), sourced after functions.sh:
#
#	. "${srcdir:-.}/functions.sh"
#	. "${srcdir:-.}/daemon.sh"
#	set -e
#	requires_fuse
#	make_daemon_tmpdir
#	truncate -s 64M "$tmpdir/a" "$tmpdir/b"
#	write_config "$tmpdir/m.conf" m "$tmpdir/a" "$tmpdir/b"
#	start_daemon "$tmpdir/m.conf" "$tmpdir/mirror"
#	assert_eq "$(xattr "$tmpdir/mirror" user.fusemirror.state)" clean "state"
#	stop_daemon
#
# start_daemon must run in the test's own shell (not in $(...)): it sets daemon_pid,
# daemon_mountpoint and daemon_log, and stop_daemon waits for that child.  One daemon at a time;
# a daemon still running when the test exits is stopped (SIGTERM, then SIGKILL) and its mount
# lazily unmounted.

_dm_abs ()
{
	case $1 in
	/*) echo "$1" ;;
	*) echo "$(pwd)/$1" ;;
	esac
}

fusemirrord=$(_dm_abs "${top_builddir:-..}/src/daemon/fusemirrord")
fusemirrorctl=$(_dm_abs "${top_builddir:-..}/src/ctl/fusemirrorctl")

# Messages the tests match are the C locale's.
LC_ALL=C
export LC_ALL

# ---- Requirements ------------------------------------------------------------------------------

# requires_fuse: skip unless this test can mount FUSE file systems (root, /dev/fuse) and read
# xattrs; fail when fusemirrord is not built.
requires_fuse ()
{
	requires_root
	requires_file /dev/fuse
	requires getfattr setfattr timeout
	test -x "$fusemirrord" || fail "$fusemirrord is not built"
}

# requires_ctl: fail when fusemirrorctl is not built.
requires_ctl ()
{
	test -x "$fusemirrorctl" || fail "$fusemirrorctl is not built"
}

# make_daemon_tmpdir: make_tmpdir, then make $tmpdir absolute and canonical, as config paths
# must be absolute and /proc/self/mountinfo shows canonical paths.
make_daemon_tmpdir ()
{
	make_tmpdir
	tmpdir=$(cd "$tmpdir" && pwd -P) || fail "cannot resolve the temporary directory"
}

# ---- Assertions --------------------------------------------------------------------------------

# daemon_fail MSG...: fail, showing the end of the current daemon's log first.
daemon_fail ()
{
	if test -n "${daemon_log:-}" && test -f "$daemon_log"; then
		echo "---- last lines of $daemon_log ----" >&2
		tail -n 40 "$daemon_log" >&2
		echo "----" >&2
	fi
	fail "$@"
}

# assert_eq ACTUAL EXPECTED WHAT: fail unless the two strings are equal.
assert_eq ()
{
	test "x$1" = "x$2" || daemon_fail "$3: expected '$2', got '$1'"
}

# assert_grep PATTERN FILE WHAT: fail unless FILE has a line matching the extended regex.
assert_grep ()
{
	grep -Eq -- "$1" "$2" || daemon_fail "$3: no line matching '$1' in $2"
}

# is_mounted PATH: whether PATH (absolute, canonical) is a mount point.
is_mounted ()
{
	awk -v p="$1" '$5 == p { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# ---- Config ------------------------------------------------------------------------------------

# write_config FILE NAME [KEY=VALUE...] LEG...: write a config for mirror NAME.  KEY=VALUE goes to
# [mirror] (metadata = none and stop-timeout = 0 unless given: SIGTERM stops at once even while
# a test's writer holds the file; fuse-transport = dev unless given: a test mounting while a
# ring test has enable_uring Y for its own mount is not served over io_uring by chance); a LEG
# is an absolute path, optionally followed by
# ",write-mostly"; legs are named a, b, c, ... in order.
write_config ()
{
	_dm_file=$1
	_dm_name=$2
	shift 2
	{
		echo "[mirror]"
		echo "name = $_dm_name"
		_dm_metadata=
		_dm_stop_timeout=
		_dm_transport=
		for _dm_arg in "$@"; do
			case $_dm_arg in
			/*) ;;
			metadata=*) _dm_metadata=1; echo "metadata = ${_dm_arg#*=}" ;;
			fuse-transport=*) _dm_transport=1; echo "fuse-transport = ${_dm_arg#*=}" ;;
			stop-timeout=*) _dm_stop_timeout=1; echo "stop-timeout = ${_dm_arg#*=}" ;;
			*=*) echo "${_dm_arg%%=*} = ${_dm_arg#*=}" ;;
			*) fail "write_config: bad argument '$_dm_arg'" ;;
			esac
		done
		test -n "$_dm_metadata" || echo "metadata = none"
		# FM_TEST_SPLICE=true|false: the splice key for every mirror (test-restart-splice.sh).
		test -z "${FM_TEST_SPLICE:-}" || echo "splice = $FM_TEST_SPLICE"
		test -n "$_dm_stop_timeout" || echo "stop-timeout = 0"
		# FM_TEST_TRANSPORT=io_uring: every mirror over the ring (test-ring-suite.sh).
		test -n "$_dm_transport" || echo "fuse-transport = ${FM_TEST_TRANSPORT:-dev}"
		_dm_legs=abcdefghijklmnopqrstuvwxyz
		for _dm_arg in "$@"; do
			case $_dm_arg in
			/*) ;;
			*) continue ;;
			esac
			_dm_leg=$(printf %.1s "$_dm_legs")
			_dm_legs=${_dm_legs#?}
			echo
			echo "[leg $_dm_leg]"
			echo "path = ${_dm_arg%,write-mostly}"
			case $_dm_arg in
			*,write-mostly) echo "write-mostly = true" ;;
			esac
		done
	} >"$_dm_file" || fail "cannot write $_dm_file"
}

# ---- The daemon --------------------------------------------------------------------------------

_dm_count=0

# daemon_env: the command prefix the daemon runs with (criticals abort it, sanitizer reports stop
# it), unquoted: $daemon_env "$fusemirrord" ...  A command (env), not a function, so that in
# "$daemon_env ... &" $! is the daemon's own pid.
daemon_env="env G_DEBUG=fatal-criticals ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# _daemon_alive PID: whether PID runs (a zombie does not).
_daemon_alive ()
{
	_dm_stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	_dm_stat=${_dm_stat##*) }
	case $_dm_stat in
	Z* | X* | "") return 1 ;;
	esac
	return 0
}

# _daemon_cleanup PID MOUNTPOINT LOG: at exit, stop a daemon that stop_daemon did not stop.
_daemon_cleanup ()
{
	if ! test -e "$3.stopped" && _daemon_alive "$1" &&
	    test "$(cat "/proc/$1/comm" 2>/dev/null)" = fusemirrord; then
		kill -s TERM "$1" 2>/dev/null
		_dm_tries=100
		while _daemon_alive "$1" && test $_dm_tries -gt 0; do
			sleep 0.1
			_dm_tries=$((_dm_tries - 1))
		done
		if _daemon_alive "$1"; then
			echo "$_fn_name: fusemirrord $1 ignored SIGTERM for 10 s: SIGKILL" >&2
			kill -s KILL "$1" 2>/dev/null
		fi
		wait "$1" 2>/dev/null
	fi
	if is_mounted "$2"; then
		echo "$_fn_name: $2 is still mounted: umount -l" >&2
		umount -l "$2"
	fi
}

# start_daemon [-n] CONFIG MOUNTPOINT [ARGS...]: run fusemirrord -f -c CONFIG MOUNTPOINT ARGS in
# the background, its output in $daemon_log, and wait (15 s at most) until the file answers
# user.fusemirror.state.  With -n, MOUNTPOINT is not on the command line (the config names it).
# Sets daemon_pid, daemon_mountpoint, daemon_log.  With FM_TEST_TRANSPORT=io_uring the mount
# is made with enable_uring Y (ring.sh) and must be served over the ring, unless its config
# says fuse-transport otherwise.
start_daemon ()
{
	if test "x${FM_TEST_TRANSPORT:-}" = xio_uring; then
		# FM_TEST_RING_HELD=1: the caller holds the parameter at Y (and its lock) already.
		if test "x${FM_TEST_RING_HELD:-}" = x1; then
			_start_daemon "$@"
		else
			command -v with_ring_param >/dev/null 2>&1 || . "${srcdir:-.}/ring.sh"
			with_ring_param Y _start_daemon "$@"
		fi
		case $(sed -n 's/^fuse-transport *= *//p' "$_dm_config") in
		io_uring)
			test "$(xattr "$daemon_mountpoint" user.fusemirror.fuse_transport)" = io_uring ||
				daemon_fail "FM_TEST_TRANSPORT=io_uring: $daemon_mountpoint is not" \
					"served over io_uring"
			;;
		esac
		return 0
	fi
	_start_daemon "$@"
}

_start_daemon ()
{
	_dm_n=
	if test "x$1" = x-n; then
		_dm_n=1
		shift
	fi
	_dm_config=$1
	daemon_mountpoint=$(_dm_abs "$2")
	shift 2
	test -n "$_dm_n" || set -- "$daemon_mountpoint" "$@"
	_dm_count=$((_dm_count + 1))
	daemon_log=$tmpdir/fusemirrord-$_dm_count.log
	$daemon_env "$fusemirrord" -f -c "$_dm_config" "$@" </dev/null >"$daemon_log" 2>&1 &
	daemon_pid=$!
	cleanup_fn "_daemon_cleanup $daemon_pid '$daemon_mountpoint' '$daemon_log'"
	_dm_tries=150
	until timeout 5 getfattr --only-values --absolute-names -n user.fusemirror.state \
	    "$daemon_mountpoint" >/dev/null 2>&1; do
		if ! _daemon_alive "$daemon_pid"; then
			_dm_status=0
			wait "$daemon_pid" || _dm_status=$?
			daemon_fail "fusemirrord exited with status $_dm_status instead of serving" \
				"$daemon_mountpoint"
		fi
		_dm_tries=$((_dm_tries - 1))
		test $_dm_tries -gt 0 ||
			daemon_fail "fusemirrord did not serve $daemon_mountpoint within 15 s"
		sleep 0.1
	done
	is_mounted "$daemon_mountpoint" ||
		daemon_fail "$daemon_mountpoint answers but is not in /proc/self/mountinfo"
}

# check_daemon_log [LOG]: fail when the daemon logged a critical or a sanitizer report.
check_daemon_log ()
{
	_dm_check=${1:-$daemon_log}
	if grep -Eq 'fusemirrord: (critical|error):|AddressSanitizer|LeakSanitizer|runtime error:' \
	    "$_dm_check"; then
		daemon_fail "$_dm_check has a critical message or a sanitizer report"
	fi
}

# wait_daemon_exit SECONDS: wait for the daemon to exit; sets daemon_status.
wait_daemon_exit ()
{
	_dm_tries=$(($1 * 10))
	while _daemon_alive "$daemon_pid"; do
		_dm_tries=$((_dm_tries - 1))
		test $_dm_tries -gt 0 || daemon_fail "fusemirrord did not exit within $1 s"
		sleep 0.1
	done
	daemon_status=0
	wait "$daemon_pid" || daemon_status=$?
	: >"$daemon_log.stopped"
}

# stop_daemon [SIGNAL]: send SIGNAL (TERM) to the daemon, wait (30 s at most) for it to exit, and
# check that it exited 0, unmounted the file and logged no critical or sanitizer report.
stop_daemon ()
{
	kill -s "${1:-TERM}" "$daemon_pid" || daemon_fail "cannot signal fusemirrord $daemon_pid"
	wait_daemon_exit 30
	test "$daemon_status" -eq 0 ||
		daemon_fail "fusemirrord exited with status $daemon_status after SIG${1:-TERM}"
	if is_mounted "$daemon_mountpoint"; then
		daemon_fail "$daemon_mountpoint is still mounted after fusemirrord exited"
	fi
	check_daemon_log
}

# run_daemon ARGS...: run fusemirrord ARGS in the foreground, expecting it to exit (20 s at most,
# then SIGTERM); sets run_status and run_output (stdout and stderr).
run_daemon ()
{
	run_status=0
	run_output=$($daemon_env timeout -k 5 20 "$fusemirrord" "$@" </dev/null 2>&1) ||
		run_status=$?
}

# expect_daemon_exit STATUS TEXT ARGS...: run_daemon ARGS; fail unless it exits STATUS and its
# output contains TEXT (fixed string).
expect_daemon_exit ()
{
	_dm_want=$1
	_dm_text=$2
	shift 2
	run_daemon "$@"
	case $run_output in
	*AddressSanitizer* | *LeakSanitizer* | *"runtime error:"* | *"critical:"*)
		printf '%s\n' "$run_output" >&2
		fail "fusemirrord $*: a critical message or a sanitizer report (exit status $run_status)"
		;;
	esac
	if test "$run_status" -ne "$_dm_want"; then
		printf '%s\n' "$run_output" >&2
		fail "fusemirrord $*: exit status $run_status, expected $_dm_want"
	fi
	case $run_output in
	*"$_dm_text"*) ;;
	*)
		printf '%s\n' "$run_output" >&2
		fail "fusemirrord $*: the output does not say '$_dm_text'"
		;;
	esac
}

# ---- Extended attributes -----------------------------------------------------------------------

# xattr FILE NAME: print the value of attribute NAME of FILE (fails when it has none).
xattr ()
{
	timeout 10 getfattr --only-values --absolute-names -n "$2" "$1"
}

# leg_state FILE I: the state of leg I.
leg_state ()
{
	xattr "$1" "user.fusemirror.leg.$2.state"
}

# expect_getxattr_error FILE NAME TEXT: fail unless reading NAME fails with the error TEXT
# (getfattr's words, e.g. "No such attribute" for ENODATA).
expect_getxattr_error ()
{
	if _dm_out=$(timeout 10 getfattr --absolute-names -n "$2" "$1" 2>&1); then
		daemon_fail "getxattr $2 succeeded: $_dm_out"
	fi
	case $_dm_out in
	*"$3"*) ;;
	*) daemon_fail "getxattr $2: expected '$3', got '$_dm_out'" ;;
	esac
}

# ctl_reason FILE COMMAND: send COMMAND through trusted.fusemirror.ctl and read
# user.fusemirror.last_error from the same process, as fusemirrorctl does (the reason is each
# process's own); prints "OK" or the errno's name, a space and the reason.
ctl_reason ()
{
	python3 - "$1" "$2" <<'EOF_PY'
import errno, os, sys
path, command = sys.argv[1], sys.argv[2]
try:
    os.setxattr(path, "trusted.fusemirror.ctl", command.encode())
    status = "OK"
except OSError as e:
    status = errno.errorcode.get(e.errno, str(e.errno))
reason = os.getxattr(path, "user.fusemirror.last_error").decode()
print(status, reason)
EOF_PY
}

# expect_setxattr_error FILE NAME VALUE TEXT [COMMAND-PREFIX...]: fail unless setting NAME to
# VALUE fails with the error TEXT (e.g. "Operation not permitted" for EPERM).  VALUE "-x"
# removes the attribute instead.
expect_setxattr_error ()
{
	_dm_f=$1
	_dm_n=$2
	_dm_v=$3
	_dm_e=$4
	shift 4
	if test "x$_dm_v" = x-x; then
		set -- "$@" setfattr -x "$_dm_n" "$_dm_f"
	else
		set -- "$@" setfattr -n "$_dm_n" -v "$_dm_v" "$_dm_f"
	fi
	if _dm_out=$(timeout 10 "$@" 2>&1); then
		daemon_fail "$* succeeded"
	fi
	case $_dm_out in
	*"$_dm_e"*) ;;
	*) daemon_fail "$*: expected '$_dm_e', got '$_dm_out'" ;;
	esac
}

# ---- Loop devices and mounts ------------------------------------------------------------------

# loop_attach FILE [LOSETUP-OPTIONS...]: attach a loop device over FILE with the options, print
# its path; at exit it is detached if it still holds FILE (another test may own the number by
# then).
loop_attach ()
{
	_dm_file=$1
	shift
	_dm_loop=$(losetup "$@" -f --show "$_dm_file") || fail "losetup $* $_dm_file"
	cleanup_fn "_loop_cleanup '$_dm_loop' '$_dm_file'"
	echo "$_dm_loop"
}

# _loop_cleanup LOOP FILE: at exit, detach LOOP if it still holds FILE (never fails: a failure
# inside the cleanup would skip the cleanups after it).
_loop_cleanup ()
{
	if losetup -n -O BACK-FILE "$1" 2>/dev/null | grep -qxF "$2"; then
		losetup -d "$1" || echo "$_fn_name: cannot detach $1 from $2" >&2
	fi
}

# loop_detach LOOP FILE: detach LOOP if it holds FILE, and wait (10 s at most) until it lets the
# file go.
loop_detach ()
{
	losetup -n -O BACK-FILE "$1" 2>/dev/null | grep -qxF "$2" || return 0
	losetup -d "$1" || fail "losetup -d $1"
	_dm_tries=100
	while losetup -n -O BACK-FILE "$1" 2>/dev/null | grep -qxF "$2"; do
		_dm_tries=$((_dm_tries - 1))
		test $_dm_tries -gt 0 || fail "$1 still holds $2 10 s after losetup -d"
		sleep 0.1
	done
}

# mount_at DIR MOUNT-ARGS...: mount MOUNT-ARGS on DIR (created), lazily unmounted at exit if it
# still is a mount point.
mount_at ()
{
	_dm_dir=$1
	shift
	mkdir -p "$_dm_dir"
	mount "$@" "$_dm_dir" || daemon_fail "mount $* $_dm_dir"
	cleanup_fn "is_mounted '$_dm_dir' && umount -l '$_dm_dir'"
}

# ---- Data --------------------------------------------------------------------------------------

# file_size FILE: its size in bytes.
file_size ()
{
	stat -L -c %s "$1"
}

# read_mirror FILE OUT: copy the whole mirror file to OUT, reading with O_DIRECT.
read_mirror ()
{
	timeout 120 dd if="$1" of="$2" bs=1M iflag=direct status=none ||
		daemon_fail "cannot read $1 through the mirror"
}

# legs_equal SIZE REFERENCE LEG...: fail unless the first SIZE bytes of every LEG equal those of
# REFERENCE.
legs_equal ()
{
	_dm_size=$1
	_dm_ref=$2
	shift 2
	for _dm_leg in "$@"; do
		cmp -n "$_dm_size" "$_dm_ref" "$_dm_leg" >&2 ||
			daemon_fail "the first $_dm_size bytes of $_dm_leg differ from $_dm_ref"
	done
}

# not_zero FILE: fail when FILE holds only zero bytes (a test that wrote nothing tests nothing).
not_zero ()
{
	cmp -s -n "$(file_size "$1")" "$1" /dev/zero && daemon_fail "$1 holds only zeroes"
	return 0
}

# run_fio TAG ARGS...: run fio ARGS (120 s at most; ARGS has --name=... or a job file), its output
# in $tmpdir/fio-TAG.out; fail unless it exits 0 and every job reports err=0.
run_fio ()
{
	_dm_fio_out=$tmpdir/fio-$1.out
	shift
	_dm_status=0
	timeout -k 5 120 fio --output="$_dm_fio_out" "$@" || _dm_status=$?
	if test $_dm_status -ne 0 || grep -Eq 'err= *[1-9]' "$_dm_fio_out" ||
	    ! grep -Eq 'err= *0' "$_dm_fio_out"; then
		grep -E 'err=|error|fio:|verify|bad|crc' "$_dm_fio_out" | head -n 40 >&2
		daemon_fail "fio $*: exit status $_dm_status or a job's error (see $_dm_fio_out)"
	fi
}

# fio_engine: print io_uring when fio can use it here, else libaio.
fio_engine ()
{
	if timeout 20 fio --name=probe --filename="$tmpdir/.fio-probe" --size=64k --bs=4k \
	    --ioengine=io_uring --direct=1 --rw=write >/dev/null 2>&1; then
		echo io_uring
	else
		echo libaio
	fi
	rm -f "$tmpdir/.fio-probe"
}

# ---- Helpers of the metadata = internal tests ---------------------------------------------------

# wait_until SECONDS WHAT CMD [ARGS...]: run CMD every 0.1 s until it succeeds; fail (with the
# daemon's log) after SECONDS.
wait_until ()
{
	_wu_tries=$(($1 * 10))
	_wu_what=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		_wu_tries=$((_wu_tries - 1))
		test "$_wu_tries" -gt 0 || daemon_fail "timed out waiting for $_wu_what"
		sleep 0.1
	done
}

# state_is STATE: whether the state of the mirror file $mirror is STATE.
state_is ()
{
	test "$(xattr "$mirror" user.fusemirror.state 2>/dev/null)" = "$1"
}

# bit_set LEG REGION: whether REGION's bit is set in LEG's on-disk bitmap (at 4 KiB).
bit_set ()
{
	_bs_byte=$(od -An -tu1 -j $((4096 + $2 / 8)) -N1 "$1" | tr -d ' ')
	test $(((_bs_byte >> ($2 % 8)) & 1)) -eq 1
}

# examine_field LEG KEY: a field of fusemirrorctl examine --json LEG ($python, else python3).
examine_field ()
{
	"$fusemirrorctl" examine --json "$1" >"$tmpdir/examine.json" ||
		fail "fusemirrorctl examine --json $1"
	"${python:-python3}" -S -c \
		'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
		"$tmpdir/examine.json" "$2"
}

# data_equal SIZE REF LEG...: fail unless the SIZE bytes of each LEG's data area (from 1 MiB)
# equal REF's.
data_equal ()
{
	_de_size=$1
	_de_ref=$2
	shift 2
	for _de_leg in "$@"; do
		cmp -i 1048576:1048576 -n "$_de_size" "$_de_ref" "$_de_leg" >&2 ||
			daemon_fail "the data areas of $_de_ref and $_de_leg differ"
	done
}

# notify_listen SOCKET LOG: a NOTIFY_SOCKET of our own (systemd's notification protocol, no
# systemd needed): each datagram to SOCKET becomes one line of LOG, its newlines '|'.  Returns
# once it listens; it is killed when the test exits.
notify_listen ()
{
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as out:
    out.write("listening\n")
    while True:
        out.write(s.recv(4096).decode().replace("\n", "|") + "\n")
' "$1" "$2" &
	cleanup_fn "kill $! 2>/dev/null"
	wait_until 10 "the notify listener" grep -q listening "$2"
}

# nbdfuse_leg NAME IMAGE [--filter=F...] [KEY=VALUE...]: a leg behind a real NBD server: nbdkit
# (on a unix socket, its file plugin serving IMAGE through the filters F) and an
# nbdfuse file $tmpdir/nbd-NAME/NAME over it.  Sets nbdkit_pid (SIGSTOP it to hang the leg)
# and nbdfuse_file.  Both go when the test exits (the server is continued first).
nbdfuse_leg ()
{
	_nl_name=$1
	_nl_image=$2
	shift 2
	_nl_dir=$tmpdir/nbd-$_nl_name
	mkdir "$_nl_dir" || fail "mkdir $_nl_dir"
	# --filter=... goes before the plugin, the filters' parameters after it.
	_nl_filters=
	_nl_params=
	for _nl_arg in "$@"; do
		case $_nl_arg in
		--filter=*) _nl_filters="$_nl_filters $_nl_arg" ;;
		*) _nl_params="$_nl_params $_nl_arg" ;;
		esac
	done
	# shellcheck disable=SC2086 # word lists without blanks inside a word
	nbdkit --unix "$_nl_dir.sock" --pidfile "$_nl_dir.pid" $_nl_filters file "$_nl_image" \
		$_nl_params || fail "nbdkit did not start"
	wait_until 10 "the nbdkit pid file" test -s "$_nl_dir.pid"
	nbdkit_pid=$(cat "$_nl_dir.pid")
	cleanup_fn "kill -s CONT $nbdkit_pid 2>/dev/null; kill $nbdkit_pid 2>/dev/null"
	nbdfuse -P "$_nl_dir.fuse-pid" "$_nl_dir/$_nl_name" --unix "$_nl_dir.sock" \
		</dev/null >"$_nl_dir.log" 2>&1 &
	cleanup_fn "kill -s CONT $nbdkit_pid 2>/dev/null; fusermount3 -u '$_nl_dir' 2>/dev/null || umount -l '$_nl_dir' 2>/dev/null"
	wait_until 10 "nbdfuse to serve" test -s "$_nl_dir.fuse-pid"
	nbdfuse_file=$_nl_dir/$_nl_name
}
