"""zpipe results --take: a consumer takes a done job's records and the sink
drops its copy (ResultsRequest.take).

Against a real cluster as a service (sink with --spool, ventilator with an
intake, two workers), 20,000 lines a job:

- on the sink's host and file system, a done job's spool file itself
  becomes the consumer's file (the same inode: nothing copied) and is gone
  from the spool directory; every record there exactly once (lost,
  duplicated, unexpected and wrong counted against the input);
- the sink then refuses the job's records, saying they were taken, and
  still tells its status; so does a sink SIGKILLed and restarted, which
  finds the file gone: never "done, no records" (what a restarted sink
  answered before for a spool file deleted under it);
- so does `zpipe submit --results FILE --take`; --take into a pipe is
  refused (a pipe cannot say the records are on disk);
- a take interrupted between the move and telling the sink, run again:
  the moved file is left whole (not cut by opening it), the sink refuses
  the records; a take run again after a take over the socket: the file
  is left whole;
- a job still running when the consumer starts is waited for (records
  already committed are not copied), then its file moved; where it
  cannot move the file (records over the socket, --direct no; stdout
  redirected to a file; another file system) it copies, syncs, and only
  then tells the sink, which deletes its file; a take of a job not done
  is refused and deletes nothing;
- a forgotten job (--retain-jobs 1) is taken the same way, and stays
  taken through a journal compaction and a restart;
- zpipe.Client's Job.take() does the same;
- a take into a full disk (a 1 MiB tmpfs, by reference and over the
  socket) fails with ENOSPC and exit 3 and the sink keeps every record,
  served and then taken whole elsewhere."""
import collections
import json
import os
import subprocess
import time

import zptest
from zptest import binary, check

N = 20000


class Service:
    """A sink with a spool, a ventilator with an intake, two echo workers;
    the sink can be killed and started again with the same flags."""

    def __init__(self, sink_args=()):
        self.spool = zptest.tmpdir()
        self.c = zptest.Cluster(output_name=None,
                                sink_args=("--spool", self.spool) +
                                tuple(sink_args))
        self.sink_args = [binary("zpipe-sink"), "--results", self.c.results,
                          "--control", self.c.control, "--publish",
                          self.c.publish, "--spool", self.spool] + \
            list(sink_args)
        self.intake = "ipc://%s/intake" % self.c.dir
        zptest.start([binary("zpipe-ventilator"), "--intake", self.intake,
                      "--bind", self.c.dispatch, "--sink", self.c.control],
                     stderr=self.c._log("ventilator"))
        self.workers = [self.c.worker(("echo", "spin")),
                        self.c.worker(("echo", "spin"))]
        self.input = os.path.join(self.c.dir, "in.txt")
        with open(self.input, "w") as f:
            f.write("".join("line-%d\n" % i for i in range(N)))

    def restart_sink(self):
        self.c.sink.kill()
        self.c.sink.wait()
        self.c.sink = zptest.start(self.sink_args,
                                   stderr=self.c._log("sink-again"))

    def sink_logs(self):
        text = ""
        for p in self.c.logs:
            if "sink" in os.path.basename(p):
                with open(p, errors="replace") as f:
                    text += f.read()
        return text

    def zpipe(self, *args, stdout=subprocess.PIPE):
        return subprocess.run([binary("zpipe")] + list(args), stdout=stdout,
                              stderr=subprocess.PIPE, timeout=120)

    def submit_args(self):
        return [binary("zpipe"), "submit", "--ventilator", self.intake,
                "--plugin", "echo", "--input", self.input]

    def submit(self):
        r = self.zpipe(*self.submit_args()[1:])
        check(r.returncode == 0, "submit failed: %r" % r.stderr)
        return r.stdout.decode().strip()

    def wait(self, job):
        r = self.zpipe("wait", "--sink", self.c.control, job)
        check(r.returncode == 0 and b"%d succeeded" % N in r.stdout,
              "wait: %r %r" % (r.stdout, r.stderr))

    def results(self, job, *args, stdout=subprocess.PIPE):
        return self.zpipe("results", "--sink", self.c.control, *args, job,
                          stdout=stdout)

    def spool_file(self, job):
        return os.path.join(self.spool, job + ".jsonl")


def _count(data, job, n=N, output=lambda i: "line-%d" % i):
    """lost, duplicated, unexpected and wrong records against the input."""
    recs = [json.loads(l) for l in data.decode().splitlines()]
    seen = collections.Counter(r["task"] for r in recs if r["job"] == job)
    lost = sum(1 for i in range(n) if seen[i] == 0)
    dup = sum(k - 1 for k in seen.values() if k > 1)
    unexpected = sum(1 for r in recs
                     if r["job"] != job or not 0 <= r["task"] < n)
    wrong = sum(1 for r in recs if r["job"] == job and 0 <= r["task"] < n
                and (r["status"] != "ok" or r["output"] != output(r["task"])))
    return lost, dup, unexpected, wrong


