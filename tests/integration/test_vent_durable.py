"""Acknowledged means durable (issue 15): a ventilator with --journal is
SIGKILLed while producers stream jobs, and after they had every Ack, and
is restarted on the same endpoints; every task a producer was told is
taken has exactly one record. Resent batches are taken once, a job id is
never taken for a second job, and a whole cluster killed at once resumes
its job by itself. Each case is counted against the input: lost,
duplicated, unexpected and wrong records."""
import hashlib
import os
import random
import signal
import sys
import time

import zmq

import zptest
from zptest import binary, check, start

sys.path.insert(0, os.path.join(zptest.SOURCE, "examples", "python"))
import consumer  # noqa: E402
import zpipe_pb2  # noqa: E402


class Service(zptest.Cluster):
    """Journaled sink with a spool (its output: no --output, each record
    written once), a journaled ventilator with an intake, workers; the
    ventilator (or everything) can be killed and restarted."""

    def __init__(self, workers=2, plugins=("sha256",)):
        self.spool = zptest.tmpdir()
        super().__init__(output_name=None, sink_args=self._sink_args())
        self.intake = "ipc://%s/intake" % self.dir
        self.vjournal = os.path.join(self.dir, "ventilator.journal")
        self.plugins = plugins
        self.workers = []
        self.vent = None
        self.start_ventilator()
        for _ in range(workers):
            self.workers.append(self.worker(plugins=plugins))

    def _sink_args(self):
        return ("--spool", self.spool, "--journal",
                os.path.join(self.spool, "sink.journal"))

    def start_ventilator(self):
        self.vent = start([binary("zpipe-ventilator"), "--intake", self.intake,
                           "--bind", self.dispatch, "--sink", self.control,
                           "--journal", self.vjournal],
                          stderr=self._log("ventilator"))

    def kill_ventilator(self):
        self.vent.send_signal(signal.SIGKILL)
        self.vent.wait()

    def kill_all(self):
        for p in [self.vent, self.sink] + self.workers:
            p.send_signal(signal.SIGKILL)
        for p in [self.vent, self.sink] + self.workers:
            p.wait()

    def restart_all(self):
        self.sink = start(list(self.sink.args), stderr=self._log("sink"))
        self.start_ventilator()
        self.workers = [self.worker(plugins=self.plugins) for _ in self.workers]


class Producer:
    """The protocol as docs/protocol.md asks a careful client to speak it:
    a token per job, numbered batches, and every unanswered message sent
    again (on a timer, which also covers a restart) until answered."""

    def __init__(self, endpoint, plugin, job_id, token=None):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.job_id = job_id
        self.token = token or "tok-%x" % random.getrandbits(64)
        self.seq = 0
        self.instances = set()
        m = zpipe_pb2.Message()
        m.job_open.job_id, m.job_open.plugin = job_id, plugin
        m.job_open.token = self.token
        self.open_ack = self.ask(m, lambda a: True)

    def ask(self, m, match, deadline_s=60):
        """Sends m until an Ack matching it comes (resending every 0.5 s);
        returns the Ack. A refusal is raised."""
        data = m.SerializeToString()
        t_end = time.monotonic() + deadline_s
        while time.monotonic() < t_end:
            self.sock.send(data)
            if self.sock.poll(500):
                while self.sock.poll(0):
                    a = zpipe_pb2.Message.FromString(self.sock.recv()).ack
                    self.instances.add(a.ventilator_instance)
                    if not a.ok:
                        raise RuntimeError("refused: %s" % a.error)
                    if a.job_id == self.job_id and match(a):
                        return a
        raise RuntimeError("no answer in %d s" % deadline_s)

    def batch(self, seq, payloads, lines=False):
        """TaskBatch seq of payloads: a Task each, or with lines one
        TaskBatch.lines text (as zpipe submit sends a file's lines)."""
        m = zpipe_pb2.Message()
        b = m.task_batch
        b.job_id, b.seq = self.job_id, seq
        if lines:
            b.lines = b"".join(p + b"\n" for p in payloads)
        else:
            for p in payloads:
                b.tasks.add(payload=p)
        return m

    def send(self, payloads, lines=False):
        self.seq += 1
        m = self.batch(self.seq, payloads, lines)
        seq = self.seq
        a = self.ask(m, lambda a: a.seq == seq)
        return a.first_task_id, a.accepted

    def close(self, total):
        m = zpipe_pb2.Message()
        m.job_close.job_id, m.job_close.total = self.job_id, total
        return self.ask(m, lambda a: a.accepted == total)


