"""Clients of a running sink: zpipe wait, zpipe results, and a consumer in
Python that fetches a job's records by cursor (Debian's python3-zmq and the
zpipe_pb2 module protoc generates at build time)."""
import json
import os
import subprocess
import time

import zptest
from zptest import binary, check, run, start


def _job_input(d, n, fmt="v%d"):
    inp = os.path.join(d, "in.txt")
    with open(inp, "w") as f:
        for i in range(n):
            f.write(fmt % i + "\n")
    return inp


def _spool_cluster():
    spool = zptest.tmpdir()
    return zptest.Cluster(sink_args=("--spool", spool)), spool


def _finished_job(c, spool, job, n):
    """Runs job (n echo tasks, one worker) on cluster c to its end; the
    bytes of its spool file."""
    c.worker()
    v = c.ventilator("echo", _job_input(c.dir, n), ["--job", job])
    check(v.wait(timeout=60) == 0, "ventilator failed")
    with open(os.path.join(spool, job + ".jsonl"), "rb") as f:
        return f.read()


def test_results_streams_every_record_and_wait_reports_counts():
    n = 20000
    c, spool = _spool_cluster()
    job = "job-clients-1"
    # The consumer starts first: the sink does not know the job yet.
    out = os.path.join(c.dir, "results.jsonl")
    consumer = start([binary("zpipe"), "results", "--sink", c.control, job],
                     stdout=open(out, "wb"), stderr=c._log("results"))
    waiter = start([binary("zpipe"), "wait", "--sink", c.control, job],
                   stdout=open(os.path.join(c.dir, "wait.txt"), "wb"),
                   stderr=c._log("wait"))
    time.sleep(0.3)
    c.worker()
    c.worker()
    v = c.ventilator("echo", _job_input(c.dir, n), ["--job", job])
    check(v.wait(timeout=120) == 0, "ventilator failed")
    check(waiter.wait(timeout=60) == 0, "zpipe wait exit %s" % waiter.returncode)
    check(consumer.wait(timeout=60) == 0, "zpipe results exit %s" % consumer.returncode)
    with open(os.path.join(c.dir, "wait.txt")) as f:
        line = f.read()
    check("%d tasks, %d succeeded, 0 failed" % (n, n) in line, "wait printed %r" % line)
    recs = [json.loads(l) for l in open(out)]
    check(len(recs) == n, "%d records" % len(recs))
    check(sorted(r["task"] for r in recs) == list(range(n)), "ids not 0..n-1")
    check(all(r["output"] == "v%d" % r["task"] for r in recs), "an output differs")
    # The spool file is the same stream.
    with open(os.path.join(spool, job + ".jsonl")) as f:
        check(f.read() == open(out).read(), "spool and stream differ")
    print("    %d records through zpipe results; zpipe wait: %s" % (n, line.strip()))


def test_python_consumer_by_cursor_misses_nothing():
    import zmq
    import zpipe_pb2 as pb
    n = 5000
    c, _ = _spool_cluster()
    job = "job-clients-py"
    c.worker()
    c.worker()
    v = c.ventilator("echo", _job_input(c.dir, n), ["--job", job])
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.connect(c.control)
    cursor, got, asks, restarted = 0, [], 0, False
    try:
        while True:
            m = pb.Message()
            m.results_request.job_id = job
            m.results_request.cursor = cursor
            m.results_request.max_bytes = 4096  # small: many round trips
            m.results_request.wait = True
            s.send(m.SerializeToString())
            asks += 1
            check(s.poll(20000), "no answer from the sink")
            r = pb.Message.FromString(s.recv())
            ch = r.results_chunk
            if ch.error == "unknown job":
                time.sleep(0.05)
                continue
            check(not ch.error, "sink said %r" % ch.error)
            check(ch.cursor == cursor, "answer for cursor %d, asked %d" % (ch.cursor, cursor))
            got += [json.loads(l) for l in ch.records.decode().splitlines()]
            cursor = ch.next_cursor
            if not restarted and len(got) > n // 3:
                # A consumer that stops and comes back later resumes from
                # its cursor: simulated by a fresh socket.
                s.close(linger=0)
                time.sleep(0.2)
                s = ctx.socket(zmq.DEALER)
                s.connect(c.control)
                restarted = True
            if ch.done:
                break
        check(v.wait(timeout=60) == 0, "ventilator failed")
        check(sorted(r["task"] for r in got) == list(range(n)),
              "%d records, or some missing or repeated" % len(got))
        # A cursor in the middle of a record is refused, not misread.
        m = pb.Message()
        m.results_request.job_id = job
        m.results_request.cursor = 3
        s.send(m.SerializeToString())
        check(s.poll(5000), "no answer")
        err = pb.Message.FromString(s.recv()).results_chunk.error
        check("record boundary" in err, "mid-record cursor: %r" % err)
    finally:
        s.close(linger=0)
        ctx.term()
    print("    %d records in %d requests of 4 KiB, consumer restarted midway" % (n, asks))


