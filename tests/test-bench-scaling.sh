#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# bench/run --scaling (bench/README.md), a short real run of the built fusemirrord:
#   - the scaling CSV has a row per job x fio job count (1, 2, 4) x target, with the legs of each
#     target, and the table a block per job with every target;
#   - the daemon's CPU µs per I/O is non-zero for fusemirror and is its CPU seconds over the I/Os
#     of both directions that fio counted (recomputed here from fio's own JSON), empty for the
#     limit; the IOPS of a grouped result are over the wall time, not the jobs' summed run time;
#   - --leg-opt lands in every [leg] group of the configs, and the report names the leg and
#     mirror options of the run;
#   - a malformed --leg-opt is a usage error (2) that runs nothing; a key the daemon does not
#     know fails the run (1), naming the key.
. "${srcdir:-.}/functions.sh"
. "${srcdir:-.}/daemon.sh"
set -e
requires_fuse
requires_ctl
requires fio python3 cmp losetup
make_daemon_tmpdir

bench=$abs_top_srcdir/bench/run
out=$tmpdir/out

rc=0
bash "$bench" --leg-opt direct >"$tmpdir/usage.out" 2>&1 || rc=$?
test "$rc" -eq 2 || fail "a malformed --leg-opt exited $rc, not 2: $(cat "$tmpdir/usage.out")"
grep -q "not 'KEY = VALUE': direct" "$tmpdir/usage.out" ||
	fail "a malformed --leg-opt is not named: $(cat "$tmpdir/usage.out")"

# A leg key the daemon does not know fails its target, with fusemirrorctl's message, and the run.
rc=0
FUSEMIRRORD=$fusemirrord FUSEMIRRORCTL=$fusemirrorctl \
	bash "$bench" --quick --scaling --no-build --no-install --build-dir "$abs_top_builddir" \
	--leg-size 16M --targets fm-1leg --jobs randread --leg-opt 'no-such-key = 1' \
	--out "$tmpdir/unknown" >"$tmpdir/unknown.out" 2>&1 || rc=$?
test "$rc" -eq 1 || fail "an unknown --leg-opt key: bench/run exited $rc, not 1: $(cat "$tmpdir/unknown.out")"
grep -q "fm-1leg .*fusemirrorctl create refused the config: unknown key 'no-such-key' in group \[leg leg0\]" \
	"$tmpdir/unknown.out" || fail "an unknown --leg-opt key is not named: $(cat "$tmpdir/unknown.out")"

# The build tree's binaries as they are (no release build, no nullfuse compiled into the tree).
rc=0
FUSEMIRRORD=$fusemirrord FUSEMIRRORCTL=$fusemirrorctl \
	bash "$bench" --quick --scaling --no-build --no-install --build-dir "$abs_top_builddir" \
	--leg-size 16M --targets limit,fm-1leg,fm-2legs --jobs 'randread|seqwrite' \
	--leg-opt 'io-timeout = 30' --mirror-opt 'threads = 8' --out "$out" \
	>"$tmpdir/run.out" 2>&1 || rc=$?
cat "$tmpdir/run.out" >&2
test "$rc" -eq 0 || fail "bench/run --quick --scaling exited $rc"
test -s "$out/scaling.csv" || fail "no scaling.csv"

# Every [leg] group of every fusemirror config has the --leg-opt line, the [mirror] group the
# --mirror-opt one.
for conf in "$out/daemon/fm-1leg.conf" "$out/daemon/fm-2legs.conf"; do
	legs=$(grep -c '^\[leg ' "$conf")
	opts=$(awk '/^\[/ { leg = /^\[leg / } leg && $0 == "io-timeout = 30" { n++ } END { print n + 0 }' "$conf")
	if [ "$legs" -eq 0 ] || [ "$opts" -ne "$legs" ]; then
		fail "$conf: $opts of $legs [leg] groups have 'io-timeout = 30'"
	fi
	awk '/^\[/ { m = ($0 == "[mirror]") } m && $0 == "threads = 8" { f = 1 } END { exit !f }' \
		"$conf" || fail "$conf: no 'threads = 8' in [mirror]"
done
grep -qx "leg options: 'io-timeout = 30'" "$out/table.txt" || fail "the table does not name the leg options"
grep -qx "mirror options: 'threads = 8'" "$out/table.txt" || fail "the table does not name the mirror options"

python3 - "$out" <<'EOF' || fail "scaling.csv or the scaling table is wrong (see above)"
import csv, json, os, sys

