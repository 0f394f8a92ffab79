#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# The systemd units, made as "make" makes them but pointing at this build's programs, pass
# "systemd-analyze verify" (no systemd as PID 1 needed); and the mirror unit keeps the settings
# the daemon's notifications rely on.
. "${srcdir:-.}/functions.sh"
set -e
requires systemd-analyze sed
make_tmpdir

contrib=${abs_top_srcdir:-${top_srcdir:-..}}/contrib
# Both programs in one directory, as installed.
sbindir=$tmpdir/sbin
mkdir "$sbindir"
ln -s "$(cd "${top_builddir:-..}/src/daemon" && pwd)/fusemirrord" "$sbindir/"
ln -s "$(cd "${top_builddir:-..}/src/ctl" && pwd)/fusemirrorctl" "$sbindir/"
for unit in fusemirror@ fusemirror-check@; do
	sed -e "s|@sbindir[@]|$sbindir|g" "$contrib/$unit.service.in" >"$tmpdir/${unit}t.service"
done
# The timer's unit is the check service of the same instance.
cp "$contrib/fusemirror-check@.timer" "$tmpdir/fusemirror-check@t.timer"
for f in fusemirror@t.service fusemirror-check@t.service fusemirror-check@t.timer; do
	(cd "$tmpdir" && systemd-analyze verify --man=no "./$f") >"$tmpdir/verify.log" 2>&1 ||
		{ cat "$tmpdir/verify.log" >&2; fail "systemd-analyze verify $f"; }
	# verify exits 0 on some warnings: none is welcome.
	if grep -v '^$' "$tmpdir/verify.log" | grep -q .; then
		cat "$tmpdir/verify.log" >&2
		fail "systemd-analyze verify $f warns"
	fi
done
unit=$tmpdir/fusemirror@t.service
for setting in Type=notify NotifyAccess=main WatchdogSec= RestartPreventExitStatus=78; do
	grep -q "^$setting" "$unit" || fail "fusemirror@.service lacks $setting"
done
echo "systemd-analyze verify: the units are clean"
