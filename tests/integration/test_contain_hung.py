"""Plugins contained, liveness (issue 16): a call that never returns, with
no deadline, holds only its own task. The worker parks the executor
running it (it is not killed: no deadline was set) and a fresh executor
runs the tasks queued behind it; a legitimately long call still delivers
its result. A worker started with --isolation none that a task kills
(exit(0)) is found by bisection: the ventilator sends the tasks a dead
worker held again in groups, each alone on a worker, until the one that
kills alone is quarantined; every other task runs again and succeeds."""
import collections
import os
import time

import zptest
from zptest import binary, check, read_jsonl, run

CRASH = os.path.join(zptest.FIXTURES, "fx_crash.so")
N = 10000


def _lines(special):
    return [special.get(i, "t%d" % i) for i in range(N)]


def _count(recs, lines, bad):
    """(lost, duplicated, wrong) over the healthy tasks; the records of
    the tasks in bad, by task."""
    by_task = collections.defaultdict(list)
    for rec in recs:
        by_task[rec["task"]].append(rec)
    lost = dup = wrong = 0
    for i, line in enumerate(lines):
        if i in bad:
            continue
        got = by_task.get(i, [])
        if not got:
            lost += 1
        elif len(got) > 1:
            dup += 1
        elif got[0]["status"] != "ok" or got[0]["output"] != line:
            wrong += 1
    return lost, dup, wrong, {i: by_task.get(i, []) for i in bad}


def test_hung_call_without_deadline_holds_only_its_task():
    # Two calls that never return (one for each worker, then again on
    # their retries) and two that take 1 s where the usual is microseconds.
    special = {100: "hang", 5000: "hang", 2000: "nap", 7000: "nap"}
    lines = _lines(special)
    d = zptest.tmpdir()
    inp = os.path.join(d, "in.txt")
    with open(inp, "w") as f:
        f.write("".join(l + "\n" for l in lines))
    out = os.path.join(d, "out.jsonl")
    env = dict(os.environ, ZPIPE_LEASE_MS="4000", ZPIPE_STALL_FLOOR_MS="300")
    t0 = time.monotonic()
    r = run([binary("zpipe"), "run", "--plugin", CRASH, "--input", inp,
             "--output", out, "--workers", "2", "--no-progress",
             "--log-level", "warn"], capture_output=True, timeout=120, env=env)
    took = time.monotonic() - t0
    recs = read_jsonl(out) if os.path.exists(out) else []
    lost, dup, wrong, bad = _count(recs, lines, {100, 5000})
    causes = collections.Counter(
        rec.get("cause") for rec in recs if rec["status"] != "ok")
    print("    %.1f s, exit %d: lost %d, duplicated %d, wrong %d; failures "
          "by cause %s" % (took, r.returncode, lost, dup, wrong, dict(causes)))
    check((lost, dup, wrong) == (0, 0, 0), "healthy tasks hurt: lost %d, "
          "duplicated %d, wrong %d; %s" % (lost, dup, wrong,
                                           r.stderr.decode()[-3000:]))
    for i, got in bad.items():
        check(len(got) == 1 and got[0]["status"] == "failed",
              "hung task %d: %r" % (i, got))
    check(r.returncode == 1, "exit %d" % r.returncode)
    check(b"executor pid" in r.stderr and b"keeps it" in r.stderr,
          "no executor parked: %s" % r.stderr.decode()[-2000:])


def test_a_parked_call_with_a_big_result_delivers_it():
    # A call parked as stalled (1 s against a 300 ms floor) that then
    # returns 2 MiB: its result is taken whole, not mistaken for a death.
    n = 2000
    special = {300: "napbig", 1500: "napbig"}
    lines = [special.get(i, "t%d" % i) for i in range(n)]
    d = zptest.tmpdir()
    inp = os.path.join(d, "in.txt")
    with open(inp, "w") as f:
        f.write("".join(l + "\n" for l in lines))
    out = os.path.join(d, "out.jsonl")
    env = dict(os.environ, ZPIPE_STALL_FLOOR_MS="300")
    r = run([binary("zpipe"), "run", "--plugin", CRASH, "--input", inp,
             "--output", out, "--workers", "2", "--no-progress",
             "--log-level", "info"], capture_output=True, timeout=60, env=env)
    recs = read_jsonl(out) if os.path.exists(out) else []
    by_task = collections.defaultdict(list)
    for rec in recs:
        by_task[rec["task"]].append(rec)
    bad = [i for i in range(n) if len(by_task[i]) != 1 or
           by_task[i][0]["status"] != "ok" or by_task[i][0]["attempts"] != 1 or
           by_task[i][0]["output"] != ("x" * (2 << 20) if i in special
                                       else lines[i])]
    print("    exit %d; tasks not ok once with their output: %d; parked: %s"
          % (r.returncode, len(bad), b"keeps it" in r.stderr))
    check(b"keeps it" in r.stderr, "no executor parked: %s"
          % r.stderr.decode()[-2000:])
    check(r.returncode == 0 and not bad, "tasks %r: %s"
          % (bad[:5], r.stderr.decode()[-2000:]))


def _wait_done(vent, workers, start_worker, timeout):
    """Restarts a worker that exited at once (as a supervisor would, with
    no backoff) until the ventilator exits. Returns (exit code, restarts)."""
    restarts = 0
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if vent.poll() is not None:
            return vent.returncode, restarts
        for k, p in enumerate(workers):
            if p.poll() is not None:
                workers[k] = start_worker(k)
                restarts += 1
        time.sleep(0.02)
    return None, restarts


def test_in_process_exit_is_bisected_and_quarantined():
    special = {1234: "exit0", 4321: "exit0", 8765: "exit0"}
    lines = _lines(special)
    c = zptest.Cluster()
    inp = os.path.join(c.dir, "in.txt")
    with open(inp, "w") as f:
        f.write("".join(l + "\n" for l in lines))

    def start_worker(k):
        return c.worker(plugins=(CRASH,), name="w%d" % k,
                        args=("--isolation", "none", "--log-level", "warn"))

    workers = [start_worker(k) for k in range(2)]
    t0 = time.monotonic()
    vent = c.ventilator("fx_crash", inp, args=("--log-level", "info"))
    rc, restarts = _wait_done(vent, workers, start_worker, 45)
    took = time.monotonic() - t0
    for p in workers:
        zptest.stop(p)
    zptest.stop(c.sink)
    recs = read_jsonl(c.output) if os.path.exists(c.output) else []
    lost, dup, wrong, bad = _count(recs, lines, set(special))
    causes = collections.Counter(
        rec.get("cause") for rec in recs if rec["status"] != "ok")
    print("    %.1f s, ventilator exit %s, %d worker restarts: lost %d, "
          "duplicated %d, wrong %d; failures by cause %s"
          % (took, rc, restarts, lost, dup, wrong, dict(causes)))
    check(rc is not None, "the job did not finish in 45 s")
    check((lost, dup, wrong) == (0, 0, 0), "healthy tasks hurt: lost %d, "
          "duplicated %d, wrong %d" % (lost, dup, wrong))
    for i, got in bad.items():
        check(len(got) == 1 and got[0]["status"] == "failed"
              and got[0]["cause"] == "worker_lost"
              and "alone" in got[0].get("error", ""),
              "exit(0) task %d: %r" % (i, got))


if __name__ == "__main__":
    zptest.main([test_hung_call_without_deadline_holds_only_its_task,
                 test_a_parked_call_with_a_big_result_delivers_it,
                 test_in_process_exit_is_bisected_and_quarantined])
