"""Reduced jobs survive a crash of the sink: zpipe run --reduce with the
sink SIGKILLed 3 times writes the same one reduced record as a run without
kills (the folded results are kept in fold logs beside the journal and
folded again by the restarted sink), with the journal compacted or not;
and a zpipe-sink --reduce --journal killed and restarted by hand."""
import json
import os
import random
import signal
import subprocess
import time

import zptest
from zptest import binary, check, read_jsonl, run, start

from test_reduce import _text


def _sink_children(p):
    return subprocess.run(["pgrep", "-P", str(p.pid), "-f", "zpipe-sink"],
                          capture_output=True, text=True).stdout.split()


def _reduced(out):
    recs = read_jsonl(out)
    check(len(recs) == 1 and recs[0].get("reduced") is True,
          "%d records: %r" % (len(recs), [dict(x, output="...") for x in recs[:4]]))
    return recs[0]


def _run(text, out, args=(), env=None, kills=0, seed=0):
    """zpipe run --reduce over text, the sink killed kills times at random
    moments; its stderr and the kills done."""
    rnd = random.Random(seed)
    t0 = time.time()
    p = start([binary("zpipe"), "run", "--plugin", "wordcount", "--reduce",
               "--config", "top=0", "--input", text, "--output", out,
               "--workers", "2", "--batch", "1", "--no-progress",
               "--log-level", "info"] + list(args),
              stderr=subprocess.PIPE, env=env)
    done = 0
    for _ in range(kills):
        time.sleep(rnd.uniform(0.5, 1.5))
        pids = _sink_children(p)
        if not pids or p.poll() is not None:
            break
        os.kill(int(pids[0]), signal.SIGKILL)
        done += 1
    try:
        _, err = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        raise AssertionError("still running after 300 s: %s" % err.decode()[-1500:])
    check(p.returncode == 0, "run exit %d: %s" % (p.returncode, err.decode()[-1500:]))
    check(done == kills, "the job ended after %d of %d kills (%.1f s)" %
          (done, kills, time.time() - t0))
    return err.decode(), time.time() - t0


def test_run_reduce_sink_killed_three_times():
    d = zptest.tmpdir()
    chunk = os.path.join(d, "chunk.txt")
    _text(chunk, 2 * 1024 * 1024)
    text = os.path.join(d, "text.txt")
    with open(chunk, "rb") as f:
        data = f.read()
    with open(text, "wb") as f:  # long enough to kill the sink 3 times
        for _ in range(16):
            f.write(data)
    base_out = os.path.join(d, "base.jsonl")
    _, took = _run(text, base_out)
    base = _reduced(base_out)
    check(base["status"] == "ok", repr(dict(base, output="...")))
    print("    without kills: %d tasks, %d bytes of counts in %.1f s" %
          (base["tasks"], len(base["output"]), took))
    cases = (
        (1, [], None, "its own journal"),
        (2, ["--journal", os.path.join(d, "journal")],
         dict(os.environ, ZPIPE_SINK_JOURNAL_COMPACT="65536"),
         "--journal, compacted every 64 KiB"),
    )
    for seed, args, env, what in cases:
        out = os.path.join(d, "out-%d.jsonl" % seed)
        err, took = _run(text, out, args, env, kills=3, seed=seed)
        rec = _reduced(out)
        same = {k: rec[k] == base[k] for k in ("status", "tasks", "succeeded",
                                               "failed", "output")}
        check(all(same.values()), "%s: differs from the run without kills: %r; "
              "tasks %d/%d, succeeded %d/%d" % (what, same, rec["tasks"], base["tasks"],
                                                rec["succeeded"], base["succeeded"]))
        refolds = err.count("folded again")
        compactions = err.count("compacted from")
        check(refolds >= 1, "no restarted sink folded again: %s" % err[-1500:])
        if env:
            check(compactions >= 1, "no compaction: %s" % err[-1500:])
            folds = os.path.join(d, "journal.fold")
            left = os.listdir(folds) if os.path.isdir(folds) else []
            check(left == [], "fold logs left: %r" % left)
        print("    %s, sink killed 3 times (seed %d): the same record "
              "(%d tasks), 1 record, exit 0; %d restarts folded again, "
              "%d compactions; %.1f s" % (what, seed, rec["tasks"], refolds,
                                          compactions, took))


