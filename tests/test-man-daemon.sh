#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# man/fusemirrord.8 and contrib/fusemirror@.service.in agree with the code.
#
# Nothing is listed here: the names come from the code and from "fusemirrord --help", and the
# test fails, naming each one, when
#   - an option that --help prints is not a tag under OPTIONS (same spelling, same argument
#     name) or not in SYNOPSIS, or an option tag under OPTIONS is not printed by --help;
#   - the exit statuses under EXIT STATUS are not 0 and the EXIT_* values of
#     src/daemon/fusemirrord.c (each described with its name: EXIT_USAGE -> "usage"), or --help
#     lists other ones, or main() returns a literal status that is neither;
#   - a status attribute of src/fuse/xattr.c (its mirror_keys and leg_fields tables), the control
#     attribute, a control command or an errno that the xattr code returns is not under EXTENDED
#     ATTRIBUTES, or the page lists a user.fusemirror.* attribute that the code does not have;
#     (and, as the SPEC asks, when listxattr's tables and getxattr's names differ);
#   - an event of src/mirror/ (the names given to mirror_event() and the FUSEMIRROR_EVENT
#     literals) is not under Events with its level, the page lists an event the code does not
#     log, or a FUSEMIRROR_* journal field differs between code and page;
#   - the sd_notify messages or the default config path are not in the page;
#   - the unit is not Type=notify, NotifyAccess=main, Restart=on-failure,
#     RestartPreventExitStatus=<EXIT_CONFIG>, has mount-namespace sandboxing, or does not run
#     "fusemirrord -f -c /etc/fusemirror/%i.conf"; systemd-analyze verify (when it works here)
#     complains about it;
#   - groff -man -ww warns about the page (skipped when groff is missing).
#
# Run by automake with srcdir, top_srcdir and top_builddir in the environment; by hand:
#   srcdir=tests top_srcdir=. top_builddir=_build sh tests/test-man-daemon.sh
# FUSEMIRRORD=/path/to/fusemirrord overrides the binary whose --help is read; KEEP=DIR keeps the
# intermediate files (the page as text, the names found in the code) in DIR.

# The checks append to one file, one redirection each: that is clearer here than a block.
# shellcheck disable=SC2129

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
set -u

top_srcdir=${top_srcdir:-$srcdir/..}
top_builddir=${top_builddir:-$top_srcdir}
page=$top_srcdir/man/fusemirrord.8
unit=$top_srcdir/contrib/fusemirror@.service.in
built_unit=$top_builddir/contrib/fusemirror@.service
daemon_c=$top_srcdir/src/daemon/fusemirrord.c
config_h=$top_srcdir/src/config/config.h
frontend_c=$top_srcdir/src/fuse/frontend.c
xattr_c=$top_srcdir/src/fuse/xattr.c
xattr_h=$top_srcdir/src/fuse/xattr.h
control_c=$top_srcdir/src/fuse/control.c
mirror_dir=$top_srcdir/src/mirror
bin=${FUSEMIRRORD:-$top_builddir/src/daemon/fusemirrord}

for f in "$page" "$unit" "$daemon_c" "$config_h" "$frontend_c" "$xattr_c" "$xattr_h" "$control_c"; do
	test -f "$f" || fail "$f not found"
