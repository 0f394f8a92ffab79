#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# man/fusemirrorctl.8 and man/fusemirror.conf.5 agree with the code.  Nothing is listed here: the
# names come from "fusemirrorctl --help", each "fusemirrorctl COMMAND --help", the config
# parser's key tables (src/config/config.c) and the xattr tables (src/fuse/xattr.c); the test
# fails, naming each one, when
#   - a command of --help has no "COMMAND ..." subsection under COMMANDS, no SYNOPSIS line, or
#     the page has a subsection for a command --help does not print;
#   - an option that COMMAND --help prints is not in its subsection's title and as a tag there,
#     or a tag there is an option COMMAND --help does not print;
#   - a key of the [mirror] or [leg] group's table is not a tag of its group in
#     fusemirror.conf(5), the page has a key tag the table lacks, or a value of an enumerated
#     key (read-policy, engine, cache, metadata) is not in its key's tag;
#   - a status attribute of xattr.c is not in fusemirrorctl(8);
#   - groff -man -ww warns about either page.
. "${srcdir:-.}/functions.sh"
set -u

top_srcdir=${top_srcdir:-$srcdir/..}
top_builddir=${top_builddir:-$top_srcdir}
ctl_page=$top_srcdir/man/fusemirrorctl.8
conf_page=$top_srcdir/man/fusemirror.conf.5
config_c=$top_srcdir/src/config/config.c
xattr_c=$top_srcdir/src/fuse/xattr.c
bin=${FUSEMIRRORCTL:-$top_builddir/src/ctl/fusemirrorctl}
for f in "$ctl_page" "$conf_page" "$config_c" "$xattr_c"; do
	test -f "$f" || fail "$f not found"
done
test -x "$bin" || fail "$bin is not built"
make_tmpdir
problems=$tmpdir/problems
: >"$problems"

# plain FILE: the page's source with \- as -, font escapes dropped, \(aq as '.
plain ()
{
	sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e "s/\\\\(aq/'/g" -e 's/\\e/\\/g' "$1"
}
plain "$ctl_page" >"$tmpdir/ctl"
plain "$conf_page" >"$tmpdir/conf"

# section FILE START: the lines from the first one matching START (a regex) to the next .SS/.SH.
section ()
{
	awk -v start="$2" '
		found && /^\.S[SH]/ { exit }
		!found && $0 ~ start { found = 1; print; next }
		found { print }' "$1"
}

# tags: the .TP (and .TQ) tags of standard input, font macros dropped.
tags ()
{
	awk 'tp { sub(/^\.[A-Z]+ */, ""); gsub(/"/, ""); print; tp = 0; next } /^\.T[PQ]/ { tp = 1 }'
}

# ---- Commands and their options -------------------------------------------------------------
LC_ALL=C "$bin" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p' \
	>"$tmpdir/commands"
test -s "$tmpdir/commands" || fail "fusemirrorctl --help lists no command"
while read -r cmd; do
	section "$tmpdir/ctl" "^\\.SS \"$cmd( |\")" >"$tmpdir/sec"
	if ! test -s "$tmpdir/sec"; then
		echo "command $cmd: no subsection '.SS \"$cmd ...\"' under COMMANDS" >>"$problems"
		continue
	fi
	section "$tmpdir/ctl" '^\.SH SYNOPSIS' | grep -q "^fusemirrorctl $cmd\\b" ||
		echo "command $cmd: no SYNOPSIS line" >>"$problems"
	title=$(head -n 1 "$tmpdir/sec")
	tags <"$tmpdir/sec" | grep -o -- '--[a-z][a-z-]*' | sort -u >"$tmpdir/tagged"
	LC_ALL=C "$bin" "$cmd" --help | grep -o -- '--[a-z][a-z-]*' | grep -vx -- '--help' |
		sort -u >"$tmpdir/options"
	while read -r opt; do
		case $title in
		*"$opt"*) ;;
		*) echo "command $cmd: option $opt is not in the title: $title" >>"$problems" ;;
		esac
		grep -qx -- "$opt" "$tmpdir/tagged" ||
			echo "command $cmd: option $opt has no tag in its subsection" >>"$problems"
	done <"$tmpdir/options"
	comm -23 "$tmpdir/tagged" "$tmpdir/options" | sed "s/^/command $cmd: the page documents /;
		s/\$/, which '$cmd --help' does not print/" >>"$problems"
