#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The config stays true (fusemirrord(8), THE CONFIG FILE; fusemirrorctl(8), scan and list):
#   - a mirror started from a config with comments and unrelated keys; fusemirrorctl remove of a
#     leg, then add of another: after each the file is rewritten, byte for byte what was there
#     but the leg's group (compared whole);
#   - stopped and started again from the rewritten config: the same mirror (uuid, leg paths,
#     clean);
#   - a config the daemon may not write (mode 0444) is left alone, with one notice;
#   - scan of the legs prints a config that assembles the same mirror; a removed leg is a
#     comment; scan of loop devices without arguments finds them;
#   - list and list --json show two running mirrors with name, state, size and mountpoint; a
#     mirror whose daemon is stopped (SIGSTOP) is not-responding after 5 s, not waited for; one
#     whose daemon was killed is listed as dead (exit 1).
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires cmp truncate python3
make_daemon_tmpdir

mib=1048576
size=$((16 * mib))
a=$tmpdir/a
b=$tmpdir/b
c=$tmpdir/c
d=$tmpdir/d
mirror=$tmpdir/mirror
conf=$tmpdir/m.conf
truncate -s $((size + mib)) "$a" "$b" "$c" "$d"

cat >"$conf" <<EOF
# The test mirror: three legs, then d instead of c.
#	(a comment with a tab)

[mirror]
name = keep-$$
metadata = internal
# the rate stays as written
resync-rate-min=32M
read-policy = round-robin

# the first leg
[leg a]
path = $a

[leg b]
path   =   $b
# b's own comment

# the third leg, to be removed
[leg c]
path = $c
# c's trailing comment

# a comment at the end, about nothing
EOF
cp "$conf" "$tmpdir/m.conf.orig"
"$fusemirrorctl" create --assume-clean "$conf" >&2 || fail "fusemirrorctl create"
start_daemon "$conf" "$mirror"
uuid=$(xattr "$mirror" user.fusemirror.uuid)

# ---- remove c, add d: the file follows ----------------------------------------------------------

"$fusemirrorctl" remove --force "$mirror" c >&2 || daemon_fail "fusemirrorctl remove c"
cat >"$tmpdir/expected" <<EOF
# The test mirror: three legs, then d instead of c.
#	(a comment with a tab)

[mirror]
name = keep-$$
metadata = internal
# the rate stays as written
resync-rate-min=32M
read-policy = round-robin

# the first leg
[leg a]
path = $a

[leg b]
path   =   $b
# b's own comment

# a comment at the end, about nothing
EOF
cmp "$tmpdir/expected" "$conf" >&2 ||
	daemon_fail "after remove c the config is not the old one without [leg c]: $(diff -u "$tmpdir/expected" "$conf")"
assert_grep "rewrote the config $conf: \[leg c\] removed" "$daemon_log" "the log of the rewrite"

"$fusemirrorctl" add "$mirror" "$d" >&2 || daemon_fail "fusemirrorctl add d"
printf '\n[leg d]\npath = %s\n' "$d" >>"$tmpdir/expected"
cmp "$tmpdir/expected" "$conf" >&2 ||
	daemon_fail "after add d the config has not just [leg d] more: $(diff -u "$tmpdir/expected" "$conf")"
assert_grep "rewrote the config $conf: \[leg d\] added \($d\)" "$daemon_log" "the log of the add"
timeout 60 "$fusemirrorctl" wait "$mirror" >&2 || daemon_fail "fusemirrorctl wait"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after the add's resync"

# --no-save: the mirror changes, the file does not.
"$fusemirrorctl" fail "$mirror" d >&2 || daemon_fail "fusemirrorctl fail d"
"$fusemirrorctl" remove --no-save "$mirror" d >&2 || daemon_fail "fusemirrorctl remove --no-save d"
cmp "$tmpdir/expected" "$conf" >&2 ||
	daemon_fail "remove --no-save rewrote the config: $(diff -u "$tmpdir/expected" "$conf")"
