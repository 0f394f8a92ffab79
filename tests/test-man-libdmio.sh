#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# man/libdmio.3 documents every function, type and constant of include/dmio.h.
#
# The names come from parsing the header (nothing is listed here), and the test fails, naming
# each one, when the page
#   - does not name a function in NAME, show its prototype in SYNOPSIS, or refer to it as
#     name() in DESCRIPTION;
#   - does not mention a struct, union, enum or typedef name, a DMIO_* macro or enumerator,
#     or any other macro or enumerator of the header, in DESCRIPTION;
#   - (when groff or mandoc can render it) shows a prototype or a type definition that differs
#     from the header's (comments and white space aside);
#   - makes groff -ww warn (skipped when groff is missing);
#   - has an EXAMPLES program that does not compile against the header (when a C compiler is
#     at hand).
#
# Run by automake with srcdir and top_srcdir in the environment; by hand:
#   srcdir=tests top_srcdir=. sh tests/test-man-libdmio.sh

if test -z "${srcdir:-}"; then
	srcdir=$(dirname "$0")
fi
if test -f "$srcdir/functions.sh"; then
	# shellcheck source-path=SCRIPTDIR source=functions.sh
	. "$srcdir/functions.sh"
else
	fail () { echo "${0##*/}: FAIL: $*" >&2; exit 1; }
	skip () { echo "${0##*/}: SKIP: $*" >&2; exit 77; }
fi
# shellcheck source-path=SCRIPTDIR source=dmio-header.sh
. "$srcdir/dmio-header.sh"
set -u

top_srcdir=${top_srcdir:-$srcdir/..}
header=$top_srcdir/include/dmio.h
page=$top_srcdir/man/libdmio.3
test -f "$header" || fail "$header not found"
test -f "$page" || fail "$page not found"
command -v awk >/dev/null 2>&1 || skip "awk is not installed"
command -v sed >/dev/null 2>&1 || skip "sed is not installed"

problems=0
problem ()
{
	echo "libdmio.3: $*"
	problems=$((problems + 1))
}

tab=$(printf '\t')
bs=$(printf '\b')

# ---- The header ---------------------------------------------------------------------------------

# normalize: one line per input line; runs of white space become one space, and only spaces
# between two identifier characters are kept ("const char *p" -> "const char*p").
normalize ()
{
	sed -e 's/[[:space:]][[:space:]]*/ /g' -e 's/^ //' -e 's/ $//' \
		-e 's/ \([^A-Za-z0-9_]\)/\1/g' -e 's/\([^A-Za-z0-9_]\) /\1/g'
}

decls=$(parse_header "$header")
test -n "$decls" || fail "found no declarations in $header"
nfunc=$(printf '%s\n' "$decls" | grep -c "^function$tab")
test "$nfunc" -gt 0 || fail "found no function in $header"

# ---- The page -----------------------------------------------------------------------------------

# The page source without roff comments and without the escapes that can sit inside a name.
clean_source ()
{
	sed -e '/^[.'\'']\\"/d' -e 's/\\".*$//' \
		-e 's/\\f[BIRP1-4]//g' -e 's/\\f([A-Z][A-Z]//g' -e 's/\\f\[[^]]*\]//g' \
		-e 's/\\[&%]//g' -e 's/\\-/-/g' -e 's/\\e/\\/g' "$page"
}
src=$(clean_source)