done
ls "$mirror_dir"/*.c >/dev/null 2>&1 || fail "no C files in $mirror_dir"
for cmd in awk sed grep sort tr; do
	command -v "$cmd" >/dev/null 2>&1 || skip "$cmd is not installed"
done
test -x "$bin" || fail "$bin is not built (run make first, or set FUSEMIRRORD)"

if command -v make_tmpdir >/dev/null 2>&1; then
	make_tmpdir
else
	tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/test-man-daemon.XXXXXX") || fail "mktemp"
	trap 'rm -rf "$tmpdir"' EXIT
fi

# ---- The page as text ---------------------------------------------------------------------------

# deroff: the page as plain text, one output line per input line that shows text, with markers:
# "@@SH NAME" and "@@SS NAME" for headings, "@@TP TEXT" for the tag of a .TP paragraph, "@@PP"
# for the start of any other paragraph.  Font
# macros are joined as groff does (.BR a b -> "ab", .B a b -> "a b"); escapes become ASCII.
deroff ()
{
	awk '
	function args(s,    out, n, i, c, q, cur, started) {
		n = 0; cur = ""; q = 0; started = 0
		for (i = 1; i <= length(s); i++) {
			c = substr(s, i, 1)
			if (q) {
				if (c == "\"") { q = 0; continue }
				cur = cur c
			} else if (c == "\"") {
				q = 1; started = 1
			} else if (c == " " || c == "\t") {
				if (started || cur != "") { a[++n] = cur; cur = ""; started = 0 }
			} else {
				cur = cur c; started = 1
			}
		}
		if (started || cur != "") a[++n] = cur
		return n
	}
	function join(n, sep,    i, out) {
		out = ""
		for (i = 1; i <= n; i++) out = out (i > 1 ? sep : "") a[i]
		return out
	}
	function emit(text) {
		if (tag) { print "@@TP " text; tag = 0 } else print text
	}
	/^\.\\"/ || /^\x27\\"/ { next }
	/^\.[A-Za-z]/ {
		split($0, w, /[ \t]+/); m = substr(w[1], 2)
		rest = $0; sub(/^\.[A-Za-z]+[ \t]*/, "", rest)
		delete a; n = args(rest)
		if (m == "SH" || m == "SS") { print "@@" m " " join(n, " "); tag = 0; next }
		if (m == "TP" || m == "TQ") { tag = 1; next }
		if (m ~ /^(PP|LP|P|IP)$/) { print "@@PP"; tag = 0; next }
		if (m == "B" || m == "I" || m == "SM" || m == "SB") { emit(join(n, " ")); next }
		if (m ~ /^(BR|BI|IB|IR|RB|RI)$/) { emit(join(n, "")); next }
		next
	}
	/^\./ { next }
	{ emit($0) }
	' "$@" |
	sed -e 's/\\f\[[^]]*\]//g' -e 's/\\f[BIRP1-4]//g' -e 's/\\&//g' -e 's/\\-/-/g' \
		-e 's/\\(aq/'"'"'/g' -e 's/\\(lq/"/g' -e 's/\\(rq/"/g' -e 's/\\(bu/*/g' \
		-e 's/\\(em/--/g' -e 's/\\~/ /g' -e 's/\\e/\\/g'
}

text=$tmpdir/page.txt
deroff "$page" >"$text"

# section NAME: the text of section NAME (up to the next .SH).
section ()
{
	awk -v want="@@SH $1" '
		/^@@SH / { on = ($0 == want); next }
		on' "$text"
}

# subsection SH SS: the text of subsection SS of section SH.
subsection ()
{
	awk -v sh="@@SH $1" -v ss="@@SS $2" '
		/^@@SH / { insh = ($0 == sh); on = 0; next }
		/^@@SS / { on = insh && ($0 == ss); next }
		on' "$text"
}

# tags: the .TP tags of the text on stdin.
tags ()
{
	sed -n 's/^@@TP //p'
}

# tag_body TAG: the text under the tag TAG (up to the next paragraph), from stdin.
tag_body ()
{
	awk -v want="$1" '
		/^@@TP / { on = (substr($0, 6) == want); next }
		/^@@(S[HS] |PP)/ { on = 0; next }
		on'
}

# flat FILE...: the C files on one line, runs of white space as one space.
flat ()
{
	cat "$@" | tr '\n\t' '  ' | sed 's/  */ /g'
}

# function_body FILE NAME: the lines of the C function NAME (its definition up to "}").
function_body ()
{
	awk -v name="$2" '
		!on && $0 ~ "^[a-z].*[ *]" name "\\(" && $0 !~ ";$" { on = 1 }
		on { print }
		on && /^}/ { exit }' "$1"
}

# has_word TEXTFILE WORD: WORD (a fixed string) occurs in the file, not inside a longer word.
has_word ()
{
	grep -F -- "$2" "$1" | grep -q -E -- "(^|[^A-Za-z0-9_])$(printf '%s' "$2" | sed 's/[].[^$*+?(){}|\\]/\\&/g')([^A-Za-z0-9_]|$)"
}

# set_diff A B: the lines of file A that are not in file B.
set_diff ()
{
	sort -u "$1" >"$tmpdir/sd.a"
	sort -u "$2" >"$tmpdir/sd.b"
	comm -23 "$tmpdir/sd.a" "$tmpdir/sd.b"
}

