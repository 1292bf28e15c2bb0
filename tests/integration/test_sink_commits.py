"""The sink's side of the conversation about commits and job identity,
spoken on the wire from Python (Debian's python3-zmq and the build's
zpipe_pb2) against a real zpipe-sink: duplicates acknowledged again,
acknowledgements kept until an opener is back (journal replay included),
CommitQuery, JobOpen.token, and results the sink never asked for refused
and counted. Each test counts lost, duplicated and unexpected records in
the output against what it sent."""
import collections
import json
import os
import signal
import time

import zptest
import zpmetrics
from zptest import binary, check, read_jsonl, start


class Peer:
    """A DEALER on the sink's control socket."""

    def __init__(self, ctx, endpoint):
        import zmq
        self.s = ctx.socket(zmq.DEALER)
        self.s.setsockopt(zmq.LINGER, 0)
        self.s.connect(endpoint)

    def send(self, m):
        self.s.send(m.SerializeToString())

    def recv(self, kind, timeout=5.0):
        """The next message of this kind (others are skipped), or None."""
        import zpipe_pb2 as pb
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0 or not self.s.poll(int(left * 1000) + 1):
                return None
            m = pb.Message.FromString(self.s.recv())
            if m.WhichOneof("kind") == kind:
                return getattr(m, kind)

    def open(self, job, token="", ok=True):
        import zpipe_pb2 as pb
        m = pb.Message()
        m.job_open.job_id = job
        m.job_open.plugin = "echo"
        m.job_open.token = token
        self.send(m)
        a = self.recv("ack")
        check(a is not None, "no Ack for JobOpen %s" % job)
        check(a.ok == ok, "JobOpen %s token %r: ok=%s error=%r"
              % (job, token, a.ok, a.error))
        return a

    def close_job(self, job, total):
        import zpipe_pb2 as pb
        m = pb.Message()
        m.job_close.job_id = job
        m.job_close.total = total
        self.send(m)
        a = self.recv("ack")
        check(a is not None and a.ok, "JobClose %s: %r" % (job, a))

    def status(self, job):
        import zpipe_pb2 as pb
        m = pb.Message()
        m.status_request.job_id = job
        self.send(m)
        st = self.recv("job_status")
        check(st is not None, "no JobStatus for %s" % job)
        return st

    def query(self, job, ids):
        import zpipe_pb2 as pb
        m = pb.Message()
        m.commit_query.job_id = job
        m.commit_query.task_ids.extend(ids)
        self.send(m)
        c = self.recv("committed")
        check(c is not None, "no Committed for the CommitQuery of %s" % job)
        check(c.job_id == job, "Committed for %r, asked %r" % (c.job_id, job))
        return list(c.task_ids)

    def committed(self, job, want, timeout=5.0):
        """Committed ids of job received until every id of want came (or
        the timeout): a Counter of ids."""
        got = collections.Counter()
        end = time.monotonic() + timeout
        while not set(want) <= set(got) and time.monotonic() < end:
            c = self.recv("committed", end - time.monotonic())
            if c is not None and c.job_id == job:
                got.update(c.task_ids)
        return got

    def close(self):
        self.s.close(0)


def _push(ctx, endpoint):
    import zmq
    s = ctx.socket(zmq.PUSH)
    s.setsockopt(zmq.LINGER, 2000)
    s.connect(endpoint)
    return s


def _results(push, job, ids, worker="w-test"):
    import zpipe_pb2 as pb
    m = pb.Message()
    m.result_batch.job_id = job
    m.result_batch.worker_id = worker
    for i in ids:
        m.result_batch.results.add(task_id=i, output=b"out-%d" % i, attempt=1)
    push.send(m.SerializeToString())


def _count(recs, job, ids):
    """lost, duplicated, unexpected records of job against ids."""
    mine = [r for r in recs if r["job"] == job]
    count = collections.Counter(r["task"] for r in mine)
    lost = sum(1 for i in ids if count[i] == 0)
    dup = sum(k - 1 for k in count.values() if k > 1)
    unexpected = sum(1 for r in mine if r["task"] not in set(ids)
                     or r["output"] != "out-%d" % r["task"])
    return lost, dup, unexpected


