"""A sink that runs for months (issue 15, item 6): file descriptors, memory
and idle CPU bounded by live work, not by history.

The test is the ventilator and the workers itself: it opens jobs on the
sink's control socket, pushes each job's results to its results socket,
closes them, and fetches every record back with ResultsRequest. The sink
runs with --spool (its output: no --output) and --journal under a limit
of 256 open files (it used
to die after 236 spooled jobs, and again when restarted from its
journal). Then it is SIGKILLed and restarted with the same flags, and
every record must still be there, exactly. Last, many idle jobs are
opened and the sink must use no measurable CPU while nothing happens.

Lost, duplicated and wrong records are counted against what was pushed.
Figures (fds, RSS, CPU) are printed; the assertions are bounds that the
old sink failed by far, not timings."""
import collections
import json
import os
import resource
import signal
import subprocess
import time

import zptest
from zptest import binary, check

FD_LIMIT = 256
JOBS = int(os.environ.get("ZP_SOAK_JOBS", "1000"))
TASKS = 10
# 100,000 idle opens take about 4 s here (2 shared cores); fewer under
# the sanitizers, which slow the sink several times.
IDLE_JOBS = int(os.environ.get("ZP_SOAK_IDLE",
                               "20000" if zptest.SANITIZED else "100000"))
FD_BOUND = 100
# Bytes of RSS a finished job, and an idle open job, may cost (the sink
# used to keep about 41 KB and 35 KB); not checked under the sanitizers,
# whose allocator keeps freed memory.
DONE_JOB_BYTES = 8192
IDLE_JOB_BYTES = 4096
WINDOW = 500  # requests in flight on the control socket


def _limit_fds():
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


