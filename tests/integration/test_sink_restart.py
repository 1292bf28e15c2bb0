"""A sink SIGKILLed mid-job and restarted with the same flags, in every
configuration that has somewhere to keep a journal: no record it
acknowledged is lost, the job completes, every task has exactly one
record. Counted against the input: lost, duplicated, unexpected. And what
the sink says at start-up about what a crash or a power loss may cost."""
import collections
import json
import os
import random
import signal
import subprocess
import time

import zptest
from zptest import Cluster, binary, check, run, start


def _lines(path):
    """JSON records of path (a torn line counts as unexpected)."""
    recs, torn = [], 0
    with open(path, "rb") as f:
        for line in f:
            try:
                recs.append(json.loads(line))
            except ValueError:
                torn += 1
    return recs, torn


def _count(recs, torn, n, expect):
    count = collections.Counter(r["task"] for r in recs)
    lost = sum(1 for i in range(n) if count[i] == 0)
    dup = sum(k - 1 for k in count.values() if k > 1)
    unexpected = torn + sum(1 for r in recs if not (0 <= r["task"] < n)
                            or r["status"] != "ok" or r["output"] != expect)
    return lost, dup, unexpected


def _report(name, path, n, expect, extra=""):
    recs, torn = _lines(path)
    lost, dup, unexp = _count(recs, torn, n, expect)
    print("    %s: %d records, lost=%d duplicated=%d unexpected=%d%s"
          % (name, len(recs), lost, dup, unexp, extra), flush=True)
    check(lost == 0 and dup == 0 and unexp == 0, "%s: records wrong" % name)


def _spin_input(d, n, us):
    path = os.path.join(d, "in.txt")
    with open(path, "w") as f:
        f.write("%d\n" % us * n)
    return path


def _sink_children(p):
    return subprocess.run(["pgrep", "-P", str(p.pid), "-f", "zpipe-sink"],
                          capture_output=True, text=True).stdout.split()


def _spool_sink_killed_mid_job(output):
    # The case: --spool, no --journal. Before: 8,778 of 20,000
    # records lost and the job never completed.
    n = 20000
    spool = zptest.tmpdir()
    c = Cluster(output_name="out.jsonl" if output else None,
                sink_args=("--spool", spool))
    cmd = c.sink.args
    workers = [c.worker(["spin"], name="w%d" % i) for i in range(2)]
    v = c.ventilator("spin", _spin_input(c.dir, n, 100), args=["--job", "spooled"])
    time.sleep(0.5)  # about a third of the job
    c.sink.send_signal(signal.SIGKILL)
    c.sink.wait()
    time.sleep(0.2)
    c.sink = start(cmd, stderr=c._log("sink2"))
    check(v.wait(120) == 0, "ventilator failed: the job did not complete")
    zptest.stop(c.sink)
    log = open(os.path.join(c.dir, "sink2.log")).read()
    check("resumed" in log, "the restarted sink resumed nothing: %r" % log[-600:])
    resumed = log.split("resumed ")[1].split(" ")[0]
    _report("spool", os.path.join(spool, "spooled.jsonl"), n, "100",
            " (the restarted sink resumed %s)" % resumed)
    if output:
        _report("output", c.output, n, "100")
    else:
        check("written once, to its job's spool" in log,
              "a sink without --output did not say its spools are the output")
    check(not os.path.exists(os.path.join(spool, "zpipe-sink.journal")),
          "the sink's own journal was kept after a clean stop with every job done")
    for w in workers:
        zptest.stop(w)


def test_spool_sink_without_journal_killed_mid_job():
    # No --output: the spool is the output, each record written once.
    _spool_sink_killed_mid_job(output=False)


def test_spool_and_output_sink_without_journal_killed_mid_job():
    _spool_sink_killed_mid_job(output=True)


