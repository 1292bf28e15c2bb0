"""zpipe run with --input-format frames and --format frames: binary tasks
(NUL, newline and carriage-return bytes) in and records out byte for byte,
counted against the input; --ordered; failures' flags, cause and error;
a task answered while its input pipe stays open; input that ends inside a
frame; a frame over --max-task-bytes; the reduced record; the daemons
themselves, with the spool kept in JSON Lines."""
import base64
import os
import random
import select
import signal
import struct
import subprocess
import time

import zptest
from zptest import binary, check, run

HEADER = struct.Struct(">QBBHIII")  # task, flags, C, zero, O, E, attempts
FAILED, RETRYABLE, REDUCED = 1, 2, 4
N_TASKS = 20000


def frames(payloads):
    """The tasks as --input-format frames: a 4-byte big-endian length each."""
    return b"".join(struct.pack(">I", len(p)) + p for p in payloads)


def parse_record(buf, at):
    """The record at byte at of buf and the offset after it, or None when
    buf ends inside it."""
    if len(buf) - at < HEADER.size:
        return None
    task, flags, c, zero, o, e, attempts = HEADER.unpack_from(buf, at)
    body = at + HEADER.size
    if len(buf) - body < o + c + e:
        return None
    check(zero == 0, "task %d: the zero field is %d" % (task, zero))
    rec = {"task": task, "flags": flags, "attempts": attempts,
           "output": buf[body:body + o], "cause": buf[body + o:body + o + c],
           "error": buf[body + o + c:body + o + c + e]}
    return rec, body + o + c + e


def parse(buf):
    """Every record of buf, which must end on a record's last byte."""
    recs, at = [], 0
    while at < len(buf):
        got = parse_record(buf, at)
        check(got is not None, "output ends inside a record at byte %d of %d"
              % (at, len(buf)))
        rec, at = got
        recs.append(rec)
    return recs


