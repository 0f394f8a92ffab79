# SPDX-License-Identifier: LGPL-2.1-or-later
# The harness of fusemirror's shell tests (after nbdkit's tests/functions.sh).  A test starts with
#
#	. "${srcdir:-.}/functions.sh"
#	set -e
#	requires losetup mkfs.ext4
#	make_tmpdir
#
# and ends with exit 0 (pass), 1 (fail) or 77 (skipped: something it needs is missing).
# Resources registered with cleanup_fn are released in reverse order when the test exits, however
# it exits.  cleanup_fn, make_loop and mount_tmpfs also work inside $(...) subshells: the cleanup
# stack is a file, not a shell variable.
#
# Environment from tests/Makefile.am: srcdir, builddir, top_srcdir, top_builddir and their abs_
# forms, CC, SANITIZER_FLAGS, PKG_CONFIG, MAKE, VALGRIND, DMIO_PREFIX, DMIO_LIBDIR, ...

# ---- Messages and exits ------------------------------------------------------------------------

_fn_name=${0##*/}

# fail MSG...: report a failure on stderr and exit 1.
fail ()
{
	echo "$_fn_name: FAIL: $*" >&2
	exit 1
}

# skip MSG...: report why the test cannot run and exit 77.
skip ()
{
	echo "$_fn_name: SKIP: $*" >&2
	exit 77
}

# ---- Requirements ------------------------------------------------------------------------------

# requires CMD...: skip unless every command is on $PATH (or is an existing executable path).
requires ()
{
	for _fn_cmd in "$@"; do
		command -v "$_fn_cmd" >/dev/null 2>&1 || skip "'$_fn_cmd' is not installed"
	done
}

# requires_run CMD [ARGS...]: skip unless the command runs successfully.
requires_run ()
{
	"$@" </dev/null >/dev/null 2>&1 || skip "'$*' does not work here"
}

# requires_root: skip unless running as root.
requires_root ()
{
	test "$(id -u)" -eq 0 || skip "this test must run as root"
}

# requires_file PATH...: skip unless each path exists (e.g. /dev/fuse, /dev/loop-control).
requires_file ()
{
	for _fn_file in "$@"; do
		test -e "$_fn_file" || skip "$_fn_file does not exist"
	done
}

# ---- The cleanup stack -------------------------------------------------------------------------

_fn_cleanup_file=$(mktemp "${TMPDIR:-/tmp}/fusemirror-cleanup.XXXXXX") || {
	echo "$_fn_name: cannot create the cleanup stack" >&2
	exit 1
}

# cleanup_fn 'CMD': run CMD (with eval) when the test exits; the last registered runs first.
cleanup_fn ()
{
	printf '%s\n' "$*" >>"$_fn_cleanup_file"
}

_fn_run_cleanup ()
{
	_fn_status=$?
	trap '' INT QUIT TERM HUP
	trap - EXIT
	set +e
	if test -f "$_fn_cleanup_file"; then
		# Reverse order: a mount made inside a temporary directory goes before the directory.
		sed -n '1!G;h;$p' "$_fn_cleanup_file" >"$_fn_cleanup_file.rev"
		while IFS= read -r _fn_cmd; do
			test -n "$_fn_cmd" && eval "$_fn_cmd"
		done <"$_fn_cleanup_file.rev"
		rm -f "$_fn_cleanup_file" "$_fn_cleanup_file.rev"
	fi
	exit $_fn_status
}
trap _fn_run_cleanup EXIT
trap 'exit 130' INT
trap 'exit 131' QUIT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---- Temporary files, mounts and loop devices --------------------------------------------------

# make_tmpdir: create $tmpdir (under $TMPDIR, else the build directory), removed on exit.  Call it
# in the test's own shell, not in $(...), since it sets a variable.
make_tmpdir ()
{
	_fn_base=${TMPDIR:-${abs_builddir:-${builddir:-/tmp}}}
	tmpdir=$(mktemp -d "$_fn_base/${_fn_name%.sh}.XXXXXX") ||
		fail "cannot create a temporary directory under $_fn_base"
	cleanup_fn "rm -rf '$tmpdir'"
}

# mount_tmpfs DIR SIZE: mount a tmpfs of SIZE (e.g. 1M) on DIR (created), unmounted on exit.
mount_tmpfs ()
{
	requires_root
	mkdir -p "$1" || fail "mkdir $1"
	mount -t tmpfs -o "size=$2" tmpfs "$1" || fail "cannot mount a tmpfs on $1"
	cleanup_fn "umount -l '$1'"
}

# make_loop FILE [ro]: attach a loop device over FILE (read-only with 'ro'), print its path
# (/dev/loopN); it is detached on exit.
make_loop ()
{
	requires_root
	requires losetup
	if test "${2:-}" = ro; then
		_fn_loop=$(losetup -f --show -r "$1") || fail "losetup -r $1"
	else
		_fn_loop=$(losetup -f --show "$1") || fail "losetup $1"
	fi
	cleanup_fn "losetup -d '$_fn_loop'"
	echo "$_fn_loop"
}

# ---- Waiting -----------------------------------------------------------------------------------

# wait_for SECONDS CMD [ARGS...]: run CMD every 0.1 s until it succeeds; fail after SECONDS.
wait_for ()
{
	_fn_tries=$(($1 * 10))
	shift
	while ! "$@" >/dev/null 2>&1; do
		_fn_tries=$((_fn_tries - 1))
		test "$_fn_tries" -gt 0 || fail "timed out waiting for: $*"
		sleep 0.1
	done
}
