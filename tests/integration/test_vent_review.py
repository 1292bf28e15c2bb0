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


if __name__ == "__main__":
    zptest.main([
        test_open_again_after_restart_is_answered,
        test_refused_job_does_not_break_the_journal,
    ])