def _status(control, job, timeout_s=120):
    """Waits until the sink says the job is done; its JobStatus."""
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(control)
    t_end = time.monotonic() + timeout_s
    try:
        while time.monotonic() < t_end:
            m = zpipe_pb2.Message()
            m.status_request.job_id = job
            s.send(m.SerializeToString())
            if s.poll(1000):
                st = zpipe_pb2.Message.FromString(s.recv()).job_status
                if st.state == zpipe_pb2.JOB_DONE:
                    return st
            time.sleep(0.2)
    finally:
        s.close()
    raise AssertionError("job %s not done in %d s" % (job, timeout_s))


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _count(control, job, payloads, expect=_sha):
    """Lost, duplicated, unexpected and wrong records of job against the
    payloads its tasks were given (task id -> payload); expect: the output
    a payload should give."""
    seen = {}
    dup = unexpected = wrong = 0
    for rec, _ in consumer.records(control, job):
        t = rec["task"]
        if t in seen:
            dup += 1
            continue
        seen[t] = rec
        if t not in payloads:
            unexpected += 1
        elif rec.get("output") != expect(payloads[t]):
            wrong += 1
    lost = sum(1 for t in payloads if t not in seen)
    return {"lost": lost, "duplicated": dup, "unexpected": unexpected,
            "wrong": wrong}


def _keep(payloads, k, first, accepted, chunk):
    """Batch k, acknowledged with ids from first: every item taken, under
    ids never given before; kept in payloads by id."""
    check(accepted == len(chunk), "batch %d accepted %d" % (k, accepted))
    for i, data in enumerate(chunk):
        check(first + i not in payloads, "id %d given twice" % (first + i))
        payloads[first + i] = data