out = sys.argv[1]
bad = []
cols = ["job", "numjobs", "target", "legs", "iops", "mib_s", "lat_mean_us", "ios",
        "daemon_cpu_s", "daemon_cpu_us_per_io", "status"]
with open(os.path.join(out, "scaling.csv")) as f:
    rows = list(csv.reader(f))
if rows[0] != cols:
    bad.append("header %r" % rows[0])
rows = [dict(zip(cols, r)) for r in rows[1:]]
want = {(j, n, t) for j in ("randread-4k-qd16", "seqwrite-1m-qd8") for n in ("1", "2", "4")
        for t in ("limit", "fm-1leg", "fm-2legs")}
have = {(r["job"], r["numjobs"], r["target"]) for r in rows}
if have != want or len(rows) != len(want):
    bad.append("rows: missing %s, extra %s" % (sorted(want - have), sorted(have - want)))

# What bench/run recorded: the daemon's CPU seconds and the fio JSON of each run.
runs = {}
with open(os.path.join(out, "runs.tsv")) as f:
    for line in f:
        c = line.rstrip("\n").split("\t")
        if not line.startswith("#") and len(c) >= 7:
            runs[(c[0], c[2])] = c
for r in rows:
    key = "%s %s x%s" % (r["target"], r["job"], r["numjobs"])
    if r["status"] != "ok":
        bad.append("%s: status %s" % (key, r["status"]))
    if r["legs"] != {"limit": "2", "fm-1leg": "1", "fm-2legs": "2"}[r["target"]]:
        bad.append("%s: legs %s" % (key, r["legs"]))
    run = runs.get((r["target"], "%s-j%s" % (r["job"], r["numjobs"])))
    if not run:
        bad.append("%s: not in runs.tsv" % key)
        continue
    with open(os.path.join(out, run[3])) as f:
        text = f.read()
    data = json.loads(text[text.index("{"):])
    jobs = data["jobs"]
    if len(jobs) != (2 if r["target"] == "limit" else 1):
        bad.append("%s: %d results in fio's JSON (group_reporting, new_group per leg?)" %
                   (key, len(jobs)))
    per = [(j["read"]["total_ios"] + j["write"]["total_ios"], j) for j in jobs]
    # The limit's row is its slowest leg: the least MiB/s, bytes over run time.
    ios, j = min(per, key=lambda x: (x[1]["read"]["io_bytes"] + x[1]["write"]["io_bytes"]) /
                 max(1, x[1]["job_runtime"]))
    if int(r["ios"]) != ios or ios <= 0:
        bad.append("%s: ios %s, fio counted %d" % (key, r["ios"], ios))
    wall = j["job_runtime"] / 1000.0 / int(r["numjobs"])
    if abs(float(r["iops"]) - ios / wall) > 0.02 * ios / wall:
        bad.append("%s: IOPS %s, fio's I/Os over the wall time %.1f" % (key, r["iops"], ios / wall))
    if r["target"] == "limit":
        if r["daemon_cpu_s"] or r["daemon_cpu_us_per_io"]:
            bad.append("%s: CPU for the limit, which has no daemon" % key)
        continue
    cpu = float(run[6])
    per_io = float(r["daemon_cpu_us_per_io"] or 0)
    if per_io <= 0 or abs(per_io - cpu * 1e6 / ios) > 0.01 * per_io + 0.001:
        bad.append("%s: CPU µs per I/O %s, %.3f s over %d I/Os is %.3f" %
                   (key, r["daemon_cpu_us_per_io"], cpu, ios, cpu * 1e6 / ios))

# The printed table: a block per job, every target in it.
with open(os.path.join(out, "table.txt")) as f:
    table = f.read()
for job, unit in (("randread-4k-qd16", "IOPS"), ("seqwrite-1m-qd8", "MiB/s")):
    head = "%s: %s, mean latency µs, daemon CPU µs per I/O, by fio jobs" % (job, unit)
    if head not in table:
        bad.append("no table %r" % head)
        continue
    block = table.split(head, 1)[1].split("\n\n", 1)[0].splitlines()
    names = [l.split()[0] for l in block[3:] if l.strip()]
    if names != ["limit", "fm-1leg", "fm-2legs"]:
        bad.append("%s: table rows %s" % (job, names))
for b in bad:
    print("test-bench-scaling: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
if command -v gnuplot >/dev/null 2>&1; then
	test -s "$out/scaling.png" || fail "gnuplot is installed but there is no scaling.png"
fi
exit 0
