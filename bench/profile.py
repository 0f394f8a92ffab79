#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""bench/profile.py: the arithmetic of bench/profile.

  profile.py callgrind SELF.txt INCL.txt CALLERS.txt NREQ
      SELF.txt, INCL.txt and CALLERS.txt are `callgrind_annotate --auto=no --threshold=100`
      without options, with --inclusive=yes and with --tree=caller; print instructions per
      request: in total, by object (self cost), our code by source directory, the inclusive cost
      of the write path's entry points, who calls the zeroing allocator, and the top functions.
  profile.py perf SCRIPT.txt HZ NREQ COMM[,COMM...]
      SCRIPT.txt is `perf script -F comm,ip,sym,dso` of a `perf record -e cpu-clock -F HZ -g -a`;
      print, per command name, µs of CPU per request, split into user space by object and kernel
      by what the thread was doing (the system call it was in).
"""

import collections
import re
import sys

LINE = re.compile(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(?:[<>*]\s+)?(.*?)(?: \[(.*)\])?\s*$")

# Entry points of the write path (inclusive cost), in the order they are shown.
ENTRY = [
    ("frontend.c:op_write", "op_write: FUSE thread, from request to engine submission"),
    ("frontend.c:request_new", "  request_new: the request and its payload copy"),
    ("mirror.c:mirror_write", "  mirror_write"),
    ("mirror.c:io_new", "    io_new: the mirror_io (g_new0)"),
    ("bitmap.c:bitmap_start_write", "    bitmap_start_write: write-intent bitmap"),
    ("mirror.c:fanout_issue", "    fanout_issue: one dmio call to every leg"),
    ("dmio.c:dmio", "      dmio(): build the call and its jobs"),
    ("engine-threads.c:threads_submit", "      threads_submit: hand the jobs to the pool"),
    ("engine-threads.c:threads_worker", "engine threads: pwritev per leg, completion"),
    ("mirror.c:fanout_done", "  fanout_done / io_finish: mirror completion"),
    ("frontend.c:write_done", "  write_done: reply to the kernel"),
    ("fuse_reply_write", "    fuse_reply_write (libfuse)"),
]


def parse_annotate(path):
    rows = []
    with open(path, errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if not m or m.group(2) == "PROGRAM TOTALS":
                continue
            rows.append((int(m.group(1).replace(",", "")), m.group(2), m.group(3) or ""))
    return rows


def total_of(path):
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"^\s*([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", line)
            if m:
                return int(m.group(1).replace(",", ""))
    return 0


def category(fn, obj):
    base = obj.rsplit("/", 1)[-1]
    if "libfuse3" in base:
        return "libfuse3"
    if "libglib" in base:
        return "glib (thread pool, queues, g_malloc)"
    if base.startswith("libc.so") or base.startswith("ld-linux"):
        return "libc (malloc/free, memset/memcpy, locks, syscall stubs)"
    m = re.search(r"(?:^|/)src/(dmio|mirror|fuse|daemon|config)/", fn)
    if m:
        return {"dmio": "ours: libdmio (src/dmio)", "mirror": "ours: mirror (src/mirror)",
                "fuse": "ours: frontend (src/fuse)", "daemon": "ours: daemon (src/daemon)",
                "config": "ours: config (src/config)"}[m.group(1)]
    if "nullfuse" in fn or "nullfuse" in base:
        return "nullfuse.c"
    return "other: " + (base or "?")


def callers(path, func):
    """The callers of FUNC (inclusive cost of the calls) from a --tree=caller listing."""
    block, out = [], []
    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                block = []
                continue
            m = LINE.match(line)
            if not m:
                continue
            block.append((line, m))
            if "*  " in line and m.group(2).endswith(":" + func):
                out = [(int(mm.group(1).replace(",", "")), mm.group(2)) for l, mm in block[:-1]
                       if "<" in l.split("%)", 1)[-1][:4]]
                break
    return out


def cmd_callgrind(self_path, incl_path, callers_path, nreq):
    nreq = float(nreq)
    total = total_of(self_path)
    print("instructions per request (callgrind Ir / %d requests): %.0f" % (nreq, total / nreq))
    by = collections.Counter()
    rows = parse_annotate(self_path)
    for ir, fn, obj in rows:
        by[category(fn, obj)] += ir
    print("\n  by object, self cost:")
    for k, v in by.most_common():
        if v / nreq >= 1:
            print("    %-58s %7.0f  %5.1f %%" % (k, v / nreq, 100.0 * v / total))
    incl = parse_annotate(incl_path)
    shown = False
    for key, label in ENTRY:
        best = None
        for ir, fn, obj in incl:
            name = fn.split(":", 1)[-1] if ":" in fn else fn
            if (":" in key and fn.endswith(key)) or (":" not in key and name == key):
                best = ir if best is None else max(best, ir)
        if best is None:
            continue
        if not shown:
            print("\n  the write path, inclusive cost (callees included):")
            shown = True
        print("    %-58s %7.0f" % (label, best / nreq))
    calls = callers(callers_path, "g_malloc0")
    if calls:
        print("\n  g_malloc0 (calloc + memset) per request, by caller:")
        for ir, fn in sorted(calls, key=lambda c: -c[0]):
            if ir / nreq >= 10:
                print("    %-58s %7.0f" % (re.sub(r" \(\d[\d,]*x\)$", "", fn.split(":", 1)[-1]),
                                          ir / nreq))
    print("\n  top functions, self cost:")
    for ir, fn, obj in sorted(rows, key=lambda r: -r[0])[:15]:
        name = fn.split(":", 1)[-1]
        src = fn.split(":", 1)[0].rsplit("/", 1)[-1] if ":" in fn else ""
        where = obj.rsplit("/", 1)[-1]
        print("    %7.0f  %s (%s%s)" % (ir / nreq, name, src + ", " if src and src != "???" else "",
                                      where))
    return 0


def read_perf_script(path):
    samples, cur = [], None
    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                if cur:
                    samples.append(cur)
                cur = None
                continue
            if not line[0].isspace():
                if cur:
                    samples.append(cur)
                cur = {"comm": line.split()[0], "stack": []}
                continue
            parts = line.split(None, 1)
            if len(parts) < 2 or cur is None:
                continue
            rest, dso = parts[1].strip(), ""
            if rest.endswith(")") and "(" in rest:
                i = rest.rindex("(")
                rest, dso = rest[:i].strip(), rest[i + 1:-1]
            cur["stack"].append((rest.split("+")[0], dso))
    if cur:
        samples.append(cur)
    return samples


def perf_class(stack):
    if not stack:
        return "?"
    names = [n for n, _ in stack]
    if "kernel" not in stack[0][1]:
        return "user " + (stack[0][1].rsplit("/", 1)[-1] or "?")
    if "do_syscall_64" not in names:
        return "kernel: interrupts, scheduling"
    call = names[names.index("do_syscall_64") - 1] if names.index("do_syscall_64") > 0 else "?"
    if any(n in ("fuse_dev_read", "fuse_dev_splice_read") for n in names):
        return "kernel: read /dev/fuse (wait for, take a request)"
    if any(n in ("fuse_dev_write", "fuse_dev_splice_write") for n in names):
        return "kernel: write /dev/fuse (reply, wake the caller)"
    if call in ("do_pwritev", "do_preadv", "ksys_pwrite64", "ksys_pread64"):
        return "kernel: leg I/O (%s)" % call.replace("do_", "").replace("ksys_", "")
    if "futex" in call:
        return "kernel: futex (wake or wait for another thread)"
    if "io_uring" in call:
        return "kernel: io_uring_enter"
    return "kernel: " + call


def cmd_perf(script, hz, nreq, comms):
    hz, nreq, comms = float(hz), float(nreq), comms.split(",")
    by, tot = collections.Counter(), collections.Counter()
    for s in read_perf_script(script):
        c = s["comm"]
        # Thread names are cut to 15 characters: pool-fusemirror is the daemon's engine pool.
        if c not in comms:
            continue
        by[(c, perf_class(s["stack"]))] += 1
        tot[c] += 1
    print("µs of CPU per request (cpu-clock samples at %d Hz / %d requests):" % (hz, nreq))
    for c in comms:
        if not tot[c]:
            continue
        print("  %-16s %6.1f" % (c, tot[c] / hz / nreq * 1e6))
        for (cc, k), v in sorted(by.items(), key=lambda x: -x[1]):
            if cc == c and v / hz / nreq * 1e6 >= 0.3:
                print("      %-56s %6.1f" % (k, v / hz / nreq * 1e6))
    return 0


def main(argv):
    if len(argv) == 6 and argv[1] == "callgrind":
        return cmd_callgrind(argv[2], argv[3], argv[4], argv[5])
    if len(argv) == 6 and argv[1] == "perf":
        return cmd_perf(argv[2], argv[3], argv[4], argv[5])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