assert_grep "is not rewritten \\(--no-save\\)" "$daemon_log" "the log of remove --no-save"
"$fusemirrorctl" add --no-save "$mirror" "$d" >&2 || daemon_fail "fusemirrorctl add --no-save d"
cmp "$tmpdir/expected" "$conf" >&2 ||
	daemon_fail "add --no-save rewrote the config: $(diff -u "$tmpdir/expected" "$conf")"
timeout 60 "$fusemirrorctl" wait "$mirror" >&2 || daemon_fail "fusemirrorctl wait after add --no-save"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after add --no-save"

# ---- Restart from the rewritten config: the same mirror -----------------------------------------

stop_daemon
start_daemon "$conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.uuid)" "$uuid" "uuid after the restart"
assert_eq "$(xattr "$mirror" user.fusemirror.legs)" 3 "legs after the restart"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state after the restart"
i=0
for leg in "$a" "$b" "$d"; do
	assert_eq "$(xattr "$mirror" user.fusemirror.leg.$i.path)" "$leg" "leg $i after the restart"
	assert_eq "$(leg_state "$mirror" $i)" in_sync "leg $i state after the restart"
	i=$((i + 1))
done
first_pid=$daemon_pid
first_log=$daemon_log

# ---- A second mirror, from a config the daemon may not write (mode 0444) -----------------------

truncate -s $((9 * mib)) "$tmpdir/x1" "$tmpdir/x2"
write_config "$tmpdir/x.conf" list2-$$ metadata=internal "$tmpdir/x1" "$tmpdir/x2"
"$fusemirrorctl" create --assume-clean "$tmpdir/x.conf" >&2 || fail "create x"
chmod 0444 "$tmpdir/x.conf"
cp "$tmpdir/x.conf" "$tmpdir/x.conf.before"
start_daemon "$tmpdir/x.conf" "$tmpdir/mirror2"
"$fusemirrorctl" fail "$tmpdir/mirror2" b >&2 || daemon_fail "fail x's b"
"$fusemirrorctl" remove "$tmpdir/mirror2" b >&2 || daemon_fail "remove x's b"
"$fusemirrorctl" add "$tmpdir/mirror2" "$tmpdir/x2" >&2 || daemon_fail "add x2 back"
cmp "$tmpdir/x.conf.before" "$tmpdir/x.conf" || daemon_fail "a mode 0444 config was rewritten"
test "$(grep -c "is not rewritten after add and remove: it has no write permission" \
	"$daemon_log")" = 1 || daemon_fail "not one notice about the read-only config"
second_pid=$daemon_pid
second_log=$daemon_log

# ---- list: the two mirrors at once, then one dead ------------------------------------------------

"$fusemirrorctl" list >"$tmpdir/list.out" 2>"$tmpdir/list.err" ||
	daemon_fail "fusemirrorctl list: $(cat "$tmpdir/list.out" "$tmpdir/list.err")"
cat "$tmpdir/list.out" >&2
head -n 1 "$tmpdir/list.out" | grep -Eq '^NAME +STATE +SIZE +MOUNTPOINT$' ||
	daemon_fail "list has no header line"
grep -Eq "^keep-$$ +clean +16\.00 MiB +$mirror\$" "$tmpdir/list.out" ||
	daemon_fail "list does not show the first mirror"
grep -Eq "^list2-$$ +(clean|resyncing) +8\.00 MiB +$tmpdir/mirror2\$" "$tmpdir/list.out" ||
	daemon_fail "list does not show the second mirror"

# shellcheck disable=SC2016
check_json='
import json, sys
mirrors = {m["mountpoint"]: m for m in json.load(open(sys.argv[1]))}
def expect(mountpoint, **fields):
    m = mirrors.get(mountpoint)
    if m is None:
        sys.exit("no mirror on %s in %s" % (mountpoint, sorted(mirrors)))
    for key, want in fields.items():
        if isinstance(want, tuple):
            ok = m[key] in want
        else:
            ok = m[key] == want
        if not ok:
            sys.exit("%s: %s is %r, not %r" % (mountpoint, key, m[key], want))
