#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# fusemirrorctl monitor: --test --oneshot sends a TestMessage for each mirror (printed, given to
# --program, mailed through sendmail); followed live, an operator's fail is printed, run and
# mailed (LegFailed, DegradedArray), events from before the monitor started are not, and a
# burst of one event (a resync's ResyncProgress) is held back after 5.  sendmail is a stand-in
# script that keeps what it is given (no MTA here); everything else is real.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires truncate
make_daemon_tmpdir

mib=1048576
a=$tmpdir/a
b=$tmpdir/b
truncate -s $((64 * mib)) "$a" "$b"
write_config "$tmpdir/m.conf" watched "$a" "$b" metadata=internal
"$fusemirrorctl" create --assume-clean "$tmpdir/m.conf" >/dev/null || fail "fusemirrorctl create"
start_daemon "$tmpdir/m.conf" "$tmpdir/mirror"
mirror=$daemon_mountpoint

mkdir "$tmpdir/bin"
cat >"$tmpdir/bin/sendmail" <<EOS
#!/bin/sh
test "\$1" = -t || exit 64
n=\$(ls "$tmpdir" | grep -c '^mail\.' || true)
cat >"$tmpdir/mail.\$n"
EOS
cat >"$tmpdir/program" <<EOS
#!/bin/sh
echo "\$1 \$2 \$3 \$FUSEMIRROR_PRIORITY \$FUSEMIRROR_FILE" >>"$tmpdir/program.log"
EOS
chmod +x "$tmpdir/bin/sendmail" "$tmpdir/program"
PATH=$tmpdir/bin:$PATH
export PATH

# ---- --test --oneshot ------------------------------------------------------------------------
# Without FILE every mirror served here gets one (other tests' mirrors may be there too, and one
# may stop between the list and its test: that one alone may fail, with its one line).
rc=0
"$fusemirrorctl" monitor --test --oneshot >"$tmpdir/all.out" 2>"$tmpdir/all.err" || rc=$?
if [ $rc -ne 0 ]; then
	cat "$tmpdir/all.err" >&2
	grep -vE "^fusemirrorctl: monitor: .* does not answer \(is a daemon serving it\?\)$" \
		"$tmpdir/all.err" | grep -q . && daemon_fail "monitor --test: exit $rc"
	! grep -qF "monitor: $mirror does not answer" "$tmpdir/all.err" ||
		daemon_fail "monitor --test: our mirror did not answer"
fi
assert_grep " watched TestMessage -: " "$tmpdir/all.out" "our mirror among all of them"
"$fusemirrorctl" monitor --test --oneshot --program "$tmpdir/program" --mail ops@example.org \
	"$mirror" >"$tmpdir/test.out" || daemon_fail "monitor --test --oneshot"
cat "$tmpdir/test.out"
assert_grep "^[0-9-]+ [0-9:]+ watched TestMessage -: a test of the alerts of mirror watched" \
	"$tmpdir/test.out" "the printed TestMessage"
test "$(wc -l <"$tmpdir/test.out")" -eq 1 || daemon_fail "--oneshot printed old events"
assert_grep "^TestMessage watched - warning $mirror\$" "$tmpdir/program.log" "the program's run"
test -f "$tmpdir/mail.0" || daemon_fail "no mail was sent"
assert_grep "^To: ops@example.org\$" "$tmpdir/mail.0" "the mail's recipient"
assert_grep "^Subject: fusemirror TestMessage event on .*:watched\$" "$tmpdir/mail.0" \
	"the mail's subject"
echo "the test mail:"
cat "$tmpdir/mail.0"

# The example hook of contrib/ mails a TestMessage when asked to.
rm -f "$tmpdir/mail."*
FUSEMIRROR_ALERT_MAIL=ops@example.org "$fusemirrorctl" monitor --test --oneshot \
	--program "${abs_top_srcdir:-${top_srcdir:-..}}/contrib/fusemirror-alert" "$mirror" \
	>/dev/null 2>&1 ||
	daemon_fail "monitor --program contrib/fusemirror-alert"
test -f "$tmpdir/mail.0" || daemon_fail "contrib/fusemirror-alert sent no mail"
assert_grep "^Subject: fusemirror TestMessage on .*:watched\$" "$tmpdir/mail.0" \
	"contrib/fusemirror-alert's mail"

# ---- Live ----------------------------------------------------------------------------------
rm -f "$tmpdir/mail."* "$tmpdir/program.log"
"$fusemirrorctl" monitor --interval 0.2 --program "$tmpdir/program" --mail ops@example.org \
	"$mirror" >"$tmpdir/live.out" 2>"$tmpdir/live.err" &
monitor=$!
cleanup_fn "kill $monitor 2>/dev/null"
sleep 1
"$fusemirrorctl" fail "$mirror" b >/dev/null || daemon_fail "fusemirrorctl fail b"
wait_until 10 "LegFailed printed" grep -q ' watched LegFailed b: ' "$tmpdir/live.out"
wait_until 10 "DegradedArray printed" grep -q ' watched DegradedArray -: ' "$tmpdir/live.out"
wait_until 10 "the program's LegFailed" grep -q "^LegFailed watched b warning $mirror\$" \
	"$tmpdir/program.log"
wait_until 10 "a mail about LegFailed" grep -lq 'Subject: fusemirror LegFailed event' \
	"$tmpdir"/mail.*
grep -h '^Subject' "$tmpdir"/mail.*
# The add is notice: printed and run, not mailed.
"$fusemirrorctl" add "$mirror" "$b" >/dev/null 2>&1 || daemon_fail "fusemirrorctl add b"
wait_until 10 "LegAdded printed" grep -q ' watched LegAdded b: ' "$tmpdir/live.out"
"$fusemirrorctl" wait "$mirror" >/dev/null 2>&1 || daemon_fail "fusemirrorctl wait"
sleep 0.5
grep -l 'Subject: fusemirror LegAdded' "$tmpdir"/mail.* && daemon_fail "a notice was mailed"
# A full resync: ResyncProgress at every 10%, held back after 5.
"$fusemirrorctl" resync --full "$mirror" >/dev/null || daemon_fail "resync --full"
"$fusemirrorctl" wait "$mirror" >/dev/null 2>&1 || daemon_fail "fusemirrorctl wait"
wait_until 10 "ResyncFinished printed" grep -q ' watched ResyncFinished' "$tmpdir/live.out"
sleep 0.5
n=$(grep -c ' watched ResyncProgress' "$tmpdir/live.out" || true)
echo "ResyncProgress lines printed: $n"
test "$n" -eq 5 || daemon_fail "$n ResyncProgress lines, not 5 (the rest held back)"
cat "$tmpdir/live.out"
kill $monitor
stop_daemon