def _check_file(path, job, what, **kw):
    with open(path, "rb") as f:
        got = _count(f.read(), job, **kw)
    print("    %s: lost %d, duplicated %d, unexpected %d, wrong %d" %
          ((what,) + got))
    check(got == (0, 0, 0, 0), "%s: records lost, twice, unexpected or "
          "wrong: %r" % (what, got))


def _check_refused(svc, job, what):
    r = svc.results(job)
    check(r.returncode == 3 and not r.stdout and b"taken" in r.stderr,
          "%s: zpipe results of a taken job: rc %d, %d bytes, %r" %
          (what, r.returncode, len(r.stdout), r.stderr))


def test_take_moves_a_done_jobs_spool_file():
    svc = Service()
    job = svc.submit()
    svc.wait(job)
    spool = os.stat(svc.spool_file(job))
    out = os.path.join(svc.c.dir, "out.jsonl")
    r = svc.results(job, "--take", "-o", out)
    check(r.returncode == 0 and not r.stderr,
          "results --take: rc %d %r" % (r.returncode, r.stderr))
    st = os.stat(out)
    check((st.st_dev, st.st_ino) == (spool.st_dev, spool.st_ino),
          "the output is not the spool file itself (copied?)")
    check(not os.path.exists(svc.spool_file(job)),
          "the spool file is still in the spool directory")
    _check_file(out, job, "moved")
    _check_refused(svc, job, "after the take")
    again = os.path.join(svc.c.dir, "again.jsonl")
    r = svc.results(job, "--take", "-o", again)
    check(r.returncode == 3 and b"taken" in r.stderr and
          not os.path.exists(again),
          "a second take: rc %d %r" % (r.returncode, r.stderr))
    svc.wait(job)  # its status is kept
    svc.restart_sink()
    _check_refused(svc, job, "after a restart")
    svc.wait(job)
    check("spool files are gone" in svc.sink_logs(),
          "the restarted sink did not say the spool file is gone")
    _check_file(out, job, "moved, after the restart")
    # One command: submit, then the records taken.
    job = "job-submit-take"
    out = os.path.join(svc.c.dir, "submitted.jsonl")
    r = svc.zpipe(*(svc.submit_args()[1:] + [
        "--job", job, "--sink", svc.c.control, "--results", out, "--take"]))
    check(r.returncode == 0, "submit --results --take: %r" % r.stderr)
    check(not os.path.exists(svc.spool_file(job)),
          "submit --take: the spool file is still there")
    _check_file(out, job, "submit --results --take")
    _check_refused(svc, job, "after submit --take")
    r = svc.zpipe("submit", "--ventilator", svc.intake, "--plugin", "echo",
                  "--take")
    check(r.returncode == 2 and b"--take needs --results" in r.stderr,
          "--take without --results: %r" % r.stderr)
    r = svc.zpipe(*(svc.submit_args()[1:] + [
        "--sink", svc.c.control, "--results", "-", "--take"]))
    check(r.returncode == 2 and b"regular file" in r.stderr,
          "submit --results - --take into a pipe: %r" % r.stderr)


def test_an_interrupted_take_run_again_cuts_nothing():
    svc = Service()
    # Killed between the move and telling the sink: what such a run
    # leaves is the spool file renamed to FILE, the sink not told.
    job = svc.submit()
    svc.wait(job)
    r = svc.results(job)  # the sink opens the file (and keeps it open)
    check(r.returncode == 0, "results: %r" % r.stderr)
    out = os.path.join(svc.c.dir, "moved.jsonl")
    os.rename(svc.spool_file(job), out)
    r = svc.results(job, "--take", "-o", out)
    check(r.returncode == 3 and b"no longer held" in r.stderr,
          "the take run again: rc %d %r" % (r.returncode, r.stderr))
    _check_file(out, job, "moved, the take run again")
    _check_refused(svc, job, "moved away, not told")
    # A take over the socket whose answer was lost, run again: the file
    # it wrote is not opened (cut) before the sink's refusal.
    job = svc.submit()
    svc.wait(job)
    out = os.path.join(svc.c.dir, "bytes.jsonl")
    r = svc.results(job, "--take", "--direct", "no", "-o", out)
    check(r.returncode == 0, "--direct no --take: %r" % r.stderr)
    r = svc.results(job, "--take", "--direct", "no", "-o", out)
    check(r.returncode == 3 and b"taken" in r.stderr,
          "the take over the socket run again: %r" % r.stderr)
    _check_file(out, job, "over the socket, the take run again")