args = sys.argv[2:]
if args[0] == "live":
    expect(args[1], name="keep-%s" % args[3], state="clean", size=16 << 20, legs=3,
           uuid=args[4], error=None)
    expect(args[2], name="list2-%s" % args[3], state=("clean", "resyncing"), size=8 << 20)
else:
    expect(args[1], name="keep-%s" % args[3], state="clean", size=16 << 20)
    expect(args[2], name="list2-%s" % args[3], state="dead", size=None, uuid=None)
    assert mirrors[args[2]]["error"].startswith("its daemon is gone")
'
"$fusemirrorctl" list --json >"$tmpdir/list.json" || daemon_fail "fusemirrorctl list --json"
python3 -c "$check_json" "$tmpdir/list.json" live "$mirror" "$tmpdir/mirror2" $$ "$uuid" ||
	daemon_fail "list --json: $(cat "$tmpdir/list.json")"

# The second daemon stopped (SIGSTOP): list does not hang on it, it says it does not answer.
kill -s STOP "$second_pid"
cleanup_fn "kill -s CONT $second_pid 2>/dev/null"
start=$(date +%s)
rc=0
timeout 30 "$fusemirrorctl" list >"$tmpdir/list.out" 2>"$tmpdir/list.err" || rc=$?
kill -s CONT "$second_pid"
test $rc = 1 || daemon_fail "list with a stopped daemon exited $rc, not 1"
test $(($(date +%s) - start)) -le 15 || daemon_fail "list waited more than 15 s for a stopped daemon"
grep -Eq "^list2-$$ +not-responding +- +$tmpdir/mirror2\$" "$tmpdir/list.out" ||
	daemon_fail "list does not show the stopped mirror as not-responding: $(cat "$tmpdir/list.out")"
grep -Eq "^keep-$$ +clean " "$tmpdir/list.out" || daemon_fail "list lost the first mirror"
grep -q "list: $tmpdir/mirror2: no answer within 5 s" "$tmpdir/list.err" ||
	daemon_fail "list does not say why: $(cat "$tmpdir/list.err")"

# The second daemon killed: its mount stays, dead; list says so, at once, and exits 1.
kill -s KILL "$second_pid"
wait "$second_pid" 2>/dev/null || :
: >"$second_log.stopped"
rc=0
timeout 20 "$fusemirrorctl" list --json >"$tmpdir/list.json" 2>"$tmpdir/list.err" || rc=$?
test $rc = 1 || daemon_fail "list with a dead mirror exited $rc, not 1"
grep -q "list: $tmpdir/mirror2: its daemon is gone" "$tmpdir/list.err" ||
	daemon_fail "list does not say the second mirror is dead: $(cat "$tmpdir/list.err")"
python3 -c "$check_json" "$tmpdir/list.json" dead "$mirror" "$tmpdir/mirror2" $$ "$uuid" ||
	daemon_fail "list --json with a dead mirror: $(cat "$tmpdir/list.json")"
umount -l "$tmpdir/mirror2"

# ---- scan: a config that assembles the same mirror ---------------------------------------------

daemon_pid=$first_pid
daemon_log=$first_log
daemon_mountpoint=$mirror
stop_daemon

rc=0
"$fusemirrorctl" scan "$a" "$b" "$c" "$d" >"$tmpdir/scan.conf" 2>"$tmpdir/scan.err" || rc=$?
cat "$tmpdir/scan.conf" "$tmpdir/scan.err" >&2
test $rc = 0 || fail "fusemirrorctl scan exited $rc"
grep -q "^name = keep-$$\$" "$tmpdir/scan.conf" || fail "scan: no name"
grep -q "^# $c: leg uuid .* is no member in the newest superblock: left out\$" \
	"$tmpdir/scan.conf" || fail "scan: the removed leg c is not a comment"
