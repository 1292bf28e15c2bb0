"""A SUB socket on a zpipe cluster's event publishers (the ventilator's
and the sink's --events): Client.events and examples/python/events.py."""
import time

import zmq
from google.protobuf import json_format

from . import zpipe_pb2
from .client import secure


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
    """An Event as a plain dict, its kind as worker_joined, task_failed..."""
    d = json_format.MessageToDict(ev, preserving_proto_field_name=True)
    d["kind"] = zpipe_pb2.EventKind.Name(ev.kind)[len("EVENT_"):].lower()
    return d