def test_acknowledged_tasks_survive_ventilator_kills():
    s = Service()
    n, batch = 20000, 500
    p = Producer(s.intake, "sha256", "durable-1")
    kills = sorted(random.sample(range(1, n // batch - 1), 3))
    payloads = {}
    for k in range(n // batch):
        chunk = [b"task %d" % (k * batch + i) for i in range(batch)]
        if k == kills[1]:
            # Killed with a batch on its way, its Ack never heard: sent
            # again under the same number, it is taken at most once.
            m = zpipe_pb2.Message()
            m.task_batch.job_id, m.task_batch.seq = "durable-1", p.seq + 1
            for data in chunk:
                m.task_batch.tasks.add(payload=data)
            p.sock.send(m.SerializeToString())
            time.sleep(random.random() * 0.01)
            s.kill_ventilator()
            s.start_ventilator()
        first, accepted = p.send(chunk)
        _keep(payloads, k, first, accepted, chunk)
        if k in kills:
            s.kill_ventilator()
            s.start_ventilator()
    p.close(n)
    # Killed once more with every Ack and the close in hand.
    s.kill_ventilator()
    s.start_ventilator()
    st = _status(s.control, "durable-1")
    counts = _count(s.control, "durable-1", payloads)
    print("20,000 tasks, ventilator killed at batches %s and after the close:"
          " %s; %d ventilator instances seen" % (kills, counts,
                                                 len(p.instances)))
    check(counts == {"lost": 0, "duplicated": 0, "unexpected": 0, "wrong": 0},
          counts)
    check(st.total == n and st.succeeded == n, st)
    check(len(p.instances) >= 2, "Acks carry ventilator_instance")


def test_acknowledged_lines_survive_ventilator_kills():
    """The same kills with batches of lines (TaskBatch.lines, what zpipe
    submit sends). A line taken and acknowledged becomes a task only when
    a worker has credit for it (vent_lines), so with the workers stopped
    (SIGSTOP) lines stay lines once the ventilator is restarted: it is
    killed right after three Acks, once with a batch of lines on its way
    (sent again under its number), and after the close, each time holding
    thousands of lines that are not tasks yet; every fourth batch is whole
    tasks, coming after lines still waiting. Then the workers go on. Each
    acknowledged line must come back once, right."""
    s = Service()
    # Under the hold limit: stopped workers say no hello to a restarted
    # ventilator, whose limit is then 8,192 (no windows). After the first
    # kill no worker has credit there, so every later line stays a line.
    n, batch = 8000, 500
    p = Producer(s.intake, "sha256", "lines-1")
    for w in s.workers:
        w.send_signal(signal.SIGSTOP)
    kills = sorted(random.sample(range(1, n // batch - 1), 3))
    payloads = {}
    try:
        for k in range(n // batch):
            chunk = [b"line %d" % (k * batch + i) for i in range(batch)]
            lines = k % 4 != 3
            if k == kills[1]:
                p.sock.send(p.batch(p.seq + 1, chunk, lines).SerializeToString())
                time.sleep(random.random() * 0.01)
                s.kill_ventilator()
                s.start_ventilator()
            first, accepted = p.send(chunk, lines)
            _keep(payloads, k, first, accepted, chunk)
            if k in kills:
                s.kill_ventilator()
                s.start_ventilator()
        p.close(n)
        s.kill_ventilator()
        s.start_ventilator()
    finally:
        for w in s.workers:
            w.send_signal(signal.SIGCONT)
    st = _status(s.control, "lines-1")
    counts = _count(s.control, "lines-1", payloads)
    print("8,000 lines (every fourth batch whole tasks), workers stopped, "
          "ventilator killed after batches %s and after the close: %s"
          % (kills, counts))
    check(counts == {"lost": 0, "duplicated": 0, "unexpected": 0, "wrong": 0},
          counts)
    check(st.total == n and st.succeeded == n, st)


def test_resends_are_taken_once_and_ids_never_reused():
    s = Service()
    p = Producer(s.intake, "sha256", "idem-1")
    first, accepted = p.send([b"a", b"b", b"c"])
    # The same batch again (its Ack was "lost"), from another connection
    # holding the job's token: the same ids, nothing new.
    q = Producer(s.intake, "sha256", "idem-1", token=p.token)
    q.seq = 0
    again = q.send([b"a", b"b", b"c"])
    check(again == (first, accepted), "resent batch: %r vs %r" %
          (again, (first, accepted)))
    check(q.open_ack.sink_instance != "", "intake Acks name the sink")
    # A batch out of order is refused with the one expected.
    m = zpipe_pb2.Message()
    m.task_batch.job_id, m.task_batch.seq = "idem-1", 5
    m.task_batch.tasks.add(payload=b"x")
    p.sock.send(m.SerializeToString())
    check(p.sock.poll(5000), "answer to a batch out of order")
    a = zpipe_pb2.Message.FromString(p.sock.recv()).ack
    check(not a.ok and a.seq == 2 and "send again from batch 2" in a.error, a)
    p.close(3)
    _status(s.control, "idem-1")
    # Closing again after the end is fine.
    p.close(3)
    # The ventilator restarted from its journal still knows the id.
    s.kill_ventilator()
    s.start_ventilator()
    try:
        Producer(s.intake, "sha256", "idem-1", token="another")
        check(False, "a reused job id was taken")
    except RuntimeError as e:
        check("already used" in str(e) or "in use" in str(e), str(e))
    again = Producer(s.intake, "sha256", "idem-1", token=p.token)
    check(again.open_ack.ok, "the job's own open again is answered")
    counts = _count(s.control, "idem-1", {first + i: d for i, d in
                                          enumerate([b"a", b"b", b"c"])})
    check(counts == {"lost": 0, "duplicated": 0, "unexpected": 0, "wrong": 0},
          counts)


def _done_now(control, job):
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(control)
    m = zpipe_pb2.Message()
    m.status_request.job_id = job
    s.send(m.SerializeToString())
    done = zpipe_pb2.Message.FromString(s.recv()).job_status.done \
        if s.poll(5000) else -1
    s.close()
    return done


def test_whole_cluster_killed_resumes_by_itself():
    s = Service(plugins=("spin",))
    n, batch = 4000, 500
    p = Producer(s.intake, "spin", "whole-1")
    payloads = {}
    for k in range(n // batch):
        chunk = [b"300"] * batch  # 300 us each: 0.6 s of work on 2 workers
        first, _ = p.send(chunk)
        payloads.update({first + i: d for i, d in enumerate(chunk)})
    p.close(n)
    before = 0
    while before < 200:
        before = _done_now(s.control, "whole-1")
        time.sleep(0.02)
    s.kill_all()
    check(before < n // 2, "killed with %d of %d done" % (before, n))
    s.restart_all()
    st = _status(s.control, "whole-1")
    counts = _count(s.control, "whole-1", payloads, expect=bytes.decode)
    print("4,000 tasks, whole cluster killed with %d done: %s"
          % (before, counts))
    check(counts == {"lost": 0, "duplicated": 0, "unexpected": 0, "wrong": 0},
          counts)
    check(st.succeeded == n, st)


def _wait_log(path, needle, count, timeout_s=30):
    """Waits until the log at path holds needle count times; the time."""
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        with open(path, "rb") as f:
            if f.read().count(needle) >= count:
                return time.monotonic()
        time.sleep(0.005)
    raise AssertionError("%r not seen %d times in %s" % (needle, count, path))


def test_recovery_time_after_ventilator_kills():
    """SIGKILLed 5 times at random moments of a running job: the time from
    the restart to its first task dispatched again, p50 and max."""
    s = Service(plugins=("spin",))
    n, batch = 12000, 1000
    p = Producer(s.intake, "spin", "recover-1")
    payloads = {}
    for k in range(n // batch):
        first, _ = p.send([b"400"] * batch)  # 2.4 s of work on 2 workers
        payloads.update({first + i: b"400" for i in range(batch)})
    p.close(n)
    log = [x for x in s.logs if x.endswith("ventilator.log")][0]
    needle = b"dispatching the resumed jobs' tasks again"
    times = []
    for k in range(5):
        time.sleep(random.uniform(0.05, 0.3))
        s.kill_ventilator()
        t0 = time.monotonic()
        s.start_ventilator()
        times.append(_wait_log(log, needle, 1) - t0)
    st = _status(s.control, "recover-1")
    counts = _count(s.control, "recover-1", payloads, expect=bytes.decode)
    times.sort()
    print("recovery after 5 ventilator kills (restart to first dispatch): "
          "p50 %.0f ms, max %.0f ms; %s" % (times[2] * 1000, times[-1] * 1000,
                                           counts))
    check(counts == {"lost": 0, "duplicated": 0, "unexpected": 0, "wrong": 0},
          counts)
    check(st.succeeded == n, st)
    check(times[-1] < 5.0, "recovery took %.1f s" % times[-1])


def test_sink_away_longer_than_the_lease_blames_no_worker():
    """The sink SIGKILLed mid-job and back 3 s later, with 1 s leases: the
    leases expire three times over with no commits from anyone. No worker
    is quarantined for it (the sink's absence is not theirs), no task
    fails, and every task has exactly one record."""
    os.environ["ZPIPE_LEASE_MS"] = "1000"
    try:
        s = Service(workers=3, plugins=("spin",))
    finally:
        del os.environ["ZPIPE_LEASE_MS"]
    n, batch = 6000, 500
    p = Producer(s.intake, "spin", "away-1")
    payloads = {}
    for k in range(n // batch):
        chunk = [b"%d" % (200 + (k * batch + i) % 7) for i in range(batch)]
        first, _ = p.send(chunk)
        payloads.update({first + i: c for i, c in enumerate(chunk)})
        if k == 3:  # tasks in flight: the sink goes away
            s.sink.send_signal(signal.SIGKILL)
            s.sink.wait()
            time.sleep(3)
            s.sink = start(list(s.sink.args), stderr=s._log("sink"))
    p.close(n)
    st = _status(s.control, "away-1")
    counts = _count(s.control, "away-1", payloads,
                    expect=lambda b: b.decode())
    with open(os.path.join(s.dir, "ventilator.log")) as f:
        vlog = f.read()
    print("    %d tasks, sink away 3 s with 1 s leases: %r; failed %d; "
          "workers quarantined: %d" % (n, counts, st.failed,
                                       vlog.count("quarantined for")))
    check(counts == {"lost": 0, "duplicated": 0, "unexpected": 0, "wrong": 0},
          counts)
    check(st.failed == 0, "tasks failed: %d" % st.failed)
    check("quarantined for" not in vlog, "a worker was blamed for the sink")


if __name__ == "__main__":
    zptest.main([
        test_acknowledged_tasks_survive_ventilator_kills,
        test_acknowledged_lines_survive_ventilator_kills,
        test_resends_are_taken_once_and_ids_never_reused,
        test_whole_cluster_killed_resumes_by_itself,
        test_recovery_time_after_ventilator_kills,
        test_sink_away_longer_than_the_lease_blames_no_worker,
    ])
