"""The sink on a full filesystem, and its output deleted under it (issue
16, "storage that notices"). A small tmpfs is filled (with a gap, so the
run writes a while first) and freed again: the sink pauses (nothing
acknowledged, one error logged) and resumes by itself when space returns;
the run then ends with every record exactly once and no NUL byte. An
output deleted mid-run fails the run, naming the file. Counted against the
input: lost, duplicated, unexpected and wrong records."""
import errno
import json
import os
import subprocess
import time

import zptest
from zptest import binary, check

from test_vent_durable import Producer, Service

TASKS = 8000


def _payload(i):
    return b"disk %06d " % i + b"x" * 70


def _mount(size="4m"):
    """A small tmpfs; Skip (said loudly, never a pass) when not permitted."""
    d = zptest.tmpdir()
    if os.geteuid() != 0:
        raise zptest.Skip("needs root to mount a small tmpfs (a full "
                          "filesystem); run as root, as CI does")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs",
                        d], capture_output=True)
    if r.returncode != 0:
        raise zptest.Skip("mount -t tmpfs is not permitted here: %s"
                          % r.stderr.decode(errors="replace").strip())
    return d


def _umount(d):
    subprocess.run(["umount", "-l", d], check=False)


def _fill(d, gap):
    """Fills d's filesystem but for about gap bytes; returns the filler."""
    path = os.path.join(d, "filler")
    chunk = b"F" * 65536
    with open(path, "wb", buffering=0) as f:
        n = 0
        while True:
            try:
                n += f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
            check(n < 64 << 20, "the filesystem never filled")
        f.truncate(max(0, n - gap))
    return path


def _wait_for(cond, timeout_s, what):
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError("%s: not within %d s" % (what, timeout_s))


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _json_record(line):
    """(task, payload) of a JSON Lines record; ValueError if it is none."""
    rec = json.loads(line)
    return rec.get("task"), rec.get("output", "").encode()


def _line_record(line):
    """(task, payload) of a --format lines record: the payload, whose
    second word is its id."""
    try:
        return int(line.split(b" ", 2)[1]), line
    except IndexError:
        raise ValueError("no id in %r" % line[:40])


def _count(data, payloads, record=_json_record):
    """(lost, duplicated, unexpected, wrong, NUL bytes) of the output data
    against payloads (task id -> payload), each line read by record."""
    nul = data.count(b"\0")
    seen, dup, unexpected, wrong = set(), 0, 0, 0
    for line in data.replace(b"\0", b"").split(b"\n"):
        if not line.strip():
            continue
        try:
            t, payload = record(line)
        except ValueError:
            wrong += 1
            continue
        if t in seen:
            dup += 1
            continue
        seen.add(t)
        if t not in payloads:
            unexpected += 1
        elif payload != payloads[t]:
            wrong += 1
    return len(set(payloads) - seen), dup, unexpected, wrong, nul


def _paused(log):
    try:
        return b"the sink is paused" in _read(log)
    except OSError:
        return False


def _big_payload(i):
    """16 KiB and more: written to the output from the frame it came in,
    by reference (sink_results' S_REF_MIN)."""
    return b"big %06d " % i + bytes([97 + i % 26]) * (16384 + (i * 7919) % 45000)


