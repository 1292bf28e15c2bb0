"""The benchmark's reference pipelines still work: raw_pipeline moves every
line through over ipc and tcp and, with --spin, burns the CPU it is told;
plain_pipeline (the big-payload yardstick) moves every line, small or
1 MiB, byte for byte; and bench/run.py's quick sections (formats, payloads,
service) run to the end and write their tables, to a file of the test's
(--results-file: bench/results.md and README.md are left alone). (The
benchmark itself, full size, is run with scripts/bench.sh, not in CI.)"""
import os
import re
import subprocess

import zptest
from zptest import check, run

RAW = os.path.join(zptest.BUILD, "bench", "raw_pipeline")
PLAIN = os.path.join(zptest.BUILD, "bench", "plain_pipeline")


def _run(lines, *args):
    d = zptest.tmpdir()
    inp, out = os.path.join(d, "in"), os.path.join(d, "out")
    with open(inp, "w") as f:
        f.write("".join("%s\n" % l for l in lines))
    r = run([RAW, "run", "--workers", "2", "--input", inp, "--output", out] + list(args),
            capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, r.stderr)
    return sorted(open(out).read().splitlines()), r


def test_raw_pipeline_moves_every_line():
    for transport in ("ipc", "tcp"):
        got, r = _run([str(i) for i in range(5000)], "--transport", transport)
        check(got == sorted(str(i) for i in range(5000)), transport)
        check(re.search(r"seconds=[\d.]+", r.stdout), r.stdout)
        check(len(re.findall(r"rss (sink|ventilator|worker) \d+", r.stderr)) == 4, r.stderr)


def test_raw_pipeline_latency_mode_reports_percentiles():
    got, r = _run([str(i) for i in range(200)], "--latency")
    check(len(got) == 200, "lines")
    check(re.search(r"p50_us=\d+ p99_us=\d+", r.stdout), r.stdout)


def test_plain_pipeline_moves_every_line_whole():
    big = [("%d" % i) * (1048576 // len("%d" % i)) for i in range(1, 9)]
    for transport in ("ipc", "tcp"):
        for lines in ([str(i) for i in range(5000)], big):
            d = zptest.tmpdir()
            inp, out = os.path.join(d, "in"), os.path.join(d, "out")
            with open(inp, "w") as f:
                f.write("".join("%s\n" % l for l in lines))
            r = run([PLAIN, "run", "--workers", "2", "--input", inp,
                     "--output", out, "--transport", transport],
                    capture_output=True, text=True, timeout=60)
            check(r.returncode == 0, r.stderr)
            got = sorted(open(out).read().splitlines())
            check(got == sorted(lines), "%s: %d lines back for %d, or changed"
                  % (transport, len(got), len(lines)))
            check(re.search(r"seconds=[\d.]+", r.stdout), r.stdout)


def test_bench_quick_sections_run_and_write_their_tables():
    """A bench/run.py change that breaks a section is found here, not at
    the next full run: a mend once deleted the settle() that every timed
    run calls, and --service died at its first run."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = os.path.join(zptest.tmpdir(), "results.md")
    readme = open(os.path.join(root, "README.md"), "rb").read()
    results = open(os.path.join(root, "bench", "results.md"), "rb").read()
    for section, heading in (("--formats", "## Output formats"),
                             ("--payloads", "## Big payloads"),
                             ("--service", "## Service path against zpipe run")):
        r = run(["/usr/bin/python3", os.path.join(root, "bench", "run.py"), "--quick",
                 section, "--build", zptest.BUILD, "--results-file", out],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        text = r.stdout.decode(errors="replace")
        check(r.returncode == 0, "bench/run.py --quick %s: exit %d\n%s"
              % (section, r.returncode, text[-1500:]))
        body = open(out).read()
        check(heading in body, "%s: no %r section in %s" % (section, heading, out))
        part = body[body.index(heading):].split("\n## ")[0]
        rows = [l for l in part.splitlines() if l.startswith("| ") and "---" not in l]
        check(len(rows) >= 3 and not any("failed" in l for l in rows),
              "%s: %r" % (section, rows))
    check(open(os.path.join(root, "README.md"), "rb").read() == readme,
          "a --results-file run rewrote README.md")
    check(open(os.path.join(root, "bench", "results.md"), "rb").read() == results,
          "a --results-file run rewrote bench/results.md")
    print("    --quick --formats, --payloads and --service wrote their tables")


if __name__ == "__main__":
    zptest.main([test_raw_pipeline_moves_every_line,
                 test_raw_pipeline_latency_mode_reports_percentiles,
                 test_plain_pipeline_moves_every_line_whole,
                 test_bench_quick_sections_run_and_write_their_tables])
