"""--events: the ventilator and the sink publish what happens in the cluster
(proto Event) on PUB sockets; one SUB connected to both sees workers join,
leave and die, jobs open, close and finish, and every failed, retried and
quarantined task, with nothing lost (seq has no gap) and each event once."""
import collections
import json
import os
import signal
import subprocess
import sys
import time

import zptest
from zptest import binary, check, start

sys.path.insert(0, os.path.join(zptest.SOURCE, "examples", "python"))
import events  # noqa: E402  (the example is the client under test)
import producer  # noqa: E402

FAIL = os.path.join(zptest.FIXTURES, "fx_fail.so")
POISON = os.path.join(zptest.FIXTURES, "fx_poison.so")


class EventCluster(zptest.Cluster):
    """A sink and a ventilator (intake, no file job) with --events; a SUB
    on both, connected before anything happens."""

    def __init__(self):
        d = zptest.tmpdir()
        self.sink_events = "ipc://%s/sink-events" % d
        self.vent_events = "ipc://%s/vent-events" % d
        super().__init__(sink_args=("--events", self.sink_events))
        self.intake = "ipc://%s/intake" % self.dir
        self.vent = start([binary("zpipe-ventilator"), "--intake", self.intake,
                           "--bind", self.dispatch, "--sink", self.control,
                           "--events", self.vent_events, "--max-attempts", "3",
                           "--heartbeat-timeout-ms", "1500"],
                          stderr=self._log("ventilator"))
        self.sub = events.Events([(self.vent_events, None),
                                  (self.sink_events, None)])
        check(self.sub.wait_connected(), "SUB not connected to both")
        self.seen = []

    def until(self, pred, what, timeout=60):
        """Receives events until pred(all seen so far) holds."""
        end = time.monotonic() + timeout
        while not pred(self.seen):
            left = end - time.monotonic()
            check(left > 0, "no %s in %.0f s; saw %r" % (
                what, timeout, collections.Counter(t for t, _ in self.seen)))
            got = self.sub.recv(int(left * 1000))
            if got:
                self.seen.append(got)

    def kinds(self, kind, **match):
        return [e for t, e in self.seen if t == kind and all(
            getattr(e, k) == v for k, v in match.items())]

    def submit(self, plugin, payloads):
        p = producer.Producer(self.intake, plugin)
        p.send(payloads)
        p.close()
        return p.job_id


