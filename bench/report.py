#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""bench/report.py: the arithmetic of bench/run.

  report.py line JSON STDERR          one progress line for a finished fio run
  report.py report OUTDIR [--strict]  read OUTDIR/runs.tsv and the fio JSON it names; write
                                      OUTDIR/results.csv, OUTDIR/table.txt, OUTDIR/ratios.dat and
                                      OUTDIR/ratios.gp; print the table; exit 1 when a check of
                                      the limit or of a fusemirror target failed (with --strict,
                                      of the peer too), else 0

runs.tsv (written by bench/run, tab-separated, one line per fio run or per target-level problem):
  target  nlegs  job  json  stderr  fio_rc  cpu_s  identical  state  note
cpu_s is the daemon's utime+stime over the run ("-" for the limit), identical is yes|no|- (every
leg byte-identical over the mirror's size after the run), state is the mirror's
user.fusemirror.state after the run ("-" when not asked), note is a problem bench/run saw.
A target named TARGET@base (bench/run --baseline-build) is TARGET run by the baseline build: the
report then adds the ratio TARGET/base per job (the column ratio_vs_base in results.csv), and its
failed checks are reported but, like the peer's, fatal only with --strict.
The NBD targets (bench/run --targets nbd) come in families by added delay D: limit-nbd-Dms (its
slowest leg is the limit of fm-nbd-Dms and fm-nbd-Dms-wb: their ratio_vs_limit), qsd-nbd-Dms
(their peer, ratio_vs_peer; its failed checks count like the peer's), and the table adds their
ratios per delay. A target-level note starting with "skipped:" is a variant bench/run did not
run (e.g. write-behind refused by the daemon): printed as a note, not a failed check.
"""

import csv
import json
import os
import re
import sys

MIB = 1024 * 1024
GIB = 1024 * MIB
LIMIT = "limit"
PEER = "qsd-quorum"
FLOOR = "null"
MAIN = "fm-2legs"
BASE = "@base"  # suffix of the targets run by the baseline build
FM_TARGETS = ("fm-1leg", "fm-2legs", "fm-3legs")
NBD_TARGET = re.compile(r"^(limit|fm|qsd)-nbd-(\d+)ms(-wb)?$")
SKIPPED = "skipped:"
SCALED_JOB = re.compile(r"^(.+)-j(\d+)$")  # bench/run --scaling: JOB run by N fio jobs

# fio prints one line per verify failure (on stderr, or before the JSON on stdout).
VERIFY_LINE = re.compile(r"^(verify: |.*verify failed|.*bad (magic|header|pattern))", re.M)
EILSEQ = 84


def load_fio(path):
    """fio's JSON, skipping any text fio printed around it (e.g. "fio: pid=..., err=84")."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return None, ""
    start = text.find("{\n")
    if start < 0:
        start = text.find("{")
    if start < 0:
        return None, text
    try:
        obj, end = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None, text
    return obj, text[:start] + text[start + end:]


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def pct99(lat):
    p = lat.get("percentile") or {}
    v = p.get("99.000000")
    return v / 1000.0 if v is not None else None


def direction(d):
    """MiB/s, IOPS, mean and p99 latency (µs) of one direction of a fio job."""
    n = d.get("total_ios", 0)
    out = {
        "bytes": d.get("io_bytes", 0),
        "ios": n,
        "mib_s": d.get("bw_bytes", 0) / MIB,
        "iops": d.get("iops", 0.0),
        "lat_mean_us": None,
        "lat_p99_us": None,
    }
    if n:
        lat = d.get("lat_ns") or {}
        out["lat_mean_us"] = lat.get("mean", 0.0) / 1000.0
        out["lat_p99_us"] = pct99(lat)
        if out["lat_p99_us"] is None:
            out["lat_p99_us"] = pct99(d.get("clat_ns") or {})
    return out


def numjobs(data, job):
    """How many fio jobs one result of the JSON sums: numjobs with group_reporting (bench/run
    --scaling sets both in [global]), else 1 (fio then reports each job on its own)."""
    opts = dict((data or {}).get("global options") or {})
    opts.update(job.get("job options") or {})
    if str(opts.get("group_reporting", "0")) in ("0", "false"):
        return 1
    try:
        return max(1, int(opts.get("numjobs", 1)))
    except ValueError:
        return 1


def job_metrics(job, noise, data=None):
    """The numbers of one fio job (one section): totals over reads and writes.

    MiB/s and IOPS are all bytes and I/Os over the job's whole run time, so that a write-then-
    verify job is measured over both of its phases; the mean latency is weighted by I/O count,
    the p99 is the larger of the two directions'. A result that groups N jobs (group_reporting)
    has the sum of their run times as job_runtime: the wall time is that over N."""
    r, w = direction(job.get("read", {})), direction(job.get("write", {}))
    runtime_s = (job.get("job_runtime") or 0) / 1000.0 / numjobs(data, job)
    ios = r["ios"] + w["ios"]
    nbytes = r["bytes"] + w["bytes"]
    m = {
        "read": r,
        "write": w,
        "bytes": nbytes,
        "ios": ios,
        "runtime_s": runtime_s,
        "mib_s": nbytes / MIB / runtime_s if runtime_s else 0.0,
        "iops": ios / runtime_s if runtime_s else 0.0,
        "lat_mean_us": None,
        "lat_p99_us": None,
        "fio_error": job.get("error", 0),
        "verify_errors": 0,
    }
    if ios:
        m["lat_mean_us"] = sum((d["lat_mean_us"] or 0) * d["ios"] for d in (r, w)) / ios
        p = [d["lat_p99_us"] for d in (r, w) if d["ios"] and d["lat_p99_us"] is not None]
        m["lat_p99_us"] = max(p) if p else None
    # Verify failures: fio prints one message per failed block, naming the file; the error code
    # EILSEQ without a message still counts.
    name = job.get("job options", {}).get("filename", "")
    n = sum(1 for l in noise.splitlines() if VERIFY_LINE.match(l) and (not name or name in l))
    if n == 0 and m["fio_error"] == EILSEQ:
        n = max(1, job.get("total_err", 0))
    m["verify_errors"] = n
    return m


def fmt(v, spec):
    if v is None or v == "":
        return "-"
    return format(v, spec)


def cmd_line(json_path, stderr_path):
    data, noise = load_fio(json_path)
    if not data or not data.get("jobs"):
        print("no fio result")
        return 0
    noise += read_text(stderr_path)
    parts = []
    for job in data["jobs"]:
        m = job_metrics(job, noise, data)
        s = "%s %.0f MiB/s %.0f IOPS %s µs" % (job.get("jobname", "?"), m["mib_s"], m["iops"],
                                             fmt(m["lat_mean_us"], ".0f"))
        if m["verify_errors"]:
            s += " %d VERIFY ERRORS" % m["verify_errors"]
        parts.append(s)
    print("; ".join(parts))
    return 0


def is_baseline(t):
    return t.split("/")[0].endswith(BASE)


def nbd_family(t):
    """(kind, delay ms, write-behind) of an NBD target (limit-nbd-1ms, fm-nbd-10ms-wb), or None."""
    m = NBD_TARGET.match(t.split("/")[0])
    return (m.group(1), int(m.group(2)), bool(m.group(3))) if m else None


def is_peer(t):
    """qemu-storage-daemon's targets: the peer and its NBD variants."""
    base = t.split("/")[0]
    return base == PEER or base.startswith("qsd-")


def is_limit(t):
    base = t.split("/")[0]
    return base == LIMIT or (nbd_family(base) or ("",))[0] == "limit"


def limit_of(t):
    """The target whose slowest leg bounds t: limit, or limit-nbd-Dms for an NBD target."""
    f = nbd_family(t)
    return "limit-nbd-%dms" % f[1] if f else LIMIT


def peer_of(t):
    f = nbd_family(t)
    return "qsd-nbd-%dms" % f[1] if f else PEER


def target_order(t):
    """Targets in bench/run's order; TARGET@base right after TARGET."""
    base = t.split("/")[0]
    baseline = base.endswith(BASE)
    if baseline:
        base = base[:-len(BASE)]
    order = [LIMIT, FLOOR, "fm-1leg", "fm-2legs", "fm-3legs", PEER]
    f = nbd_family(base)
    if f:  # after the peer, by delay: limit, fm, fm with write-behind, qsd
        kind = ("limit", "fm", "fm-wb", "qsd").index(f[0] + ("-wb" if f[2] else ""))
        return (len(order), f[1], kind, baseline, t)
    return (order.index(base) if base in order else len(order) + 1, 0, 0, baseline, t)


def cmd_report(outdir, strict):
    runs = []
    with open(os.path.join(outdir, "runs.tsv")) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            cols = line.split("\t")
            cols += [""] * (10 - len(cols))
            runs.append(dict(zip(("target", "nlegs", "job", "json", "stderr", "fio_rc", "cpu_s",
                                  "identical", "state", "note"), cols)))

    rows = []      # one per job x target (and per limit leg)
    jobs = []      # job names in run order
    problems = []  # (target, job, text, fatal)
    skipped = []   # (target, text): variants bench/run did not run, and why

    def problem(target, job, text):
        fatal = (not is_peer(target) and not is_baseline(target)) or strict
        problems.append((target, job, text, fatal))
        return text

    for run in runs:
        t, job = run["target"], run["job"]
        if job == "-" and run["note"].startswith(SKIPPED):
            skipped.append((t, run["note"][len(SKIPPED):].strip()))
            continue
        if job == "-":  # a problem of the target as a whole (start, stop)
            problem(t, "-", run["note"])
            continue
        if job not in jobs:
            jobs.append(job)
        status = []
        if run["note"] and not run["note"].startswith("legs were re-copied"):
            status.append(problem(t, job, run["note"]))
        data, noise = load_fio(os.path.join(outdir, run["json"]))
        noise += read_text(os.path.join(outdir, run["stderr"]))
        rc = run["fio_rc"]
        if rc not in ("0", ""):
            status.append(problem(t, job, "fio exited %s" % rc))
        if not data or not data.get("jobs"):
            status.append(problem(t, job, "no fio result"))
            rows.append({"job": job, "target": t, "nlegs": run["nlegs"], "m": None,
                         "status": status, "cpu_s": None, "identical": run["identical"],
                         "state": run["state"], "fio_rc": rc})
            continue
        if run["identical"] == "no":
            status.append(problem(t, job, "LEGS DIFFER"))
        if run["state"] not in ("", "-", "clean"):
            status.append(problem(t, job, "mirror state %s" % run["state"]))
        cpu = float(run["cpu_s"]) if run["cpu_s"] not in ("", "-") else None
        per = []
        for j in data["jobs"]:
            m = job_metrics(j, noise, data)
            if m["fio_error"] and m["fio_error"] != EILSEQ:
                status.append(problem(t, job, "fio error %d in %s" % (m["fio_error"],
                                                                  j.get("jobname"))))
            per.append((j.get("jobname", "?"), m))
        for name, m in per:
            if m["verify_errors"]:
                status.append(problem(t if len(per) == 1 else "%s/%s" % (t, name), job,
                                      "%d VERIFY ERRORS" % m["verify_errors"]))
        if len(per) > 1:  # the limit: one row per leg, and the slowest leg as "limit"
            for name, m in per:
                rows.append({"job": job, "target": "%s/%s" % (t, name), "nlegs": "1", "m": m,
                             "status": [], "cpu_s": None, "identical": "-", "state": "-",
                             "fio_rc": rc, "bound": None})
            bound = "slowest leg"
            if nbd_family(t) and not any(x[1]["write"]["ios"] for x in per):
                # The remote leg is write-mostly (and qsd's quorum reads its first child):
                # reads come from leg 0 alone, so leg 0 bounds them, not the export.
                m = dict(per[0][1])
                bound = "leg0: reads"
            else:
                m = dict(min(per, key=lambda x: x[1]["mib_s"])[1])
            m["verify_errors"] = sum(x[1]["verify_errors"] for x in per)
        else:
            m = per[0][1]
            bound = None
        rows.append({"job": job, "target": t, "nlegs": run["nlegs"], "m": m, "status": status,
                     "cpu_s": cpu, "identical": run["identical"], "state": run["state"],
                     "fio_rc": rc, "bound": bound})

    def find(job, target):
        for r in rows:
            if r["job"] == job and r["target"] == target and r["m"]:
                return r
        return None

    def ratio(a, b):
        if not a or not b or not a["m"] or not b["m"] or not b["m"]["mib_s"]:
            return None
        return a["m"]["mib_s"] / b["m"]["mib_s"]

    # The fusemirror targets that have a baseline run: their ratio over it is reported.
    based = [t for t in FM_TARGETS if any(r["target"] == t + BASE and r["m"] for r in rows)]
    for r in rows:
        r["vs_limit"] = r["vs_peer"] = r["vs_floor"] = r["vs_base"] = None
        base = r["target"].split("/")[0]
        if not is_limit(base) and r["target"] == base:
            r["vs_limit"] = ratio(r, find(r["job"], limit_of(base)))
            if not is_peer(base) and base != FLOOR:
                r["vs_peer"] = ratio(r, find(r["job"], peer_of(base)))
            if base != FLOOR and not nbd_family(base):
                r["vs_floor"] = ratio(r, find(r["job"], FLOOR))
            if base in based:
                r["vs_base"] = ratio(r, find(r["job"], base + BASE))
        m = r["m"]
        r["cpu_per_gib"] = (r["cpu_s"] / (m["bytes"] / GIB)
                            if r["cpu_s"] is not None and m and m["bytes"] else None)

    rows.sort(key=lambda r: (jobs.index(r["job"]), target_order(r["target"])))

    # results.csv: every number of every row.
    cols = ["job", "target", "legs", "mib_s", "iops", "lat_mean_us", "lat_p99_us",
            "read_mib_s", "read_iops", "read_lat_mean_us", "read_lat_p99_us",
            "write_mib_s", "write_iops", "write_lat_mean_us", "write_lat_p99_us",
            "bytes", "runtime_s", "daemon_cpu_s", "daemon_cpu_s_per_gib",
            "ratio_vs_limit", "ratio_vs_peer", "ratio_vs_floor", "verify_errors", "legs_identical",
            "mirror_state", "fio_rc", "status"]
    if based:  # only with a baseline: the CSV of a run without one is unchanged
        cols.append("ratio_vs_base")
    with open(os.path.join(outdir, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            m = r["m"] or {}
            rd, wr = m.get("read", {}), m.get("write", {})

            def g(d, k, spec=".3f"):
                v = d.get(k)
                return "" if v is None else format(v, spec)

            row = [r["job"], r["target"], r["nlegs"],
                   g(m, "mib_s"), g(m, "iops", ".1f"), g(m, "lat_mean_us", ".2f"),
                   g(m, "lat_p99_us", ".2f"),
                   g(rd, "mib_s"), g(rd, "iops", ".1f"), g(rd, "lat_mean_us", ".2f"),
                   g(rd, "lat_p99_us", ".2f"),
                   g(wr, "mib_s"), g(wr, "iops", ".1f"), g(wr, "lat_mean_us", ".2f"),
                   g(wr, "lat_p99_us", ".2f"),
                   m.get("bytes", ""), g(m, "runtime_s"),
                   "" if r["cpu_s"] is None else "%.3f" % r["cpu_s"],
                   "" if r["cpu_per_gib"] is None else "%.4f" % r["cpu_per_gib"],
                   "" if r["vs_limit"] is None else "%.4f" % r["vs_limit"],
                   "" if r["vs_peer"] is None else "%.4f" % r["vs_peer"],
                   "" if r["vs_floor"] is None else "%.4f" % r["vs_floor"],
                   m.get("verify_errors", ""), r["identical"], r["state"], r["fio_rc"],
                   "; ".join(r["status"]) or "ok"]
            if based:
                row.append("" if r["vs_base"] is None else "%.4f" % r["vs_base"])
            w.writerow(row)

    have_peer = any(r["target"] == PEER and r["m"] for r in rows)
    out = run_options(outdir)
    tw = max([16] + [len(r["target"]) for r in rows])
    hdr = "%-21s %-*s %9s %9s %9s %9s %9s  %s" % ("job", tw, "target", "MiB/s", "IOPS", "mean µs",
                                                  "p99 µs", "CPU s/GiB", "checks")
    out.append(hdr)
    out.append("-" * len(hdr))
    last = None
    for r in rows:
        m = r["m"] or {}
        if last is not None and r["job"] != last:
            out.append("")
        checks = "; ".join(r["status"])
        if not checks:
            checks = "ok" if not is_limit(r["target"]) or "/" not in r["target"] else ""
            if is_limit(r["target"]) and "/" not in r["target"]:
                checks = "ok (%s)" % (r.get("bound") or "slowest leg")
        else:
            checks = "FAIL: " + checks
        out.append("%-21s %-*s %9s %9s %9s %9s %9s  %s" % (
            r["job"] if r["job"] != last else "", tw, r["target"],
            fmt(m.get("mib_s"), ".1f"), fmt(m.get("iops"), ".0f"),
            fmt(m.get("lat_mean_us"), ".1f"), fmt(m.get("lat_p99_us"), ".1f"),
            fmt(r["cpu_per_gib"], ".3f"), checks))
        last = r["job"]

    out.append("")
    have_floor = any(r["target"] == FLOOR and r["m"] for r in rows)
    nbd_only = all(nbd_family(r["target"]) for r in rows) and rows
    ratio_lines = out if not nbd_only else []  # a run of NBD targets only: no fm-2legs table
    out_main, out = out, ratio_lines
    out.append("Ratios (MiB/s of the first over the second, = IOPS ratio; at QD1 the inverse of the "
               "latency ratio).")
    out.append("limit = slowest leg written/read directly; peer = %s%s; floor = null FUSE "
               "file%s:" % (PEER, "" if have_peer else " (skipped)",
                            "" if have_floor else " (skipped)"))
    pairs = ((MAIN, LIMIT), (MAIN, PEER), (MAIN, FLOOR), ("fm-3legs", LIMIT), ("fm-1leg", FLOOR))
    if based:
        out.append("base = the same target run by the baseline build (--baseline-build), in this "
                   "invocation: new/base.")
        pairs += tuple((t, t + BASE) for t in based)
    rh = "%-21s" % "job" + "".join(" %14s" % ("%s/%s" % (a, "floor" if b == FLOOR else
                                                          "peer" if b == PEER else
                                                          "base" if b.endswith(BASE) else b))
                                   for a, b in pairs)
    out.append(rh)
    out.append("-" * len(rh))
    dat = ["# job fm-2legs/limit fm-2legs/peer fm-2legs/floor (NaN: not measured; *: the peer "
           "failed a check)"]
    peer_failed = {j for t, j, _, _ in problems if t.split("/")[0] == PEER}
    for job in jobs:
        v = [ratio(find(job, a), find(job, b)) for a, b in pairs]
        out.append("%-21s" % job + "".join(" %14s" % ("n/a" if x is None else "%.2f" % x)
                                           for x in v))
        dat.append("%s %s" % (job + ("*" if job in peer_failed else ""), " ".join(
            "NaN" if x is None else "%.4f" % x for x in v[:3])))
    out = out_main
    out.extend(nbd_ratios(rows, jobs, find, ratio))
    out.extend(scaling_tables(outdir, rows, jobs))

    for t, text in skipped:
        out.append("note: %s skipped: %s" % (t, text))
    fatal = [p for p in problems if p[3]]
    base_problems = any(is_baseline(t) for t, _, _, _ in problems)
    out.append("")
    if problems:
        out.append("!" * 78)
        out.append("!!! CHECKS FAILED: %d problem(s)%s" % (
            len(problems), "" if fatal else
            " (all of them the peer's%s: not fatal without --strict)" % (
                " or the baseline's" if base_problems else "")))
        for t, job, text, is_fatal in problems:
            out.append("!!!   %-16s %-21s %s%s" % (t, job, text, "" if is_fatal else
                                                     "   [baseline: reported, not fatal]"
                                                     if is_baseline(t) else
                                                     "   [peer: reported, not fatal]"))
        out.append("!" * 78)
    else:
        out.append("Checks: every verify job without error, every leg byte-identical after "
                   "every writing job, every mirror clean.")

    text = "\n".join(out) + "\n"
    with open(os.path.join(outdir, "table.txt"), "w") as f:
        f.write(text)
    sys.stdout.write(text)

    with open(os.path.join(outdir, "ratios.dat"), "w") as f:
        f.write("\n".join(dat) + "\n")
    with open(os.path.join(outdir, "ratios.gp"), "w") as f:
        f.write(GNUPLOT % {"png": "ratios.png", "dat": "ratios.dat",
                           "peer": "fm-2legs / peer (qsd quorum)" if have_peer
                           else "fm-2legs / peer (skipped)",
                           "floor": "fm-2legs / floor (null FUSE file)" if have_floor
                           else "fm-2legs / floor (skipped)",
                           "sub": "\\n* the peer failed the data checks of this job (corrupt or "
                                  "diverged legs)" if peer_failed else ""})
    return 1 if fatal else 0


def run_options(outdir):
    """The lines of meta.txt that say how fusemirror was configured (bench/run --mirror-opt,
    --leg-opt), so that the table says what it measured."""
    keep = ("mirror options:", "leg options:", "legs:", "limit:", "scaling:")
    meta = read_text(os.path.join(outdir, "meta.txt")).splitlines()
    lines = [l for l in meta if l.startswith(keep)]
    return lines + [""] if lines else []


def cpu_us_per_io(r):
    """The daemon's CPU time over the measured interval per I/O fio did in it (reads and writes),
    in µs; None without a daemon (the limit) or without I/O."""
    m = r["m"]
    if r["cpu_s"] is None or not m or not m["ios"]:
        return None
    return r["cpu_s"] * 1e6 / m["ios"]


def scaling_tables(outdir, rows, jobs):
    """bench/run --scaling: the jobs named JOB-jN (N fio jobs). Per JOB a table, rows = targets,
    columns = N, each cell IOPS (MiB/s for large blocks), mean latency and the daemon's CPU µs
    per I/O; written to OUTDIR/scaling.csv (one row per JOB x N x target) and
    OUTDIR/scaling.dat (the chart's data: CPU µs per I/O by N, a block per JOB), returned as
    lines to print. Nothing (and no file) when no job is a scaling one."""
    cells = {}  # (base job, target) -> {N: row}
    bases, targets, counts = [], [], set()
    for r in rows:
        m = SCALED_JOB.match(r["job"])
        if not m or "/" in r["target"]:
            continue
        base, n = m.group(1), int(m.group(2))
        if base not in bases:
            bases.append(base)
        if r["target"] not in targets:
            targets.append(r["target"])
        counts.add(n)
        cells.setdefault((base, r["target"]), {})[n] = r
    if not bases:
        return []
    targets.sort(key=target_order)
    counts = sorted(counts)

    with open(os.path.join(outdir, "scaling.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["job", "numjobs", "target", "legs", "iops", "mib_s", "lat_mean_us", "ios",
                    "daemon_cpu_s", "daemon_cpu_us_per_io", "status"])
        for base in bases:
            for t in targets:
                for n in counts:
                    r = cells.get((base, t), {}).get(n)
                    if not r:
                        continue
                    m, c = r["m"] or {}, cpu_us_per_io(r)
                    w.writerow([base, n, t, r["nlegs"],
                                "" if not m else "%.1f" % m["iops"],
                                "" if not m else "%.3f" % m["mib_s"],
                                "" if m.get("lat_mean_us") is None else "%.2f" % m["lat_mean_us"],
                                m.get("ios", ""),
                                "" if r["cpu_s"] is None else "%.3f" % r["cpu_s"],
                                "" if c is None else "%.3f" % c,
                                "; ".join(r["status"]) or "ok"])

    with open(os.path.join(outdir, "scaling.dat"), "w") as f:
        f.write("# daemon CPU us per I/O by fio jobs; one block per job, one column per target "
                "(NaN: no daemon or not run)\n")
        for i, base in enumerate(bases):
            f.write("%s# %s\n# numjobs %s\n" % ("\n\n" if i else "", base, " ".join(targets)))
            for n in counts:
                v = [cpu_us_per_io(cells[(base, t)][n]) if n in cells.get((base, t), {}) else None
                     for t in targets]
                f.write("%d %s\n" % (n, " ".join("NaN" if x is None else "%.3f" % x for x in v)))
    with open(os.path.join(outdir, "scaling.gp"), "w") as f:
        f.write(scaling_gnuplot(bases, targets))

    tw = max([12] + [len(t) for t in targets])
    out = ["", "Scaling (bench/run --scaling): one table per job, rows = targets, columns = N fio "
           "jobs (numjobs), each at the job's queue depth.",
           "IOPS (MiB/s for 1 MiB blocks) and mean latency as fio saw them; CPU µs = the daemon's "
           "utime+stime over the measured",
           "interval / the I/Os fio did in it ('-': the limit has no daemon). The limit is its "
           "slowest leg, with N fio jobs on each leg."]
    for base in bases:
        # MiB/s for large blocks: the block size from any run of the job that has a result.
        sample = next((r["m"] for (b, _), d in cells.items() if b == base for r in d.values()
                       if r["m"] and r["m"]["ios"]), None)
        big = bool(sample and sample["bytes"] / sample["ios"] >= 65536)
        unit = "MiB/s" if big else "IOPS"
        out.append("")
        out.append("%s: %s, mean latency µs, daemon CPU µs per I/O, by fio jobs" % (base, unit))
        out.append("%-*s" % (tw, "") + "".join(
            "  %s" % (" %d job%s " % (n, "" if n == 1 else "s")).center(26, "-") for n in counts))
        hdr = "%-*s" % (tw, "target") + "".join("  %9s %9s %6s" % (unit, "mean µs", "CPU µs")
                                              for _ in counts)
        out.append(hdr)
        for t in targets:
            line = "%-*s" % (tw, t)
            for n in counts:
                r = cells.get((base, t), {}).get(n)
                if not r or not r["m"]:
                    line += "  %26s" % ("not run" if not r else "no result")
                    continue
                m = r["m"]
                speed = "%.0f" % m["mib_s"] if big else (
                    "%.1fk" % (m["iops"] / 1000) if m["iops"] >= 1000 else "%.0f" % m["iops"])
                line += "  %9s %9s %6s" % (speed + ("!" if r["status"] else ""),
                                           fmt(m["lat_mean_us"], ".0f"),
                                           fmt(cpu_us_per_io(r), ".1f"))
            out.append(line)
    if any(r["status"] for d in cells.values() for r in d.values()):
        out.append("!: a check failed in that run (see below)")
    return out


def scaling_gnuplot(bases, targets):
    """The scaling chart: one panel per job, the daemon's CPU µs per I/O against fio jobs, a line
    per target that has a daemon."""
    lines = ["# bench/run --scaling's chart: gnuplot scaling.gp, in the output directory.",
             'set terminal pngcairo size %d,420 noenhanced font ",10"' % (380 * len(bases)),
             'set output "scaling.png"',
             "set multiplot layout 1,%d title \"daemon CPU per I/O as work grows (bench/run "
             "--scaling)\"" % len(bases),
             'set xlabel "fio jobs"', 'set ylabel "CPU µs per I/O"', "set logscale x 2",
             "set xtics (1, 2, 4)", "set yrange [0:*]", "set grid ytics", "set key top left",
             'set datafile missing "NaN"']
    for i, base in enumerate(bases):
        lines.append('set title "%s"' % base)
        plots = ['"scaling.dat" index %d using 1:%d with linespoints lw 2 title "%s"' % (i, c + 2, t)
                 for c, t in enumerate(targets) if not is_limit(t)]
        lines.append("plot " + ", \\\n     ".join(plots) if plots else "plot 0 notitle")
    lines.append("unset multiplot")
    return "\n".join(lines) + "\n"


def nbd_ratios(rows, jobs, find, ratio):
    """The NBD targets' ratios, one block of columns per delay: fm-nbd-Dms (fm) and
    fm-nbd-Dms-wb (wb) over limit-nbd-Dms (limit) and qsd-nbd-Dms (qsd), and wb over fm.
    Only the columns whose two targets ran."""
    have = {r["target"] for r in rows if r["m"]}
    delays = sorted({nbd_family(t)[1] for t in have if nbd_family(t) and "/" not in t})
    cols = []
    for d in delays:
        fm, wb = "fm-nbd-%dms" % d, "fm-nbd-%dms-wb" % d
        lim, qsd = "limit-nbd-%dms" % d, "qsd-nbd-%dms" % d
        for a, b, label in ((fm, lim, "fm/limit"), (fm, qsd, "fm/qsd"), (wb, lim, "wb/limit"),
                            (wb, qsd, "wb/qsd"), (wb, fm, "wb/fm"), (qsd, lim, "qsd/limit")):
            if a in have and b in have:
                cols.append((a, b, "%dms %s" % (d, label)))
    if not cols:
        return []
    out = ["", "Ratios of the NBD targets, per added delay D (MiB/s of the first over the second): "
           "fm = fm-nbd-Dms, wb = fm-nbd-Dms-wb,",
           "qsd = qsd-nbd-Dms (the peer), limit = limit-nbd-Dms (leg 0 and the export written "
           "directly: the slower one; leg 0 for a read-only job):"]
    rh = "%-21s" % "job" + "".join(" %14s" % c[2] for c in cols)
    out.append(rh)
    out.append("-" * len(rh))
    for job in jobs:
        v = [ratio(find(job, a), find(job, b)) for a, b, _ in cols]
        out.append("%-21s" % job + "".join(" %14s" % ("n/a" if x is None else "%.2f" % x)
                                           for x in v))
    return out


GNUPLOT = """# bench/run's chart: gnuplot -c ratios.gp, in the output directory.
set terminal pngcairo size 1200,600 noenhanced font ",10"
set output "%(png)s"
set title "fusemirror with 2 legs: MiB/s relative to the limit, the peer and the floor (same invocation)%(sub)s"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -30 left
set ylabel "ratio (1 = equal)"
set yrange [0:*]
set grid ytics
set key top left
set datafile missing "NaN"
set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 lw 2 lc rgb "black" front
plot "%(dat)s" using 2:xtic(1) title "fm-2legs / limit (slowest leg direct)" lc rgb "#3b7dd8", \\
     "" using 3 title "%(peer)s" lc rgb "#e07b28", \\
     "" using 4 title "%(floor)s" lc rgb "#5aa55a", \\
     "" using ($0-0.9/4):2:(sprintf("%%.2f", $2)) with labels offset 0,0.7 font ",8" notitle, \\
     "" using ($0):3:(sprintf("%%.2f", $3)) with labels offset 0,0.7 font ",8" notitle, \\
     "" using ($0+0.9/4):4:(sprintf("%%.2f", $4)) with labels offset 0,0.7 font ",8" notitle
"""


def main(argv):
    if len(argv) >= 4 and argv[1] == "line":
        return cmd_line(argv[2], argv[3])
    if len(argv) >= 3 and argv[1] == "report":
        return cmd_report(argv[2], "--strict" in argv[3:])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
