"""The Pool's engines: one thread each that sends a Pool's tasks and hands
every task's record back to the call it belongs to.

- PipeEngine, for a private local cluster: the tasks go to the
  ventilator's stdin as frames (`--input-format frames`: a 4-byte
  big-endian length, then the bytes) and the records come from the sink's
  stdout (`--format frames`: a 24-byte header, then output, cause and
  error). Only the standard library: the caller imports neither zmq nor
  protobuf, and results are not turned into JSON and back.
- ServiceEngine, for a running cluster: one job on the ventilator's
  intake and its records from the sink by cursor (zpipe.client).

Both keep the same books: outbox holds (payload, call, chunk index)
triples not yet sent, calls maps a task id to its (call, chunk index).
"""
import collections
import os
import _pickle as pickle  # pickle's module imports re and enum: 3 ms
import select
import struct
import threading
import time

from .cluster import close_fds
from .errors import RemoteError, with_remote_traceback

_BATCH_TASKS = 1024
_BATCH_BYTES = 1 << 20
MAX_TASK_BYTES = 64 << 20   # the ventilator's --max-task-bytes default
_HEADER = struct.Struct(">QBBHIII")
_FAILED, _RETRYABLE = 1, 2


class Rec:
    """One record (either transport): task, ok, output, cause, error."""

    __slots__ = ("task", "ok", "output", "cause", "error")

    def __init__(self, task, ok, output, cause="", error=""):
        self.task, self.ok, self.output = task, ok, output
        self.cause, self.error = cause, error


def failure(rec):
    """The exception for a failed record of zpipe's own (not a task's
    exception, which run_chunk returns as an "err" value)."""
    text = rec.error or rec.cause
    head, _, tb = text.partition("\n")
    name, _, msg = head.partition(": ")
    e = RemoteError(name if msg else "", msg or head, rec.cause)
    return with_remote_traceback(e, tb)


def _rebuild(value):
    """The caller-side exception for a ("err", ...) value."""
    _, exc, name, msg, tb = value
    if not isinstance(exc, BaseException):
        exc = RemoteError(name, msg, "python_exception")
    return with_remote_traceback(exc, tb)


