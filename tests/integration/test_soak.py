"""Runs for months (issue 15): a service cluster takes 20,000 small jobs from
4 producers at once, then a flood of idle JobOpens; the file descriptors,
memory and idle CPU of every daemon stay bounded by live work, not by
history. Every job's records are counted against its input."""
import hashlib
import json
import os
import random
import threading
import time

import zmq

import zpmetrics
import zptest
from zptest import binary, check, start

import zpipe_pb2

# Under the sanitizers (several times slower, RSS inflated by ASan's
# quarantine) a smaller soak, and no RSS bound.
JOBS = int(os.environ.get("ZP_SOAK_JOBS",
                          "4000" if zptest.SANITIZED else "20000"))
IDLE_OPENS = int(os.environ.get("ZP_SOAK_IDLE",
                                "3000" if zptest.SANITIZED else "20000"))
MAX_JOBS = 5000


def _fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def _rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Soak(zptest.Cluster):
    def __init__(self):
        self.spool = zptest.tmpdir()
        super().__init__(sink_args=(
            "--spool", self.spool, "--journal",
            os.path.join(self.spool, "sink.journal"), "--publish", "none",
            "--metrics", "127.0.0.1:0"))
        self.intake = "ipc://%s/intake" % self.dir
        self.vent = start([binary("zpipe-ventilator"), "--intake", self.intake,
                           "--bind", self.dispatch, "--sink", self.control,
                           "--journal", os.path.join(self.dir, "vent.journal"),
                           "--max-jobs", str(MAX_JOBS),
                           "--no-worker-timeout-ms", "0"],
                          stderr=self._log("ventilator"))
        self.workers = [self.worker(plugins=("sha256",)) for _ in range(2)]

    def sample(self):
        procs = {"sink": self.sink, "ventilator": self.vent,
                 "worker": self.workers[0]}
        return {name: (_fds(p.pid), _rss_kib(p.pid))
                for name, p in procs.items()}


def _ask(sock, m, match):
    """Sends m until an Ack matching it comes; returns it."""
    data = m.SerializeToString()
    for _ in range(120):
        sock.send(data)
        if sock.poll(1000):
            while sock.poll(0):
                a = zpipe_pb2.Message.FromString(sock.recv()).ack
                if match(a):
                    return a
    raise AssertionError("no answer")