def test_service_sink_reduce_journal_killed_and_restarted():
    journal = os.path.join(zptest.tmpdir(), "journal")
    c = zptest.Cluster(sink_args=("--reduce", "wordcount", "--plugin-config",
                                  "wordcount.top=3", "--journal", journal))
    cmd = c.sink.args
    intake = "ipc://%s/intake" % c.dir
    start([binary("zpipe-ventilator"), "--intake", intake, "--bind", c.dispatch,
           "--sink", c.control], stderr=c._log("ventilator"))
    c.worker(["wordcount"])
    n = 600000
    lines = b"".join(b"red green red blue red green %d\n" % (i % 7) for i in range(n))
    path = os.path.join(c.dir, "colours.txt")
    with open(path, "wb") as f:
        f.write(lines)
    sub = start([binary("zpipe"), "submit", "--ventilator", intake, "--plugin",
                 "wordcount", "--job", "colours", "--input", path],
                stdout=subprocess.DEVNULL, stderr=c._log("submit"))
    kills = 0
    fold = os.path.join(journal + ".fold", "colours.fold")
    for mib in (2, 8):  # mid-job: its fold log has that much (~50 bytes a task)
        deadline = time.time() + 60
        while time.time() < deadline and not (
                os.path.exists(fold) and os.path.getsize(fold) >= mib << 20):
            time.sleep(0.02)
        c.sink.send_signal(signal.SIGKILL)
        c.sink.wait()
        kills += 1
        time.sleep(0.2)
        c.sink = start(cmd, stderr=c._log("sink%d" % (kills + 1)))
    check(sub.wait(120) == 0, "submit failed")
    r = run([binary("zpipe"), "wait", "--sink", c.control, "colours"],
            capture_output=True, timeout=120)
    check(r.returncode == 0, "wait: %d %r %r" % (r.returncode, r.stdout, r.stderr))
    # The finished job's open sent again (a ventilator's reopen after a
    # reconnect): answered, and it folds nothing more (no new fold log).
    import zmq
    import zpipe_pb2
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(c.control)
    m = zpipe_pb2.Message()
    m.job_open.job_id, m.job_open.plugin = "colours", "wordcount"
    sock.send(m.SerializeToString())
    check(sock.poll(5000), "no answer to the reopen")
    a = zpipe_pb2.Message.FromString(sock.recv()).ack
    check(a.ok, "reopen of the finished job: %r" % a)
    sock.close()
    time.sleep(0.3)
    check(not os.path.exists(fold), "a fold log for the finished job")
    zptest.stop(c.sink)
    logs = [open(os.path.join(c.dir, "sink%d.log" % i)).read() for i in (2, 3)]
    refolds = sum("folded again" in log for log in logs)
    check(refolds >= 1, "no restarted sink folded again: %r" % logs[0][-800:])
    left = os.listdir(journal + ".fold")
    check(left == [], "fold logs left: %r" % left)
    recs = read_jsonl(c.output)
    check(len(recs) == 1 and recs[0]["output"] == "red %d\ngreen %d\nblue %d\n" % (
        3 * n, 2 * n, n) and recs[0]["tasks"] == n and recs[0]["succeeded"] == n,
        repr([dict(x, output=x.get("output", "")[:80]) for x in recs]))
    print("    zpipe-sink --reduce --journal killed %d times and restarted by "
          "hand (%d restarts folded again): one record, red %d green %d "
          "blue %d" % (kills, refolds, 3 * n, 2 * n, n))


if __name__ == "__main__":
    zptest.main([
        test_run_reduce_sink_killed_three_times,
        test_service_sink_reduce_journal_killed_and_restarted,
    ])
