"""The benchmark's reference pipelines still work: raw_pipeline moves every
line through over ipc and tcp and, with --spin, burns the CPU it is told;
plain_pipeline (the big-payload yardstick) moves every line, small or
1 MiB, byte for byte. (The benchmark itself is run with scripts/bench.sh,
not in CI.)"""
import os
import re

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


if __name__ == "__main__":
    zptest.main([test_raw_pipeline_moves_every_line,
                 test_raw_pipeline_latency_mode_reports_percentiles,
                 test_plain_pipeline_moves_every_line_whole])