def _run_on_full_disk(journal_on_small, lease_ms=None, hold_s=2, big=False):
    small = _mount("24m" if big else "4m")
    try:
        d = zptest.tmpdir()
        inp = os.path.join(d, "in.txt")
        tasks = 300 if big else TASKS
        payloads = {i: (_big_payload if big else _payload)(i)
                    for i in range(tasks)}
        with open(inp, "wb") as f:
            f.write(b"".join(payloads[i] + b"\n" for i in range(tasks)))
        out = os.path.join(small, "out.jsonl")
        journal = os.path.join(small if journal_on_small else d, "journal")
        filler = _fill(small, 300 << 10)  # about 1,300 records fit
        log = os.path.join(d, "run.log")
        env = dict(os.environ)
        if lease_ms:
            env["ZPIPE_LEASE_MS"] = str(lease_ms)
        with open(log, "wb") as lf:
            p = zptest.start([binary("zpipe"), "run", "--plugin", "echo",
                              "--input", inp, "--output", out, "--journal",
                              journal, "-n", "3", "--no-progress"] +
                             (["--format", "lines"] if big else []),
                             stderr=lf, env=env)
        try:
            _wait_for(lambda: _paused(log) or p.poll() is not None, 20,
                      "the sink saying it is paused")
            check(p.poll() is None, "zpipe run ended on a full disk (%s): %s"
                  % (p.returncode, _read(log)[-2000:]))
            time.sleep(hold_s)  # paused, retrying: running, nothing lost
            check(p.poll() is None, "zpipe run ended while the disk was full")
            held = _read(out)
            check(held.count(b"\0") == 0, "NUL bytes in the output while "
                  "paused: %d" % held.count(b"\0"))
            text = _read(log).decode(errors="replace")
            check(text.count("the sink is paused") == 1,
                  "the pause is not logged once:\n%s" % text[-2000:])
            check("No space left on device" in text and out in text
                  if not journal_on_small else "No space left" in text,
                  "the error does not name the file and errno:\n%s" % text)
            check("sink restart" not in text and "restarted" not in text,
                  "the sink was restarted:\n%s" % text[-2000:])
            os.unlink(filler)  # space returns: the run finishes by itself
            try:
                rc = p.wait(30)
            except subprocess.TimeoutExpired:
                raise AssertionError("zpipe run did not finish within 30 s "
                                     "of space returning")
            text = _read(log).decode(errors="replace")
            check(rc == 0, "zpipe run exited %d:\n%s" % (rc, text[-3000:]))
            check("quarantined" not in text, "workers were blamed for the "
                  "paused sink:\n%s" % text[-3000:])
            lost, dup, unexp, wrong, nul = _count(
                _read(out), payloads, _line_record if big else _json_record)
            print("  %s: paused, resumed; lost %d, duplicated %d, unexpected "
                  "%d, wrong %d, NUL bytes %d of %d tasks"
                  % ("output+journal full" if journal_on_small else
                     "big records, output full" if big else "output full",
                     lost, dup, unexp, wrong, nul, tasks))
            check((lost, dup, unexp, wrong, nul) == (0, 0, 0, 0, 0),
                  "lost %d, duplicated %d, unexpected %d, wrong %d, NUL %d"
                  % (lost, dup, unexp, wrong, nul))
        finally:
            zptest.stop(p)
    finally:
        _umount(small)


def test_output_on_a_full_disk_pauses_and_resumes():
    _run_on_full_disk(journal_on_small=False)


def test_output_and_journal_on_a_full_disk_pause_and_resume():
    _run_on_full_disk(journal_on_small=True)


def test_big_records_on_a_full_disk_pause_and_resume():
    # Records of 16 KiB and more go to the output from the frames they came
    # in (not copied into the sink's buffer): a short write is cut back and
    # written again from the frames, which the sink keeps until committed.
    _run_on_full_disk(journal_on_small=False, big=True)


def test_a_pause_longer_than_the_lease_blames_no_worker():
    # Leases of 2 s expire three times over while the sink is paused (7 s:
    # its retries come 1, 3 and 7 s in): no worker is quarantined for it
    # (the sink commits nothing of anyone's). Not 1-s leases: the
    # ventilator forgives 3 quiet expiries a task (ZP_VENT_QUIET_EXPIRIES),
    # then moves it at most twice, so a task whose result the paused sink
    # had not read yet (it stops reading while paused) failed at the 6th
    # or 7th expiry, right at the pause's end: whether any had not been
    # read depended on how far the sink got before its first failed write
    # (a faster sink commits sooner).
    _run_on_full_disk(journal_on_small=False, lease_ms=2000, hold_s=4)


class SmallSpool(Service):
    """A service sink whose spool is on the small filesystem."""

    def __init__(self, small):
        self.small = small
        self.jdir = zptest.tmpdir()
        super().__init__(workers=2, plugins=("echo",))

    def _sink_args(self):
        return ("--spool", self.small, "--journal",
                os.path.join(self.jdir, "sink.journal"))


