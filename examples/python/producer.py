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

A message whose answer did not come is sent again: once the connection is
back after a drop (a restarted ventilator, say), or when nothing was heard
for 5 s. The ventilator knows a repeat by the job's token and the batch's
seq and answers it as it did the first time, so nothing runs twice and the
job finishes across a ventilator restart (docs/protocol.md, "Producers").
Run again with the same --job and --token after a crash, it resumes the
job; if that job has finished meanwhile, the open's answer says so
(Ack.finished): nothing is sent and it exits 0 saying so.
"""
import argparse
import secrets
import sys
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

import zpipe_pb2
from curve import secure


class Producer:
    """One job: open, send tasks in batches, close."""

    def __init__(self, endpoint, plugin, job_id="", priority=0, deadline_ms=0,
                 max_attempts=0, timeout_ms=60000, curve_secret=None,
                 server_key=None, config=None, token=""):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        secure(self.sock, curve_secret, server_key)
        # What a dropped connection had queued is lost with it: the
        # monitor says when it is back, to send the message again.
        self.monitor = self.sock.get_monitor_socket(
            zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        self.sock.connect(endpoint)
        self.connected = True
        self.timeout_ms = timeout_ms  # give up after this long unanswered
        self.instance = None          # the ventilator's, from its Acks
        # The id is made here so that an open sent again names the same
        # job; the token tells this job from any other that had the id.
        self.job_id = job_id or "job-" + secrets.token_hex(8)
        self.seq = 0                  # the last batch's TaskBatch.seq
        self.sent = 0
        # The open's answer said the job had already finished (a rerun
        # after the close): send() and close() send nothing.
        self.finished = False
        m = zpipe_pb2.Message()
        o = m.job_open
        o.job_id, o.plugin, o.priority = self.job_id, plugin, priority
        # Given: a rerun with it resumes the job; random: another job.
        self.token = o.token = token or secrets.token_hex(16)
        o.deadline_ms, o.max_attempts = deadline_ms, max_attempts
        # The plugin's settings for this job, e.g. {"cmd": "sha256sum"}.
        for key, value in (config or {}).items():
            o.config.add(key=key, value=value)
        ack = self._request(m)
        if ack.finished:
            self.finished, self.sent = True, ack.accepted

    def _request(self, m, seq=0, total=None):
        """Sends m until its Ack comes, and returns it. seq: the batch's
        number, 0 for the open and the close; total: the close's."""
        data = m.SerializeToString()
        self.sock.send(data)
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.monitor, zmq.POLLIN)
        heard = time.monotonic()
        while True:
            ready = dict(poller.poll(5000))
            if self.monitor in ready:
                event = recv_monitor_message(self.monitor)["event"]
                if event == zmq.EVENT_CONNECTED and not self.connected:
                    self.sock.send(data)  # back after a drop
                self.connected = event == zmq.EVENT_CONNECTED
            if self.sock in ready:
                ack = zpipe_pb2.Message.FromString(self.sock.recv()).ack
                if ack.job_id != self.job_id:
                    continue
                heard = time.monotonic()
                restarted = self.instance not in (None, ack.ventilator_instance)
                self.instance = ack.ventilator_instance
                if not ack.ok:
                    raise RuntimeError("ventilator refused: %s" % ack.error)
                # The answer names the batch's seq (0: the open, the
                # close); the close's, the job's total. A ventilator older
                # than TaskBatch.seq answers a batch with 0 and its size.
                if ack.seq == seq and total in (None, ack.accepted) or \
                        seq and not ack.seq and ack.accepted:
                    return ack
                # Else it answers a repeat of an earlier message; a new
                # ventilator instance may not have had m.
                if restarted:
                    self.sock.send(data)
            elif not ready and self.connected:
                self.sock.send(data)  # nothing heard for 5 s: ask again
            if self.timeout_ms and time.monotonic() - heard > self.timeout_ms / 1000:
                raise RuntimeError("no answer from the ventilator")

    def send(self, payloads):
        """Sends one batch; returns the task ids the ventilator gave it
        (none once the job has finished)."""
        if self.finished:
            return range(0)
        self.seq += 1
        m = zpipe_pb2.Message()
        m.task_batch.job_id = self.job_id
        m.task_batch.seq = self.seq
        m.task_batch.token = self.token  # the job's: taken on any connection
        for p in payloads:
            m.task_batch.tasks.add(payload=p)
        ack = self._request(m, self.seq)
        self.sent += ack.accepted
        return range(ack.first_task_id, ack.first_task_id + ack.accepted)

    def close(self):
        m = zpipe_pb2.Message()
        m.job_close.job_id = self.job_id
        m.job_close.total = self.sent
        m.job_close.token = self.token
        if not self.finished:
            self._request(m, total=self.sent)
        self.sock.disable_monitor()
        self.monitor.close(linger=0)
        self.sock.close(linger=1000)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ventilator", default="tcp://127.0.0.1:5561")
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--job", default="")
    ap.add_argument("--token", default="",
                    help="the job's token: the same --job and --token "
                    "resume the job (default: a random one)")
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
                 config=dict(c.split("=", 1) for c in args.config),
                 token=args.token)
    print(p.job_id, flush=True)
    if p.finished:
        p.close()
        print("job %s was already complete (%d tasks); nothing sent. "
              "'zpipe wait %s' tells its outcome" % (p.job_id, p.sent,
                                                     p.job_id),
              file=sys.stderr)
        return
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