def _ctx():
    import zmq
    return zmq.Context()


def _check_counts(name, recs, job, ids):
    lost, dup, unexp = _count(recs, job, ids)
    print("    %s: lost=%d duplicated=%d unexpected=%d" % (name, lost, dup, unexp))
    check(lost == 0 and dup == 0 and unexp == 0, "%s: records wrong" % name)


def _stop_and_read(c):
    zptest.stop(c.sink)
    return read_jsonl(c.output)


def test_duplicates_are_acknowledged_again():
    c = zptest.Cluster()
    ctx = _ctx()
    v, push = Peer(ctx, c.control), _push(ctx, c.results)
    v.open("dup", "tok-dup")
    ids = list(range(100))
    _results(push, "dup", ids)
    first = v.committed("dup", ids)
    check(set(first) == set(ids), "first Committed: %d of 100" % len(first))
    # The same results again (a redelivery after a lost Committed): the
    # sink drops them and acknowledges them again.
    _results(push, "dup", ids)
    again = v.committed("dup", ids)
    print("    committed %d, then %d duplicates acknowledged again"
          % (len(first), len(again)))
    check(set(again) == set(ids), "duplicates acknowledged: %d of 100" % len(again))
    check(v.status("dup").duplicates == 100, "duplicates not counted")
    v.close_job("dup", 100)
    _check_counts("duplicates", _stop_and_read(c), "dup", ids)
    ctx.destroy(0)


def test_acks_wait_for_an_opener():
    # The opener goes away before the sink can tell it anything; the
    # Committed waits for the next opener of the job.
    c = zptest.Cluster()
    ctx = _ctx()
    a, push = Peer(ctx, c.control), _push(ctx, c.results)
    a.open("away", "tok-away")
    a.close()
    # Until the sink sees the connection gone, a send to it is taken (and
    # lost with the pipe): that case is the ventilator's CommitQuery's to
    # repair. This one is the opener known to be gone.
    time.sleep(0.3)
    ids = list(range(200))
    _results(push, "away", ids)
    time.sleep(0.5)  # 25 commit periods: each send to the gone opener fails
    b = Peer(ctx, c.control)
    b.open("away", "tok-away")
    got = b.committed("away", ids)
    print("    %d of %d commits reached the opener that came back" % (len(got), len(ids)))
    check(set(got) == set(ids), "commits lost while no opener: got %d" % len(got))
    b.close_job("away", 200)
    _check_counts("opener away", _stop_and_read(c), "away", ids)
    ctx.destroy(0)


def test_acks_kept_across_a_journal_replay():
    c = zptest.Cluster()
    zptest.stop(c.sink)
    journal = os.path.join(c.dir, "journal")
    cmd = c.sink.args + ["--journal", journal]
    c.sink = start(cmd, stderr=c._log("sink1"))
    ctx = _ctx()
    a, push = Peer(ctx, c.control), _push(ctx, c.results)
    a.open("rep", "tok-rep")
    a.close()
    before = list(range(100))
    _results(push, "rep", before)
    time.sleep(0.3)  # durable, journaled; its Committed waits for an opener
    c.sink.send_signal(signal.SIGKILL)
    c.sink.wait()
    c.sink = start(cmd, stderr=c._log("sink2"))
    # Results reach the restarted sink before any opener does.
    after = list(range(100, 200))
    _results(push, "rep", after)
    time.sleep(0.3)
    b = Peer(ctx, c.control)
    b.open("rep", "tok-rep")
    got = b.committed("rep", after)
    check(set(after) <= set(got), "commits after the replay lost: %d of 100"
          % len(set(after) & set(got)))
    # What the killed sink never told anyone: a redelivery is acknowledged
    # (a duplicate), and CommitQuery answers it too.
    _results(push, "rep", before)
    dup = b.committed("rep", before)
    check(set(before) <= set(dup), "duplicates after the replay: %d of 100"
          % len(set(before) & set(dup)))
    q = Peer(ctx, c.control)
    held = q.query("rep", list(range(250)))
    check(held == list(range(200)), "CommitQuery after the replay: %d ids" % len(held))
    print("    after a kill and a replay: 100 new commits waited for the opener, "
          "100 redelivered acknowledged, CommitQuery named all 200")
    b.close_job("rep", 200)
    _check_counts("replay", _stop_and_read(c), "rep", list(range(200)))
    ctx.destroy(0)


