"""Trust boundaries (issue 16): peers that speak valid protobuf but are
wrong. A result the ventilator never dispatched (a task id past the job's
end while it is open, a made-up lease, no lease, a job nobody opened), a
second client's JobOpen for a running job, and producers touching a job
they did not open. Every case runs the real daemons and counts lost,
duplicated, unexpected and wrong records against the input."""
import collections
import os
import sys
import time

import zptest
import zpmetrics
from zptest import binary, check, read_jsonl, start

EXAMPLES = os.path.join(zptest.SOURCE, "examples", "python")


def _ctx():
    import zmq
    return zmq.Context()


class Dealer:
    """A DEALER to a ROUTER (the intake, or the sink's control)."""

    def __init__(self, ctx, endpoint):
        import zmq
        self.s = ctx.socket(zmq.DEALER)
        self.s.setsockopt(zmq.LINGER, 0)
        self.s.connect(endpoint)

    def ask(self, m, kind="ack", timeout=10.0):
        """Sends m; the next message of kind (others skipped), or None."""
        import zpipe_pb2 as pb
        self.s.send(m.SerializeToString())
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0 or not self.s.poll(int(left * 1000) + 1):
                return None
            r = pb.Message.FromString(self.s.recv())
            if r.WhichOneof("kind") == kind:
                return getattr(r, kind)


def _open(job, token="", plugin="echo"):
    import zpipe_pb2 as pb
    m = pb.Message()
    m.job_open.job_id, m.job_open.plugin, m.job_open.token = job, plugin, token
    return m


def _batch(job, seq, payloads, token=""):
    import zpipe_pb2 as pb
    m = pb.Message()
    m.task_batch.job_id, m.task_batch.seq = job, seq
    if token:
        m.task_batch.token = token
    for p in payloads:
        m.task_batch.tasks.add(payload=p)
    return m


def _close(job, total, token=""):
    import zpipe_pb2 as pb
    m = pb.Message()
    m.job_close.job_id, m.job_close.total = job, total
    if token:
        m.job_close.token = token
    return m


def _status(peer, job):
    import zpipe_pb2 as pb
    m = pb.Message()
    m.status_request.job_id = job
    return peer.ask(m, "job_status")


def _wait_done(peer, job, timeout=60):
    end = time.time() + timeout
    st = None
    while time.time() < end:
        st = _status(peer, job)
        if st is not None and st.state == 3:
            return st
        time.sleep(0.1)
    return st


def _tally(recs, job, want):
    """lost, duplicated, unexpected, wrong records of job against want
    ({task id: expected output})."""
    mine = [r for r in recs if r["job"] == job]
    count = collections.Counter(r["task"] for r in mine)
    lost = sum(1 for t in want if count[t] == 0)
    dup = sum(c - 1 for c in count.values() if c > 1)
    unexpected = sum(1 for r in mine if r["task"] not in want)
    wrong = sum(1 for r in mine if r["task"] in want and
                (r["status"] != "ok" or r["output"] != want[r["task"]]))
    return lost, dup, unexpected, wrong


class Service(zptest.Cluster):
    """A sink with metrics and a ventilator with an intake; workers are
    started by the test."""

    def __init__(self, vent_args=(), sink_args=()):
        super().__init__(sink_args=("--metrics", "127.0.0.1:0")
                         + tuple(sink_args))
        self.intake = "ipc://%s/intake" % self.dir
        self.vent = start([binary("zpipe-ventilator"), "--intake", self.intake,
                           "--bind", self.dispatch, "--sink", self.control]
                          + list(vent_args), stderr=self._log("ventilator"))


def _refused(url, cause):
    _, samples = zpmetrics.parse(zpmetrics.fetch(url))
    return zpmetrics.value(samples, "zpipe_sink_results_refused_total",
                           cause=cause)