class EngineBase(threading.Thread):
    """The books and the wake-up pipe; a subclass moves the bytes."""

    def __init__(self):
        super().__init__(name="zpipe-pool", daemon=True)
        self.lock = threading.Lock()
        self.outbox = collections.deque()   # (payload, call, chunk index)
        self.calls = {}                     # task id -> (call, chunk index)
        self.error = None                   # a fatal error: every call gets it
        self.stopping = False
        self.finishing = False              # close the job once all is sent
        self.feeds = 0                      # imap input threads running
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        # Never blocks: a full pipe is a wake-up already pending (a write
        # blocked under the lock would stop the engine, which takes it).
        os.set_blocking(self.wake_w, False)
        self.check = None                   # a callable -> error text or None

    def submit(self, tasks):
        """tasks: (payload, call, chunk index) triples. A payload over
        the cluster's task limit fails its own call, not the Pool."""
        ok = []
        for t in tasks:
            if len(t[0]) > MAX_TASK_BYTES:
                t[1]._chunk(t[2], False, RemoteError(
                    "ValueError", "a task of %d bytes (a pickled chunk) is "
                    "over zpipe's %d-byte task limit: use a smaller "
                    "chunksize" % (len(t[0]), MAX_TASK_BYTES), "zpipe"))
            else:
                ok.append(t)
        with self.lock:
            if self.error:
                raise self.error
            if self.wake_w is None:
                raise ValueError("Pool not running")
            self.outbox.extend(ok)
            self._poke()

    def _poke(self):
        """Wakes the engine's poll; under the lock (the pipe is closed
        under it when the engine ends, so a write never meets a reused
        descriptor)."""
        if self.wake_w is not None:
            try:
                os.write(self.wake_w, b"x")
            except (BlockingIOError, BrokenPipeError):
                pass  # a wake-up is already pending, or the engine is gone

    def wake(self):
        with self.lock:
            self._poke()

    def feed_started(self):
        with self.lock:
            self.feeds += 1

    def feed_ended(self):
        """An imap input thread is done: close() waits for these before
        it closes the job (else items read after close() were lost)."""
        with self.lock:
            self.feeds -= 1
            self._poke()

    def _take(self, max_tasks, max_bytes):
        """Up to max_tasks queued tasks (at least one) within max_bytes."""
        with self.lock:
            batch, size = [], 0
            while self.outbox and len(batch) < max_tasks and \
                    (not batch or size + len(self.outbox[0][0]) <= max_bytes):
                t = self.outbox.popleft()
                batch.append(t)
                size += len(t[0])
            return batch

    def _deliver(self, rec):
        entry = self.calls.pop(rec.task, None)
        if entry is None:
            return
        call, idx = entry
        if rec.ok:
            try:
                value = pickle.loads(rec.output)
            except Exception as e:
                call._chunk(idx, False, RemoteError(
                    type(e).__name__, "result did not unpickle: %s" % e))
                return
            if value[0] == "ok":
                call._chunk(idx, True, value[1])
            else:
                call._chunk(idx, False, _rebuild(value))
        else:
            call._chunk(idx, False, failure(rec))

    def _fail_all(self, err):
        """Every call with a task sent or still queued gets err."""
        with self.lock:
            self.error = err
            queued = [(call, idx) for _, call, idx in self.outbox]
            self.outbox.clear()
        for call, idx in list(self.calls.values()) + queued:
            call._chunk(idx, False, err)
        self.calls.clear()

    def _all_sent(self):
        return self.finishing and not self.feeds and not self.outbox

    def _checked(self, last):
        """Runs check() every 0.5 s; raises RuntimeError with its text,
        once what has arrived is delivered (_drain)."""
        now = time.monotonic()
        if self.check and now - last > 0.5:
            why = self.check()
            if why:
                self._drain()
                if self.calls:
                    raise RuntimeError(why)
            return now
        return last

    def _drain(self):
        """Delivers the records already waiting (a subclass's)."""

    def run(self):
        try:
            self._loop()
        except Exception as e:  # a refusal, a dead daemon: every call fails
            err = e if isinstance(e, RemoteError) else RemoteError(
                type(e).__name__, str(e), "zpipe")
            self._fail_all(err)
        self._finish()
        with self.lock:
            os.close(self.wake_w)
            self.wake_w = None
        os.close(self.wake_r)

    def _drain_wake(self):
        """Only after a poll saw the pipe readable: a wake-up drained
        before the loop's checks (stopping, the outbox) would be lost and
        the poll would sleep its full timeout."""
        try:
            os.read(self.wake_r, 4096)
        except BlockingIOError:
            pass

    def stop(self):
        self.stopping = True
        self.wake()


class PipeEngine(EngineBase):
    """A private cluster's engine: frames to the ventilator's stdin,
    records from the sink's stdout (see the module's comment)."""

    def __init__(self, task_fd, record_fd):
        super().__init__()
        self.task_fd, self.record_fd = task_fd, record_fd
        os.set_blocking(task_fd, False)
        os.set_blocking(record_fd, False)
        self.out = bytearray()              # frames not yet written
        self.parts, self.have = [], 0       # a record's start, its length
        self.need = 0                       # bytes that record needs
        self.next_task = 0                  # the next frame's task id
        self.ended = False                  # the job's input is closed

    def _pack(self):
        """Frames queued tasks while less than a batch is waiting."""
        while len(self.out) < _BATCH_BYTES and self.outbox:
            batch = self._take(_BATCH_TASKS, _BATCH_BYTES)
            first = self.next_task
            self.next_task += len(batch)
            out = self.out
            for i, (payload, call, idx) in enumerate(batch):
                self.calls[first + i] = (call, idx)
                out += struct.pack(">I", len(payload))
                out += payload

    def _write(self):
        try:
            n = os.write(self.task_fd, self.out)
        except BlockingIOError:
            return
        except BrokenPipeError:
            raise RuntimeError("the ventilator closed its input")
        del self.out[:n]

    def _read(self):
        """Reads what the sink wrote; False at its end. Whole records in
        a read are parsed in place (a result's bytes are a view of the
        read, not a copy); the start of a record split across reads
        waits in `parts` until `need` bytes are there, then is joined
        once (no copying the growing record at every read)."""
        try:
            data = os.read(self.record_fd, 1 << 20)
        except BlockingIOError:
            return True
        if not data:
            return False
        if self.parts:
            self.parts.append(data)
            self.have += len(data)
            if self.have < self.need:
                return True
            data = b"".join(self.parts)
            self.parts, self.have = [], 0
        view, pos, hs = memoryview(data), 0, _HEADER.size
        while len(data) - pos >= hs:
            task, flags, clen, _, olen, elen, _ = _HEADER.unpack_from(data,
                                                                      pos)
            end = pos + hs + olen + clen + elen
            if end > len(data):
                break
            o = pos + hs
            rec = Rec(task, not flags & _FAILED, view[o:o + olen])
            if flags & _FAILED:
                rec.cause = data[o + olen:o + olen + clen].decode(
                    errors="replace")
                rec.error = data[o + olen + clen:end].decode(errors="replace")
            self._deliver(rec)
            pos = end
        if pos < len(data):
            rest = data[pos:]
            self.parts, self.have = [rest], len(rest)
            if len(rest) >= hs:
                _, _, clen, _, olen, elen, _ = _HEADER.unpack_from(rest, 0)
                self.need = hs + olen + clen + elen
            else:
                self.need = hs
        return True

    def _drain(self):
        p = select.poll()
        p.register(self.record_fd, select.POLLIN)
        while p.poll(0):
            if not self._read():
                return

    def _loop(self):
        poller = select.poll()
        poller.register(self.wake_r, select.POLLIN)
        poller.register(self.record_fd, select.POLLIN)
        writing = False
        last = time.monotonic()
        while not self.stopping:
            self._pack()
            if self.out:
                self._write()
            want = bool(self.out)
            if want != writing:
                if want:
                    poller.register(self.task_fd, select.POLLOUT)
                else:
                    poller.unregister(self.task_fd)
                writing = want
            if self.task_fd is not None and not self.out and \
                    self._all_sent():
                os.close(self.task_fd)      # the job ends: no more tasks
                self.task_fd = None
                self.ended = True
            if self.task_fd is None and not self.calls:
                return
            last = self._checked(last)
            for fd, ev in poller.poll(500):
                if fd == self.wake_r:
                    self._drain_wake()
                elif fd == self.record_fd and not self._read():
                    raise RuntimeError("the sink's output ended")

    def _finish(self):
        close_fds(self.task_fd, self.record_fd)
        self.task_fd = self.record_fd = None