def test_commit_query():
    c = zptest.Cluster()
    ctx = _ctx()
    v, push, q = Peer(ctx, c.control), _push(ctx, c.results), Peer(ctx, c.control)
    v.open("cq", "tok-cq")
    _results(push, "cq", [i for i in range(10) if i != 5])
    v.committed("cq", [0, 9])
    held = q.query("cq", list(range(13)))
    check(held == [0, 1, 2, 3, 4, 6, 7, 8, 9], "held %r" % held)
    check(q.query("cq", [9, 5, 0]) == [9, 0], "order or subset wrong")
    v.close_job("cq", 10)
    _results(push, "cq", [5])
    end = time.time() + 5
    while v.status("cq").state != 3 and time.time() < end:
        time.sleep(0.05)
    # Done: every id below the total, none past it.
    check(q.query("cq", [0, 9, 10, 11, 5]) == [0, 9, 5], "done job's answer")
    check(q.query("nope", [0, 1]) == [], "an unknown job holds nothing")
    check(q.query("", [0]) == [], "no job id: nothing")
    print("    CommitQuery: the subset held, in the asker's order; a done job "
          "every id below its total; an unknown job none")
    _check_counts("commit query", _stop_and_read(c), "cq", list(range(10)))
    ctx.destroy(0)


def test_job_tokens():
    c = zptest.Cluster(sink_args=("--metrics", "127.0.0.1:0"))
    zptest.stop(c.sink)
    journal = os.path.join(c.dir, "journal")
    cmd = c.sink.args + ["--journal", journal]
    c.sink = start(cmd, stderr=c._log("sink1"))
    url = zpmetrics.metrics_url(c.logs[-1])
    ctx = _ctx()
    a, b, push = Peer(ctx, c.control), Peer(ctx, c.control), _push(ctx, c.results)
    a.open("t1", "tok-a")
    b.open("t1", "tok-a")  # the same job, from another connection
    _results(push, "t1", [0, 1])
    got = b.committed("t1", [0, 1])  # b is the opener now
    check(set(got) == {0, 1}, "the second opener was not told")
    err = a.open("t1", "tok-b", ok=False).error
    check(err == "job id t1 was already used by another job", "error %r" % err)
    a.open("t1", "")  # legacy: matches whatever job holds the id
    # Opened without a token: the first token sticks while unfinished.
    a.open("t2", "")
    a.open("t2", "tok-x")
    a.open("t2", "tok-y", ok=False)
    # Done without a token: no token can take it over.
    a.open("t3", "")
    a.close_job("t3", 0)
    a.open("t3", "tok-z", ok=False)
    a.open("t3", "")
    a.open("t3", "bad token", ok=False)
    end = time.time() + 5
    reused = 0
    while time.time() < end:
        _, samples = zpmetrics.parse(zpmetrics.fetch(url))
        reused = zpmetrics.value(samples, "zpipe_sink_jobs_refused_total",
                                 cause="id_reused")
        if reused == 3:
            break
        time.sleep(0.1)
    check(reused == 3, "zpipe_sink_jobs_refused_total{id_reused} = %s" % reused)
    # Tokens outlive a crash: the journal has them.
    c.sink.send_signal(signal.SIGKILL)
    c.sink.wait()
    c.sink = start(cmd, stderr=c._log("sink2"))
    a.open("t1", "tok-b", ok=False)
    a.open("t1", "tok-a")
    a.open("t2", "tok-y", ok=False)
    a.open("t2", "tok-x")
    a.open("t3", "tok-z", ok=False)
    print("    same token: the same job from any connection; another token "
          "refused (3 counted), before and after a sink restart")
    a.close_job("t1", 2)
    _check_counts("tokens", _stop_and_read(c), "t1", [0, 1])
    ctx.destroy(0)