class Sink:
    """zpipe-sink with --spool and --journal under the fd limit."""

    def __init__(self):
        self.dir = zptest.tmpdir()
        self.spool = os.path.join(self.dir, "spool")
        os.mkdir(self.spool)
        self.results = "ipc://%s/results" % self.dir
        self.control = "ipc://%s/control" % self.dir
        self.log_path = os.path.join(self.dir, "sink.log")
        self.p = None

    def start(self):
        args = [binary("zpipe-sink"), "--results", self.results, "--control",
                self.control, "--publish", "none", "--journal",
                os.path.join(self.dir, "journal"), "--spool", self.spool,
                "--metrics", "127.0.0.1:0"]
        log = open(self.log_path, "ab")
        self.p = subprocess.Popen(args, stderr=log, preexec_fn=_limit_fds)
        log.close()
        zptest._procs.append(self.p)

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.p.pid))

    def rss_kib(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_ticks(self):
        with open("/proc/%d/stat" % self.p.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    def alive(self):
        return self.p.poll() is None

    def tail(self):
        zptest.dump_logs([self.log_path])


class Peer:
    """Two DEALERs on the control socket, and a PUSH on the results socket.
    The opener opens and closes jobs, and so also gets what the sink tells
    a job's opener unasked (Committed, and JobStatus when a job is done);
    the other only asks (status, records) and gets only answers."""

    def __init__(self, zmq, pb, sink):
        self.pb = pb
        self.sink = sink
        self.ctx = zmq.Context()
        self.opener = self.ctx.socket(zmq.DEALER)
        self.opener.connect(sink.control)
        self.asker = self.ctx.socket(zmq.DEALER)
        self.asker.connect(sink.control)
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.connect(sink.results)
        self.unasked = collections.Counter()

    def close(self):
        for s in (self.opener, self.asker, self.push):
            s.close(linger=0)
        self.ctx.term()

    def calls(self, msgs, timeout_ms=30000):
        """Sends msgs in windows, returns the replies (one per message, in
        order: the sink answers one connection in order). JobOpen and
        JobClose go on the opener: other kinds than Ack are counted there,
        not returned."""
        sock = self.asker
        if msgs and msgs[0].WhichOneof("kind") in ("job_open", "job_close"):
            sock = self.opener
        out = []
        for i in range(0, len(msgs), WINDOW):
            part = msgs[i:i + WINDOW]
            for m in part:
                sock.send(m.SerializeToString())
            got = 0
            while got < len(part):
                check(sock.poll(timeout_ms), "no answer from the sink%s" %
                      ("" if self.sink.alive() else
                       " (it exited: %s)" % self.sink.p.returncode))
                r = self.pb.Message.FromString(sock.recv())
                if sock is self.opener and r.WhichOneof("kind") != "ack":
                    self.unasked[r.WhichOneof("kind")] += 1
                    continue
                out.append(r)
                got += 1
        return out

    def open_msg(self, job):
        m = self.pb.Message()
        m.job_open.job_id = job
        m.job_open.plugin = "echo"
        m.job_open.token = "token-" + job
        return m

    def close_msg(self, job, total):
        m = self.pb.Message()
        m.job_close.job_id = job
        m.job_close.total = total
        return m

    def status_msg(self, job):
        m = self.pb.Message()
        m.status_request.job_id = job
        return m

    def push_results(self, job, tasks):
        m = self.pb.Message()
        b = m.result_batch
        b.job_id = job
        b.worker_id = "soak-worker"
        for t in tasks:
            r = b.results.add()
            r.task_id = t
            r.status = self.pb.STATUS_OK
            r.output = _payload(job, t)
            r.attempt = 1
        self.push.send(m.SerializeToString())

    def fetch_all(self, job):
        """Every record of job, by cursor, until the sink says done."""
        cursor, recs = 0, []
        for _ in range(100):
            m = self.pb.Message()
            m.results_request.job_id = job
            m.results_request.cursor = cursor
            ch = self.calls([m])[0].results_chunk
            check(not ch.error, "fetch %s: %s" % (job, ch.error))
            recs += [json.loads(l) for l in ch.records.decode().splitlines()]
            cursor = ch.next_cursor
            if ch.done:
                return recs
        raise AssertionError("fetch %s never ended" % job)


def _payload(job, task):
    return ("%s/%d" % (job, task)).encode()


def _job(i):
    return "soak-%05d" % i


def _check_acks(replies, what):
    bad = [r.ack if r.HasField("ack") else r for r in replies
           if not r.HasField("ack") or not r.ack.ok]
    check(not bad, "%d %s refused, first: %r" % (len(bad), what,
                                                   bad[0].error if bad else ""))


def _wait_done(peer, jobs, timeout=120):
    end = time.monotonic() + timeout
    left = list(jobs)
    while left and time.monotonic() < end:
        sts = peer.calls([peer.status_msg(j) for j in left])
        left = [j for j, r in zip(left, sts) if r.job_status.state != 3]
        if left:
            time.sleep(0.2)
    check(not left, "%d jobs never done, e.g. %s" % (len(left), left[:3]))


def _check_records(peer, jobs):
    """Fetches every job's records; returns (lost, duplicated, wrong)."""
    lost = dup = wrong = 0
    for j in jobs:
        recs = peer.fetch_all(j)
        count = collections.Counter(r["task"] for r in recs)
        lost += sum(1 for t in range(TASKS) if count[t] == 0)
        dup += sum(k - 1 for k in count.values() if k > 1)
        wrong += sum(1 for r in recs
                     if r["job"] != j or r["status"] != "ok" or
                     r["task"] >= TASKS or
                     r["output"].encode() != _payload(j, r["task"]))
    return lost, dup, wrong


def _spooled_jobs(sink, peer, fds, rss):
    """JOBS jobs of TASKS results each, in rounds of 100: open, push the
    first half of every job's results then the second (100 spools written
    at once, more than the sink keeps open), close, wait; fds and RSS
    sampled after each round."""
    for start in range(0, JOBS, 100):
        jobs = [_job(i) for i in range(start, min(start + 100, JOBS))]
        _check_acks(peer.calls([peer.open_msg(j) for j in jobs]), "opens")
        for half in (range(TASKS // 2), range(TASKS // 2, TASKS)):
            for j in jobs:
                peer.push_results(j, half)
        _check_acks(peer.calls([peer.close_msg(j, TASKS) for j in jobs]),
                    "closes")
        _wait_done(peer, jobs)
        check(sink.alive(), "the sink died after %d jobs" % (start + 100))
        fds.append(sink.fds())
        rss.append(sink.rss_kib())


def test_spooled_jobs_fds_bounded_and_restart():
    import zmq
    import zpipe_pb2 as pb
    sink = Sink()
    sink.start()
    peer = Peer(zmq, pb, sink)
    try:
        fds, rss = [], []
        _spooled_jobs(sink, peer, fds, rss)
        print("    %d jobs of %d results: fds per 100 jobs %s" %
              (JOBS, TASKS, fds))
        per_job = (rss[-1] - rss[0]) * 1024.0 / max(1, JOBS - 100)
        print("    RSS KiB per 100 jobs %s; %.0f bytes per job after the "
              "first 100" % (rss, per_job))
        check(zptest.SANITIZED or per_job < DONE_JOB_BYTES,
              "%.0f bytes of RSS per finished job" % per_job)
        check(max(fds) < FD_BOUND, "the sink held %d fds" % max(fds))
        check(max(fds[1:] or fds) - min(fds[1:] or fds) <= 8,
              "fd count not flat: %s" % fds)
        jobs = [_job(i) for i in range(JOBS)]
        lost, dup, wrong = _check_records(peer, jobs)
        print("    fetched: lost=%d duplicated=%d wrong=%d, fds after %d" %
              (lost, dup, wrong, sink.fds()))
        check(lost == 0 and dup == 0 and wrong == 0, "records lost or wrong")
        check(sink.fds() < FD_BOUND, "fetching held %d fds" % sink.fds())

        # SIGKILL and restart from the journal, under the same limit.
        peer.close()
        peer = None
        sink.p.send_signal(signal.SIGKILL)
        sink.p.wait()
        sink.start()
        peer = Peer(zmq, pb, sink)
        _wait_done(peer, jobs[-1:], timeout=60)
        check(sink.alive(), "the restarted sink died")
        lost, dup, wrong = _check_records(peer, jobs)
        print("    after SIGKILL and restart: lost=%d duplicated=%d "
              "wrong=%d, fds %d, RSS %d KiB" %
              (lost, dup, wrong, sink.fds(), sink.rss_kib()))
        check(lost == 0 and dup == 0 and wrong == 0,
              "records lost or wrong after the restart")
        check(sink.fds() < FD_BOUND, "the restarted sink held %d fds" %
              sink.fds())
        _idle_jobs(sink, peer)
    except Exception:
        sink.tail()
        raise
    finally:
        if peer:
            peer.close()


def _idle_jobs(sink, peer):
    """IDLE_JOBS jobs opened and left idle: RSS per job, CPU over 10 s."""
    rss0 = sink.rss_kib()
    t0 = time.monotonic()
    opens = [peer.open_msg("idle-%06d" % i) for i in range(IDLE_JOBS)]
    _check_acks(peer.calls(opens, timeout_ms=60000), "idle opens")
    took = time.monotonic() - t0
    time.sleep(1.0)  # the last journal sync, a metrics render
    rss1 = sink.rss_kib()
    c0, w0 = sink.cpu_ticks(), time.monotonic()
    time.sleep(10.0)
    c1, w1 = sink.cpu_ticks(), time.monotonic()
    hz = os.sysconf("SC_CLK_TCK")
    cpu = 100.0 * (c1 - c0) / hz / (w1 - w0)
    per_job = (rss1 - rss0) * 1024.0 / max(1, IDLE_JOBS)
    print("    %d idle jobs opened in %.1f s; RSS %d -> %d KiB (%.0f bytes "
          "per idle job); idle CPU %.2f %% over %.0f s; fds %d" %
          (IDLE_JOBS, took, rss0, rss1, per_job, cpu, w1 - w0, sink.fds()))
    check(sink.alive(), "the sink died with idle jobs")
    check(zptest.SANITIZED or per_job < IDLE_JOB_BYTES,
          "%.0f bytes of RSS per idle job" % per_job)
    # Under AddressSanitizer the same idle work costs about twice the CPU
    # (0.5-0.6 % here, once 1.1 % in CI): a sink that busy-loops still
    # fails either bound by far.
    bound = 2.0 if zptest.SANITIZED else 1.0
    check(cpu < bound, "an idle sink used %.2f %% of a core (bound %.1f %%)"
          % (cpu, bound))
    check(sink.fds() < FD_BOUND, "idle jobs hold %d fds" % sink.fds())


if __name__ == "__main__":
    zptest.main([test_spooled_jobs_fds_bounded_and_restart])
