"""zpipe.Client: jobs of any plugin on a running zpipe cluster.

    c = zpipe.Client("tcp://vent:5561", "tcp://sink:5559")
    job = c.submit("sha256", [b"a", b"b"])
    for rec in job.results():        # commit order, resumes after a drop
        print(rec.task, rec.output)
    print(job.wait())                # JobStatus once every task has a record

The intake protocol (docs/protocol.md, "Producers") is spoken by
Producer: every message kept until its Ack, up to 4 batches unanswered,
everything unanswered sent again after a reconnect, a ventilator restart or
5 s of silence, the job's token in every batch and close. Records are read
from the sink by cursor (the sink needs --spool).
"""
import base64
import collections
import json
import os
import struct
import time

import zmq

from . import zpipe_pb2 as pb

MAX_UNANSWERED = 4     # batches waiting for their Ack (the intake queues 4)
# Out-of-order refusals in a row before one counts as final: each
# batch in flight may come late once, and two more rounds.
MAX_REFUSALS = MAX_UNANSWERED + 2
RESEND_S = 5.0         # silence after which the oldest message goes again


def _z85_key(key):
    """A server key given as Z85 text (40 characters) or a czmq
    certificate file."""
    if isinstance(key, bytes):
        return key
    if len(key) == 40 and not os.path.exists(key):
        return key.encode()
    import zmq.auth
    public, _ = zmq.auth.load_certificate(key)
    return public


def secure(sock, secret_file, server_key):
    """Makes sock a CURVE client (before connect), as the CLI's
    --curve-secret and --ventilator-key / --sink-key do. server_key is Z85
    text or a certificate file. A no-op without a secret file."""
    if not secret_file:
        return
    import zmq.auth
    public, secret = zmq.auth.load_certificate(secret_file)
    if secret is None:
        raise ValueError("%s has no secret key" % secret_file)
    if not server_key:
        raise ValueError("CURVE needs the server's public key")
    sock.curve_publickey, sock.curve_secretkey = public, secret
    sock.curve_serverkey = _z85_key(server_key)