def test_python_example_consumer():
    n = 10000
    c, spool = _spool_cluster()
    job = "job-clients-example"
    script = os.path.join(zptest.SOURCE, "examples", "python", "consumer.py")
    out = os.path.join(c.dir, "example.jsonl")
    consumer = start(["/usr/bin/python3", script, "--sink", c.control, job],
                     stdout=open(out, "wb"), stderr=c._log("example"))
    c.worker()
    c.worker()
    v = c.ventilator("echo", _job_input(c.dir, n, "line %d"), ["--job", job])
    check(v.wait(timeout=60) == 0, "ventilator failed")
    check(consumer.wait(timeout=60) == 0, "example consumer exit %s" % consumer.returncode)
    recs = [json.loads(l) for l in open(out)]
    check(sorted(r["task"] for r in recs) == list(range(n)), "%d records" % len(recs))
    check(all(r["output"] == "line %d" % r["task"] for r in recs), "an output differs")
    print("    examples/python/consumer.py: %d records, each value checked" % n)


def test_fetching_survives_a_sink_restart():
    # A journaled sink killed mid-job and started again keeps exactly the
    # spool records its journal has; a consumer reading all along gets
    # every record once.
    import signal
    n = 20000
    spool = zptest.tmpdir()
    c = zptest.Cluster(sink_args=("--spool", spool))
    c.sink.kill()
    c.sink.wait()
    journal = os.path.join(c.dir, "journal")
    sink_cmd = [binary("zpipe-sink"), "--results", c.results, "--control", c.control,
                "--publish", "none", "--output", c.output, "--spool", spool,
                "--journal", journal]
    sink = start(sink_cmd, stderr=c._log("sink1"))
    job = "job-clients-restart"
    out = os.path.join(c.dir, "results.jsonl")
    consumer = start([binary("zpipe"), "results", "--sink", c.control, job],
                     stdout=open(out, "wb"), stderr=c._log("results"))
    c.worker(plugins=("spin",))
    c.worker(plugins=("spin",))
    inp = os.path.join(c.dir, "spin.txt")
    with open(inp, "w") as f:
        f.write("100\n" * n)            # 100 us each: about 1 s on 2 workers
    v = c.ventilator("spin", inp, ["--job", job])
    time.sleep(0.6)                      # about a third of the job
    sink.send_signal(signal.SIGKILL)
    sink.wait()
    time.sleep(0.3)
    sink = start(sink_cmd, stderr=c._log("sink2"))
    check(v.wait(timeout=120) == 0, "ventilator failed")
    check(consumer.wait(timeout=60) == 0, "zpipe results exit %s" % consumer.returncode)
    recs = [json.loads(l) for l in open(out)]
    ids = sorted(r["task"] for r in recs)
    check(ids == list(range(n)), "%d records, %d distinct" % (len(ids), len(set(ids))))
    with open(os.path.join(spool, job + ".jsonl")) as f:
        check(f.read() == open(out).read(), "spool and stream differ")
    sink.terminate()
    sink.wait()
    import re
    log = open(os.path.join(c.dir, "sink2.log")).read()
    m = re.search(r"resumed (\d+) committed records", log)
    check(m and 0 < int(m.group(1)) < n, "the kill did not fall mid-job: %r" % log[-400:])
    print("    %d records read across a sink kill (after %s) and restart, each once"
          % (n, m.group(1)))