# ---- Options: fusemirrord --help against OPTIONS and SYNOPSIS ------------------------------------

help=$tmpdir/help.txt
"$bin" --help >"$help" 2>&1 || fail "$bin --help exited with status $?"
grep -q '^Usage:' "$help" || fail "$bin --help printed no usage: $(cat "$help")"

# "-c, --config=FILE" from "  -c, --config=FILE     The mirror's ..."
sed -n 's/^[[:space:]]\{1,\}\(-[^[:space:]].*\)$/\1/p' "$help" | sed 's/  .*//' |
	sort -u >"$tmpdir/help.specs"
test -s "$tmpdir/help.specs" || fail "no options found in --help: $(cat "$help")"
section OPTIONS >"$tmpdir/options.txt"
tags <"$tmpdir/options.txt" | grep '^-' | sort -u >"$tmpdir/page.specs"

set_diff "$tmpdir/help.specs" "$tmpdir/page.specs" | while IFS= read -r spec; do
	echo "fusemirrord.8: option '$spec' (from --help) is not a tag under OPTIONS"
done >"$tmpdir/out"
set_diff "$tmpdir/page.specs" "$tmpdir/help.specs" | while IFS= read -r spec; do
	echo "fusemirrord.8: option '$spec' under OPTIONS is not printed by --help"
done >>"$tmpdir/out"

# Every option appears in SYNOPSIS, in its short or its long form (-h, --help included).
section SYNOPSIS >"$tmpdir/synopsis.txt"
while IFS= read -r spec; do
	found=no
	for opt in $(echo "$spec" | tr ',' ' ' | sed 's/=[^ ]*//g'); do
		has_word "$tmpdir/synopsis.txt" "$opt" && found=yes
	done
	test $found = yes || echo "fusemirrord.8: option '$spec' (from --help) is not in SYNOPSIS"
done <"$tmpdir/help.specs" >>"$tmpdir/out"

# The operands under OPTIONS (MOUNTPOINT) are those of the usage line.
usage=$(sed -n '/^Usage:/{n;p;}' "$help")
tags <"$tmpdir/options.txt" | grep -v '^-' | while IFS= read -r operand; do
	case $usage in
	*"$operand"*) ;;
	*) echo "fusemirrord.8: operand '$operand' under OPTIONS is not in the usage line: $usage" ;;
	esac
done >>"$tmpdir/out"

# ---- Exit statuses ------------------------------------------------------------------------------

sed -n 's/^#define[[:space:]]\{1,\}EXIT_\([A-Z_]*\)[[:space:]]\{1,\}\([0-9]\{1,\}\).*/\2 \1/p' \
	"$daemon_c" >"$tmpdir/exit.defs"
test -s "$tmpdir/exit.defs" || fail "no #define EXIT_* found in $daemon_c"
{ echo 0; cut -d' ' -f1 "$tmpdir/exit.defs"; } | sort -u >"$tmpdir/exit.code"
section "EXIT STATUS" >"$tmpdir/exit.txt"
tags <"$tmpdir/exit.txt" | sort -u >"$tmpdir/exit.page"
set_diff "$tmpdir/exit.code" "$tmpdir/exit.page" | while IFS= read -r n; do
	echo "fusemirrord.8: exit status $n (src/daemon/fusemirrord.c) is not under EXIT STATUS"
done >>"$tmpdir/out"
set_diff "$tmpdir/exit.page" "$tmpdir/exit.code" | while IFS= read -r n; do
	echo "fusemirrord.8: exit status '$n' under EXIT STATUS is not 0 nor an EXIT_* of fusemirrord.c"
done >>"$tmpdir/out"
# Each EXIT_NAME is described with its name, so that swapped numbers are caught.
while read -r n name; do
	lower=$(echo "$name" | tr 'A-Z_' 'a-z ')
	tag_body "$n" <"$tmpdir/exit.txt" | grep -q -i -- "$lower" ||
		echo "fusemirrord.8: exit status $n is EXIT_$name in the code, but its description does not say '$lower'"