def test_results_not_dispatched_are_refused():
    """An open job of 100 tasks. Before any worker runs, a buggy peer
    pushes results for task 5000 (past the job's end, which the sink
    cannot know yet), for tasks 0-99 with wrong outputs and no lease, and
    with made-up leases. Then two honest workers run the job: every task
    has exactly its own record."""
    import zpipe_pb2 as pb
    s = Service()
    url = zpmetrics.metrics_url(s.logs[0])
    ctx = _ctx()
    prod = Dealer(ctx, s.intake)
    job, tok, n = "trust-range", "tok-range", 100
    a = prod.ask(_open(job, tok))
    check(a is not None and a.ok, "open: %r" % a)
    payloads = [b"t-%d" % i for i in range(n)]
    a = prod.ask(_batch(job, 1, payloads))
    check(a is not None and a.ok and a.accepted == n, "batch: %r" % a)
    import zmq
    sub = ctx.socket(zmq.SUB)  # what --publish sends must be real too
    sub.setsockopt(zmq.SUBSCRIBE, job.encode())
    sub.connect(s.publish)
    time.sleep(0.3)  # the subscription reaches the sink
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 2000)
    push.connect(s.results)
    bogus = 0
    for lease in (0, 12345, None):  # none, made up, made up per task
        m = pb.Message()
        m.result_batch.job_id, m.result_batch.worker_id = job, "liar"
        for i in list(range(n)) + [5000]:
            r = m.result_batch.results.add(task_id=i, output=b"bogus",
                                           attempt=1)
            r.lease = (i * 7919 + 17) if lease is None else lease
            bogus += 1
        push.send(m.SerializeToString())
    end = time.time() + 10
    refused = 0
    while time.time() < end and refused < bogus:
        try:
            refused = _refused(url, "lease")
        except AssertionError:  # no such series (a sink before leases)
            break
        time.sleep(0.1)
    print("    %d bogus results pushed, %d refused for their lease"
          % (bogus, refused))
    for _ in range(2):
        s.worker()
    a = prod.ask(_close(job, n))
    check(a is not None and a.ok, "close: %r" % a)
    ctl = Dealer(ctx, s.control)
    st = _wait_done(ctl, job)
    check(st is not None and st.state == 3, "job not done: %r" % st)
    zptest.stop(s.sink)
    recs = read_jsonl(s.output)
    want = {i: "t-%d" % i for i in range(n)}
    lost, dup, unexp, wrong = _tally(recs, job, want)
    print("    %d tasks: lost=%d duplicated=%d unexpected=%d wrong=%d"
          % (n, lost, dup, unexp, wrong))
    check((lost, dup, unexp, wrong) == (0, 0, 0, 0), "records wrong")
    check(st.total == n and st.succeeded == n, "status %r" % st)
    check(refused == bogus, "bogus results not all refused: %d of %d"
          % (refused, bogus))
    published = collections.Counter()
    while sub.poll(200):
        _, frame = sub.recv_multipart()
        for r in pb.Message.FromString(frame).result_batch.results:
            published[r.output == b"bogus"] += 1
    print("    published: %d real results, %d bogus" % (published[False],
                                                      published[True]))
    check(published[True] == 0, "bogus results were published")
    check(published[False] >= n, "real results missing from --publish")
    ctx.destroy(0)


def test_second_client_open_changes_nothing():
    """A 60,000-task job runs (about 1.5 s); mid-way another client sends the sink a
    JobOpen for it (no dispatch key), twice, and asks its status. The job
    completes with every record once."""
    c = zptest.Cluster(sink_args=("--metrics", "127.0.0.1:0"))
    url = zpmetrics.metrics_url(c.logs[0])
    n = 60000
    inp = os.path.join(c.dir, "in.txt")
    with open(inp, "w") as f:
        f.write("".join("%d\n" % (40 + i % 7) for i in range(n)))
    job = "trust-reopen"
    for _ in range(2):  # spin: each task spins 40-46 µs, echoes its input
        c.worker(plugins=("spin",))
    vent = c.ventilator("spin", inp, args=("--job", job))
    ctx = _ctx()
    other = Dealer(ctx, c.control)
    end = time.time() + 30
    while time.time() < end:
        st = _status(other, job)
        if st is not None and st.done >= n // 10:
            break
        time.sleep(0.05)
    check(st is not None and 0 < st.done < n,
          "the job was not mid-way: %r" % st)
    for _ in range(2):
        a = other.ask(_open(job))
        check(a is not None and a.ok, "the second open: %r" % a)
    print("    second client's JobOpen at %d of %d: ack ok" % (st.done, n))
    rc = vent.wait(120)
    check(rc == 0, "ventilator exit %d" % rc)
    _, samples = zpmetrics.parse(zpmetrics.fetch(url))
    replays = zpmetrics.value(samples, "zpipe_sink_job_open_replays_total")
    zptest.stop(c.sink)
    recs = read_jsonl(c.output)
    want = {i: "%d" % (40 + i % 7) for i in range(n)}
    lost, dup, unexp, wrong = _tally(recs, job, want)
    print("    %d tasks: lost=%d duplicated=%d unexpected=%d wrong=%d; "
          "open replays counted: %d" % (n, lost, dup, unexp, wrong, replays))
    check((lost, dup, unexp, wrong) == (0, 0, 0, 0), "records wrong")
    check(replays == 2, "open replays counted: %d" % replays)
    ctx.destroy(0)


