#!/usr/bin/python3
"""Submits a job to a running zpipe ventilator's intake, from Python.

Needs only Debian's python3-zmq and python3-protobuf, and zpipe_pb2.py,
which the build generates from proto/zpipe.proto (build/python/):

    seq 1 1000 | PYTHONPATH=build/python examples/python/producer.py \
        --ventilator tcp://127.0.0.1:5561 --plugin sha256

prints the job id; then examples/python/consumer.py (or zpipe results)
reads the records from the sink. The ventilator answers every message with
an Ack; waiting for it before sending more is what keeps a fast producer
from outrunning the cluster.
"""
import argparse
import sys

import zmq

import zpipe_pb2
from curve import secure


class Producer:
    """One job: open, send tasks in batches, close."""

    def __init__(self, endpoint, plugin, job_id="", priority=0, deadline_ms=0,
                 max_attempts=0, timeout_ms=60000, curve_secret=None,
                 server_key=None, config=None):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        secure(self.sock, curve_secret, server_key)
        self.sock.connect(endpoint)
        self.timeout_ms = timeout_ms
        m = zpipe_pb2.Message()
        o = m.job_open
        o.job_id, o.plugin, o.priority = job_id, plugin, priority
        o.deadline_ms, o.max_attempts = deadline_ms, max_attempts
        # The plugin's settings for this job, e.g. {"cmd": "sha256sum"}.
        for key, value in (config or {}).items():
            o.config.add(key=key, value=value)
        # The answer comes once the sink has opened the job; opening again
        # is harmless, so a lost answer is simply asked for again.
        while True:
            self.sock.send(m.SerializeToString())
            ack = self._ack(2000)
            if ack is not None:
                break
        self.job_id = ack.job_id
        self.sent = 0

    def _ack(self, timeout_ms=None):
        if not self.sock.poll(self.timeout_ms if timeout_ms is None else timeout_ms):
            return None
        ack = zpipe_pb2.Message.FromString(self.sock.recv()).ack
        if not ack.ok:
            raise RuntimeError("ventilator refused: %s" % ack.error)
        return ack

    def send(self, payloads):
        """Sends one batch; returns the task ids the ventilator gave it."""
        m = zpipe_pb2.Message()
        m.task_batch.job_id = self.job_id
        for p in payloads:
            m.task_batch.tasks.add(payload=p)
        self.sock.send(m.SerializeToString())
        ack = self._ack()
        if ack is None:
            raise RuntimeError("no answer from the ventilator")
        self.sent += ack.accepted
        return range(ack.first_task_id, ack.first_task_id + ack.accepted)

    def close(self):
        m = zpipe_pb2.Message()
        m.job_close.job_id = self.job_id
        m.job_close.total = self.sent
        self.sock.send(m.SerializeToString())
        if self._ack() is None:
            raise RuntimeError("no answer to the close")
        self.sock.close(linger=1000)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ventilator", default="tcp://127.0.0.1:5561")
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--job", default="")
    ap.add_argument("--priority", type=int, default=0)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting for the job's plugin; repeatable")
    ap.add_argument("--curve-secret", help="own certificate (CURVE)")
    ap.add_argument("--ventilator-key", help="the ventilator's public key file")
    args = ap.parse_args()
    p = Producer(args.ventilator, args.plugin, args.job, args.priority,
                 curve_secret=args.curve_secret,
                 server_key=args.ventilator_key,
                 config=dict(c.split("=", 1) for c in args.config))
    print(p.job_id, flush=True)
    batch = []
    for line in sys.stdin.buffer:
        batch.append(line.rstrip(b"\n"))
        if len(batch) == args.batch:
            p.send(batch)
            batch = []
    if batch:
        p.send(batch)
    p.close()
    print("job %s: %d tasks submitted" % (p.job_id, p.sent), file=sys.stderr)


if __name__ == "__main__":
    main()
