"""A sink journal altered in place (issue 16): one record in the middle of
the journal of a killed `zpipe run` gets a different task id digit, or a
different offset digit, or the output is cut short. `--resume` must refuse (exit non-zero, naming the
journal and the damaged record's byte offset) and leave the output as it
was: no NUL bytes, no record twice. Before the journal had checksums, the
resume went ahead: a task id changed into another journaled one left its
own task to be run again (its record twice in the output), and an offset
changed past the output's end, or records past a cut output, were taken
as a power loss and left out, while the ventilator skipped their tasks:
the resume never ended."""
import collections
import json
import os
import re
import signal
import subprocess
import time

import zptest
from zptest import binary, check, run

N = 20000


def _payload(i):
    return "%d" % (150 + i % 7)


def _killed_run(d, payload=_payload, at=3000, late=N // 2):
    """A zpipe run of N spin tasks (task i's payload: payload(i)), killed
    with more than `at` records journaled and at most `late`; returns
    (cmd, journal, output). A kill that lands late (a busy machine let
    the run journal past `late` before the poll saw `at`: all 20,000
    records once, so the resume had nothing left to do) is tried again."""
    inp = os.path.join(d, "in.txt")
    with open(inp, "w") as f:
        f.write("".join(payload(i) + "\n" for i in range(N)))
    out = os.path.join(d, "out.jsonl")
    journal = os.path.join(d, "journal")
    cmd = [binary("zpipe"), "run", "--plugin", "spin", "--workers", "2",
           "--batch", "16", "--input", inp, "--output", out, "--journal",
           journal, "--job", "damage", "--no-progress"]
    landed = []
    for _ in range(5):
        p = subprocess.Popen(cmd, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        zptest._procs.append(p)
        deadline = time.time() + 20
        while time.time() < deadline and p.poll() is None:
            if len(zptest.journal_records(journal)) > at:
                break
            time.sleep(0.02)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(30)
            time.sleep(0.2)
            had = len(zptest.journal_records(journal))
            if had <= late:
                return cmd, journal, out
            landed.append(had)
        else:
            landed.append("finished")
        for path in (journal, out):  # finished or too late: again
            if os.path.exists(path):
                os.unlink(path)
    check(False, "no kill landed between %d and %d records journaled: %s"
          % (at, late, landed))


def _records(journal):
    """(line start, line) of each whole R or M line (an M line's first
    record is where an R line has its one: fields 2 to 4)."""
    with open(journal, "rb") as f:
        data = f.read()
    res, pos = [], 0
    for line in data.split(b"\n")[:-1]:
        if line.startswith(b"R ") or line.startswith(b"M "):
            res.append((pos, line))
        pos += len(line) + 1
    return res


def _alter(journal, at, new):
    with open(journal, "r+b") as f:
        f.seek(at)
        f.write(new)


def _task_digit(journal):
    """A middle record's task id made into another journaled id."""
    recs = _records(journal)
    ids = set(r[2] for r in zptest.journal_records(journal))
    for start, line in recs[len(recs) // 2:]:
        f = line.split()
        task = int(f[2])
        if task % 10 < 9 and task + 1 in ids:
            at = start + len(b"R ") + len(f[1]) + 1 + len(f[2]) - 1
            _alter(journal, at, b"%d" % ((task + 1) % 10))
            return start
    check(False, "no record to alter")


def _offset_digit(journal):
    """A middle record's offset given a leading 9 (past the output)."""
    recs = _records(journal)
    for start, line in recs[len(recs) // 2:]:
        f = line.split()
        if f[4][:1] != b"9":  # else its offset would not grow
            at = start + len(b" ".join(f[:4])) + 1
            _alter(journal, at, b"9")
            return start
    check(False, "no record to alter")


def _output_cut(journal):
    """The output cut to half (the journal intact): its records past the
    cut are refused, not left out (the ventilator would skip them) nor
    filled with zeros. Returns the first such record's line."""
    out = os.path.join(os.path.dirname(journal), "out.jsonl")
    size = os.path.getsize(out) // 2
    os.truncate(out, size)
    for start, _, _, _, offset in zptest.journal_records(journal):
        if offset > size:
            return start
    check(False, "no record past the cut")


def _output_counts(out):
    with open(out, "rb") as f:
        data = f.read()
    tasks = [int(m) for m in re.findall(rb'"task":(\d+)', data)]
    dup = sum(c - 1 for c in collections.Counter(tasks).values() if c > 1)
    return data.count(b"\0"), dup, len(tasks)


def _damaged_resume(alter):
    d = zptest.tmpdir()
    cmd, journal, out = _killed_run(d)
    where = alter(journal)
    r = run(cmd + ["--resume"], capture_output=True, timeout=int(os.environ.get("ZP_RESUME_TIMEOUT", "60")))
    err = r.stderr.decode(errors="replace")
    nul, dup, n = _output_counts(out)
    print("    record at offset %d altered; resume exit %d; output: %d "
          "records, %d NUL bytes, %d duplicated" % (where, r.returncode, n,
                                                    nul, dup), flush=True)
    print("    " + "\n    ".join(l for l in err.splitlines() if "offset" in l)[:600], flush=True)
    check(nul == 0 and dup == 0, "NUL bytes or duplicates in the output")
    check(r.returncode != 0, "the resume went ahead over a damaged journal")
    check(journal in err and ("offset %d" % where) in err,
          "the error names neither the journal nor the offset: %s" % err[-600:])


def _crc32c(crc, data):
    """CRC-32C (Castagnoli, reflected), continued from crc as zp_crc32c."""
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _as_version_3(journal):
    """Rewrites the journal as the previous release wrote it: header 3, an
    R line for each record of an M line, every line's checksum chained
    again from the version 3 header. Returns the records it holds."""
    with open(journal, "rb") as f:
        data = f.read()
    head = b"zpipe-journal 3"
    out, chain, n = [head + b"\n"], _crc32c(0, head), 0
    lines = data.split(b"\n")[1:-1]  # whole lines after the header
    bodies = []
    for line in lines:
        body = line[:-9]  # its trailer: a space and 8 hex digits
        if body.startswith(b"M "):
            f = body.split(b" ")
            job, task, ok, off = f[1], int(f[2]), f[3], int(f[4])
            bodies.append(b"R %s %d %s %d" % (job, task, ok, off))
            for item in f[5:]:
                dt, do = item.rstrip(b"f").split(b":")
                task += int(dt)
                off += int(do)
                ok = b"failed" if item.endswith(b"f") else b"ok"
                bodies.append(b"R %s %d %s %d" % (job, task, ok, off))
        else:
            bodies.append(body)
    for body in bodies:
        chain = _crc32c(chain, body)
        out.append(b"%s %08x\n" % (body, chain))
        n += body.startswith(b"R ")
    with open(journal, "wb") as f:
        f.write(b"".join(out))
    return n


def test_previous_releases_journal_resumes():
    """A run killed mid-job by the previous release (journal version 3,
    an R line a record) resumed by this one: the records journaled are
    kept, the rest run, the journal is appended to in its own format, and
    every task has exactly one record."""
    d = zptest.tmpdir()
    cmd, journal, out = _killed_run(d)
    had = _as_version_3(journal)
    check(had > 3000, "only %d records journaled" % had)
    r = run(cmd + ["--resume"], capture_output=True, timeout=120)
    err = r.stderr.decode(errors="replace")
    with open(out, "rb") as f:
        data = f.read()
    tasks = collections.Counter(int(m) for m in re.findall(rb'"task":(\d+)', data))
    lost = sum(1 for t in range(N) if t not in tasks)
    dup = sum(c - 1 for c in tasks.values() if c > 1)
    unexpected = sum(1 for t in tasks if t >= N)
    outputs = [(int(m.group(1)), int(m.group(2))) for m in re.finditer(
        rb'"task":(\d+),"status":"ok","output":"(\d+)"', data)]
    wrong = sum(1 for t, o in outputs if o != 150 + t % 7)
    wrong += sum(tasks.values()) - len(outputs)  # not ok, or no output
    print("    %d records journaled by version 3; resume exit %d; %d records: "
          "lost %d, duplicated %d, unexpected %d, wrong %d, NUL %d"
          % (had, r.returncode, sum(tasks.values()), lost, dup, unexpected, wrong,
             data.count(b"\0")), flush=True)
    check(r.returncode == 0, "the resume failed: %s" % err[-600:])
    check(lost == 0 and dup == 0 and unexpected == 0 and wrong == 0
          and b"\0" not in data, "records lost, repeated or wrong")
    # zpipe run keeps a --journal it was given: still version 3, R lines
    # only, every task's record in it (the resume appended the rest).
    with open(journal, "rb") as f:
        kept = f.read()
    check(kept.startswith(b"zpipe-journal 3\n") and b"\nM " not in kept,
          "a version 3 journal was appended to in version 4's format")
    journaled = set(r[2] for r in zptest.journal_records(journal))
    check(journaled >= set(range(N)), "%d tasks missing from the journal"
          % len(set(range(N)) - journaled))


def _bad(i):
    """Every 5th task fails (spin refuses a payload that is not a number,
    a failure not retried)."""
    return "x%d" % i if i % 5 == 0 else _payload(i)


def test_failed_records_survive_two_kills():
    """Failed tasks are journaled too (an M line's items marked f): a run
    with a fifth of its tasks failing, SIGKILLed with 2,000 records
    journaled, resumed and SIGKILLed again past 9,000, then resumed to
    the end. Each task has exactly one record, with its own status: a
    failed record lost or turned ok would run again (a duplicate or a
    wrong status), one repeated would be a duplicate."""
    d = zptest.tmpdir()
    cmd, journal, out = _killed_run(d, _bad, at=2000)
    first = len(zptest.journal_records(journal))
    marked = sum(1 for r in zptest.journal_records(journal) if not r[3])
    with open(journal, "rb") as f:
        fitems = len(re.findall(rb" -?\d+:\d+f", f.read()))
    p = subprocess.Popen(cmd + ["--resume"], stderr=subprocess.DEVNULL,
                         start_new_session=True)
    zptest._procs.append(p)
    # The second kill once it journaled more (past 9,000, or past a third
    # of what was left when a busy machine let the first kill land late:
    # at 17,623 once, when "past 9,000" was already true and the resume
    # was killed before it journaled anything).
    again = max(9000, first + (N - first) // 3)
    deadline = time.time() + 30
    while time.time() < deadline and p.poll() is None:
        if len(zptest.journal_records(journal)) > again:
            break
        time.sleep(0.02)
    second = len(zptest.journal_records(journal))
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(30)
        time.sleep(0.2)
    r = run(cmd + ["--resume"], capture_output=True, timeout=120)
    err = r.stderr.decode(errors="replace")
    with open(out, "rb") as f:
        recs = [json.loads(l) for l in f.read().splitlines()]
    seen = collections.Counter(rec["task"] for rec in recs)
    lost = sum(1 for t in range(N) if t not in seen)
    dup = sum(c - 1 for c in seen.values() if c > 1)
    unexpected = sum(1 for t in seen if not 0 <= t < N)
    wrong = sum(1 for rec in recs if 0 <= rec["task"] < N and (
        (rec["status"] == "ok") != (rec["task"] % 5 != 0) or
        (rec["status"] == "ok" and rec["output"] != _bad(rec["task"]))))
    failed = sum(1 for rec in recs if rec["status"] == "failed")
    print("    journaled before the kills: %d (%d failed, %d as f items), "
          "then %d; final exit %d; %d records, %d failed: lost %d, "
          "duplicated %d, unexpected %d, wrong %d"
          % (first, marked, fitems, second, r.returncode, len(recs), failed,
             lost, dup, unexpected, wrong), flush=True)
    check(fitems > 0, "no failed record was journaled as an M line's item")
    check(second > first, "the first resume journaled nothing")
    check(r.returncode != 0 or "failed" in err,
          "the run with failed tasks did not report them")
    check(lost == 0 and dup == 0 and unexpected == 0 and wrong == 0,
          "records lost, repeated or wrong")
    check(failed == N // 5, "%d failed records for %d failing tasks"
          % (failed, N // 5))


def test_task_id_altered():
    _damaged_resume(_task_digit)


def test_offset_altered():
    _damaged_resume(_offset_digit)


def test_output_cut():
    _damaged_resume(_output_cut)


def test_spool_record_altered():
    """A journaled service sink with --spool: a finished job's spool file
    (what `zpipe results` serves) gets one digit of a middle record
    changed while the sink is down. The restarted sink must refuse to
    start, naming the spool file; before the journal had the spools'
    checksums it started and served the altered record as the job's."""
    n = 2000
    spool = zptest.tmpdir()
    c = zptest.Cluster(sink_args=("--spool", spool))
    c.sink.kill()
    c.sink.wait()
    sink_cmd = [binary("zpipe-sink"), "--results", c.results, "--control",
                c.control, "--publish", "none", "--output", c.output,
                "--spool", spool, "--journal", os.path.join(c.dir, "journal")]
    sink = zptest.start(sink_cmd, stderr=c._log("sink1"))
    job = "job-spool-damage"
    inp = os.path.join(c.dir, "in.txt")
    with open(inp, "w") as f:
        f.write("".join("v%d\n" % i for i in range(n)))
    c.worker()
    v = c.ventilator("echo", inp, ["--job", job])
    check(v.wait(timeout=60) == 0, "ventilator failed")
    sink.send_signal(signal.SIGKILL)
    sink.wait()
    path = os.path.join(spool, job + ".jsonl")
    with open(path, "rb") as f:
        data = f.read()
    at = data.index(b'"output":"v', len(data) // 2) + len(b'"output":"v')
    bad = data[:at] + (b"9" if data[at:at + 1] != b"9" else b"8") + data[at + 1:]
    with open(path, "wb") as f:
        f.write(bad)
    log = c._log("sink2")
    sink = zptest.start(sink_cmd, stderr=log)
    try:
        rc = sink.wait(timeout=5)
    except subprocess.TimeoutExpired:
        rc = None
    served = b""
    if rc is None:  # it started: what does a consumer get?
        r = run([binary("zpipe"), "results", "--sink", c.control, job],
                capture_output=True, timeout=30)
        served = r.stdout
        zptest.stop(sink)
    err = open(log.name, "rb").read().decode(errors="replace")
    print("    spool byte %d altered: sink exit %s; served %d bytes, %s" %
          (at, rc, len(served), "the altered record among them"
           if served == bad else "none" if not served else "other"),
          flush=True)
    check(served != bad, "the sink served the altered record")
    check(rc not in (None, 0), "the sink started over a damaged spool")
    check(path in err and "damaged" in err, "no message names the spool: %s"
          % err[-600:])


if __name__ == "__main__":
    zptest.main([test_task_id_altered, test_offset_altered, test_output_cut,
                 test_spool_record_altered, test_previous_releases_journal_resumes,
                 test_failed_records_survive_two_kills])
