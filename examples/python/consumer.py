#!/usr/bin/python3
"""Reads every record of a zpipe job from a running sink, missing nothing.

Needs only Debian's python3-zmq and python3-protobuf, and the zpipe
package the build puts in build/python (zpipe.Job.results does the same):

    PYTHONPATH=build/python examples/python/consumer.py \
        --sink tcp://127.0.0.1:5559 JOB > records.jsonl

The sink must run with --spool DIR. Records are JSON Lines; the cursor is
a byte offset, so an interrupted consumer resumes with --cursor N.
"""
import argparse
import json
import sys

import zmq

from zpipe.client import Fetcher, _drive


def records(sink, job, cursor=0, max_bytes=1 << 20, curve_secret=None,
            server_key=None):
    """Yields (record dict, cursor after it) until the job is done; asks
    again from its cursor after a dropped connection."""
    f = Fetcher(zmq.Context.instance(), sink, job, cursor, curve_secret,
                server_key, max_bytes=max_bytes, resend_s=5.0)
    try:
        while not f.done:
            for rec in f.pump():
                yield rec.raw, rec.cursor
            if not f.done:
                _drive([f], 0.2)
    finally:
        f.shutdown()


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
