# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers of the fusemirrorctl tests (test-ctl-*.sh), sourced after functions.sh.  They collect
# problems instead of stopping at the first: each test ends with "$problems problem(s)".

problems=0
problem ()
{
	echo "PROBLEM: $*"
	problems=$((problems + 1))
}

# set_attrs FILE KEY=VALUE...: set user.fusemirror.KEY to VALUE.  Values go hex-encoded, so
# that setfattr takes them byte for byte (it reads "0x..." as hex and "0s..." as base64).
set_attrs ()
{
	_file=$1
	shift
	for _kv in "$@"; do
		_hex=$(printf '%s' "${_kv#*=}" | od -An -v -tx1 | tr -d ' \n')
		setfattr -n "user.fusemirror.${_kv%%=*}" -v "0x$_hex" "$_file" || return 1
	done
}

# run CMD...: run it; $rc, and its output in $tmpdir/out and $tmpdir/err.
run ()
{
	"$@" >"$tmpdir/out" 2>"$tmpdir/err"
	rc=$?
}

# expect_rc N WHAT: the last run exited N.
expect_rc ()
{
	if test "$rc" -ne "$1"; then
		problem "$2: exit status $rc, expected $1; stdout and stderr:"
		sed 's/^/    /' "$tmpdir/out" "$tmpdir/err"
	fi
}

# out_has REGEX WHAT / err_has REGEX WHAT: a line of stdout / stderr matches REGEX (ERE).
out_has ()
{
	grep -E -q -e "$1" "$tmpdir/out" || {
		problem "$2: no line of stdout matches /$1/; stdout:"
		sed 's/^/    /' "$tmpdir/out"
	}
}
err_has ()
{
	grep -E -q -e "$1" "$tmpdir/err" || {
		problem "$2: no line of stderr matches /$1/; stderr:"
		sed 's/^/    /' "$tmpdir/err"
	}
}