def test_a_job_with_failures_retries_and_poison():
    c = EventCluster()
    c.worker(plugins=(FAIL, POISON), name="wa")
    c.worker(plugins=(FAIL, POISON), name="wb")
    c.until(lambda s: len(c.kinds("worker_joined")) == 2, "worker_joined x2")
    for w in c.kinds("worker_joined"):
        check(w.source == "ventilator" and w.pid > 0 and w.host and
              "fx_fail" in w.plugin.split(",") and w.count > 0,
              "worker_joined %r" % w)
    check(sorted(w.worker_id for w in c.kinds("worker_joined")) ==
          ["wa", "wb"], "joined ids")

    # 2,000 tasks: 20 fail for good, 6 fail retryably on every attempt.
    n, fails, retries = 2000, set(range(100, 2000, 100)) | {7}, \
        set(range(50, 2000, 333))
    payloads = [b"fail-%d" % i if i in fails else b"retry-%d" % i
                if i in retries else b"ok-%d" % i for i in range(n)]
    job = c.submit("fx_fail", payloads)
    # The ventilator's job_closed may come after the sink's job_done.
    c.until(lambda s: c.kinds("job_done", job_id=job) and
            c.kinds("job_closed", job_id=job), "job_done and job_closed")
    done, = c.kinds("job_done", job_id=job)
    check((done.source, done.count, done.succeeded, done.failed) ==
          ("sink", n, n - len(fails) - len(retries),
           len(fails) + len(retries)), "job_done %r" % done)
    opened = c.kinds("job_opened", job_id=job)
    closed = c.kinds("job_closed", job_id=job)
    check(len(opened) == 1 and opened[0].plugin == "fx_fail",
          "job_opened %r" % opened)
    check(len(closed) == 1 and closed[0].count == n, "job_closed %r" % closed)
    order = [t for t, e in c.seen if e.job_id == job and t.startswith("job_")]
    check(order == ["job_opened", "job_closed", "job_done"] or
          order == ["job_opened", "job_done", "job_closed"], "order %r" % order)

    failed = c.kinds("task_failed", job_id=job)
    check(collections.Counter(e.task_id for e in failed) ==
          collections.Counter(fails | retries), "task_failed ids %r" %
          sorted(e.task_id for e in failed))
    for e in failed:
        want = (3, "plugin_retry") if e.task_id in retries else (1,
                                                                "plugin_error")
        check((e.attempt, e.cause) == want and "asked to fail" in e.detail
              and e.worker_id in ("wa", "wb") and e.source == "sink",
              "task_failed %r" % e)
    # The sink's retries (a retryable failure); under load the ventilator
    # may add its own when a lease runs out (cause lease_expired).
    retried = c.kinds("task_retried", job_id=job, source="sink")
    check(sorted((e.task_id, e.attempt) for e in retried) ==
          sorted((t, a) for t in retries for a in (1, 2)),
          "task_retried %r" % sorted((e.task_id, e.attempt) for e in retried))
    check(all(e.cause == "plugin_retry" for e in retried), "retry causes")

    # A poison job: payloads 97, 194 and 291 crash their executor 3 times
    # (and multiples of 101, which would loop, are left out).
    job2 = c.submit("fx_poison", [b"%d" % (v if v % 101 else 1)
                                  for v in range(1, 301)])
    c.until(lambda s: c.kinds("job_done", job_id=job2), "job_done (poison)")
    q = c.kinds("task_quarantined", job_id=job2)
    check(sorted(e.task_id for e in q) == [96, 193, 290] and
          all(e.cause == "SIGSEGV" and e.attempt == 3 and
              "quarantined" in e.detail for e in q), "quarantined %r" % q)
    check(not c.kinds("task_failed", job_id=job2), "poison also task_failed")
    check(len(c.kinds("task_retried", job_id=job2, source="sink")) == 6,
          "poison retries %r" % c.kinds("task_retried", job_id=job2))
    check(all(e.cause in ("lease_expired", "worker_lost") for e in
              c.kinds("task_retried", source="ventilator")),
          "ventilator retries %r" % c.kinds("task_retried", source="ventilator"))

    # Workers leave (SIGTERM: bye) and die (SIGKILL).
    wa = [p for p in zptest._procs if "wa" in p.args][0]
    wb = [p for p in zptest._procs if "wb" in p.args][0]
    wa.send_signal(signal.SIGTERM)
    c.until(lambda s: c.kinds("worker_left"), "worker_left")
    wb.send_signal(signal.SIGKILL)
    c.until(lambda s: c.kinds("worker_dead"), "worker_dead")
    left, = c.kinds("worker_left")
    dead, = c.kinds("worker_dead")
    check(left.worker_id == "wa" and dead.worker_id == "wb" and dead.detail,
          "left %r dead %r" % (left, dead))

    # Nothing lost and every source numbered from 1 without a gap, under
    # one instance per publisher process.
    for src in ("ventilator", "sink"):
        seqs = [e.seq for _, e in c.seen if e.source == src]
        check(seqs == list(range(1, len(seqs) + 1)), "%s seq %r" % (src, seqs))
        inst = {e.instance for _, e in c.seen if e.source == src}
        check(len(inst) == 1 and inst.pop().startswith(src + "-"),
              "%s instances %r" % (src, inst))
    check(c.sub.lost == 0, "lost %d" % c.sub.lost)
    check(all(t == events.as_dict(e)["kind"] for t, e in c.seen),
          "topics match kinds")
    print("    %d events: %r" % (len(c.seen), dict(
        collections.Counter(t for t, _ in c.seen))))


def test_topic_prefix_filters():
    c = EventCluster()
    only = events.Events([(c.vent_events, None), (c.sink_events, None)],
                         topics=("job_", "worker_joined"))
    check(only.wait_connected(), "filtered SUB not connected")
    c.worker(plugins=(FAIL,), name="w")
    got = [only.recv(20000)]
    check(got[0] and got[0][0] == "worker_joined", "first %r" % got)
    # With the subscription surely live: a job with failures.
    job = c.submit("fx_fail", [b"fail" if i % 10 == 0 else b"x"
                               for i in range(100)])
    # job_closed (ventilator) may arrive after job_done (sink).
    end = time.monotonic() + 30
    while len(got) < 4 and time.monotonic() < end:
        e = only.recv(1000)
        if e:
            got.append(e)
    topics = [t for t, _ in got[1:]]
    check(topics in (["job_opened", "job_closed", "job_done"],
                     ["job_opened", "job_done", "job_closed"]),
          "job_ topics only: %r" % topics)
    check(all(e.job_id == job for _, e in got[1:]), "job ids")
    check([e.failed for t, e in got if t == "job_done"] == [10], "failed count")
    only.close()