done <"$tmpdir/exit.defs" >>"$tmpdir/out"
# --help's description lists the same statuses.
sed -n 's/^Exit status: //p' "$help" | grep -o '[0-9]\{1,\}' | sort -u >"$tmpdir/exit.help"
if ! cmp -s "$tmpdir/exit.help" "$tmpdir/exit.code"; then
	echo "fusemirrord.8: --help lists the exit statuses '$(tr '\n' ' ' <"$tmpdir/exit.help")' but the code has '$(tr '\n' ' ' <"$tmpdir/exit.code")'" >>"$tmpdir/out"
fi
# main() returns or exits with a literal status only when it is one of those.
function_body "$daemon_c" main | grep -o -E '(return|exit\() *[0-9]+' | grep -o '[0-9]*$' |
	sort -u | while IFS= read -r n; do
		grep -qx "$n" "$tmpdir/exit.code" ||
			echo "fusemirrord.8: main() exits with $n, which is not a documented status"
	done >>"$tmpdir/out"

# ---- Extended attributes ------------------------------------------------------------------------

prefix=$(sed -n 's/^#define[[:space:]]\{1,\}XATTR_STATUS_PREFIX[[:space:]]\{1,\}"\(.*\)".*/\1/p' "$xattr_h")
ctl=$(sed -n 's/^#define[[:space:]]\{1,\}XATTR_CTL[[:space:]]\{1,\}"\(.*\)".*/\1/p' "$xattr_h")
test -n "$prefix" || fail "XATTR_STATUS_PREFIX not found in $xattr_h"
test -n "$ctl" || fail "XATTR_CTL not found in $xattr_h"
xflat=$tmpdir/xattr.flat
flat "$xattr_c" >"$xflat"

# literals TABLE: the strings of "TABLE[] = { ... }" in xattr.c.
literals ()
{
	grep -o "$1\[\] = {[^}]*}" "$xflat" | grep -o '"[^"]*"' | tr -d '"' | sort -u
}
literals mirror_keys >"$tmpdir/keys.list"
literals leg_fields >"$tmpdir/fields.list"
test -s "$tmpdir/keys.list" || fail "no mirror_keys table in $xattr_c"
test -s "$tmpdir/fields.list" || fail "no leg_fields table in $xattr_c"
grep -o 'strcmp(key, "[^"]*")' "$xflat" | sed 's/.*"\(.*\)".*/\1/' | sort -u >"$tmpdir/keys.get"
grep -o 'strcmp(field, "[^"]*")' "$xflat" | sed 's/.*"\(.*\)".*/\1/' | sort -u >"$tmpdir/fields.get"
cmp -s "$tmpdir/keys.list" "$tmpdir/keys.get" ||
	echo "xattr.c: listxattr's mirror_keys ($(tr '\n' ' ' <"$tmpdir/keys.list")) differ from the names getxattr answers ($(tr '\n' ' ' <"$tmpdir/keys.get"))" >>"$tmpdir/out"
cmp -s "$tmpdir/fields.list" "$tmpdir/fields.get" ||
	echo "xattr.c: listxattr's leg_fields ($(tr '\n' ' ' <"$tmpdir/fields.list")) differ from the fields getxattr answers ($(tr '\n' ' ' <"$tmpdir/fields.get"))" >>"$tmpdir/out"

{
	sed "s/^/$prefix/" "$tmpdir/keys.list"
	sed "s/^/${prefix}leg.I./" "$tmpdir/fields.list"
} | sort -u >"$tmpdir/attrs.code"
section "EXTENDED ATTRIBUTES" >"$tmpdir/xattr.txt"
# The page writes the leg index as a capital letter (user.fusemirror.leg.I.name).
tags <"$tmpdir/xattr.txt" | grep -F -- "$prefix" |
	sed 's/\.leg\.[A-Z]\./.leg.I./' | sort -u >"$tmpdir/attrs.page"
set_diff "$tmpdir/attrs.code" "$tmpdir/attrs.page" | while IFS= read -r a; do
	echo "fusemirrord.8: attribute $a (src/fuse/xattr.c) is not a tag under EXTENDED ATTRIBUTES"
done >>"$tmpdir/out"
set_diff "$tmpdir/attrs.page" "$tmpdir/attrs.code" | while IFS= read -r a; do
	echo "fusemirrord.8: attribute $a under EXTENDED ATTRIBUTES does not exist in src/fuse/xattr.c"