def test_producers_own_their_jobs():
    """Producer A opens a job (with a token) and sends a batch. Another
    connection B, without the token, adds a batch, closes the job, and
    sends a made-up token: each is refused, and A's next batch and close
    are taken. A third connection C carrying A's token (A reconnected) may
    add and close. Every record is A's."""
    s = Service()
    for _ in range(2):
        s.worker()
    ctx = _ctx()
    a, b, c = (Dealer(ctx, s.intake) for _ in range(3))
    job, tok = "trust-owner", "tok-owner-a"
    r = a.ask(_open(job, tok))
    check(r is not None and r.ok, "open: %r" % r)
    r = a.ask(_batch(job, 1, [b"a-%d" % i for i in range(100)]))
    check(r is not None and r.ok and r.first_task_id == 0, "A batch 1: %r" % r)
    refusals = []
    for m in (_batch(job, 2, [b"b-%d" % i for i in range(50)]),
              _batch(job, 2, [b"b-%d" % i for i in range(50)], token="forged"),
              _close(job, 100), _close(job, 100, token="forged")):
        r = b.ask(m)
        check(r is not None, "no answer to B")
        refusals.append(r)
        print("    B: ok=%s %s" % (r.ok, r.error))
    check(not any(r.ok for r in refusals), "a foreign message was taken")
    check(all("belongs to another" in r.error for r in refusals),
          "refusals without the reason")
    r = a.ask(_batch(job, 2, [b"a-%d" % i for i in range(100, 200)]))
    check(r is not None and r.ok and r.first_task_id == 100, "A batch 2: %r" % r)
    # A back on a new connection: its token is enough.
    r = c.ask(_batch(job, 3, [b"a-%d" % i for i in range(200, 300)], token=tok))
    check(r is not None and r.ok and r.first_task_id == 200, "C batch 3: %r" % r)
    r = c.ask(_close(job, 300, token=tok))
    check(r is not None and r.ok and r.accepted == 300, "C close: %r" % r)
    ctl = Dealer(ctx, s.control)
    st = _wait_done(ctl, job)
    check(st is not None and st.state == 3, "job not done: %r" % st)
    zptest.stop(s.sink)
    recs = read_jsonl(s.output)
    want = {i: "a-%d" % i for i in range(300)}
    lost, dup, unexp, wrong = _tally(recs, job, want)
    print("    300 tasks: lost=%d duplicated=%d unexpected=%d wrong=%d"
          % (lost, dup, unexp, wrong))
    check((lost, dup, unexp, wrong) == (0, 0, 0, 0), "records wrong")
    ctx.destroy(0)


def test_worker_with_another_clusters_sink():
    """Two clusters run a job under the same id. A worker takes tasks from
    cluster A's ventilator but sends its results to cluster B's sink (a
    copy-paste of the wrong --sink). B's sink refuses every one (their
    leases are A's); A's ventilator sends the tasks it never hears of to
    A's honest worker. Both jobs end whole, each record its own
    cluster's."""
    n = 5000
    a, b = zptest.Cluster(), zptest.Cluster(sink_args=("--metrics", "127.0.0.1:0"))
    url = zpmetrics.metrics_url(b.logs[0])
    paths, spin = {}, {"a": 300, "b": 200}  # spin: µs per task, echoed
    for tag, c in (("a", a), ("b", b)):
        paths[tag] = os.path.join(c.dir, "in.txt")
        with open(paths[tag], "w") as f:
            f.write("".join("%d\n" % (spin[tag] + i % 5) for i in range(n)))
    stray = start([binary("zpipe-worker"), "--ventilator", a.dispatch,
                   "--sink", b.results, "--plugin", "spin", "--id", "stray"],
                  stderr=a._log("worker-stray"))
    a.worker(plugins=("spin",), name="honest-a")
    b.worker(plugins=("spin",), name="honest-b")
    vb = b.ventilator("spin", paths["b"], args=("--job", "shared-id"))
    va = a.ventilator("spin", paths["a"], args=("--job", "shared-id",
                                                "--lease-ms", "2000"))
    rb, ra = vb.wait(60), va.wait(120)
    refused = _refused(url, "lease") + _refused(url, "unknown_job")
    zptest.stop(stray)
    print("    ventilators exit: a=%d b=%d; B's sink refused %d of the stray "
          "worker's results" % (ra, rb, refused))
    for tag, c in (("a", a), ("b", b)):
        zptest.stop(c.sink)
        recs = read_jsonl(c.output)
        want = {i: "%d" % (spin[tag] + i % 5) for i in range(n)}
        lost, dup, unexp, wrong = _tally(recs, "shared-id", want)
        print("    cluster %s, %d tasks: lost=%d duplicated=%d unexpected=%d "
              "wrong=%d" % (tag, n, lost, dup, unexp, wrong))
        check((lost, dup, unexp, wrong) == (0, 0, 0, 0),
              "cluster %s: records wrong" % tag)
    check(ra == 0 and rb == 0, "a job did not succeed")
    check(refused > 0, "the stray worker's results were not refused")