def test_take_copies_where_it_cannot_move():
    import zmq
    import zpipe_pb2 as pb
    svc = Service()
    # Over the socket: a copy, then the sink deletes its file.
    job = svc.submit()
    svc.wait(job)
    spool = os.stat(svc.spool_file(job))
    out = os.path.join(svc.c.dir, "bytes.jsonl")
    r = svc.results(job, "--take", "--direct", "no", "-o", out)
    check(r.returncode == 0, "--direct no --take: %r" % r.stderr)
    check(os.stat(out).st_ino != spool.st_ino, "--direct no moved the file")
    check(not os.path.exists(svc.spool_file(job)),
          "--direct no: the sink kept its spool file")
    _check_file(out, job, "over the socket")
    _check_refused(svc, job, "over the socket")
    # To a pipe: refused, the spool kept; stdout redirected to a file: a
    # copy.
    job = svc.submit()
    svc.wait(job)
    r = svc.results(job, "--take")
    check(r.returncode == 2 and b"regular file" in r.stderr and not r.stdout,
          "--take to a pipe: rc %d %r" % (r.returncode, r.stderr))
    check(os.path.exists(svc.spool_file(job)),
          "a refused take to a pipe deleted the spool file")
    out = os.path.join(svc.c.dir, "stdout.jsonl")
    with open(out, "wb") as f:
        r = svc.results(job, "--take", stdout=f)
    check(r.returncode == 0, "--take > FILE: %r" % r.stderr)
    check(not os.path.exists(svc.spool_file(job)),
          "--take > FILE: the sink kept its spool file")
    _check_file(out, job, "stdout to a file")
    # To another file system (tmpfs), when there is one.
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.stat(shm).st_dev != os.stat(svc.spool).st_dev:
        job = svc.submit()
        svc.wait(job)
        out = os.path.join(shm, "zpipe-take-%d.jsonl" % os.getpid())
        try:
            r = svc.results(job, "--take", "-o", out)
            check(r.returncode == 0, "--take to tmpfs: %r" % r.stderr)
            check(not os.path.exists(svc.spool_file(job)),
                  "to tmpfs: the sink kept its spool file")
            _check_file(out, job, "to another file system")
        finally:
            if os.path.exists(out):
                os.unlink(out)
    else:
        print("    NOT RUN: no other file system at %s (the copy across file "
              "systems is not tested here)" % shm)
    # A job still running when the consumer starts (600 tasks of 3 ms on
    # two workers): waited for, then its file moved, though records were
    # there to copy; a take asked while it runs is refused.
    spin = os.path.join(svc.c.dir, "spin.txt")
    with open(spin, "w") as f:
        f.write("3000\n" * 600)
    r = svc.zpipe("submit", "--ventilator", svc.intake, "--plugin", "spin",
                  "--input", spin)
    check(r.returncode == 0, "submit spin: %r" % r.stderr)
    job = r.stdout.decode().strip()
    out = os.path.join(svc.c.dir, "running.jsonl")
    p = subprocess.Popen([binary("zpipe"), "results", "--sink", svc.c.control,
                          "--take", "-o", out, job], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not (os.path.exists(svc.spool_file(job)) and
               os.path.getsize(svc.spool_file(job)) > 0):
        check(time.monotonic() < deadline, "no record committed in 10 s")
        time.sleep(0.01)
    spool = os.stat(svc.spool_file(job))
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.connect(svc.c.control)
    m = pb.Message()
    m.results_request.job_id = job
    m.results_request.take = True
    s.send(m.SerializeToString())
    check(s.poll(10000), "no answer to a take")
    ch = pb.Message.FromString(s.recv()).results_chunk
    st = pb.Message()
    st.status_request.job_id = job
    s.send(st.SerializeToString())
    check(s.poll(10000), "no answer to a status request")
    running = pb.Message.FromString(s.recv()).job_status.state != pb.JOB_DONE
    s.close(0)
    ctx.term()
    if running:
        check("not done" in ch.error and not ch.taken,
              "a take of a running job: %r" % ch)
        check(p.poll() is None and not os.path.exists(out),
              "results --take -o of a running job wrote before it was done")
    else:
        print("    NOT RUN: the spin job was done before the checks of a "
              "running one (a slow machine?)")
    _, err = p.communicate(timeout=120)
    check(p.returncode == 0, "results --take of a running job: %r" % err)
    check(os.stat(out).st_ino == spool.st_ino,
          "a running job taken: its file was copied, not moved once done")
    check(not os.path.exists(svc.spool_file(job)),
          "a running job taken: the sink kept its spool file")
    _check_file(out, job, "taken while running (moved once done)", n=600,
                output=lambda i: "3000")


def test_take_of_a_forgotten_job():
    # A small --journal-compact: the taken job's F line (its spool length
    # ZP_RETAIN_SPOOL_GONE) goes through a compaction before the restart.
    svc = Service(sink_args=("--retain-jobs", "1", "--journal-compact",
                             "65536"))
    first = svc.submit()
    svc.wait(first)
    second = svc.submit()
    svc.wait(second)  # the first is forgotten now
    spool = os.stat(svc.spool_file(first))
    out = os.path.join(svc.c.dir, "first.jsonl")
    r = svc.results(first, "--take", "-o", out)
    check(r.returncode == 0, "take of a forgotten job: %r" % r.stderr)
    check(os.stat(out).st_ino == spool.st_ino, "not moved")
    check(not os.path.exists(svc.spool_file(first)), "spool file kept")
    _check_file(out, first, "forgotten job")
    _check_refused(svc, first, "forgotten job")
    compactions = svc.sink_logs().count("compacted")
    third = svc.submit()  # its records compact the journal again
    svc.wait(third)
    logs = svc.sink_logs()
    check(logs.count("compacted") > compactions,
          "the journal was not compacted after the take:\n%s" % logs)
    svc.restart_sink()
    _check_refused(svc, first, "forgotten job after a compaction and a "
                   "restart")
    svc.wait(first)
    # The others (forgotten, retained) are still served whole.
    for job in (second, third):
        r = svc.results(job)
        check(r.returncode == 0, "job %s: %r" % (job, r.stderr))
        got = _count(r.stdout, job)
        check(got == (0, 0, 0, 0), "job %s's records: %r" % (job, got))


def test_python_client_takes():
    import zpipe
    svc = Service()
    c = zpipe.Client(svc.intake, svc.c.control)
    job = c.submit("echo", ["line-%d" % i for i in range(N)])
    job.wait(timeout=60)
    recs = list(job.results(timeout=60))
    got = collections.Counter(r.task for r in recs)
    wrong = sum(1 for r in recs if r.output != b"line-%d" % r.task)
    check(len(got) == N and max(got.values()) == 1 and wrong == 0,
          "python results before the take: %d distinct, %d wrong" %
          (len(got), wrong))
    job.take()
    check(not os.path.exists(svc.spool_file(job.id)),
          "Job.take: the spool file is still there")
    try:
        list(job.results(timeout=10))
        check(False, "results() after take() gave records")
    except zpipe.RefusedError as e:
        check("taken" in str(e), "results() after take(): %r" % e)
    job.take()  # again: answered as the first
    check(job.status()["done"] == N, "status after take: %r" % job.status())
    try:
        c.job("job-never-submitted").take(timeout=5)
        check(False, "take() of an unknown job")
    except zpipe.RefusedError as e:
        check("unknown job" in str(e), "take() of an unknown job: %r" % e)
    print("    python: %d records read, then taken; refused after" % len(recs))


def test_a_take_into_a_full_disk_drops_nothing():
    """The records of a job (about 2.5 MB) taken into a 1 MiB file
    system: the copy fails (ENOSPC), zpipe results says so and exits 3,
    and the sink is never told: its spool file stays and every record is
    still served, then taken whole into a file system with room."""
    from test_sink_disk_full import _mount, _umount
    svc = Service()
    job = svc.submit()
    svc.wait(job)
    small = _mount("1m")
    try:
        out = os.path.join(small, "out.jsonl")
        for args in (("-o", out), ("--direct", "no", "-o", out)):
            r = svc.results(job, "--take", *args)
            check(r.returncode == 3 and b"No space left" in r.stderr,
                  "--take %s into a full disk: rc %d %r" %
                  (" ".join(args[:-1]), r.returncode, r.stderr))
            check(os.path.exists(svc.spool_file(job)),
                  "a take that failed to write deleted the spool file")
    finally:
        _umount(small)
    r = svc.results(job)
    check(r.returncode == 0, "results after the failed takes: %r" % r.stderr)
    got = _count(r.stdout, job)
    print("    after two takes into a full disk, served: lost %d, duplicated "
          "%d, unexpected %d, wrong %d" % got)
    check(got == (0, 0, 0, 0), "served after the failed takes: %r" % (got,))
    out = os.path.join(svc.c.dir, "roomy.jsonl")
    r = svc.results(job, "--take", "-o", out)
    check(r.returncode == 0, "the take with room: %r" % r.stderr)
    _check_file(out, job, "taken with room after the full disk")


if __name__ == "__main__":
    zptest.main([test_take_moves_a_done_jobs_spool_file,
                 test_an_interrupted_take_run_again_cuts_nothing,
                 test_take_copies_where_it_cannot_move,
                 test_take_of_a_forgotten_job,
                 test_python_client_takes,
                 test_a_take_into_a_full_disk_drops_nothing])