done >>"$tmpdir/out"
tags <"$tmpdir/xattr.txt" | grep -qxF -- "$ctl" ||
	echo "fusemirrord.8: control attribute $ctl is not a tag under EXTENDED ATTRIBUTES" >>"$tmpdir/out"

# Control commands: the verbs table of src/fuse/control.c ({"fail", CONTROL_FAIL, ...}) -> a tag
# "fail I".
grep -o '{"[a-z-]*", CONTROL_[A-Z_]*, [0O]' "$control_c" | sed 's/{"\([^"]*\)".*/\1/' |
	sort -u >"$tmpdir/verbs.code"
test -s "$tmpdir/verbs.code" || fail "no control command found in $control_c"
while IFS= read -r c; do
	tags <"$tmpdir/xattr.txt" | grep -q -E "^$c( |\$)" ||
		echo "fusemirrord.8: control command '$c' (src/fuse/control.c) is not a tag under EXTENDED ATTRIBUTES"
done <"$tmpdir/verbs.code" >>"$tmpdir/out"

# Errnos: those xattr.c returns, those of mirror_fail_leg(), and those of the xattr operations
# of frontend.c.
{
	grep -o -- '-E[A-Z]\{3,\}' "$xflat" | tr -d -- '-'
	function_body "$mirror_dir/mirror.c" mirror_fail_leg | grep -o -- '-E[A-Z]\{3,\}' |
		tr -d -- '-'
	for fn in reply_xattr_value op_getxattr op_listxattr op_setxattr op_removexattr; do
		function_body "$frontend_c" "$fn" | grep -o 'fuse_reply_err(req, E[A-Z]*)' |
			sed 's/.*, \(E[A-Z]*\))/\1/'
	done
} | sort -u >"$tmpdir/errnos.code"
test -s "$tmpdir/errnos.code" || fail "no errno found in the xattr code"
while IFS= read -r e; do
	has_word "$tmpdir/xattr.txt" "$e" ||
		echo "fusemirrord.8: errno $e (of the xattr code) is not under EXTENDED ATTRIBUTES"
done <"$tmpdir/errnos.code" >>"$tmpdir/out"

# ---- Events and journal fields ------------------------------------------------------------------