def test_spool_checksum_holds_across_three_kills():
    """The spool's checksum is summed 64 KiB at a time, not a record at a
    time; every barrier journals it with the spool's length. A sink with
    --spool (its own journal) is SIGKILLed three times while 150,000
    records of 20 µs tasks stream in (megabytes between kills, many
    barriers): each restart checks the spool against the journaled
    checksum and would refuse a damaged one ("damaged", and no start).
    Every restart must start and resume, and the spool must hold every
    task once, as run."""
    n = 150000
    spool = zptest.tmpdir()
    c = Cluster(sink_args=("--spool", spool))
    cmd = c.sink.args
    workers = [c.worker(["spin"], name="w%d" % i) for i in range(2)]
    v = c.ventilator("spin", _spin_input(c.dir, n, 20), args=["--job", "crc"])
    for k in range(3):
        time.sleep(0.4)
        c.sink.send_signal(signal.SIGKILL)
        c.sink.wait()
        c.sink = start(cmd, stderr=c._log("sink%d" % (k + 2)))
    t0 = time.monotonic()
    while v.poll() is None and time.monotonic() - t0 < 180:
        check(c.sink.poll() is None, "the restarted sink exited (%s): %r" % (
            c.sink.returncode,
            open(os.path.join(c.dir, "sink4.log")).read()[-600:]))
        time.sleep(0.05)
    check(v.wait(1) == 0, "ventilator failed: the job did not complete")
    zptest.stop(c.sink)
    logs = [open(os.path.join(c.dir, "sink%d.log" % (k + 2))).read()
            for k in range(3)]
    for k, log in enumerate(logs):
        check("damaged" not in log, "restart %d found its spool damaged: %r"
              % (k + 1, log[-600:]))
    resumed = [l.split("resumed ")[1].split(" ")[0] if "resumed " in l
               else "nothing" for l in logs]
    _report("spool", os.path.join(spool, "crc.jsonl"), n, "20",
            " (the restarts resumed %s)" % ", ".join(resumed))
    for w in workers:
        zptest.stop(w)


def test_run_without_journal_sink_killed():
    # zpipe run's supervisor restarts the sink, which resumes from its own
    # journal. Before: exit 3, about half the records missing.
    n = 20000
    d = zptest.tmpdir()
    out = os.path.join(d, "out.jsonl")
    p = start([binary("zpipe"), "run", "--plugin", "spin", "--workers", "2",
               "--input", _spin_input(d, n, 100), "--output", out,
               "--no-progress"], stderr=subprocess.PIPE)
    time.sleep(0.7)
    pids = _sink_children(p)
    check(pids, "no sink child")
    os.kill(int(pids[0]), signal.SIGKILL)
    _, err = p.communicate(timeout=120)
    check(p.returncode == 0, "run exit %d: %s" % (p.returncode, err.decode()[-800:]))
    check(b"sink restarts 1" in err, "the sink was not restarted: %r" % err[-400:])
    _report("zpipe run, sink killed once", out, n, "100")


def _big_line(i):
    """A line of 16 KiB or more, its id its second word: the sink writes
    it from the frame it came in, by reference, and journals its offset."""
    return b"big %06d " % i + bytes([97 + i % 26]) * (16384 + (i * 7919) % 45000)