def _producer(intake, prefix, count, done, errors):
    """count jobs of 10 tasks each, one after the other."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(intake)
    try:
        for k in range(count):
            job = "%s-%d" % (prefix, k)
            m = zpipe_pb2.Message()
            m.job_open.job_id, m.job_open.plugin = job, "sha256"
            m.job_open.token = "t-" + job
            a = _ask(sock, m, lambda a: a.job_id == job)
            if not a.ok:
                raise AssertionError("open %s refused: %s" % (job, a.error))
            m = zpipe_pb2.Message()
            m.task_batch.job_id, m.task_batch.seq = job, 1
            for i in range(10):
                m.task_batch.tasks.add(payload=b"%s/%d" % (job.encode(), i))
            a = _ask(sock, m, lambda a: a.job_id == job and a.seq == 1)
            check(a.ok and a.first_task_id == 0 and a.accepted == 10, a)
            m = zpipe_pb2.Message()
            m.job_close.job_id, m.job_close.total = job, 10
            _ask(sock, m, lambda a: a.job_id == job and a.accepted == 10)
            done.append(job)
    except Exception as e:  # reported by the test
        errors.append(e)
    finally:
        sock.close()


def _wait_done(control, jobs, timeout_s=300):
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(control)
    t_end = time.monotonic() + timeout_s
    pending = list(jobs)
    try:
        while pending and time.monotonic() < t_end:
            job = pending[-1]
            m = zpipe_pb2.Message()
            m.status_request.job_id = job
            s.send(m.SerializeToString())
            if s.poll(2000):
                st = zpipe_pb2.Message.FromString(s.recv()).job_status
                if st.state == zpipe_pb2.JOB_DONE:
                    check(st.total == 10 and st.succeeded == 10, st)
                    pending.pop()
                    continue
            time.sleep(0.05)
    finally:
        s.close()
    check(not pending, "%d jobs not done" % len(pending))


def test_twenty_thousand_jobs_then_idle_opens():
    c = Soak()
    done, errors = [], []
    per = JOBS // 4
    threads = [threading.Thread(target=_producer,
                                args=(c.intake, "p%d" % k, per, done, errors))
               for k in range(4)]
    for t in threads:
        t.start()
    samples = {}
    marks = [1000, JOBS // 4, JOBS // 2, 3 * JOBS // 4]
    while any(t.is_alive() for t in threads):
        if marks and len(done) >= marks[0]:
            samples[marks.pop(0)] = c.sample()
        time.sleep(0.05)
    for t in threads:
        t.join()
    check(not errors, errors[:3])
    _wait_done(c.control, done)
    samples[JOBS] = c.sample()
    # Every record against its input, from the sink's one output file.
    seen, dup, wrong, unexpected = set(), 0, 0, 0
    with open(c.output) as f:
        for line in f:
            rec = json.loads(line)
            key = (rec["job"], rec["task"])
            if key in seen:
                dup += 1
                continue
            seen.add(key)
            if not rec["job"].startswith("p") or not 0 <= rec["task"] < 10:
                unexpected += 1
            elif rec["output"] != hashlib.sha256(
                    b"%s/%d" % (rec["job"].encode(), rec["task"])).hexdigest():
                wrong += 1
    lost = JOBS * 10 - len(seen)
    print("%d jobs of 10 tasks from 4 producers: lost %d, duplicated %d, "
          "unexpected %d, wrong %d" % (JOBS, lost, dup, unexpected, wrong))
    check((lost, dup, unexpected, wrong) == (0, 0, 0, 0), "records")
    # The jobs the sink holds whole: the retention's 1,000 finished ones,
    # not its history (the rest kept as counts).
    url = zpmetrics.metrics_url(c.logs[0])
    time.sleep(1.5)  # a metrics render after the last job
    _, m = zpmetrics.parse(zpmetrics.fetch(url))
    held = zpmetrics.value(m, "zpipe_jobs")
    gone = zpmetrics.value(m, "zpipe_sink_jobs_forgotten")
    print("sink holds %d jobs whole, %d forgotten" % (held, gone))
    check(held <= 1000 and held + gone == JOBS,
          "jobs held %d, forgotten %d" % (held, gone))
    for mark in sorted(samples):
        print("  after %5d jobs: %s" % (mark, "; ".join(
            "%s %d fds %d MiB" % (n, fd, rss // 1024)
            for n, (fd, rss) in sorted(samples[mark].items()))))
    first, last = samples[1000], samples[JOBS]
    for name in first:
        check(last[name][0] <= first[name][0] + 4,
              "%s's fds grew: %d -> %d" % (name, first[name][0], last[name][0]))
        check(zptest.SANITIZED or last[name][1] <= first[name][1] + 8 * 1024,
              "%s's RSS grew: %d -> %d KiB" % (name, first[name][1],
                                               last[name][1]))

    # The first job's id, thousands of jobs later, for another job: refused
    # (the ring of 4,096 remembered ids once let it through).
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(c.intake)
    m = zpipe_pb2.Message()
    m.job_open.job_id, m.job_open.plugin = "p0-0", "sha256"
    m.job_open.token = "someone-else"
    a = _ask(sock, m, lambda a: a.job_id == "p0-0")
    check(not a.ok and "already used" in a.error,
          "job p0-0 reused after %d jobs: %s" % (JOBS, a))
    m.job_open.token = "t-p0-0"  # its own open, sent again: answered
    a = _ask(sock, m, lambda a: a.job_id == "p0-0")
    check(a.ok, "the first job's own open again: %s" % a)
    sock.close()

    # Idle opens from one producer: bounded by --max-jobs, the rest refused
    # with a reason, the cluster idle afterwards, and a real job still runs.
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(c.intake)
    taken = refused = 0
    reasons = set()
    t0 = time.monotonic()
    for k in range(IDLE_OPENS):
        m = zpipe_pb2.Message()
        m.job_open.job_id, m.job_open.plugin = "idle-%d" % k, "sha256"
        m.job_open.token = "idle-%d" % k
        a = _ask(sock, m, lambda a: a.job_id == "idle-%d" % k)
        if a.ok:
            taken += 1
        else:
            refused += 1
            reasons.add(a.error.split(" (")[0])
    opening = time.monotonic() - t0
    print("%d idle opens in %.1f s: %d taken, %d refused (%s)" % (
        IDLE_OPENS, opening, taken, refused, "; ".join(sorted(reasons))))
    check(taken <= 1000 and refused == IDLE_OPENS - taken, "bounded")
    time.sleep(1.0)
    cpu0 = {n: _cpu_s(p.pid) for n, p in
            (("sink", c.sink), ("ventilator", c.vent))}
    time.sleep(5.0)
    idle = {n: (_cpu_s(p.pid) - cpu0[n]) / 5.0 for n, p in
            (("sink", c.sink), ("ventilator", c.vent))}
    after = c.sample()
    print("idle with %d open jobs: CPU %s; %s" % (taken, ", ".join(
        "%s %.1f %%" % (n, 100 * x) for n, x in sorted(idle.items())),
        "; ".join("%s %d fds %d MiB" % (n, fd, rss // 1024)
                  for n, (fd, rss) in sorted(after.items()))))
    for n, x in idle.items():
        check(x < 0.03, "%s idles at %.1f %% of a core" % (n, 100 * x))
    # A job after them all runs to the end.
    t0 = time.monotonic()
    _producer(c.intake, "after", 1, done, errors)
    _wait_done(c.control, ["after-0"], timeout_s=60)
    print("a job after them: done in %.2f s" % (time.monotonic() - t0))
    sock.close()


if __name__ == "__main__":
    zptest.main([test_twenty_thousand_jobs_then_idle_opens])