mflat=$tmpdir/mirror.flat
flat "$mirror_dir"/*.c >"$mflat"
{
	# mirror_event(m, "LegFailed", G_LOG_LEVEL_WARNING, ...)
	grep -o 'mirror_event([^,;]*, "[A-Za-z]*", G_LOG_LEVEL_[A-Z]*' "$mflat" |
		sed 's/.*"\([A-Za-z]*\)", G_LOG_LEVEL_\([A-Z]*\)/\1 \2/'
	# g_log_structured(G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, "MESSAGE", "IOError: ..."
	grep -o 'g_log_structured([^,;]*, G_LOG_LEVEL_[A-Z]*, "MESSAGE", "[A-Z][A-Za-z]*: ' "$mflat" |
		sed 's/.*G_LOG_LEVEL_\([A-Z]*\), "MESSAGE", "\([A-Za-z]*\): /\2 \1/'
} | sort -u >"$tmpdir/events.levels"
grep -o '"FUSEMIRROR_EVENT", "[A-Za-z]*"' "$mflat" | sed 's/.*, "\(.*\)"/\1/' >"$tmpdir/events.lit"
{ cut -d' ' -f1 "$tmpdir/events.levels"; cat "$tmpdir/events.lit"; } | sort -u >"$tmpdir/events.code"
test -s "$tmpdir/events.code" || fail "no event found in $mirror_dir"
subsection "LOGGING AND EVENTS" Events >"$tmpdir/events.txt"
tags <"$tmpdir/events.txt" | sort -u >"$tmpdir/events.page"
set_diff "$tmpdir/events.code" "$tmpdir/events.page" | while IFS= read -r e; do
	echo "fusemirrord.8: event $e (src/mirror/) is not a tag under Events in LOGGING AND EVENTS"
done >>"$tmpdir/out"
set_diff "$tmpdir/events.page" "$tmpdir/events.code" | while IFS= read -r e; do
	echo "fusemirrord.8: event $e under Events is not logged by src/mirror/"
done >>"$tmpdir/out"
while read -r e level; do
	case $level in
	ERROR) word=error ;;
	CRITICAL) word=critical ;;
	WARNING) word=warning ;;
	MESSAGE) word=notice ;;
	INFO) word=info ;;
	*) word=debug ;;
	esac
	tag_body "$e" <"$tmpdir/events.txt" | grep -q -F "($word)" ||
		echo "fusemirrord.8: event $e is logged at G_LOG_LEVEL_$level; its description does not say ($word)"
done <"$tmpdir/events.levels" >>"$tmpdir/out"

flat "$mirror_dir"/*.c "$top_srcdir"/src/daemon/*.c | grep -o '"FUSEMIRROR_[A-Z_]*"' | tr -d '"' |
	sort -u >"$tmpdir/fields.code"
section "LOGGING AND EVENTS" >"$tmpdir/logging.txt"
tags <"$tmpdir/logging.txt" | grep '^FUSEMIRROR_' | sort -u >"$tmpdir/fields.page"
set_diff "$tmpdir/fields.code" "$tmpdir/fields.page" | while IFS= read -r f; do
	echo "fusemirrord.8: journal field $f (the code) is not a tag under LOGGING AND EVENTS"
done >>"$tmpdir/out"
set_diff "$tmpdir/fields.page" "$tmpdir/fields.code" | while IFS= read -r f; do
	echo "fusemirrord.8: journal field $f under LOGGING AND EVENTS is not in the code"
done >>"$tmpdir/out"

# The on-event program's arguments: job->argv[1..N].
nargs=$(grep -o 'job->argv\[[0-9]\] = ' "$daemon_c" | grep -o '[0-9]' | sort -n | tail -1)
case ${nargs:-0} in
1) nword=one ;; 2) nword=two ;; 3) nword=three ;; 4) nword=four ;; *) nword=$nargs ;;
esac
grep -q -F "$nword arguments" "$tmpdir/logging.txt" ||
	echo "fusemirrord.8: the on-event program gets $nargs arguments; LOGGING AND EVENTS does not say '$nword arguments'" >>"$tmpdir/out"

# ---- systemd, files -----------------------------------------------------------------------------

section SYSTEMD >"$tmpdir/systemd.txt"
grep -o 'notify_systemd("[A-Z]*=[^"]*")\|"STATUS=' "$daemon_c" |
	sed -e 's/notify_systemd("//' -e 's/")$//' -e 's/^"//' -e 's/=.*/=/' | sort -u |
	while IFS= read -r msg; do
		grep -q -F -- "$msg" "$tmpdir/systemd.txt" ||
			echo "fusemirrord.8: sd_notify message $msg (fusemirrord.c) is not under SYSTEMD"
	done >>"$tmpdir/out"
grep -q -F 'fusemirror@.service' "$tmpdir/systemd.txt" ||
	echo "fusemirrord.8: SYSTEMD does not name fusemirror@.service" >>"$tmpdir/out"

default_config=$(sed -n 's/^#define[[:space:]]\{1,\}CONFIG_DEFAULT_PATH[[:space:]]\{1,\}"\(.*\)".*/\1/p' "$config_h")
test -n "$default_config" || fail "CONFIG_DEFAULT_PATH not found in $config_h"
section FILES | tags | grep -qxF -- "$default_config" ||
	echo "fusemirrord.8: the default config $default_config is not a tag under FILES" >>"$tmpdir/out"

# ---- The unit -----------------------------------------------------------------------------------