test "$(grep -c '^\[leg ' "$tmpdir/scan.conf")" = 3 || fail "scan: not three legs"
start_daemon "$tmpdir/scan.conf" "$mirror"
assert_eq "$(xattr "$mirror" user.fusemirror.uuid)" "$uuid" "uuid from scan's config"
assert_eq "$(xattr "$mirror" user.fusemirror.state)" clean "state from scan's config"
i=0
# The names are those the superblocks recorded: the config's group names.
for leg in "$a" "$b" "$d"; do
	assert_eq "$(xattr "$mirror" user.fusemirror.leg.$i.path)" "$leg" "leg $i from scan's config"
	assert_eq "$(xattr "$mirror" user.fusemirror.leg.$i.name)" "$(basename "$leg" .img)" \
		"leg $i's name from scan"
	i=$((i + 1))
done
# Legs that disagree: b failed misses the events of the others; scan says which is newest.
"$fusemirrorctl" fail "$mirror" b >&2 || daemon_fail "fail b"
stop_daemon
"$fusemirrorctl" scan "$a" "$b" "$d" >"$tmpdir/scan2.conf" || fail "scan of disagreeing legs"
cat "$tmpdir/scan2.conf" >&2
python3 - "$tmpdir/scan2.conf" "$b" <<'EOF_PY' || fail "scan of disagreeing legs"
import re, sys
text, b = open(sys.argv[1]).read(), sys.argv[2]
newest = int(re.search(r"events (\d+)\n", text).group(1))
for name in ("a", "d"):
    if "# events %d: the newest\n[leg %s]\n" % (newest, name) not in text:
        sys.exit("%s is not said to be the newest" % name)
m = re.search(r"# events (\d+), older than the newest \((\d+)\): it will be resynced\n"
              r"# failed in the newest superblock\n\[leg b\]\npath = (.*)\n", text)
if m is None or int(m.group(1)) >= newest or int(m.group(2)) != newest or m.group(3) != b:
    sys.exit("b is not said to be older and failed")
EOF_PY

# A LEG that is no leg: said, exit 1.
truncate -s $mib "$tmpdir/zeroes"
rc=0
"$fusemirrorctl" scan "$a" "$tmpdir/zeroes" >/dev/null 2>"$tmpdir/scan.err" || rc=$?
test $rc = 1 || fail "scan of a non-leg exited $rc, not 1"
grep -qF "scan $tmpdir/zeroes: not a fusemirror leg (no superblock)" "$tmpdir/scan.err" ||
	fail "scan of a non-leg: $(cat "$tmpdir/scan.err")"

# Without arguments: the block devices, here loop devices over a, b and d.
if test -e /dev/loop-control && command -v losetup >/dev/null 2>&1; then
	la=$(loop_attach "$a" -r)
	lb=$(loop_attach "$b" -r)
	"$fusemirrorctl" scan >"$tmpdir/scan-all.conf" 2>"$tmpdir/scan.err" ||
		fail "scan without arguments: $(cat "$tmpdir/scan.err")"
	python3 - "$tmpdir/scan-all.conf" "$uuid" "$la" "$lb" <<'EOF' || fail "scan without arguments"
import sys
text, uuid, la, lb = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3], sys.argv[4]
# One array per block: the one with our uuid.
blocks = [b for b in text.split("\n# fusemirror array ") if uuid in b.split("\n")[0]]
if len(blocks) != 1:
    sys.exit("array %s not found once in:\n%s" % (uuid, text))
block = blocks[0]
# The legs are named as the superblocks recorded them.
for name, path in (("a", la), ("b", lb)):
    if "[leg %s]\npath = %s\n" % (name, path) not in block:
        sys.exit("no [leg %s] with path %s in:\n%s" % (name, path, block))
if "[leg d]: slot 2, leg uuid" not in block or "not found" not in block:
    sys.exit("the slot of d (not on a block device) is not a comment:\n" + block)
EOF
fi
exit 0