def test_a_full_spool_pauses_and_the_producer_wait_completes():
    small = _mount()
    s = None
    try:
        s = SmallSpool(small)
        filler = _fill(small, 300 << 10)
        job = "spool-full"
        pr = Producer(s.intake, "echo", job)
        payloads, first = {}, None
        for k in range(TASKS // 1000):
            batch = [_payload(k * 1000 + i) for i in range(1000)]
            first, n = pr.send(batch)
            payloads.update({first + i: b for i, b in enumerate(batch)})
        pr.close(len(payloads))
        w = zptest.start([binary("zpipe"), "wait", "--sink", s.control,
                          "--timeout-ms", "60000", job],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        sink_log = s.logs[0]
        _wait_for(lambda: _paused(sink_log) or s.sink.poll() is not None, 20,
                  "the sink saying it is paused")
        check(s.sink.poll() is None, "the sink exited on a full spool (%s)"
              % s.sink.returncode)
        time.sleep(1.5)
        check(w.poll() is None, "zpipe wait ended while the spool was full")
        os.unlink(filler)
        try:
            w.wait(30)
        except subprocess.TimeoutExpired:
            raise AssertionError("zpipe wait did not complete within 30 s of "
                                 "space returning")
        check(w.returncode == 0, "zpipe wait exited %d: %s"
              % (w.returncode, w.stderr.read()[-1000:]))
        # The service sink has no --output: the spool is its output,
        # each record written once (rendered into the spool's buffer,
        # which holds them while the disk is full).
        check(s.output is None, "the service sink has an --output")
        spool = _read(os.path.join(small, job + ".jsonl"))
        lost, dup, unexp, wrong, nul = _count(spool, payloads)
        print("  spool full: spool lost %d, duplicated %d, unexpected %d, "
              "wrong %d, NUL %d" % (lost, dup, unexp, wrong, nul))
        check((lost, dup, unexp, wrong, nul) == (0, 0, 0, 0, 0),
              "spool: lost %d, duplicated %d, unexpected %d, wrong %d, NUL %d"
              % (lost, dup, unexp, wrong, nul))
    finally:
        if s:
            s.kill_all()
        _umount(small)


def _deleted_mid_run(victim):
    d = zptest.tmpdir()
    inp = os.path.join(d, "in.txt")
    # 2,000,000 tasks: about a second at -O3, so the file goes mid-run.
    # 200,000 took 0.09 s, done before the 0.1 s poll saw 1 MB of output:
    # the deletion then came after the sink had stopped (1 run in 5).
    n = 2000000
    with open(inp, "wb") as f:
        f.write(b"".join(b"del %d\n" % i for i in range(n)))
    out = os.path.join(d, "out.jsonl")
    journal = os.path.join(d, "journal")
    log = os.path.join(d, "run.log")
    with open(log, "wb") as lf:
        p = zptest.start([binary("zpipe"), "run", "--plugin", "echo",
                          "--input", inp, "--output", out, "--journal",
                          journal, "-n", "2", "--no-progress"], stderr=lf)
    gone = out if victim == "output" else journal
    try:
        _wait_for(lambda: os.path.exists(out) and
                  os.path.getsize(out) > 1 << 20, 20, "1 MB of output")
        os.unlink(gone)
        try:
            rc = p.wait(30)
        except subprocess.TimeoutExpired:
            raise AssertionError("zpipe run did not end within 30 s")
        text = _read(log).decode(errors="replace")
        print("  %s deleted at 1 MB of output: zpipe run exited %d"
              % (victim, rc))
        check(rc != 0, "zpipe run exited 0 with its %s deleted:\n%s"
              % (victim, text[-2000:]))
        check(gone in text and "deleted" in text,
              "no message naming the deleted %s:\n%s" % (victim, text[-2000:]))
    finally:
        zptest.stop(p)


def test_output_deleted_mid_run_fails_the_run():
    _deleted_mid_run("output")


def test_journal_deleted_mid_run_fails_the_run():
    _deleted_mid_run("journal")


if __name__ == "__main__":
    zptest.main([
        test_output_on_a_full_disk_pauses_and_resumes,
        test_output_and_journal_on_a_full_disk_pause_and_resume,
        test_big_records_on_a_full_disk_pause_and_resume,
        test_a_pause_longer_than_the_lease_blames_no_worker,
        test_a_full_spool_pauses_and_the_producer_wait_completes,
        test_output_deleted_mid_run_fails_the_run,
        test_journal_deleted_mid_run_fails_the_run,
    ])
