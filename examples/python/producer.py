#!/usr/bin/python3
"""Submits a job to a running zpipe ventilator's intake, from Python.

Needs only Debian's python3-zmq and python3-protobuf, and the zpipe
package the build puts in build/python (zpipe.Client does the same):

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
import sys
import time

import zmq

from zpipe.client import Producer as _Producer


class Producer:
    """One job: open, send tasks in batches, close; each call blocks
    until the ventilator has answered (zpipe.client.Producer does the
    protocol: resends after a reconnect, a ventilator restart or 5 s of
    silence)."""

    def __init__(self, endpoint, plugin, job_id="", priority=0, deadline_ms=0,
                 max_attempts=0, timeout_ms=60000, curve_secret=None,
                 server_key=None, config=None, token=""):
        self.timeout_ms = timeout_ms  # give up after this long unanswered
        self._acked = []
        self._p = _Producer(zmq.Context.instance(), endpoint, plugin,
                            config=config, priority=priority,
                            deadline_ms=deadline_ms,
                            max_attempts=max_attempts, job_id=job_id or None,
                            token=token or None, curve_secret=curve_secret,
                            server_key=server_key,
                            on_batch=lambda first, n: self._acked.append(
                                range(first, first + n)))
        self.job_id, self.token = self._p.job_id, self._p.token
        self.sent = 0
        self._settle()
        # The open's answer said the job had already finished (a rerun
        # after the close): send() and close() send nothing.
        self.finished = self._p.finished
        if self.finished:
            self.sent = self._p.finished_total

    def _settle(self):
        """Waits until everything queued is answered."""
        heard, mark = time.monotonic(), None
        while not self._p.idle() and not self._p.finished:
            self._p.pump()
            progress = (len(self._p.queue), len(self._p.sent))
            if progress != mark:
                heard, mark = time.monotonic(), progress
            if self.timeout_ms and \
                    time.monotonic() - heard > self.timeout_ms / 1000:
                raise RuntimeError("no answer from the ventilator")
            self._p.link.sock.poll(100)

    def send(self, payloads):
        """Sends one batch; returns the task ids the ventilator gave it
        (none once the job has finished)."""
        if self.finished:
            return range(0)
        self._p.send(payloads)
        self._settle()
        ids = self._acked.pop()
        self.sent += len(ids)
        return ids

    def close(self):
        if not self.finished:
            self._p.close()
            self._settle()
        self._p.shutdown()


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