# Lines of the source in the .SH section named $1.
section_lines ()
{
	printf '%s\n' "$src" | awk -v want="$1" '
	/^\.SH/ { s = $0; sub(/^\.SH[ \t]*/, "", s); gsub(/"/, "", s); inside = (s == want); next }
	inside { print }'
}
name_src=$(section_lines NAME)
synopsis_src=$(section_lines SYNOPSIS)
description_src=$(section_lines DESCRIPTION)
test -n "$name_src" || problem "has no NAME section"
test -n "$synopsis_src" || problem "has no SYNOPSIS section"
test -n "$description_src" || problem "has no DESCRIPTION section"

has_word () # TEXT NAME
{
	printf '%s\n' "$1" | grep -E -q "(^|[^A-Za-z0-9_])$2([^A-Za-z0-9_]|\$)"
}
has_call () # TEXT NAME: "name(", "name (" or ".BR name ()"
{
	printf '%s\n' "$1" | grep -E -q "(^|[^A-Za-z0-9_])$2[\" ]*\\("
}

# ---- The rendered page ----------------------------------------------------------------------------

render ()
{
	if command -v groff >/dev/null 2>&1; then
		groff -man -Tascii -P-c -P-b -P-u -rcR=1 "$page" 2>/dev/null
	elif command -v mandoc >/dev/null 2>&1; then
		mandoc -man -Tascii "$page" 2>/dev/null
	else
		return 1
	fi
}
rendered=
if text=$(render) && test -n "$text"; then
	rendered=$(printf '%s\n' "$text" | sed -e "s/.$bs//g")
fi

# The rendered text of the sections whose headings match, joined and normalized.
rendered_section () # HEADING-ERE
{
	printf '%s\n' "$rendered" | awk -v want="^($1)\$" '
		/^[A-Z][A-Z ]*$/ { inside = ($0 ~ want); next }
		inside { print }'
}
flatten () # stdin -> one normalized line, C comments removed
{
	strip_comments | tr '\n' ' ' | normalize
}
if test -n "$rendered"; then
	rendered_synopsis=$(rendered_section SYNOPSIS | flatten)
	rendered_all=$(printf '%s\n' "$rendered" | flatten)
else
	echo "note: neither groff nor mandoc renders the page; prototypes and definitions not compared"
fi

# ---- Every name of the header ---------------------------------------------------------------------

nchecked=0
while IFS="$tab" read -r kind name decl; do
	test -n "$name" || continue
	nchecked=$((nchecked + 1))
	ndecl=$(printf '%s\n' "$decl" | normalize)
	case $kind in
	function)
		has_word "$name_src" "$name" || problem "function $name is not listed in NAME"
		has_call "$synopsis_src" "$name" || problem "function $name has no prototype in SYNOPSIS"
		has_call "$description_src" "$name" || problem "function $name is not described (no $name() in DESCRIPTION)"
		;;
	struct | union | enum | opaque | typedef | variable)
		has_word "$description_src" "$name" || problem "$kind $name is not described (not in DESCRIPTION)"
		;;
	macro | constant)
		has_word "$description_src" "$name" || problem "$kind $name is not described (not in DESCRIPTION)"
		;;
	esac
	test -n "$rendered" || continue
	case $kind in
	function | typedef)
		case $rendered_synopsis in
		*"$ndecl"*) ;;
		*) problem "SYNOPSIS does not show $kind $name as the header declares it: $decl" ;;
		esac
		;;
	struct | union | enum)
		case $rendered_all in
		*"$ndecl"*) ;;
		*) problem "does not show the definition of $kind $name as the header has it: $decl" ;;
		esac
		;;
	esac
done <<EOF
$decls
EOF

# ---- groff warnings -----------------------------------------------------------------------------

if command -v groff >/dev/null 2>&1; then
	warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
	if test -n "$warnings"; then
		problem "groff -man -ww warns:"
		printf '%s\n' "$warnings" | sed 's/^/    /'
	fi
else
	echo "note: groff is not installed; its warnings not checked"
fi

# ---- The example compiles -----------------------------------------------------------------------

cc_cmd=${CC:-}
if test -z "$cc_cmd"; then
	for c in cc gcc clang; do
		if command -v $c >/dev/null 2>&1; then
			cc_cmd=$c
			break
		fi
	done
fi
if test -z "$rendered"; then
	:
elif test -z "$cc_cmd" || ! command -v "${cc_cmd%% *}" >/dev/null 2>&1; then
	echo "note: no C compiler; the example not compiled"
else
	# From the first "#include" of EXAMPLES to the first "}" as indented as it, dedented.
	program=$(rendered_section 'EXAMPLES?' | awk '
		!started && /^[ ]*#include/ { started = 1; match($0, /^ */); indent = RLENGTH }
		started { print substr($0, indent + 1) }
		started && substr($0, indent + 1) ~ /^}[ ]*$/ && substr($0, 1, indent) ~ /^ *$/ { exit }')
	if test -z "$program"; then
		problem "has no example program in EXAMPLES"
	elif ! out=$(printf '%s\n' "$program" |
		$cc_cmd -std=gnu11 -fsyntax-only -Werror=implicit-function-declaration \
			-I"$top_srcdir/include" -x c - 2>&1); then
		problem "the EXAMPLES program does not compile against include/dmio.h:"
		printf '%s\n' "$out" | sed 's/^/    /'
	fi
fi

echo "checked $nchecked names of include/dmio.h ($nfunc functions) against man/libdmio.3"
if test "$problems" -gt 0; then
	fail "$problems problem(s) in man/libdmio.3"
fi
exit 0