def test_zpipe_events_prints_json_and_text():
    c = EventCluster()
    base = [binary("zpipe"), "events", "--ventilator", c.vent_events,
            "--sink", c.sink_events, "--topic", "worker_", "--topic", "job_",
            "--count", "5"]
    js = start(base, stdout=subprocess.PIPE)
    tx = start(base + ["--format", "text"], stdout=subprocess.PIPE)
    time.sleep(1.5)  # their subscriptions reach both publishers
    w = c.worker(plugins=(FAIL,), name="cli")
    job = c.submit("fx_fail", [b"fail" if i % 4 == 0 else b"x"
                               for i in range(200)])
    c.until(lambda s: c.kinds("job_done", job_id=job), "job_done")
    w.send_signal(signal.SIGTERM)
    out, _ = js.communicate(timeout=30)
    check(js.returncode == 0, "zpipe events exit %d" % js.returncode)
    recs = [json.loads(l) for l in out.decode().splitlines()]
    kinds = [r["kind"] for r in recs]
    check(sorted(kinds) == sorted(["worker_joined", "job_opened",
                                   "job_closed", "job_done", "worker_left"]),
          "json kinds %r" % kinds)
    done = [r for r in recs if r["kind"] == "job_done"][0]
    check((done["job_id"], done["count"], done["succeeded"], done["failed"])
          == (job, 200, 150, 50), "job_done %r" % done)
    check(all(r["instance"].startswith(r["source"] + "-") for r in recs),
          "instances %r" % [r["instance"] for r in recs])
    joined = [r for r in recs if r["kind"] == "worker_joined"][0]
    check(joined["worker_id"] == "cli" and joined["pid"] > 0 and
          joined["source"] == "ventilator", "worker_joined %r" % joined)
    out, _ = tx.communicate(timeout=30)
    lines = out.decode().splitlines()
    check(tx.returncode == 0 and len(lines) == 5, "text %r" % lines)
    check(any(" job_done " in l and "succeeded=150 failed=50" in l
              for l in lines), "text job_done %r" % lines)
    # Nothing more comes: --timeout-ms ends it with 1.
    r = zptest.run([binary("zpipe"), "events", "--sink", c.sink_events,
                    "--timeout-ms", "500"], capture_output=True, timeout=30)
    check(r.returncode == 1 and not r.stdout, "timeout: %d %r" % (
        r.returncode, r.stdout))
    r = zptest.run([binary("zpipe"), "events"], capture_output=True,
                   timeout=30)
    check(r.returncode == 2 and b"--ventilator" in r.stderr, "no endpoint")


def test_a_restarted_daemon_is_a_new_instance():
    c = EventCluster()
    c.worker(plugins=(FAIL,), name="w")
    job = c.submit("fx_fail", [b"x"] * 50)
    c.until(lambda s: c.kinds("job_done", job_id=job), "job_done")
    first, = c.kinds("job_done", job_id=job)
    zptest.stop(c.sink)
    c.sink = start(c.sink.args, stderr=c._log("sink-2"))
    # The SUB reconnects by itself; what the new sink publishes before that
    # is not seen. Small jobs until one's job_done arrives.
    second = None
    for _ in range(20):
        j = c.submit("fx_fail", [b"fail"] * 5)
        try:
            c.until(lambda s: c.kinds("job_done", job_id=j), "job_done", 3)
        except AssertionError:
            continue
        second, = c.kinds("job_done", job_id=j)
        break
    check(second is not None, "no job_done from the restarted sink")
    check(second.instance != first.instance and second.failed == 5,
          "restarted sink: %r after %r" % (second, first))
    seqs = [e.seq for _, e in c.seen if e.instance == second.instance]
    check(seqs == list(range(seqs[0], seqs[0] + len(seqs))),
          "new instance's seq %r" % seqs)
    check(c.sub.lost == 0, "a restart counted as %d lost" % c.sub.lost)
    print("    sink %s -> %s: the first event seen from the new instance had "
          "seq %d (published before the SUB had reconnected), then no gap"
          % (first.instance, second.instance, seqs[0]))


def test_bad_events_endpoint_refuses_to_start():
    d = zptest.tmpdir()
    for cmd in ([binary("zpipe-sink"), "--results", "ipc://%s/r" % d,
                 "--control", "ipc://%s/c" % d, "--output", "/dev/null"],
                [binary("zpipe-ventilator"), "--intake", "ipc://%s/i" % d,
                 "--bind", "ipc://%s/d" % d, "--sink", "ipc://%s/c" % d]):
        r = zptest.run(cmd + ["--events", "nonsense://x"], capture_output=True,
                       timeout=30)
        check(r.returncode != 0 and b"nonsense://x" in r.stderr,
              "%s: exit %d: %s" % (cmd[0], r.returncode, r.stderr.decode()))


if __name__ == "__main__":
    zptest.main([test_a_job_with_failures_retries_and_poison,
                 test_topic_prefix_filters,
                 test_zpipe_events_prints_json_and_text,
                 test_a_restarted_daemon_is_a_new_instance,
                 test_bad_events_endpoint_refuses_to_start])