done <"$tmpdir/commands"
section "$tmpdir/ctl" '^\.SH COMMANDS' >/dev/null
awk '/^\.SH COMMANDS/ { on = 1; next } /^\.SH/ { on = 0 }
	on && /^\.SS "/ { sub(/^\.SS "/, ""); sub(/[ "].*/, ""); print }' "$tmpdir/ctl" |
	while read -r cmd; do
		grep -qx -- "$cmd" "$tmpdir/commands" ||
			echo "the page documents command $cmd, which --help does not list" >>"$problems"
	done

# ---- Config keys ----------------------------------------------------------------------------
# keys TABLE: the key names of the key_parser table TABLE of config.c.
keys ()
{
	awk -v t="$1" '$0 ~ "key_parser " t "\\[\\]" { on = 1; next }
		on && /NULL, NULL/ { exit }
		on { if (match($0, /"[a-z-]+"/)) print substr($0, RSTART + 1, RLENGTH - 2) }' \
		"$config_c" | sort -u
}
keys mirror_keys >"$tmpdir/mirror-keys"
keys leg_keys >"$tmpdir/leg-keys"
test -s "$tmpdir/mirror-keys" && test -s "$tmpdir/leg-keys" ||
	fail "no key table found in $config_c"
check_group ()
{
	_keys=$1
	_start=$2
	_what=$3
	section "$tmpdir/conf" "$_start" | tags | sed -n 's/^\([a-z][a-z-]*\) = .*/\1/p' |
		sort -u >"$tmpdir/page-keys"
	comm -23 "$_keys" "$tmpdir/page-keys" |
		sed "s/^/fusemirror.conf(5): key /; s/\$/ of $_what has no tag/" >>"$problems"
	comm -13 "$_keys" "$tmpdir/page-keys" |
		sed "s/^/fusemirror.conf(5): documents key /; s/\$/ of $_what, which the parser lacks/" \
			>>"$problems"
}
check_group "$tmpdir/mirror-keys" '^\.SH THE \[mirror\] GROUP' "[mirror]"
check_group "$tmpdir/leg-keys" '^\.SH THE \[leg NAME\] GROUPS' "[leg]"
# The values of the enumerated keys: name tables of config.c, each in its key's tag.
for pair in read_policy_names:read-policy engine_names:engine cache_names:cache \
	metadata_names:metadata; do
	table=${pair%%:*}
	key=${pair#*:}
	tag=$(section "$tmpdir/conf" '^\.SH THE \[mirror\] GROUP' | tags | grep "^$key = ")
	grep "$table\\[\\] = " "$config_c" | grep -o '"[a-z_-]*"' | tr -d '"' | while read -r v; do
		case " $tag " in
		*" $v "*) ;;
		*) echo "fusemirror.conf(5): $key's tag lacks the value $v: $tag" >>"$problems" ;;
		esac
	done
done

# ---- Status attributes ----------------------------------------------------------------------
awk '/mirror_keys\[\] = \{/ { on = 1; next } on && /\};/ { on = 0 }
	on { while (match($0, /"[a-z_.]+"/)) { print "user.fusemirror." substr($0, RSTART + 1,
		RLENGTH - 2); $0 = substr($0, RSTART + RLENGTH) } }' "$xattr_c" >"$tmpdir/attrs"
awk '/leg_fields\[\] = \{/ { on = 1; next } on && /\};/ { on = 0 }
	on { while (match($0, /"[a-z_]+"/)) { print "user.fusemirror.leg.I." substr($0, RSTART + 1,
		RLENGTH - 2); $0 = substr($0, RSTART + RLENGTH) } }' "$xattr_c" >>"$tmpdir/attrs"
test "$(wc -l <"$tmpdir/attrs")" -ge 20 || fail "the xattr tables of $xattr_c were not found"
sed -e 's/^\.BI user\.fusemirror\.leg\. I \./user.fusemirror.leg.I./' -e 's/^\.B //' \
	"$tmpdir/ctl" >"$tmpdir/ctl-attrs"
while read -r attr; do
	grep -qx -- "$attr" "$tmpdir/ctl-attrs" ||
		echo "fusemirrorctl(8): attribute $attr has no tag" >>"$problems"
done <"$tmpdir/attrs"

# ---- groff ----------------------------------------------------------------------------------
if command -v groff >/dev/null 2>&1; then
	for p in "$ctl_page" "$conf_page"; do
		groff -man -ww -z "$p" 2>&1 | sed "s|^|groff: |" >>"$problems"
	done
fi

if test -s "$problems"; then
	cat "$problems" >&2
	fail "$(wc -l <"$problems") disagreements between the pages and the code (above)"
fi
echo "fusemirrorctl(8) and fusemirror.conf(5) agree with the code: $(wc -l <"$tmpdir/commands") commands, $(cat "$tmpdir/mirror-keys" "$tmpdir/leg-keys" | wc -l) keys, $(wc -l <"$tmpdir/attrs") attributes"
