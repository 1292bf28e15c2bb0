"""Plugins contained (issue 16): a plugin that writes past the end of its
input, or whose thread appends output after process returned, fails or
loses only its own task; every other task has exactly one record with
its own output. `zpipe plugin check` reports exit(0) inside a call."""
import collections
import os
import time

import zpmetrics
import zptest
from zptest import binary, check, read_jsonl, run

ROGUE = os.path.join(zptest.FIXTURES, "fx_rogue.so")
N = 10000


def _run(lines, *args, timeout=120):
    d = zptest.tmpdir()
    inp = os.path.join(d, "in.txt")
    with open(inp, "w") as f:
        f.write("".join("%s\n" % l for l in lines))
    out = os.path.join(d, "out.jsonl")
    r = run([binary("zpipe"), "run", "--plugin", ROGUE, "--input", inp,
             "--output", out, "--workers", "2"] + list(args),
            capture_output=True, timeout=timeout)
    return r, read_jsonl(out)


def _lines(word, at, n=N):
    return [word if i in at else "t%d" % i for i in range(n)]


def _count(lines, recs, at):
    """lost / duplicated / unexpected / wrong among the tasks not at
    fault; the faulty tasks' records."""
    n = len(lines)
    by_task = collections.Counter(rec["task"] for rec in recs)
    lost = sum(1 for i in range(n) if by_task[i] == 0)
    dup = sum(1 for i in range(n) if by_task[i] > 1)
    unexpected = sum(1 for t in by_task if not 0 <= t < n)
    wrong = sum(1 for rec in recs if rec["task"] not in at and
                0 <= rec["task"] < n and
                (rec["status"] != "ok" or rec["output"] != lines[rec["task"]]))
    faulty = {rec["task"]: rec for rec in recs if rec["task"] in at}
    print("    lost %d, duplicated %d, unexpected %d, wrong %d" %
          (lost, dup, unexpected, wrong))
    check((lost, dup, unexpected, wrong) == (0, 0, 0, 0),
          "lost %d, duplicated %d, unexpected %d, wrong %d" %
          (lost, dup, unexpected, wrong))
    return faulty


def test_write_past_input_fails_only_its_task():
    at = {17, 2500, 5003, 7777, 9998}
    lines = _lines("scribble", at)
    r, recs = _run(lines, "--log-level", "error")
    faulty = _count(lines, recs, at)
    for i in at:
        rec = faulty.get(i)
        check(rec and rec["status"] == "failed" and rec["cause"] == "SIGSEGV"
              and "read-only input" in rec["error"],
              "scribbler %d: %r" % (i, rec))
    check(r.returncode == 1, "exit %d: %s" % (r.returncode, r.stderr.decode()))


def test_append_after_return_is_refused_and_counted():
    at = {10, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000}
    lines = _lines("late", at)
    r, recs = _run(lines, "--log-level", "warn")
    faulty = _count(lines, recs, at)
    for i in at:
        rec = faulty.get(i)
        check(rec and rec["status"] == "ok" and rec["output"] == "late",
              "late appender %d: %r" % (i, rec))
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr.decode()))
    err = r.stderr.decode()
    check("outside its process call" in err,
          "no log line for the refused appends: %s" % err[-2000:])


def test_refused_appends_are_a_worker_metric():
    c = zptest.Cluster()
    c.worker([ROGUE], args=["--metrics", "127.0.0.1:0"], name="w1")
    url = zpmetrics.metrics_url(c.logs[-1])
    lines = _lines("late", {5}, 2000)
    path = os.path.join(c.dir, "in.txt")
    with open(path, "w") as f:
        f.write("".join("%s\n" % l for l in lines))
    v = c.ventilator("fx_rogue", path)
    check(v.wait(60) == 0, "ventilator failed")
    _count(lines, read_jsonl(c.output), {5})
    refused = 0
    for _ in range(40):  # rendered about every 250 ms
        _, samples = zpmetrics.parse(zpmetrics.fetch(url))
        refused = zpmetrics.value(samples,
                                  "zpipe_plugin_refused_appends_total")
        if refused:
            break
        time.sleep(0.1)
    print("    zpipe_plugin_refused_appends_total %d" % refused)
    check(refused > 0, "no refused appends counted")


def test_check_reports_exit_in_a_call():
    r = run([binary("zpipe"), "plugin", "check", ROGUE, "-i", "a", "-i",
             "exit", "-i", "b"], capture_output=True, timeout=60)
    out = r.stdout.decode()
    check(r.returncode == 1, "exit %d: %s" % (r.returncode, out))
    check("exited with status 0 on input #2" in out, out)
    check("input #3" in out and out.count("status     ZPIPE_OK") == 2, out)
    check("1 crashed, exited or timed out" in out, out)


def test_check_reports_a_write_to_the_input():
    r = run([binary("zpipe"), "plugin", "check", ROGUE, "-i", "a", "-i",
             "scribble", "-i", "b"], capture_output=True, timeout=60)
    out = r.stdout.decode()
    check(r.returncode == 1, "exit %d: %s" % (r.returncode, out))
    check("crashed with SIGSEGV on input #2" in out, out)
    check(out.count("status     ZPIPE_OK") == 2, out)


if __name__ == "__main__":
    zptest.main([
        test_write_past_input_fails_only_its_task,
        test_append_after_return_is_refused_and_counted,
        test_refused_appends_are_a_worker_metric,
        test_check_reports_exit_in_a_call,
        test_check_reports_a_write_to_the_input,
    ])