# unit_value KEY: the values of KEY= in the unit (comments aside).
unit_value ()
{
	sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" "$unit"
}
exit_config=$(sed -n 's/^\([0-9]*\) CONFIG$/\1/p' "$tmpdir/exit.defs")
test -n "$exit_config" || fail "no EXIT_CONFIG in $daemon_c"
{
	test "$(unit_value Type)" = notify || echo "unit: Type=notify is missing"
	test "$(unit_value NotifyAccess)" = main || echo "unit: NotifyAccess=main is missing"
	test "$(unit_value Restart)" = on-failure || echo "unit: Restart=on-failure is missing"
	unit_value RestartPreventExitStatus | tr ' ' '\n' | grep -qx "$exit_config" ||
		echo "unit: RestartPreventExitStatus= does not hold $exit_config (EXIT_CONFIG)"
	test "$(unit_value KillSignal)" = SIGTERM || echo "unit: KillSignal=SIGTERM is missing"
	unit_value TimeoutStopSec | grep -q . || echo "unit: TimeoutStopSec= is missing"
	unit_value After | grep -q 'local-fs\.target' || echo "unit: After=local-fs.target is missing"
	unit_value Documentation | grep -q 'man:fusemirrord(8)' ||
		echo "unit: Documentation= does not point to man:fusemirrord(8)"
	unit_value ExecStart | grep -q '^@sbindir@/fusemirrord -f -c /etc/fusemirror/%i\.conf$' ||
		echo "unit: ExecStart= is not '@sbindir@/fusemirrord -f -c /etc/fusemirror/%i.conf'"
	# Each of these gives the service its own mount namespace: the mount would be invisible.
	for key in PrivateTmp PrivateMounts ProtectSystem ProtectHome ReadOnlyPaths ReadWritePaths \
		InaccessiblePaths ExecPaths NoExecPaths TemporaryFileSystem BindPaths \
		BindReadOnlyPaths RootDirectory RootImage MountFlags MountAPIVFS PrivateDevices \
		ProtectKernelTunables ProtectKernelModules ProtectKernelLogs ProtectControlGroups \
		ProtectProc ProcSubset ProtectClock PrivateUsers DynamicUser; do
		if grep -q "^[[:space:]]*${key}[[:space:]]*=" "$unit"; then
			echo "unit: $key= sandboxes the mount namespace; the mount must be visible"
		fi
	done
} | sed 's/^/fusemirror@.service.in: /' >>"$tmpdir/out"
if test -f "$built_unit" && grep -n '@[A-Za-z_]*@' "$built_unit" >/dev/null; then
	echo "fusemirror@.service: unsubstituted: $(grep '@[A-Za-z_]*@' "$built_unit")" >>"$tmpdir/out"
fi

# systemd-analyze verify, when it works here (it needs no running systemd).
if command -v systemd-analyze >/dev/null 2>&1; then
	mkdir "$tmpdir/units"
	printf '[Service]\nType=oneshot\nExecStart=/bin/true\n' >"$tmpdir/units/fm-probe.service"
	if systemd-analyze verify --man=no "$tmpdir/units/fm-probe.service" >/dev/null 2>&1; then
		bindir=$(cd "$(dirname "$bin")" && pwd)
		sed "s|@sbindir@|$bindir|g" "$unit" >"$tmpdir/units/fusemirror@.service"
		systemd-analyze verify --man=no "$tmpdir/units/fusemirror@test.service" \
			>"$tmpdir/verify.out" 2>&1
		rc=$?
		if test "$rc" -ne 0 || grep -q 'fusemirror@' "$tmpdir/verify.out"; then
			sed 's/^/fusemirror@.service.in: systemd-analyze verify: /' "$tmpdir/verify.out" \
				>>"$tmpdir/out"
		fi
	else
		echo "note: systemd-analyze verify does not work here; not verifying the unit"
	fi
fi

# ---- groff --------------------------------------------------------------------------------------

if command -v groff >/dev/null 2>&1; then
	groff -man -ww -z "$page" >"$tmpdir/groff.out" 2>&1
	if test -s "$tmpdir/groff.out"; then
		sed 's/^/fusemirrord.8: groff: /' "$tmpdir/groff.out" >>"$tmpdir/out"
	fi
else
	echo "note: groff is not installed; not checking the page's roff"
fi

# ---- Verdict ------------------------------------------------------------------------------------

test -n "${KEEP:-}" && cp -r "$tmpdir" "$KEEP"
if test -s "$tmpdir/out"; then
	cat "$tmpdir/out"
	fail "$(wc -l <"$tmpdir/out") problem(s) in man/fusemirrord.8 or contrib/fusemirror@.service.in"
fi
echo "man/fusemirrord.8: $(wc -l <"$tmpdir/help.specs") options, $(wc -l <"$tmpdir/exit.code") exit statuses, $(wc -l <"$tmpdir/attrs.code") status attributes, $(wc -l <"$tmpdir/events.code") events, $(wc -l <"$tmpdir/fields.code") journal fields: all documented"
exit 0