def _log_text(path):
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")


def test_wrong_cluster_is_refused_on_both_sides():
    """A cluster named alpha. A worker, a producer (zpipe submit) and a
    ventilator of cluster beta pointed at it are each refused with a
    reason in both logs (the worker and the file-job ventilator exit
    non-zero); alpha's own worker and producer run their job whole."""
    import subprocess
    s = Service(vent_args=("--cluster", "alpha"),
                sink_args=("--cluster", "alpha"))
    stray = s.worker(args=("--cluster", "beta"), name="stray")
    rc = stray.wait(15)
    wlog = _log_text(s.logs[-1])
    vlog = _log_text(s.logs[1])
    print("    beta worker: exit %d; its log: %s" % (
        rc, [l for l in wlog.splitlines() if "wrong cluster" in l][:1]))
    check(rc != 0, "the beta worker kept running or exited 0")
    check("wrong cluster" in wlog and "cluster alpha" in wlog,
          "the worker does not say why")
    check("refused worker stray" in vlog and "wrong cluster" in vlog,
          "the ventilator does not say it refused the worker")
    inp = os.path.join(s.dir, "in.txt")
    with open(inp, "w") as f:
        f.write("".join("c-%d\n" % i for i in range(1000)))
    r = subprocess.run([binary("zpipe"), "submit", "--ventilator", s.intake,
                        "--plugin", "echo", "--input", inp, "--cluster", "beta",
                        "--timeout-ms", "10000"],
                       capture_output=True, timeout=30)
    err = r.stderr.decode(errors="replace")
    print("    beta producer: exit %d: %s" % (r.returncode, err.strip()[-200:]))
    check(r.returncode != 0 and "wrong cluster" in err,
          "zpipe submit of cluster beta was not refused with the reason")
    vent = start([binary("zpipe-ventilator"), "--bind",
                  "ipc://%s/dispatch-beta" % s.dir, "--sink", s.control,
                  "--plugin", "echo", "--input", inp, "--cluster", "beta",
                  "--job", "beta-job"], stderr=s._log("ventilator-beta"))
    rc = vent.wait(30)
    blog = _log_text(s.logs[-1])
    slog = _log_text(s.logs[0])
    print("    beta ventilator: exit %d" % rc)
    check(rc != 0 and "wrong cluster" in blog,
          "the beta ventilator was not refused with the reason")
    check("refused a JobOpen for job beta-job" in slog,
          "the sink does not say it refused the beta ventilator")
    s.worker(args=("--cluster", "alpha"))
    r = subprocess.run([binary("zpipe"), "submit", "--ventilator", s.intake,
                        "--plugin", "echo", "--input", inp, "--cluster", "alpha",
                        "--job", "alpha-job", "--timeout-ms", "30000"],
                       capture_output=True, timeout=60)
    check(r.returncode == 0, "alpha's job: %s" % r.stderr.decode()[-400:])
    ctx = _ctx()
    st = _wait_done(Dealer(ctx, s.control), "alpha-job")
    check(st is not None and st.state == 3, "alpha's job not done: %r" % st)
    zptest.stop(s.sink)
    recs = read_jsonl(s.output)
    want = {i: "c-%d" % i for i in range(1000)}
    lost, dup, unexp, wrong = _tally(recs, "alpha-job", want)
    print("    alpha's job, 1000 tasks: lost=%d duplicated=%d unexpected=%d "
          "wrong=%d; records of beta-job: %d" % (
              lost, dup, unexp, wrong,
              sum(1 for r in recs if r["job"] == "beta-job")))
    check((lost, dup, unexp, wrong) == (0, 0, 0, 0), "records wrong")
    check(not [r for r in recs if r["job"] == "beta-job"], "beta's records")
    ctx.destroy(0)


if __name__ == "__main__":
    zptest.main([
        test_results_not_dispatched_are_refused,
        test_second_client_open_changes_nothing,
        test_producers_own_their_jobs,
        test_wrong_cluster_is_refused_on_both_sides,
        test_worker_with_another_clusters_sink,
    ])