def test_run_big_lines_sink_killed_mid_write():
    # Records written by reference (--format lines, 16 KiB and more) are
    # written as the output's buffer fills and committed at the barrier:
    # the sink is SIGKILLed twice while they are being written, so some
    # were written and not journaled. Each restart cuts the output back to
    # its journal's last record and the ventilator sends the rest again:
    # every line exactly once, whole, nothing else in the file.
    n = 4000
    d = zptest.tmpdir()
    inp, out = os.path.join(d, "in.txt"), os.path.join(d, "out.txt")
    lines = {i: _big_line(i) for i in range(n)}
    with open(inp, "wb") as f:
        f.write(b"".join(lines[i] + b"\n" for i in range(n)))
    p = start([binary("zpipe"), "run", "--plugin", "echo", "--workers", "2",
               "--format", "lines", "--input", inp, "--output", out,
               "--no-progress"], stderr=subprocess.PIPE)
    killed = 0
    for at in (20 << 20, 70 << 20):
        while p.poll() is None and (not os.path.exists(out) or
                                    os.path.getsize(out) < at):
            time.sleep(0.002)
        pids = _sink_children(p)
        if p.poll() is not None or not pids:
            break
        os.kill(int(pids[0]), signal.SIGKILL)
        killed += 1
    _, err = p.communicate(timeout=120)
    check(p.returncode == 0, "run exit %d: %s" % (p.returncode, err.decode()[-800:]))
    check(killed == 2, "the run ended after %d kills" % killed)
    check(b"sink restarts 2" in err, "the sink was not restarted twice: %r"
          % err[-400:])
    with open(out, "rb") as f:
        data = f.read()
    count, wrong = collections.Counter(), 0
    for line in data.split(b"\n")[:-1]:
        try:
            t = int(line.split(b" ", 2)[1])
        except (IndexError, ValueError):
            wrong += 1
            continue
        count[t] += 1
        wrong += t not in lines or line != lines[t]
    lost = sum(1 for i in range(n) if not count[i])
    dup = sum(k - 1 for k in count.values() if k > 1)
    print("    big lines by reference, sink killed twice mid-write: %d records "
          "(%d MB), lost=%d duplicated=%d wrong=%d NUL=%d, ends with a "
          "newline: %s" % (sum(count.values()), len(data) >> 20, lost, dup,
                           wrong, data.count(b"\0"), data.endswith(b"\n")))
    check((lost, dup, wrong, data.count(b"\0")) == (0, 0, 0, 0) and
          data.endswith(b"\n"), "records wrong")


def test_run_with_journal_sink_killed_three_times():
    # The stall: 3 kills over 100,000 tasks at the default window
    # left the job running after 120 s with 39,431 records missing, as
    # the duplicates the restarted sink dropped were never acknowledged
    # and filled the ventilator's hold limit. With these seeds, main
    # before the fix stalled twice in two runs (62,254 and 65,375 missing
    # after 120 s); seeds 1 and 2 took 17 and 29 s there, 6 s now.
    # The same 100,000 under the sanitizers: fewer tasks ended the job
    # before the third kill there.
    n = 100000
    for seed in (3, 4):
        _run_killing_the_sink(n, seed, 3)


def test_run_with_a_compacted_journal_sink_killed_three_times():
    # The same with the journal compacted every 64 KiB (a live job's
    # snapshot: its counters and runs of committed tasks), in task order
    # and not: each restart resumes from a snapshot plus what followed it.
    for seed, ordered in ((5, False), (6, True)):
        err = _run_killing_the_sink(
            200000, seed, 3, env={"ZPIPE_SINK_JOURNAL_COMPACT": "65536"},
            extra=["--log-level", "info"] + (["--ordered"] if ordered else []))
        n = err.count(b"compacted from")
        print("    seed %d%s: %d compactions" %
              (seed, " --ordered" if ordered else "", n))
        check(n >= 3, "compactions: %d" % n)


def _run_killing_the_sink(n, seed, kills, env=None, extra=()):
    rnd = random.Random(seed)
    d = zptest.tmpdir()
    out = os.path.join(d, "out.jsonl")
    t0 = time.time()
    p = start([binary("zpipe"), "run", "--plugin", "spin", "--workers", "3",
               "--input", _spin_input(d, n, 60), "--output", out,
               "--journal", os.path.join(d, "journal"), "--no-progress"] +
              list(extra), stderr=subprocess.PIPE, env=env)
    done = 0
    for _ in range(kills):
        time.sleep(rnd.uniform(0.5, 1.5))
        pids = _sink_children(p)
        if not pids or p.poll() is not None:
            break
        os.kill(int(pids[0]), signal.SIGKILL)
        done += 1
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        recs, _ = _lines(out)
        raise AssertionError("seed %d: still running after 60 s: %d of %d "
                             "records" % (seed, len(set(r["task"] for r in recs)), n))
    took = time.time() - t0
    check(p.returncode == 0, "run exit %d: %s" % (p.returncode, err.decode()[-800:]))
    check(done == kills, "the job ended after %d kills" % done)
    _report("zpipe run --journal, sink killed %d times (seed %d)" % (kills, seed),
            out, n, "60", " in %.1f s" % took)
    return err