class _Link:
    """A DEALER with a monitor that says when a dropped connection is
    back: what it had queued is lost, so the owner sends again."""

    def __init__(self, ctx, endpoint, secret, key):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.reconnect_ivl = 10  # the peer may bind a moment later
        self.sock.reconnect_ivl_max = 1000
        secure(self.sock, secret, key)
        self.monitor = self.sock.get_monitor_socket(
            zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        self.sock.connect(endpoint)
        self.connected = False

    def reconnected(self):
        """Reads the monitor; True when a connection came back after a
        drop (not the first one)."""
        back = False
        while self.monitor.poll(0):
            frames = self.monitor.recv_multipart()
            ev = struct.unpack("=hi", frames[0][:6])[0]
            if ev == zmq.EVENT_CONNECTED:
                back = back or self.connected is None
                self.connected = True
            elif ev == zmq.EVENT_DISCONNECTED:
                self.connected = None  # dropped: the next connect is a return
        return back

    def close(self):
        try:
            self.sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self.monitor.close(linger=0)
        self.sock.close(linger=0)


class RefusedError(RuntimeError):
    """The ventilator or the sink refused a message; the text is theirs."""


class Producer:
    """One job on a ventilator's intake, driven without blocking: open(),
    send(payloads) and close() queue messages; pump() sends and reads
    answers (call it when sockets() are readable, or at least every
    second). on_batch(first_id, n) is called as batches are acknowledged;
    `closed` is set when the close is. Used by Job and by zpipe.Pool."""

    def __init__(self, ctx, endpoint, plugin, config=None, priority=0,
                 deadline_ms=0, max_attempts=0, job_id=None, token=None,
                 curve_secret=None, server_key=None, cluster="",
                 on_batch=None):
        self.link = _Link(ctx, endpoint, curve_secret, server_key)
        self.job_id = job_id or "job-" + os.urandom(8).hex()
        self.token = token or os.urandom(16).hex()
        self.on_batch = on_batch
        self.queue = collections.deque()  # (seq, data, total) not yet sent
        self.sent = collections.deque()   # sent, unanswered, in order
        self.seq = 0
        self.total = 0
        self.opened = self.closed = self.finished = False
        # The ventilator's Acks say it takes TaskBatch.lines: batches not
        # yet sent go as lines (when no payload holds a newline).
        self.takes_lines = False
        self.finished_total = 0  # the job's total when it had finished
        self.instance = None
        self.refusals = 0  # out-of-order refusals since progress
        self.heard = time.monotonic()
        m = pb.Message()
        o = m.job_open
        o.job_id, o.token, o.plugin = self.job_id, self.token, plugin
        o.priority, o.deadline_ms, o.max_attempts = (priority, deadline_ms,
                                                     max_attempts)
        o.cluster = cluster or ""
        for k, v in (config or {}).items():
            o.config.add(key=str(k), value=str(v))
        self.queue.append((0, m.SerializeToString(), None))

    def sockets(self):
        return [self.link.sock, self.link.monitor]

    def send(self, payloads):
        """Queues one batch of payloads (bytes); returns the id its first
        task will have (ids follow the order batches are queued in). The
        batch is encoded when it is first sent, once the open's answer
        has said whether the ventilator takes lines."""
        self.seq += 1
        first = self.total
        self.total += len(payloads)
        self.queue.append((self.seq, list(payloads), None))
        return first

    def _encode(self, seq, payloads):
        """Batch seq's frame: its payloads as lines (one bytes field, no
        Task around each: 40 times less Python work a task) when the
        ventilator takes them and none holds a newline, else a Task
        each."""
        m = pb.Message()
        b = m.task_batch
        b.job_id, b.seq, b.token = self.job_id, seq, self.token
        if self.takes_lines and payloads:
            lines = b"\n".join(payloads) + b"\n"
            if lines.count(b"\n") == len(payloads):
                b.lines = lines
                return m.SerializeToString()
        for p in payloads:
            b.tasks.add(payload=p)
        return m.SerializeToString()

    def close(self):
        """Queues the job's close (its total: every task queued so far)."""
        m = pb.Message()
        c = m.job_close
        c.job_id, c.total, c.token = self.job_id, self.total, self.token
        self.queue.append((0, m.SerializeToString(), self.total))

    def idle(self):
        """True when every queued message has been answered."""
        return not self.queue and not self.sent

    def _may_send(self, seq, total):
        if not self.opened:
            return not self.sent  # the open alone
        if total is not None:
            return not self.sent  # the close once every batch is answered
        return len(self.sent) < MAX_UNANSWERED

    def pump(self):
        """Sends what may go, reads the answers; raises RefusedError."""
        if self.link.reconnected():
            self.refusals = 0
            self._resend_all()
        while self.link.sock.poll(0):
            self._answer(pb.Message.FromString(self.link.sock.recv()).ack)
        while self.queue and self._may_send(self.queue[0][0],
                                            self.queue[0][2]):
            item = self.queue.popleft()
            if self.finished:
                continue
            if isinstance(item[1], list):  # a batch, sent the first time
                item = (item[0], self._encode(item[0], item[1]), item[2])
            self.link.sock.send(item[1])
            if not self.sent:
                self.heard = time.monotonic()
            self.sent.append(item)
        if self.sent and time.monotonic() - self.heard > RESEND_S:
            self.link.sock.send(self.sent[0][1])  # nothing heard: ask again
            self.heard = time.monotonic()

    def _resend_all(self):
        for item in self.sent:
            self.link.sock.send(item[1])
        self.heard = time.monotonic()

    def _answer(self, ack):
        if ack.job_id != self.job_id or not self.sent:
            return
        restarted = self.instance not in (None, ack.ventilator_instance)
        self.instance = ack.ventilator_instance
        if restarted:
            self.refusals = 0
        if ack.ok:
            self.takes_lines = ack.takes_lines
        seq, _, total = self.sent[0]
        if not ack.ok:
            # Out of order (a batch lost on a dropped connection or a
            # restart): the refusal names the seq expected; send again
            # from it, as often as that happens, until MAX_REFUSALS in a
            # row with no progress and no restart between them (as zpipe
            # submit's window does). Any other refusal names the batch's
            # own seq: it comes back each time and is final after those.
            at = [i for i, s in enumerate(self.sent) if s[0] == ack.seq]
            if ack.seq and at and at[0] + 1 < len(self.sent) and \
                    self.refusals < MAX_REFUSALS:
                self.refusals += 1
                for item in list(self.sent)[at[0]:]:
                    self.link.sock.send(item[1])
                self.heard = time.monotonic()
                return
            raise RefusedError("ventilator refused job %s: %s" %
                               (self.job_id, ack.error))
        if not self.opened:
            if ack.seq != 0:
                return
            self.opened = True
            self.sent.popleft()
            if ack.finished:
                self.finished = self.closed = True
                self.finished_total = ack.accepted
                self.sent.clear()
                self.queue.clear()
            self.heard = time.monotonic()
            return
        matched = None
        for i, (s, _, t) in enumerate(self.sent):
            if s and ack.seq == s:
                matched = i
            elif not s and t is not None and ack.seq == 0 and \
                    ack.accepted == t:
                matched = i
        if matched is None:
            if restarted:
                self._resend_all()
            return  # an answer to a repeat
        s, _, t = self.sent[matched]
        del self.sent[matched]
        self.heard = time.monotonic()
        self.refusals = 0
        if s:
            if self.on_batch:
                self.on_batch(ack.first_task_id, ack.accepted)
        else:
            self.closed = True
        if restarted:
            self._resend_all()

    def shutdown(self):
        self.link.close()


class Record:
    """One record of a job, as the sink wrote it (JSON Lines): task,
    status ("ok" or "failed"), ok, output (bytes), cause, error,
    retryable, attempts, worker, elapsed_us; `raw` the whole dict, and
    `cursor` the cursor just after it (resume there)."""

    __slots__ = ("raw", "cursor", "task", "status", "ok", "output", "cause",
                 "error", "retryable", "attempts", "worker", "elapsed_us")

    def __init__(self, raw, cursor):
        self.raw, self.cursor = raw, cursor
        self.task = raw.get("task")
        self.status = raw.get("status")
        self.ok = self.status == "ok"
        if "output_b64" in raw:
            self.output = base64.b64decode(raw["output_b64"])
        else:
            self.output = raw.get("output", "").encode()
        self.cause = raw.get("cause", "")
        self.error = raw.get("error", "")
        self.retryable = raw.get("retryable", False)
        self.attempts = raw.get("attempts", 0)
        self.worker = raw.get("worker", "")
        self.elapsed_us = raw.get("elapsed_us", 0)

    def __repr__(self):
        return "Record(task=%r, status=%r, output=%r)" % (
            self.task, self.status, self.output[:60])


class Fetcher:
    """A job's records from the sink by cursor (ResultsRequest with wait),
    driven without blocking like Producer: pump() returns the records that
    came (a list of Record); `done` is set once the job's last record is
    read. One request is out at a time; it goes again after a reconnect
    or `resend_s` of silence, and answers for another cursor are dropped."""

    def __init__(self, ctx, endpoint, job_id, cursor=0, curve_secret=None,
                 server_key=None, max_bytes=4 << 20, resend_s=10.0):
        self.link = _Link(ctx, endpoint, curve_secret, server_key)
        self.job_id, self.cursor, self.max_bytes = job_id, cursor, max_bytes
        self.resend_s = resend_s
        self.done = False
        self.asked = None      # when the request went, None = none out
        self.retry_at = 0.0

    def sockets(self):
        return [self.link.sock, self.link.monitor]

    def _ask(self):
        m = pb.Message()
        r = m.results_request
        r.job_id, r.cursor, r.max_bytes, r.wait = (self.job_id, self.cursor,
                                                   self.max_bytes, True)
        self.link.sock.send(m.SerializeToString())
        self.asked = time.monotonic()

    def pump(self):
        """Sends the request when due, reads answers; returns new records.
        Raises RefusedError when the sink refuses (no spool, bad cursor)."""
        out = []
        if self.link.reconnected() and self.asked is not None:
            self._ask()
        while self.link.sock.poll(0):
            c = pb.Message.FromString(self.link.sock.recv()).results_chunk
            if c.job_id != self.job_id or c.cursor != self.cursor or \
                    self.asked is None:
                continue  # an answer to an earlier, repeated request
            self.asked = None
            if c.error == "unknown job":
                self.retry_at = time.monotonic() + 0.05  # not opened yet
                continue
            if c.error:
                raise RefusedError("sink: %s" % c.error)
            at = self.cursor
            for line in c.records.splitlines(keepends=True):
                at += len(line)
                out.append(Record(json.loads(line), at))
            self.cursor = c.next_cursor
            self.done = c.done
        now = time.monotonic()
        if not self.done and (self.asked is None and now >= self.retry_at or
                              self.asked is not None and
                              now - self.asked > self.resend_s):
            self._ask()
        return out

    def shutdown(self):
        self.link.close()


def _status_dict(st):
    return {
        "job_id": st.job_id,
        "state": pb.JobState.Name(st.state)[len("JOB_"):].lower(),
        "total": st.total, "done": st.done, "succeeded": st.succeeded,
        "failed": st.failed, "duplicates": st.duplicates,
        "retries": st.retries, "reduce_error": st.reduce_error,
    }


def _drive(parts, timeout_s):
    """Polls the parts' sockets once (up to timeout_s)."""
    poller = zmq.Poller()
    for p in parts:
        for s in p.sockets():
            poller.register(s, zmq.POLLIN)
    poller.poll(int(timeout_s * 1000))


_AGAIN = object()  # Job._call: ask again now


class Job:
    """A job submitted by Client.submit (or named by Client.job)."""

    def __init__(self, client, job_id, token=None, producer=None):
        self.client, self.id, self.token = client, job_id, token
        self.producer = producer
        self.total = producer.total if producer else None

    def results(self, cursor=0, timeout=None):
        """Yields the job's Records in commit order until the last; after
        a dropped connection it asks again from its cursor. A consumer
        that stops resumes with results(cursor=record.cursor)."""
        c = self.client
        f = Fetcher(c.ctx, c.sink, self.id, cursor, c.curve_secret,
                    c.sink_key)
        end = None if timeout is None else time.monotonic() + timeout
        try:
            while not f.done:
                for r in f.pump():
                    yield r
                if f.done:
                    break
                if end is not None and time.monotonic() > end:
                    raise TimeoutError("job %s: no end within %s s" %
                                       (self.id, timeout))
                _drive([f], 0.2)
        finally:
            f.shutdown()

    def take(self, timeout=10.0):
        """Tells the sink that the caller holds every record of the done
        job (read with results() to the end and kept where it keeps them):
        the sink deletes its copy, the job's spool file, and refuses the
        records from then on (RefusedError, "taken"); the job's status
        stays. Raises RefusedError when the job is not done or unknown."""
        m = pb.Message()
        m.results_request.job_id, m.results_request.take = self.id, True

        def answer(ch):
            if ch.error:
                raise RefusedError("sink: %s" % ch.error)
            return True if ch.taken else None
        self._call(m, "results_chunk", answer, timeout)

    def _status(self, wait, timeout):
        m = pb.Message()
        m.status_request.job_id, m.status_request.wait = self.id, wait

        def answer(sub):
            st = _status_dict(sub)
            if not wait or st["state"] == "done":
                return st
            return _AGAIN if st["state"] == "unknown" else None  # not open
        return self._call(m, "job_status", answer, timeout)

    def _call(self, m, kind, answer, timeout):
        """Sends m to the sink and waits for its answer of `kind` about
        this job, sending m again every 2 s (a restarted sink forgot it):
        answer(sub) gives what to return, None to wait on, or _AGAIN to
        ask again now (it may raise). TimeoutError after timeout s (None:
        never)."""
        c = self.client
        link = _Link(c.ctx, c.sink, c.curve_secret, c.sink_key)
        end = None if timeout is None else time.monotonic() + timeout
        data = m.SerializeToString()
        try:
            while True:
                link.sock.send(data)
                asked = time.monotonic()
                while time.monotonic() - asked < 2.0:
                    if end is not None and time.monotonic() > end:
                        raise TimeoutError("job %s: no answer within %s s"
                                           % (self.id, timeout))
                    if not link.sock.poll(100):
                        continue
                    msg = pb.Message.FromString(link.sock.recv())
                    if msg.WhichOneof("kind") != kind or \
                            getattr(msg, kind).job_id != self.id:
                        continue
                    got = answer(getattr(msg, kind))
                    if got is _AGAIN:
                        break
                    if got is not None:
                        return got
        finally:
            link.close()

    def status(self, timeout=10.0):
        """The sink's JobStatus now, as a dict: state (unknown, open,
        closed, done), total, done, succeeded, failed, duplicates,
        retries, reduce_error."""
        return self._status(False, timeout)

    def wait(self, timeout=None):
        """Blocks until every task has a record; returns status()."""
        return self._status(True, timeout)


class Client:
    """A running cluster: the ventilator's intake and the sink's control
    endpoint, CURVE as for the CLI (curve_secret: this client's
    certificate file; ventilator_key, sink_key: Z85 text or certificate
    files), the cluster's name, and the events endpoints (with their
    keys). Defaults come from the CLI's variables: ZPIPE_VENTILATOR,
    ZPIPE_SINK, ZPIPE_CURVE_SECRET, ZPIPE_VENTILATOR_KEY, ZPIPE_SINK_KEY,
    ZPIPE_CLUSTER (a name; a Pool's spec with endpoints is ignored here)."""

    def __init__(self, ventilator=None, sink=None, curve_secret=None,
                 ventilator_key=None, sink_key=None, cluster=None,
                 events=None):
        env = os.environ.get
        self.ventilator = ventilator or env("ZPIPE_VENTILATOR",
                                            "tcp://127.0.0.1:5561")
        self.sink = sink or env("ZPIPE_SINK", "tcp://127.0.0.1:5559")
        self.curve_secret = curve_secret or env("ZPIPE_CURVE_SECRET")
        self.ventilator_key = ventilator_key or env("ZPIPE_VENTILATOR_KEY")
        self.sink_key = sink_key or env("ZPIPE_SINK_KEY")
        name = env("ZPIPE_CLUSTER", "")
        if "://" in name:
            name = ""  # a Pool's cluster spec, not a name
        self.cluster = cluster if cluster is not None else name
        self.events_endpoints = events or []
        self.ctx = zmq.Context.instance()

    def producer(self, plugin, **kw):
        """A Producer for a new job on this cluster (see Producer)."""
        return Producer(self.ctx, self.ventilator, plugin,
                        curve_secret=self.curve_secret,
                        server_key=self.ventilator_key,
                        cluster=self.cluster, **kw)

    def submit(self, plugin, items, config=None, priority=0, deadline_ms=0,
               max_attempts=0, job_id=None, token=None, batch=1024,
               timeout=None, batch_bytes=1 << 20):
        """Submits items (bytes, or str sent as UTF-8) as one job of
        plugin with its settings `config` (a dict); returns the Job once
        the ventilator has taken every task and the close. A batch holds
        at most `batch` items and `batch_bytes` bytes of them (an item
        longer than that goes alone), so that none is bigger than the
        intake takes. The same job_id and token with the same items,
        batch and batch_bytes resume a job whose producer died
        (docs/protocol.md)."""
        p = self.producer(plugin, config=config, priority=priority,
                          deadline_ms=deadline_ms, max_attempts=max_attempts,
                          job_id=job_id, token=token)
        end = None if timeout is None else time.monotonic() + timeout
        try:
            chunk, size = [], 0
            for it in items:
                it = it.encode() if isinstance(it, str) else it
                if chunk and (len(chunk) == batch or
                              size + len(it) > batch_bytes):
                    p.send(chunk)
                    chunk, size = [], 0
                    self._settle(p, end, MAX_UNANSWERED)
                chunk.append(it)
                size += len(it)
            if chunk:
                p.send(chunk)
            p.close()
            self._settle(p, end, 0)
        finally:
            p.shutdown()
        return Job(self, p.job_id, p.token, p)

    @staticmethod
    def _settle(p, end, backlog):
        """Pumps p until at most backlog messages are unanswered."""
        while True:
            p.pump()
            if len(p.queue) + len(p.sent) <= backlog or p.finished:
                return
            if end is not None and time.monotonic() > end:
                raise TimeoutError("no answer from the ventilator")
            _drive([p], 0.5)

    def job(self, job_id):
        """A Job for an id submitted earlier (for results, wait, status)."""
        return Job(self, job_id)

    def events(self, topics=("",), endpoints=None, timeout=None):
        """Yields (topic, Event message) from the ventilator's and sink's
        --events publishers (endpoints: [(endpoint, server key or None)],
        default the Client's `events`). Stops after `timeout` seconds
        without an event (None: never)."""
        from .events import Events
        ev = Events(endpoints or self.events_endpoints, topics,
                    self.curve_secret)
        ev.wait_connected()  # from here on no event is missed
        try:
            while True:
                got = ev.recv(None if timeout is None else int(timeout * 1000))
                if got is None:
                    return
                yield got
        finally:
            ev.close()