def test_results_resume_from_a_cursor():
    n = 3000
    c, spool = _spool_cluster()
    job = "job-clients-resume"
    data = _finished_job(c, spool, job, n)
    cut = data.index(b"\n", len(data) // 2) + 1
    r = run([binary("zpipe"), "results", "--sink", c.control, "--cursor", str(cut), job],
            capture_output=True, timeout=30)
    check(r.returncode == 0, r.stderr.decode())
    check(r.stdout == data[cut:], "resumed stream differs from the spool's tail")


def test_wait_exit_codes():
    c, _ = _spool_cluster()
    job = "job-clients-fail"
    c.worker(plugins=(os.path.join(zptest.FIXTURES, "fx_fail.so"),))
    inp = os.path.join(c.dir, "in.txt")
    with open(inp, "w") as f:
        f.write("ok0\nfail1\nok2\n")
    v = c.ventilator("fx_fail", inp, ["--job", job])
    r = run([binary("zpipe"), "wait", "--sink", c.control, job],
            capture_output=True, timeout=60)
    v.wait(timeout=30)  # exits 1: a task failed
    check(r.returncode == 1 and b"3 tasks, 2 succeeded, 1 failed" in r.stdout,
          "exit %d: %r %r" % (r.returncode, r.stdout, r.stderr))
    # A job the sink never hears of: exit 3 with a message, after the timeout.
    r = run([binary("zpipe"), "wait", "--sink", c.control, "--timeout-ms", "500",
             "no-such-job"], capture_output=True, timeout=30)
    check(r.returncode == 3 and b"no-such-job" in r.stderr, "unknown job: %d %r"
          % (r.returncode, r.stderr))
    for cmd in (["wait"], ["results"], ["wait", "a", "b"], ["results", "bad/id"]):
        r = run([binary("zpipe")] + cmd, capture_output=True, timeout=10)
        check(r.returncode == 2 and b"Usage: zpipe" in r.stderr, "%r: %d" % (cmd, r.returncode))


def test_results_from_a_sink_without_spool_is_refused():
    c = zptest.Cluster()
    r = run([binary("zpipe"), "results", "--sink", c.control, "--timeout-ms", "5000",
             "any-job"], capture_output=True, timeout=30)
    check(r.returncode == 3 and b"--spool" in r.stderr, "%d %r" % (r.returncode, r.stderr))


def test_results_by_reference_and_over_the_socket_agree():
    """zpipe results on this host (ipc://) copies the records from the
    sink's spool file in the kernel (ResultsRequest.by_reference) instead
    of taking them over the socket. Every way must give the same bytes,
    the spool's: --direct yes (the file, or fail) and no (the socket);
    to a file (copy_file_range), a pipe (sendfile) and a file opened for
    appending (neither takes it: read and write); and while the job still
    runs, chunk after chunk."""
    n = 20000
    c, spool = _spool_cluster()
    job = "job-clients-direct"
    out = os.path.join(c.dir, "follow.jsonl")
    follower = start([binary("zpipe"), "results", "--direct", "yes", "--sink",
                      c.control, job], stdout=open(out, "wb"),
                     stderr=c._log("follow"))
    time.sleep(0.3)
    c.worker()
    c.worker()
    v = c.ventilator("echo", _job_input(c.dir, n), ["--job", job])
    check(v.wait(timeout=120) == 0, "ventilator failed")
    check(follower.wait(timeout=60) == 0, "following with --direct yes: exit %s"
          % follower.returncode)
    with open(os.path.join(spool, job + ".jsonl"), "rb") as f:
        want = f.read()
    _check_records(want, n, job)
    check(open(out, "rb").read() == want, "followed by reference: differs from the spool")
    got = {}
    for direct in ("yes", "no", "auto"):
        p = os.path.join(c.dir, "to-file-%s.jsonl" % direct)
        with open(p, "wb") as f:
            r = run([binary("zpipe"), "results", "--direct", direct, "--sink",
                     c.control, job], stdout=f, stderr=subprocess.PIPE, timeout=60)
        check(r.returncode == 0, "--direct %s to a file: %r" % (direct, r.stderr))
        got["file " + direct] = open(p, "rb").read()
        r = run([binary("zpipe"), "results", "--direct", direct, "--sink", c.control,
                 job], capture_output=True, timeout=60)
        check(r.returncode == 0, "--direct %s to a pipe: %r" % (direct, r.stderr))
        got["pipe " + direct] = r.stdout
    p = os.path.join(c.dir, "appended.jsonl")
    with open(p, "wb") as f:
        f.write(b"kept\n")
    with open(p, "ab") as f:
        r = run([binary("zpipe"), "results", "--direct", "yes", "--sink", c.control,
                 job], stdout=f, stderr=subprocess.PIPE, timeout=60)
    check(r.returncode == 0, "--direct yes appending: %r" % r.stderr)
    got["append yes"] = open(p, "rb").read()[len(b"kept\n"):]
    check(open(p, "rb").read().startswith(b"kept\n"), "the appended file lost its head")
    for k, v_ in got.items():
        check(v_ == want, "%s: %d bytes, the spool has %d" % (k, len(v_), len(want)))
    print("    %d records, %d bytes, the same by reference and over the socket, "
          "to a file, a pipe and an appended file" % (n, len(want)))


def test_results_by_reference_from_another_mount():
    """A consumer that sees another file at the spool's path (its own mount
    namespace, a directory bound over the spool holding a decoy of the same
    name): auto checks the file's identity, finds it is not the sink's and
    takes the records over the socket (the true ones, not the decoy's);
    --direct yes fails with a message naming the file."""
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        check(False, "unshare -m does not work here (needs root and mount "
              "namespaces): this test cannot run")
    n = 3000
    c, spool = _spool_cluster()
    job = "job-clients-decoy"
    want = _finished_job(c, spool, job, n)
    decoy = zptest.tmpdir()
    with open(os.path.join(decoy, job + ".jsonl"), "wb") as f:
        f.write(b'{"job":"%s","task":0,"status":"ok","output":"decoy"}\n' % job.encode()
                * (len(want) // 50))
    def in_ns(direct):
        script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
        return run(["unshare", "-m", "sh", "-c", script, "sh", decoy, spool,
                    binary("zpipe"), "results", "--direct", direct, "--sink",
                    c.control, job], capture_output=True, timeout=60)
    r = in_ns("auto")
    check(r.returncode == 0, "auto behind a decoy: exit %d %r" % (r.returncode, r.stderr))
    check(r.stdout == want, "auto behind a decoy: %d bytes, %s" % (
        len(r.stdout), "the decoy's" if b"decoy" in r.stdout else "not the spool's"))
    r = in_ns("yes")
    check(r.returncode == 3 and b"not the sink's file" in r.stderr and
          job.encode() + b".jsonl" in r.stderr,
          "--direct yes behind a decoy: exit %d %r" % (r.returncode, r.stderr))
    check(b"decoy" not in r.stdout, "--direct yes wrote the decoy's records")
    print("    behind a decoy: auto took the %d records over the socket; yes: %s"
          % (n, r.stderr.decode().strip()))


def _check_records(path_or_bytes, n, job):
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else \
        open(path_or_bytes, "rb").read()
    recs = [json.loads(l) for l in data.splitlines()]
    lost = n - len({r["task"] for r in recs})
    dup = len(recs) - len({r["task"] for r in recs})
    wrong = sum(1 for r in recs if r["job"] != job or
                r["output"] != "v%d" % r["task"] or r["status"] != "ok")
    check((lost, dup, wrong) == (0, 0, 0) and len(recs) == n,
          "%s: %d records, lost %d, duplicated %d, wrong %d"
          % (job, len(recs), lost, dup, wrong))


def test_submit_with_results_writes_every_record():
    """zpipe submit --results: one command submits the job and writes
    every record as the sink commits them (fetched while it submits),
    to a file or to stdout (the job id then on stderr); a rerun of the
    finished job with its token writes them all again."""
    n = 50000
    c, intake, spool = zptest.service_cluster(["echo"])
    inp = _job_input(c.dir, n)
    out = os.path.join(c.dir, "out.jsonl")
    base = [binary("zpipe"), "submit", "--ventilator", intake, "--sink",
            c.control, "--plugin", "echo", "--input", inp]
    r = run(base + ["--job", "sr-file", "--token", "t1", "--results", out],
            capture_output=True, timeout=120)
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr))
    check(r.stdout == b"sr-file\n", "stdout %r" % r.stdout[:200])
    _check_records(out, n, "sr-file")
    with open(os.path.join(spool, "sr-file.jsonl"), "rb") as f:
        check(f.read() == open(out, "rb").read(), "spool and --results differ")
    r = run(base + ["--job", "sr-out", "--results", "-"], capture_output=True,
            timeout=120)
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr))
    check(b"sr-out\n" in r.stderr, "job id not on stderr: %r" % r.stderr)
    _check_records(r.stdout, n, "sr-out")
    # The same job again, finished: nothing sent, every record written.
    os.unlink(out)
    r = run(base + ["--job", "sr-file", "--token", "t1", "--results", out],
            capture_output=True, timeout=120)
    check(r.returncode == 0 and b"already complete" in r.stderr,
          "exit %d: %s" % (r.returncode, r.stderr))
    _check_records(out, n, "sr-file")
    # An output it cannot write: refused before anything is submitted.
    r = run(base + ["--job", "sr-bad", "--results",
                    os.path.join(c.dir, "no", "such", "out")],
            capture_output=True, timeout=30)
    check(r.returncode == 3 and b"cannot write" in r.stderr,
          "exit %d: %s" % (r.returncode, r.stderr))
    print("    %d records each: to a file, to stdout, and again for the "
          "finished job" % n)