def _startup(args, d, stop_after=0.5):
    """What a sink started with args says about its promise."""
    log = os.path.join(d, "startup-%d.log" % len(os.listdir(d)))
    p = start([binary("zpipe-sink"), "--results", "ipc://%s/r" % d,
               "--control", "ipc://%s/c" % d, "--publish", "none"] + args,
              stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    time.sleep(stop_after)
    check(zptest.stop(p) == 0, "sink %s failed" % args)
    return open(log).read()


def test_startup_says_what_a_crash_may_cost():
    d = zptest.tmpdir()
    out = os.path.join(d, "o.jsonl")
    said = _startup(["--output", out], d)
    check("journal %s.journal" % out in said and "not synced" in said
          and "a power loss may lose" in said, said)
    check(not os.path.exists(out + ".journal"), "kept with no job unfinished")
    said = _startup(["--output", out, "--journal", os.path.join(d, "j")], d)
    check("synced before every acknowledgement" in said, said)
    said = _startup(["--output", "-"], d)
    check("no journal (the output is stdout" in said and "cannot complete" in said, said)
    said = _startup(["--output", "/dev/null"], d)
    check("no journal (the output is /dev/null" in said, said)
    spool = zptest.tmpdir()
    said = _startup(["--output", "-", "--spool", spool], d)
    check("zpipe-sink.journal" in said and "stdout cannot be cut back" in said, said)
    said = _startup(["--spool", spool], d)
    check("zpipe-sink.journal" in said and "output none" in said
          and "written once, to its job's spool" in said, said)
    print("    file: not synced, a power loss may cost the tail; --journal: "
          "synced; stdout, /dev/null: no journal; stdout with --spool: the "
          "spool's journal, stdout may repeat; --spool alone: the spool's "
          "journal, each record written once")


def test_unfinished_job_keeps_the_sinks_journal():
    # A clean stop with a job unfinished keeps the sink's own journal; the
    # next start resumes it (a fresh start needs it removed).
    import zmq
    import zpipe_pb2 as pb
    c = Cluster()
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.connect(c.control)
    m = pb.Message()
    m.job_open.job_id = "left"
    m.job_open.plugin = "echo"
    s.send(m.SerializeToString())
    check(s.poll(5000), "no Ack")
    s.close(0)
    ctx.term()
    check(zptest.stop(c.sink) == 0, "sink failed")
    check(os.path.exists(c.output + ".journal"), "journal removed with a job open")
    c.sink = start(c.sink.args, stderr=c._log("sink2"))
    time.sleep(0.5)
    zptest.stop(c.sink)
    log = open(os.path.join(c.dir, "sink2.log")).read()
    check("resumed 0 committed records of 1 jobs" in log, log[-600:])
    check("kept: job left is not done" in log, log[-600:])


if __name__ == "__main__":
    zptest.main([
        test_spool_sink_without_journal_killed_mid_job,
        test_spool_and_output_sink_without_journal_killed_mid_job,
        test_spool_checksum_holds_across_three_kills,
        test_run_without_journal_sink_killed,
        test_run_big_lines_sink_killed_mid_write,
        test_run_with_journal_sink_killed_three_times,
        test_run_with_a_compacted_journal_sink_killed_three_times,
        test_startup_says_what_a_crash_may_cost,
        test_unfinished_job_keeps_the_sinks_journal,
    ])