def binary_payloads(n, seed):
    """n payloads of 0 to 300 random bytes; most hold a NUL, a newline and
    a carriage return wherever the random bytes did not put them."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        p = bytearray(rng.randbytes(rng.randint(0, 300)))
        for b in (0, 10, 13):
            if p:
                p[rng.randrange(len(p))] = b
        out.append(bytes(p))
    return out


def tally(recs, payloads):
    """lost, duplicated, unexpected and wrong records against the input."""
    seen = {}
    duplicated = unexpected = wrong = 0
    for rec in recs:
        t = rec["task"]
        if t >= len(payloads):
            unexpected += 1
            continue
        if t in seen:
            duplicated += 1
            continue
        seen[t] = rec
        if rec["flags"] != 0 or rec["output"] != payloads[t] or \
                rec["cause"] or rec["error"] or rec["attempts"] < 1:
            wrong += 1
    return len(payloads) - len(seen), duplicated, unexpected, wrong


def zpipe_run(args, payload_bytes, env=None, timeout=120):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return run([binary("zpipe"), "run", "--input-format", "frames",
                "--format", "frames", "--no-progress"] + args,
               input=payload_bytes, capture_output=True, timeout=timeout,
               env=full_env)


def test_20000_binary_tasks_round_trip_byte_for_byte():
    payloads = binary_payloads(N_TASKS, 17)
    check(sum(1 for p in payloads if b"\0" in p and b"\n" in p
              and b"\r" in p) > N_TASKS * 0.9, "the payloads are not binary")
    r = zpipe_run(["--plugin", "echo", "--workers", "2"], frames(payloads))
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr.decode()))
    recs = parse(r.stdout)
    lost, dup, unexpected, wrong = tally(recs, payloads)
    check((lost, dup, unexpected, wrong) == (0, 0, 0, 0),
          "lost %d, duplicated %d, unexpected %d, wrong %d of %d"
          % (lost, dup, unexpected, wrong, N_TASKS))
    check(sorted(rec["task"] for rec in recs) == list(range(N_TASKS)),
          "task ids are not exactly 0..%d" % (N_TASKS - 1))
    check(b"%d succeeded, 0 failed" % N_TASKS in r.stderr, r.stderr.decode())


def test_ordered_records_come_in_task_order():
    payloads = binary_payloads(N_TASKS, 18)
    r = zpipe_run(["--plugin", "echo", "--workers", "2", "--ordered",
                   "--batch", "7"], frames(payloads))
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr.decode()))
    recs = parse(r.stdout)
    check(tally(recs, payloads) == (0, 0, 0, 0),
          "lost, duplicated, unexpected, wrong: %r" % (tally(recs, payloads),))
    check([rec["task"] for rec in recs] == list(range(N_TASKS)),
          "records are not in task order")


def test_failed_records_carry_flags_cause_and_error():
    tasks = [b"ok0", b"fail1", b"retry2", b"bin3", b"big4", b"ok\0\n5", b""]
    r = zpipe_run(["--plugin", os.path.join(zptest.FIXTURES, "fx_fail.so"),
                   "--workers", "2"], frames(tasks))
    check(r.returncode == 1, "exit %d, want 1: %s"
          % (r.returncode, r.stderr.decode()))
    recs = {rec["task"]: rec for rec in parse(r.stdout)}
    check(sorted(recs) == list(range(len(tasks))), "records %r" % sorted(recs))
    for t in (0, 5, 6):
        check(recs[t]["flags"] == 0 and recs[t]["output"] == tasks[t]
              and recs[t]["attempts"] == 1 and recs[t]["cause"] == b""
              and recs[t]["error"] == b"", repr(recs[t]))
    check(recs[1]["flags"] == FAILED and recs[1]["cause"] == b"plugin_error"
          and recs[1]["error"] == b"asked to fail"
          and recs[1]["attempts"] == 1, repr(recs[1]))
    check(recs[2]["flags"] == FAILED | RETRYABLE
          and recs[2]["cause"] == b"plugin_retry"
          and recs[2]["error"] == b"asked to fail, retryable"
          and recs[2]["attempts"] == 3, repr(recs[2]))
    check(recs[3]["flags"] == 0 and recs[3]["output"] == b"\xff\x00\xfez",
          repr(recs[3]))
    check(recs[4]["flags"] & FAILED and recs[4]["cause"] == b"output_too_large"
          and recs[4]["error"], repr(recs[4]))
    check(b"3 failed" in r.stderr, r.stderr.decode())


def _read_record(fd, buf, deadline):
    """Reads fd into buf until it holds a whole record; returns it and
    leaves what follows in buf. None at end of output or past deadline."""
    while True:
        got = parse_record(buf, 0)
        if got:
            rec, end = got
            del buf[:end]
            return rec
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        buf.extend(chunk)


def test_each_frame_is_answered_while_the_input_stays_open():
    d = zptest.tmpdir()
    err = open(os.path.join(d, "stderr"), "wb")
    p = zptest.start([binary("zpipe"), "run", "--plugin", "echo",
                      "--workers", "2", "--input-format", "frames",
                      "--format", "frames", "--no-progress"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
    buf = bytearray()
    waits = []
    for k in range(10):
        payload = b"round %d\n\0\r" % k + bytes(range(k * 20))
        t0 = time.monotonic()
        p.stdin.write(frames([payload]))
        p.stdin.flush()
        rec = _read_record(p.stdout.fileno(), buf, t0 + 5.0)
        waits.append(time.monotonic() - t0)
        check(rec is not None, "no record for frame %d within 5 s with the "
              "input open (%s)" % (k, open(err.name, "rb").read().decode()))
        check(rec["task"] == k and rec["flags"] == 0
              and rec["output"] == payload, "frame %d: %r" % (k, rec))
    p.stdin.close()
    rc = p.wait(30)
    check(rc == 0, "exit %d: %s" % (rc, open(err.name, "rb").read().decode()))
    check(p.stdout.read() == b"" and not buf, "records after the last frame")
    print("     round trips: max %.3f s" % max(waits))


def test_input_ending_inside_a_frame_is_an_error():
    r = zpipe_run(["--plugin", "echo", "--workers", "1"],
                  frames([b"a", b""]) + struct.pack(">I", 10) + b"abc",
                  timeout=60)
    err = r.stderr.decode()
    check(r.returncode != 0, "exit 0 for a truncated body: %s" % err)
    check("input ends inside frame 2: got 3 of 10 bytes" in err, err)
    r = zpipe_run(["--plugin", "echo", "--workers", "1"],
                  frames([b"a"]) + b"\0\0", timeout=60)
    err = r.stderr.decode()
    check(r.returncode != 0, "exit 0 for a truncated length: %s" % err)
    check("input ends inside frame 1: got 2 of 4 bytes of its length" in err,
          err)


def test_frame_over_max_task_bytes_is_refused_like_a_long_line():
    limit = {"ZPIPE_MAX_TASK_BYTES": "100"}
    r = zpipe_run(["--plugin", "echo", "--workers", "1"],
                  frames([b"x" * 100, b"y" * 101]), env=limit, timeout=60)
    err = r.stderr.decode()
    check(r.returncode != 0, "exit 0 with a frame over the limit: %s" % err)
    check("input frame 1 is 101 bytes, over the limit of 100 "
          "(--max-task-bytes)" in err, err)
    full_env = dict(os.environ, **limit)
    lines = run([binary("zpipe"), "run", "--plugin", "echo", "--workers", "1",
                 "--no-progress"], input=b"x\n" + b"y" * 101 + b"\n",
                capture_output=True, timeout=60, env=full_env)
    check(b"input line 2 is 101 bytes" in lines.stderr, lines.stderr.decode())
    check(r.returncode == lines.returncode, "exit %d for a frame, %d for a "
          "line" % (r.returncode, lines.returncode))
    # A length of 2 GiB is refused as soon as it is read: no body comes,
    # and the input stays open.
    d = zptest.tmpdir()
    errf = open(os.path.join(d, "stderr"), "wb")
    p = zptest.start([binary("zpipe"), "run", "--plugin", "echo",
                      "--workers", "1", "--input-format", "frames",
                      "--no-progress"], stdin=subprocess.PIPE,
                     stdout=subprocess.DEVNULL, stderr=errf)
    p.stdin.write(frames([b"ok"]) + struct.pack(">I", 0x7fffffff))
    p.stdin.flush()
    try:
        rc = p.wait(20)
    finally:
        p.stdin.close()
    err = open(errf.name, "rb").read().decode()
    check(rc == lines.returncode, "exit %d: %s" % (rc, err))
    check("input frame 1 is 2147483647 bytes, over the limit of 67108864"
          in err, err)


def test_reduced_record_is_flagged_and_holds_the_value():
    words = [b"red green red", b"blue red", b"", b"green"]
    r = zpipe_run(["--plugin", "wordcount", "--reduce", "--workers", "2"],
                  frames(words))
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr.decode()))
    recs = parse(r.stdout)
    check(len(recs) == 1, "%d records, want the one reduced" % len(recs))
    rec = recs[0]
    check(rec["task"] == 2 ** 64 - 1 and rec["flags"] == REDUCED
          and rec["cause"] == b"" and rec["error"] == b""
          and rec["attempts"] == 1, repr(rec))
    lines = run([binary("zpipe"), "run", "--plugin", "wordcount", "--reduce",
                 "--workers", "2", "--no-progress", "--format", "lines"],
                input=b"\n".join(words) + b"\n", capture_output=True,
                timeout=60)
    check(lines.returncode == 0, lines.stderr.decode())
    check(rec["output"] == b"red 3\ngreen 2\nblue 1\n"
          and rec["output"] == lines.stdout, "%r vs lines %r"
          % (rec["output"], lines.stdout))
    # A reduction that fails: flagged failed too, its reason as the error.
    r = zpipe_run(["--plugin", "wordcount", "--reduce", "--workers", "1",
                   "--config", "top=many"], frames(words))
    check(r.returncode == 1, "exit %d: %s" % (r.returncode, r.stderr.decode()))
    recs = parse(r.stdout)
    check(len(recs) == 1 and recs[0]["flags"] == REDUCED | FAILED
          and b"reduce_init failed" in recs[0]["error"], repr(recs))


def test_daemons_take_frames_and_the_spool_stays_json_lines():
    payloads = binary_payloads(500, 19)
    c = zptest.Cluster(output_name="out.frames",
                       sink_args=("--format", "frames", "--spool",
                                  zptest.tmpdir()))
    spool = c.sink.args[c.sink.args.index("--spool") + 1]
    inp = os.path.join(c.dir, "in.frames")
    with open(inp, "wb") as f:
        f.write(frames(payloads))
    c.worker(["echo"])
    v = c.ventilator("echo", inp, ["--input-format", "frames", "--job", "bin"])
    check(v.wait(60) == 0, "ventilator exit %r" % v.returncode)
    with open(c.output, "rb") as f:
        recs = parse(f.read())
    check(tally(recs, payloads) == (0, 0, 0, 0),
          "lost, duplicated, unexpected, wrong: %r" % (tally(recs, payloads),))
    spooled = {rec["task"]: rec for rec in
               zptest.read_jsonl(os.path.join(spool, "bin.jsonl"))}
    check(sorted(spooled) == list(range(len(payloads))), "spool ids")
    bad = [t for t, rec in spooled.items()
           if (base64.b64decode(rec["output_b64"]) if "output_b64" in rec
               else rec["output"].encode()) != payloads[t]]
    check(not bad, "spool records differ from the input: %r" % bad[:5])


def _journaled_ids(journal):
    return [r[2] for r in zptest.journal_records(journal)]


def test_killed_run_resumes_with_frames_in_and_out():
    # As test_resume_ordered, with frames: task SLOW spins 3 s, the run is
    # killed with records journaled past it, --resume --ordered finishes.
    n, slow = 6000, 1000
    payloads = [b"%d" % (3000000 if i == slow else 100 + i % 7)
                for i in range(n)]
    d = zptest.tmpdir()
    inp, out = os.path.join(d, "in.frames"), os.path.join(d, "out.frames")
    journal = os.path.join(d, "journal")
    with open(inp, "wb") as f:
        f.write(frames(payloads))
    cmd = [binary("zpipe"), "run", "--plugin", "spin", "--workers", "3",
           "--batch", "16", "--input", inp, "--output", out, "--journal",
           journal, "--job", "frames-resume", "--input-format", "frames",
           "--format", "frames", "--no-progress"]
    p = subprocess.Popen(cmd, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    zptest._procs.append(p)
    deadline = time.time() + 20
    while time.time() < deadline and p.poll() is None and \
            max(_journaled_ids(journal), default=-1) <= slow + 500:
        time.sleep(0.02)
    check(p.poll() is None, "the run ended before task %d did" % slow)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(30)
    time.sleep(0.2)  # the children notice their parent is gone
    before = len(_journaled_ids(journal))
    check(0 < before < n, "%d records journaled before the kill" % before)
    r = run(cmd + ["--resume", "--ordered"], capture_output=True, timeout=60)
    check(r.returncode == 0, "resume exit %d: %s"
          % (r.returncode, r.stderr.decode()[-800:]))
    with open(out, "rb") as f:
        recs = parse(f.read())  # spin echoes its payload
    check(tally(recs, payloads) == (0, 0, 0, 0),
          "lost, duplicated, unexpected, wrong: %r" % (tally(recs, payloads),))
    tail = [rec["task"] for rec in recs[before:]]
    check(tail == sorted(tail), "the resumed run's records are not in order")
    print("     %d records before the kill, %d after" % (before, len(tail)))


if __name__ == "__main__":
    zptest.main([
        test_20000_binary_tasks_round_trip_byte_for_byte,
        test_ordered_records_come_in_task_order,
        test_failed_records_carry_flags_cause_and_error,
        test_each_frame_is_answered_while_the_input_stays_open,
        test_input_ending_inside_a_frame_is_an_error,
        test_frame_over_max_task_bytes_is_refused_like_a_long_line,
        test_reduced_record_is_flagged_and_holds_the_value,
        test_daemons_take_frames_and_the_spool_stays_json_lines,
        test_killed_run_resumes_with_frames_in_and_out,
    ])
