#!/usr/bin/python3
"""The fixed cost of starting zpipe processes, as a user's stopwatch sees it.

For each build directory given (e.g. one before a change and one after),
alternating between them in every round:
  - exec of each binary with --version, from subprocess.run to its exit
    (median of --runs), and the shared libraries it loads (ldd);
  - `zpipe run --plugin echo --workers 2` on a one-line input file
    (median of --run-runs).
A libzmq-only program (`cc -lzmq`, prints zmq_version) gives the floor.

  /usr/bin/python3 bench/start_cost.py BUILD_BEFORE BUILD_AFTER [--write]

--write puts the table in its own section of bench/results.md (replacing
that section, keeping the rest of the file).
"""
import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import source_state  # noqa: E402  (the commit in the section header)

HERE = os.path.dirname(os.path.abspath(__file__))
HEADING = "## Process start: exec cost and the libraries loaded"
BINARIES = ["zpipe", "zpipe-ventilator", "zpipe-sink", "zpipe-worker"]
FLOOR_C = r"""#include <stdio.h>
#include <zmq.h>
int main(void) { int a, b, c; zmq_version(&a, &b, &c);
                 printf("%d.%d.%d\n", a, b, c); return 0; }
"""


def timed(argv, stdin=None):
    """Wall seconds of one run of argv, output discarded."""
    t0 = time.perf_counter()
    subprocess.run(argv, stdin=stdin, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def n_libs(path):
    """Lines of ldd output: the shared objects the loader maps at exec."""
    out = subprocess.run(["ldd", path], capture_output=True, text=True,
                         check=True).stdout
    return len(out.strip().splitlines())


def floor_binary(tmp):
    """A libzmq-only program, or None without a C compiler."""
    src = os.path.join(tmp, "floor.c")
    exe = os.path.join(tmp, "zmq-only")
    with open(src, "w") as f:
        f.write(FLOOR_C)
    rc = subprocess.run(["cc", "-O2", src, "-o", exe, "-lzmq"]).returncode
    return exe if rc == 0 else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("builds", nargs="+", help="build directories (bin/ in each)")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--run-runs", type=int, default=15)
    ap.add_argument("--labels", help="comma-separated, one per build")
    ap.add_argument("--write", action="store_true",
                    help="write the section of bench/results.md")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    tmp = tempfile.mkdtemp(prefix="zp-start-")
    line = os.path.join(tmp, "one-line")
    with open(line, "w") as f:
        f.write("hello\n")
    floor = floor_binary(tmp)
    execs = {}  # (build, binary) -> [seconds]
    runs = {b: [] for b in args.builds}
    for i in range(max(args.runs, args.run_runs)):
        for b in args.builds:
            if i < args.runs:
                for name in BINARIES:
                    exe = os.path.join(b, "bin", name)
                    execs.setdefault((b, name), []).append(
                        timed([exe, "--version"]))
                if floor:
                    execs.setdefault(("floor", "zmq-only"), []).append(
                        timed([floor]))
            if i < args.run_runs:
                with open(line) as stdin:
                    runs[b].append(timed([os.path.join(b, "bin", "zpipe"),
                                          "run", "--plugin", "echo",
                                          "--workers", "2"], stdin=stdin))
    print(f"exec with --version, median of {args.runs} (ms), and ldd lines")
    for (b, name), t in execs.items():
        exe = floor if b == "floor" else os.path.join(b, "bin", name)
        print(f"  {b:40} {name:18} {1e3 * statistics.median(t):6.2f} ms"
              f"  {n_libs(exe):3} libs")
    print(f"zpipe run --plugin echo --workers 2 < one line,"
          f" median of {args.run_runs}")
    for b, t in runs.items():
        print(f"  {b:40} {1e3 * statistics.median(t):7.1f} ms"
              f"  (min {1e3 * min(t):.1f}, max {1e3 * max(t):.1f})")
    if args.write:
        labels = (args.labels.split(",") if args.labels else args.builds)
        write_section(args, dict(zip(args.builds, labels)), execs, runs,
                      floor, load0, os.getloadavg()[0])
    return 0


def write_section(args, label, execs, runs, floor, load0, load1):
    """The table as its own section of bench/results.md."""
    ms = lambda t: "%.2f" % (1e3 * statistics.median(t))
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [HEADING, "",
             "Measured %s on %s, %d CPUs, %s; %s; `/usr/bin/python3 "
             "bench/start_cost.py`; builds alternating in every round. exec = "
             "`BINARY --version` from subprocess.run to exit, median of %d; "
             "libs = lines of `ldd` (the objects mapped at exec); one line = "
             "`zpipe run --plugin echo --workers 2` on a one-line file, median "
             "of %d. 1-minute load average %.1f at the start, %.1f at the end."
             % (when, platform.node(), os.cpu_count(), platform.platform(),
                source_state(), args.runs, args.run_runs, load0, load1), "",
             "| build | binary | exec ms | libs |", "|---|---|---|---|"]
    for (b, name), t in execs.items():
        exe = floor if b == "floor" else os.path.join(b, "bin", name)
        lines.append("| %s | %s | %s | %d |" % (
            "libzmq only (`cc -lzmq`)" if b == "floor" else label[b], name,
            ms(t), n_libs(exe)))
    lines += ["", "| build | one line, `zpipe run` ms |", "|---|---|"]
    for b, t in runs.items():
        lines.append("| %s | %.1f |" % (label[b], 1e3 * statistics.median(t)))
    path = os.path.join(HERE, "results.md")
    text = open(path).read()
    start = text.find(HEADING)
    section = "\n".join(lines) + "\n"
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + (text[end:] if end >= 0 else "")
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
