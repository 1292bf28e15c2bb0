#!/usr/bin/python3
"""Reads every record of a zpipe job from a running sink, missing nothing.

Needs only Debian's python3-zmq and python3-protobuf, and zpipe_pb2.py,
which the build generates from proto/zpipe.proto (build/python/):

    PYTHONPATH=build/python examples/python/consumer.py \
        --sink tcp://127.0.0.1:5559 JOB > records.jsonl

The sink must run with --spool DIR. Records are JSON Lines; the cursor is
a byte offset, so an interrupted consumer resumes with --cursor N.
"""
import argparse
import json
import sys
import time

import zmq

import zpipe_pb2
from curve import secure


def records(sink, job, cursor=0, max_bytes=1 << 20, curve_secret=None,
            server_key=None):
    """Yields (record dict, cursor after it) until the job is done."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    secure(sock, curve_secret, server_key)
    sock.connect(sink)
    try:
        while True:
            req = zpipe_pb2.Message()
            req.results_request.job_id = job
            req.results_request.cursor = cursor
            req.results_request.max_bytes = max_bytes
            req.results_request.wait = True
            sock.send(req.SerializeToString())
            # With wait, the sink answers when it has records past the
            # cursor or the job is done; ask again if it went quiet.
            if not sock.poll(5000):
                continue
            chunk = zpipe_pb2.Message.FromString(sock.recv()).results_chunk
            if chunk.cursor != cursor:
                continue  # the answer to an earlier, repeated request
            if chunk.error == "unknown job":
                time.sleep(0.1)  # not opened yet
                continue
            if chunk.error:
                raise RuntimeError("sink: %s" % chunk.error)
            at = cursor
            for line in chunk.records.splitlines(keepends=True):
                at += len(line)
                yield json.loads(line), at
            cursor = chunk.next_cursor
            if chunk.done:
                return
    finally:
        sock.close(linger=0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sink", default="tcp://127.0.0.1:5559",
                    help="the sink's control endpoint")
    ap.add_argument("--cursor", type=int, default=0, help="resume from here")
    ap.add_argument("--curve-secret", help="own certificate (CURVE)")
    ap.add_argument("--sink-key", help="the sink's public key file")
    ap.add_argument("job")
    args = ap.parse_args()
    n = failed = 0
    for rec, _ in records(args.sink, args.job, args.cursor,
                          curve_secret=args.curve_secret,
                          server_key=args.sink_key):
        n += 1
        failed += rec["status"] != "ok"
        sys.stdout.write(json.dumps(rec) + "\n")
    print("job %s: %d records, %d failed" % (args.job, n, failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
