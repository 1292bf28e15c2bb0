#!/usr/bin/python3
"""Follows a zpipe cluster's events: workers joining, leaving and dying,
jobs opening, closing and finishing, tasks failing, retried or quarantined.

Needs only Debian's python3-zmq and python3-protobuf, and zpipe_pb2.py,
which the build generates from proto/zpipe.proto (build/python/):

    PYTHONPATH=build/python examples/python/events.py \
        --ventilator tcp://127.0.0.1:5562 --sink tcp://127.0.0.1:5563

prints one JSON object per event. The ventilator and the sink publish
what each of them knows (start them with --events ENDPOINT); one SUB socket
connected to both gets one stream. --topic task_ keeps the task events only.
"""
import argparse
import json
import sys
import time

import zmq
from google.protobuf import json_format

import zpipe_pb2
from curve import secure


class Events:
    """A SUB socket on the given (endpoint, server key file or None)
    pairs. recv() returns the next event as (topic, Event message), or
    None after timeout_ms. lost() counts the events a source's seq shows
    were dropped (a slow subscriber; the publisher never waits)."""

    def __init__(self, endpoints, topics=("",), curve_secret=None):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.rcvhwm = 0
        self._last = {}
        self.lost = 0
        for t in topics:
            self.sock.setsockopt(zmq.SUBSCRIBE, t.encode())
        self._n = len(endpoints)
        # A handshake that succeeded (CURVE's included) is the point after
        # which the subscription goes out.
        self._mon = self.sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        for endpoint, key in endpoints:
            # libzmq takes a connection's CURVE keys when it connects, so
            # each publisher may have its own server key.
            secure(self.sock, curve_secret, key)
            self.sock.connect(endpoint)

    def wait_connected(self, timeout_s=20.0):
        """Returns True once the handshake with every publisher is done
        (and a moment later, when the subscription has reached them): from
        then on no event is missed. False after timeout_s."""
        up, end = 0, time.monotonic() + timeout_s
        while up < self._n and time.monotonic() < end:
            if self._mon.poll(100):
                self._mon.recv_multipart()
                up += 1
        self.sock.disable_monitor()
        self._mon.close(linger=0)
        time.sleep(0.5)
        return up == self._n

    def recv(self, timeout_ms=None):
        if not self.sock.poll(timeout_ms):
            return None
        topic, body = self.sock.recv_multipart()
        ev = zpipe_pb2.Message.FromString(body).event
        # seq counts per publisher process: a restarted daemon has a new
        # instance and starts again at 1.
        last = self._last.get(ev.instance)
        if last is not None and ev.seq > last + 1:
            self.lost += ev.seq - last - 1
        self._last[ev.instance] = ev.seq
        return topic.decode(), ev

    def close(self):
        self.sock.close(linger=0)


def as_dict(ev):
    d = json_format.MessageToDict(ev, preserving_proto_field_name=True)
    d["kind"] = zpipe_pb2.EventKind.Name(ev.kind)[len("EVENT_"):].lower()
    return d


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