def test_open_acknowledged_once_journaled():
    # An Ack for JobOpen means the journal has the job and its token: a
    # sink killed the moment it answered still refuses the id to another
    # job after its restart (the journal is written every 20 ms; an Ack
    # sent before it would lose the token most of the time).
    c = zptest.Cluster()
    zptest.stop(c.sink)
    cmd = c.sink.args + ["--journal", os.path.join(c.dir, "journal")]
    ctx = _ctx()
    for k in range(5):
        c.sink = start(cmd, stderr=c._log("sink%d" % k))
        p = Peer(ctx, c.control)
        p.open("k%d" % k, "tok-a")
        c.sink.send_signal(signal.SIGKILL)
        c.sink.wait()
        p.close()
    c.sink = start(cmd, stderr=c._log("sink-last"))
    p = Peer(ctx, c.control)
    for k in range(5):
        p.open("k%d" % k, "tok-b", ok=False)
        p.open("k%d" % k, "tok-a")
    print("    5 jobs, each sink killed right after its Ack: every token kept")
    zptest.stop(c.sink)
    ctx.destroy(0)


def test_results_never_asked_for_are_refused():
    spool = zptest.tmpdir()
    c = zptest.Cluster(sink_args=("--metrics", "127.0.0.1:0", "--spool", spool))
    url = zpmetrics.metrics_url(c.logs[0])
    ctx = _ctx()
    v, push = Peer(ctx, c.control), _push(ctx, c.results)
    _results(push, "never-opened", range(10))
    v.open("ranged", "tok-r")
    _results(push, "ranged", range(3))
    v.committed("ranged", range(3))
    v.close_job("ranged", 5)
    _results(push, "ranged", range(5, 10))  # past the total: refused
    _results(push, "ranged", range(3, 5))
    end = time.time() + 5
    while v.status("ranged").state != 3 and time.time() < end:
        time.sleep(0.05)
    _results(push, "ranged", [5, 6, 1000000])  # done: still refused
    check(v.query("ranged", range(10)) == list(range(5)), "ranged job holds more")
    st = v.status("never-opened")
    check(st.state == 0, "the unknown job was made: state %d" % st.state)
    end = time.time() + 5
    unknown = out = 0
    while time.time() < end:
        _, samples = zpmetrics.parse(zpmetrics.fetch(url))
        name = "zpipe_sink_results_refused_total"
        unknown = zpmetrics.value(samples, name, cause="unknown_job")
        out = zpmetrics.value(samples, name, cause="out_of_range")
        if unknown == 10 and out == 8:
            break
        time.sleep(0.1)
    print("    refused: unknown_job=%d out_of_range=%d" % (unknown, out))
    check(unknown == 10 and out == 8, "refusals not counted")
    check(not os.path.exists(os.path.join(spool, "never-opened.jsonl")),
          "a spool for the unknown job")
    recs = _stop_and_read(c)
    check(not [r for r in recs if r["job"] == "never-opened"],
          "records written for the unknown job")
    _check_counts("out of range", recs, "ranged", list(range(5)))
    ctx.destroy(0)


if __name__ == "__main__":
    zptest.main([
        test_duplicates_are_acknowledged_again,
        test_acks_wait_for_an_opener,
        test_acks_kept_across_a_journal_replay,
        test_commit_query,
        test_job_tokens,
        test_open_acknowledged_once_journaled,
        test_results_never_asked_for_are_refused,
    ])
