#!/usr/bin/python3
"""Follows a zpipe cluster's events: workers joining, leaving and dying,
jobs opening, closing and finishing, tasks failing, retried or quarantined.

Needs only Debian's python3-zmq and python3-protobuf, and the zpipe
package the build puts in build/python (zpipe.Client.events does the same):

    PYTHONPATH=build/python examples/python/events.py \
        --ventilator tcp://127.0.0.1:5562 --sink tcp://127.0.0.1:5563

prints one JSON object per event. The ventilator and the sink publish
what each of them knows (start them with --events ENDPOINT); one SUB socket
connected to both gets one stream. --topic task_ keeps the task events only.
"""
import argparse
import json
import sys

from zpipe.events import Events, as_dict  # noqa: F401 (used by tests)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ventilator", help="the ventilator's --events endpoint")
    ap.add_argument("--sink", help="the sink's --events endpoint")
    ap.add_argument("--topic", action="append", default=[],
                    help="a topic prefix to keep (worker_, job_done, ...); "
                    "repeatable; default all")
    ap.add_argument("--curve-secret", help="this client's certificate")
    ap.add_argument("--ventilator-key", help="the ventilator's public "
                    "certificate (with --curve-secret)")
    ap.add_argument("--sink-key", help="the sink's public certificate "
                    "(with --curve-secret)")
    args = ap.parse_args()
    endpoints = [(e, k) for e, k in ((args.ventilator, args.ventilator_key),
                                     (args.sink, args.sink_key)) if e]
    if not endpoints:
        ap.error("give --ventilator and/or --sink")
    ev = Events(endpoints, args.topic or [""], args.curve_secret)
    if not ev.wait_connected():
        sys.stderr.write("events: not connected yet; still trying\n")
    try:
        while True:
            _, e = ev.recv()
            print(json.dumps(as_dict(e)), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        if ev.lost:
            sys.stderr.write("events: %d events lost\n" % ev.lost)
        ev.close()


if __name__ == "__main__":
    main()
