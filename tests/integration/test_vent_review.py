"""Review of issue 15's durable ventilator: cases its journal and intake
got wrong, each with real binaries (a journaled sink and ventilator, and
raw protocol clients as docs/protocol.md describes them)."""
import os
import random
import sys
import time

import zmq

import zptest
from zptest import binary, check, start

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_vent_durable import Producer, Service, _status  # noqa: E402

sys.path.insert(0, os.path.join(zptest.SOURCE, "examples", "python"))
import zpipe_pb2  # noqa: E402


def _open(endpoint, job, token, plugin="sha256", wait_s=5.0):
    """One JobOpen on a new connection, resent every 0.5 s; the Ack, or
    None when none came in wait_s."""
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    m = zpipe_pb2.Message()
    m.job_open.job_id, m.job_open.plugin, m.job_open.token = job, plugin, token
    t_end = time.monotonic() + wait_s
    try:
        while time.monotonic() < t_end:
            s.send(m.SerializeToString())
            if s.poll(500):
                a = zpipe_pb2.Message.FromString(s.recv()).ack
                if a.job_id == job:
                    return a
        return None
    finally:
        s.close()


def test_open_again_after_restart_is_answered():
    """A job replayed from the journal is opened at the sink before its
    producer is back; the producer's JobOpen (same id and token, from
    another connection, as after a reconnect) must still be answered."""
    s = Service()
    p = Producer(s.intake, "sha256", "again-1")
    p.send([b"a", b"b"])
    s.kill_ventilator()
    s.start_ventilator()
    time.sleep(1.5)  # the replayed job is open at the sink again
    a = _open(s.intake, "again-1", p.token)
    check(a is not None, "the job's own JobOpen after a restart went "
          "unanswered")
    check(a.ok, a)


def test_refused_job_does_not_break_the_journal():
    """The sink refuses a job (its id was used by another job there); the
    producer tries the id again. The journal then holds two opens of one
    id, and the restarted ventilator must still start and resume."""
    s = Service()
    # Another ventilator on the same sink, without a journal, takes the
    # id first with its own token.
    other_intake = "ipc://%s/intake2" % s.dir
    other = start([binary("zpipe-ventilator"), "--intake", other_intake,
                   "--bind", "ipc://%s/dispatch2" % s.dir, "--sink", s.control],
                  stderr=s._log("ventilator2"))
    a = _open(other_intake, "taken-1", "tok-other")
    check(a is not None and a.ok, "the other ventilator opened it: %r" % a)
    for _ in range(2):  # refused at the sink; the producer tries again
        a = _open(s.intake, "taken-1", "tok-mine")
        check(a is not None and not a.ok, "refused: %r" % a)
    # A live job with acknowledged tasks, to be resumed.
    p = Producer(s.intake, "sha256", "live-1")
    p.send([b"x", b"y", b"z"])
    p.close(3)
    s.kill_ventilator()
    s.start_ventilator()
    time.sleep(1.0)
    check(s.vent.poll() is None, "the ventilator exited after its restart "
          "(journal not replayable)")
    st = _status(s.control, "live-1", timeout_s=20)
    check(st.succeeded == 3, st)
    zptest.stop(other)


def test_every_refusal_names_the_seq_the_docs_give():
    """docs/protocol.md, "Refusals": a batch out of order is refused with
    Ack.seq = the batch expected; every other refusal of a batch with its
    own seq; a refusal of an open, a close or a frame with seq 0. Checked
    with a raw DEALER, one message at a time."""
    os.environ["ZPIPE_MAX_TASK_BYTES"] = "64"
    try:
        s = Service(workers=0)
    finally:
        del os.environ["ZPIPE_MAX_TASK_BYTES"]
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(s.intake)

    def ask(m):
        sock.send(m if isinstance(m, bytes) else m.SerializeToString())
        check(sock.poll(10000), "no answer to %r" % m)
        return zpipe_pb2.Message.FromString(sock.recv()).ack

    def batch(job, seq, payloads):
        m = zpipe_pb2.Message()
        m.task_batch.job_id, m.task_batch.seq = job, seq
        for p in payloads:
            m.task_batch.tasks.add(payload=p)
        return m

    m = zpipe_pb2.Message()
    m.job_open.job_id, m.job_open.plugin = "seqs-1", "sha256"
    m.job_open.token = "tok-seqs-1"
    a = ask(m)
    check(a.ok and a.seq == 0, "open: %r" % a)
    got = {}
    got["unknown job"] = ask(batch("no-such-job", 7, [b"x"]))
    got["out of order"] = ask(batch("seqs-1", 3, [b"x"]))
    got["task too big"] = ask(batch("seqs-1", 1, [b"x" * 65]))
    a = ask(batch("seqs-1", 1, [b"a", b"b"]))
    check(a.ok and a.seq == 1 and a.accepted == 2, "batch 1: %r" % a)
    m = zpipe_pb2.Message()
    m.job_close.job_id, m.job_close.total = "seqs-1", 5
    got["close, wrong total"] = ask(m)
    m.job_close.total = 2
    a = ask(m)
    check(a.ok and a.seq == 0 and a.accepted == 2, "close: %r" % a)
    got["closed job"] = ask(batch("seqs-1", 2, [b"c"]))
    m = zpipe_pb2.Message()
    m.job_open.job_id, m.job_open.plugin = "seqs-1", "sha256"
    m.job_open.token = "tok-another"
    got["open, id in use"] = ask(m)
    got["malformed frame"] = ask(b"\xff\xff\xff")
    want = {"unknown job": 7, "out of order": 1, "task too big": 1,
            "close, wrong total": 0, "closed job": 2, "open, id in use": 0,
            "malformed frame": 0}
    seen = {k: (a.ok, a.seq) for k, a in got.items()}
    print("    %s" % ", ".join("%s: seq %d" % (k, q) for k, (_, q)
                               in seen.items()))
    check(seen == {k: (False, q) for k, q in want.items()},
          "refusals and their Ack.seq: %r, want %r" % (seen, want))
    sock.close()


if __name__ == "__main__":
    zptest.main([
        test_open_again_after_restart_is_answered,
        test_refused_job_does_not_break_the_journal,
        test_every_refusal_names_the_seq_the_docs_give,
    ])
