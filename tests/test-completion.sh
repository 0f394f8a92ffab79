#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# The bash completion of fusemirrorctl (contrib/bash-completion/fusemirrorctl) completes, from
# the programs themselves: commands, a command's options, the mirror files served here (list),
# the legs of a mirror (its xattrs) and set's tunables.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires bash truncate
make_daemon_tmpdir

script=${abs_top_srcdir:-${top_srcdir:-..}}/contrib/bash-completion/fusemirrorctl
test -f "$script" || fail "$script is missing"

# complete WORD...: what the completion offers for the last WORD (the line is fusemirrorctl
# WORD...), one per line, sorted.
complete_words ()
{
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _fusemirrorctl
		printf "%s\n" "${COMPREPLY[@]}"' sh "$script" "$fusemirrorctl" "$@" | sort
}

# expect WHAT EXPECTED WORD...: the completion offers exactly EXPECTED (words, sorted).
expect ()
{
	_what=$1
	_want=$(printf '%s\n' $2 | sort)
	shift 2
	_got=$(complete_words "$@")
	test "x$_got" = "x$_want" ||
		daemon_fail "$_what: completion offered '$(echo $_got)', expected '$(echo $_want)'"
}

expect "commands starting re" "remove repair replace restart resync" re
expect "the options of resync" "--full" resync --f
expect "set's tunables" "io-timeout= max-read-errors= reconnect-delay= reconnect-max= resync-rate-max= resync-rate-min= write-behind=" \
	set /x ""
# Every command of --help is offered, and nothing else.
"$fusemirrorctl" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z]*\) .*/\1/p' >"$tmpdir/commands"
test "$(wc -l <"$tmpdir/commands")" -ge 15 || fail "fewer commands in --help than expected"
expect "every command" "$(cat "$tmpdir/commands")" ""

a=$tmpdir/a
b=$tmpdir/b
truncate -s $((32 * 1048576)) "$a" "$b"
write_config "$tmpdir/m.conf" complete "$a" "$b" metadata=internal
"$fusemirrorctl" create --assume-clean "$tmpdir/m.conf" >/dev/null || fail "fusemirrorctl create"
start_daemon "$tmpdir/m.conf" "$tmpdir/mirror"
mirror=$daemon_mountpoint
complete_words status "" >"$tmpdir/files"
grep -Fxq "$mirror" "$tmpdir/files" ||
	daemon_fail "status FILE does not offer the served mirror $mirror: $(cat "$tmpdir/files")"
expect "the legs of the mirror" "a b" fail "$mirror" ""
expect "the legs of the mirror, after a prefix" "b" replace "$mirror" b
stop_daemon
