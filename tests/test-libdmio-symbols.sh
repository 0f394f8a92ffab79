#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# libdmio.so exports exactly the functions include/dmio.h declares: none missing, and nothing
# else (no internal dmio_* symbol of libdmio-core, no crash-test device, no data).  The declared
# names come from parsing the header (dmio-header.sh), the exported ones from the built library
# (nm -D --defined-only), so neither list is kept by hand; src/dmio/libdmio.syms is what they are
# checked against.  Skipped when nm is missing or the build made no shared library.
. "${srcdir:-.}/functions.sh"
# shellcheck source-path=SCRIPTDIR source=dmio-header.sh
. "${srcdir:-.}/dmio-header.sh"
set -e

requires nm awk sort comm
test -n "${abs_top_builddir:-}" || skip "abs_top_builddir is not set (run it through make check)"
header=${top_srcdir:-$srcdir/..}/include/dmio.h
test -f "$header" || fail "$header not found"
so=$abs_top_builddir/src/dmio/.libs/libdmio.so
test -e "$so" || skip "$so was not built (configured --disable-shared?)"
make_tmpdir

tab=$(printf '\t')
parse_header "$header" | awk -F "$tab" '$1 == "function" || $1 == "variable" { print $2 }' |
	LC_ALL=C sort -u >"$tmpdir/declared"
test -s "$tmpdir/declared" || fail "found no function in $header"

# "ADDRESS TYPE NAME[@@VERSION]"; the version nodes themselves are absolute (A) symbols.
nm -D --defined-only "$so" >"$tmpdir/nm" || fail "nm -D --defined-only $so failed"
awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' "$tmpdir/nm" | LC_ALL=C sort -u >"$tmpdir/exported"
test -s "$tmpdir/exported" || fail "$so exports nothing"

LC_ALL=C comm -23 "$tmpdir/declared" "$tmpdir/exported" >"$tmpdir/missing"
LC_ALL=C comm -13 "$tmpdir/declared" "$tmpdir/exported" >"$tmpdir/extra"
problems=0
while read -r name; do
	echo "libdmio.so does not export $name, which dmio.h declares"
	problems=$((problems + 1))
done <"$tmpdir/missing"
while read -r name; do
	echo "libdmio.so exports $name, which dmio.h does not declare"
	problems=$((problems + 1))
done <"$tmpdir/extra"
test "$problems" -eq 0 ||
	fail "$problems symbol(s) differ between include/dmio.h and $so (see src/dmio/libdmio.syms)"
echo "libdmio.so exports the $(wc -l <"$tmpdir/declared") functions of include/dmio.h and nothing else"