class ServiceEngine(EngineBase):
    """A running cluster's engine: the Pool is one job on its intake,
    open while the Pool is, and its records come by cursor."""

    def __init__(self, client, config):
        super().__init__()
        from . import client as zc
        import zmq
        self.zc, self.zmq = zc, zmq
        self.producer = client.producer("python", config=config)
        self.fetcher = zc.Fetcher(client.ctx, client.sink,
                                  self.producer.job_id,
                                  curve_secret=client.curve_secret,
                                  server_key=client.sink_key)

    def _pack(self):
        """Moves queued tasks into batches while the producer has room."""
        p = self.producer
        while len(p.queue) + len(p.sent) < self.zc.MAX_UNANSWERED + 1:
            batch = self._take(_BATCH_TASKS, _BATCH_BYTES)
            if not batch:
                return
            first = p.total
            for i, (_, call, idx) in enumerate(batch):
                self.calls[first + i] = (call, idx)
            p.send([t[0] for t in batch])

    def _loop(self):
        zmq = self.zmq
        poller = zmq.Poller()
        for s in self.producer.sockets() + self.fetcher.sockets():
            poller.register(s, zmq.POLLIN)
        poller.register(self.wake_r, zmq.POLLIN)
        last = time.monotonic()
        p = self.producer
        while not self.stopping:
            self._pack()
            if self._all_sent() and not p.closed and not p.queue and \
                    not p.sent:
                p.close()
            p.pump()
            if p.opened:
                for rec in self.fetcher.pump():
                    self._deliver(rec)
            if self.finishing and p.closed and not self.calls and \
                    not self.outbox:
                return
            last = self._checked(last)
            if dict(poller.poll(500)).get(self.wake_r):
                self._drain_wake()

    def _finish(self):
        p = self.producer
        if self.stopping and p.opened and not p.closed:
            self._close_quickly()
        p.shutdown()
        self.fetcher.shutdown()

    def _close_quickly(self):
        """terminate(): closes the job with the tasks the ventilator has
        (so a running cluster does not keep it open), for at most 2 s."""
        p = self.producer
        p.queue = collections.deque(x for x in p.queue if x[0])
        end = time.monotonic() + 2.0
        try:
            while (p.queue or p.sent) and time.monotonic() < end:
                p.pump()
                p.link.sock.poll(50)
            p.close()
            while not p.closed and time.monotonic() < end:
                p.pump()
                p.link.sock.poll(50)
        except Exception:
            pass