def test_submit_with_results_across_a_sink_kill():
    """zpipe submit --results while the sink is SIGKILLed a third into the
    job and started again from its journal: the command still ends 0 and
    its file has every record exactly once, right, and the same bytes as
    the spool (its fetch asks again from its cursor)."""
    import re
    import signal
    n = 20000
    spool = zptest.tmpdir()
    c = zptest.Cluster(sink_args=("--spool", spool))
    c.sink.kill()
    c.sink.wait()
    sink_cmd = [binary("zpipe-sink"), "--results", c.results, "--control",
                c.control, "--publish", "none", "--spool", spool,
                "--journal", os.path.join(c.dir, "journal")]
    sink = start(sink_cmd, stderr=c._log("sink1"))
    intake = "ipc://%s/intake" % c.dir
    start([binary("zpipe-ventilator"), "--intake", intake, "--bind",
           c.dispatch, "--sink", c.control], stderr=c._log("ventilator"))
    c.worker(plugins=("spin",))
    c.worker(plugins=("spin",))
    inp = os.path.join(c.dir, "spin.txt")
    with open(inp, "w") as f:
        f.write("100\n" * n)  # 100 us each: about 1 s on 2 workers
    out = os.path.join(c.dir, "out.jsonl")
    job = "sr-kill"
    sub = start([binary("zpipe"), "submit", "--ventilator", intake, "--sink",
                 c.control, "--plugin", "spin", "--input", inp, "--job", job,
                 "--results", out], stderr=c._log("submit"))
    time.sleep(0.6)
    sink.send_signal(signal.SIGKILL)
    sink.wait()
    time.sleep(0.3)
    sink = start(sink_cmd, stderr=c._log("sink2"))
    rc = sub.wait(timeout=120)
    if rc != 0:
        c.dump_logs()
    check(rc == 0, "zpipe submit --results exit %s" % rc)
    recs = [json.loads(l) for l in open(out)]
    ids = [r["task"] for r in recs]
    lost = n - len(set(ids))
    dup = len(ids) - len(set(ids))
    wrong = sum(1 for r in recs if r["job"] != job or r["status"] != "ok" or
                r["output"] != "100" or not 0 <= r["task"] < n)
    check((lost, dup, wrong) == (0, 0, 0), "lost %d, duplicated %d, wrong %d"
          % (lost, dup, wrong))
    with open(os.path.join(spool, job + ".jsonl"), "rb") as f:
        check(f.read() == open(out, "rb").read(), "spool and --results differ")
    sink.terminate()
    sink.wait()
    log = open(os.path.join(c.dir, "sink2.log")).read()
    m = re.search(r"resumed (\d+) committed records", log)
    check(m and 0 < int(m.group(1)) < n,
          "the kill did not fall mid-job: %r" % log[-400:])
    print("    %d records through submit --results across a sink kill (after "
          "%s) and restart: lost 0, duplicated 0, wrong 0" % (n, m.group(1)))


if __name__ == "__main__":
    zptest.main([
        test_results_streams_every_record_and_wait_reports_counts,
        test_python_consumer_by_cursor_misses_nothing,
        test_python_example_consumer,
        test_fetching_survives_a_sink_restart,
        test_results_resume_from_a_cursor,
        test_results_by_reference_and_over_the_socket_agree,
        test_results_by_reference_from_another_mount,
        test_wait_exit_codes,
        test_results_from_a_sink_without_spool_is_refused,
        test_submit_with_results_writes_every_record,
        test_submit_with_results_across_a_sink_kill,
    ])
