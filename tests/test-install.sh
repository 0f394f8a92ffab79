#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# After `make install`, a program outside the tree can #include <dmio.h>, link with
# `pkg-config --libs dmio` and use dmio_get, the six seed calls and dmio() (install-consumer.c).
# Fails if the installed header, the .pc file, the library or one of its symbols is missing.
# The programs' files are installed too: the systemd units (in systemd's unit directory), the
# bash completion, the example config in SYSCONFDIR/fusemirror/.
. "${srcdir:-.}/functions.sh"
set -e

requires "${CC%% *}" "${PKG_CONFIG:-pkg-config}" "${MAKE:-make}"
test -n "${abs_top_builddir:-}" || skip "abs_top_builddir is not set (run it through make check)"
make_tmpdir
dest=$tmpdir/dest

# Install into a staging directory.  The parent make's flags (jobserver, TESTS=...) stay out.
if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL ${MAKE:-make} -s -C "$abs_top_builddir" install \
	DESTDIR="$dest" >"$tmpdir/install.log" 2>&1; then
	cat "$tmpdir/install.log" >&2
	fail "make install DESTDIR=$dest failed"
fi

# Where configure put things; fall back to looking when run by hand.
pcdir=$dest${DMIO_PKGCONFIGDIR:-}
libdir=$dest${DMIO_LIBDIR:-}
includedir=$dest${DMIO_INCLUDEDIR:-}
if test -z "${DMIO_PKGCONFIGDIR:-}"; then
	pc=$(find "$dest" -name dmio.pc | head -n 1)
	test -n "$pc" || fail "make install installed no dmio.pc"
	pcdir=$(dirname "$pc")
	libdir=$(dirname "$pcdir")
fi
test -f "$pcdir/dmio.pc" || fail "dmio.pc is not installed in $pcdir"
test -n "${DMIO_INCLUDEDIR:-}" || includedir=$(dirname "$(find "$dest" -name dmio.h | head -n 1)")
test -f "$includedir/dmio.h" || fail "dmio.h is not installed in $includedir"
ls "$libdir"/libdmio.so* >/dev/null 2>&1 || fail "libdmio.so is not installed in $libdir"
# Nothing of the convenience library or the internals leaks into the install.
test ! -e "$includedir/dmio-internal.h" || fail "dmio-internal.h is installed"

PKG_CONFIG_PATH=$pcdir
PKG_CONFIG_SYSROOT_DIR=$dest
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
flags=$(${PKG_CONFIG:-pkg-config} --cflags --libs dmio) || fail "pkg-config --cflags --libs dmio failed"
case " $flags " in
*" -ldmio "*) ;;
*) fail "pkg-config --libs dmio does not name -ldmio: $flags" ;;
esac

# Build the consumer from a copy outside the source tree, so no -I of the tree can help it.
cp "$srcdir/install-consumer.c" "$tmpdir/consumer.c"
# shellcheck disable=SC2086 # CC, SANITIZER_FLAGS and flags are word lists
${CC:-cc} ${SANITIZER_FLAGS:-} -std=gnu11 -Wall -Werror -pthread -o "$tmpdir/consumer" \
	"$tmpdir/consumer.c" $flags || fail "install-consumer.c does not build against the install"
# The header it compiled against is the installed one.
# shellcheck disable=SC2086
${CC:-cc} ${SANITIZER_FLAGS:-} -M "$tmpdir/consumer.c" $flags >"$tmpdir/deps" 2>/dev/null ||
	fail "cc -M failed"
tr ' \\' '\n\n' <"$tmpdir/deps" | grep -q "^$includedir/dmio.h\$" ||
	fail "consumer.c did not compile against the installed $includedir/dmio.h"

LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
# The installed library is the one it runs with.
if command -v ldd >/dev/null 2>&1; then
	ldd "$tmpdir/consumer" | grep -q "libdmio\.so.* => $libdir/" ||
		fail "the consumer does not load libdmio.so from $libdir: $(ldd "$tmpdir/consumer" | grep dmio)"
fi
mkdir "$tmpdir/data"
"$tmpdir/consumer" "$tmpdir/data" || fail "install-consumer failed"

# The programs' files, where configure said (run by hand: not checked).
if test -n "${FM_UNITDIR:-}"; then
	for f in "$FM_UNITDIR/fusemirror@.service" "$FM_UNITDIR/fusemirror-check@.service" \
		"$FM_UNITDIR/fusemirror-check@.timer" "$FM_COMPLETIONDIR/fusemirrorctl" \
		"$FM_SYSCONFDIR/fusemirror/fusemirror.conf.example"; do
		test -f "$dest$f" || fail "make install did not install $f"
	done
	# The installed unit runs the installed daemon.
	grep -q "^ExecStart=${DMIO_PREFIX:-/usr/local}/sbin/fusemirrord " \
		"$dest$FM_UNITDIR/fusemirror@.service" ||
		fail "the installed unit does not run the installed fusemirrord"
fi

