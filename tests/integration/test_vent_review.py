"""Review of issue 15's durable ventilator: cases its journal and intake
got wrong, each with real binaries (a journaled sink and ventilator, and
raw protocol clients as docs/protocol.md describes them)."""
import os
import sys
import time

import zmq

import zptest
from zptest import check

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_vent_durable import Producer, Service  # noqa: E402

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


if __name__ == "__main__":
    zptest.main([
        test_open_again_after_restart_is_answered,
    ])
