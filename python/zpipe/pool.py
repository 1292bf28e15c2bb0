"""zpipe.Pool: multiprocessing.Pool's interface on a zpipe cluster.

    from zpipe import Pool          # instead of: from multiprocessing import Pool
    with Pool(2) as p:
        print(p.map(f, range(10)))

Pool(processes) starts a private local cluster (zpipe.cluster); with
cluster=... (or ZPIPE_CLUSTER) it uses a running one. The Pool is one job
on the cluster's intake, open while the Pool is: every chunk of every call
is one task run by the python plugin as zpipe._worker.run_chunk
(codec=pickle), and one thread (the engine) sends the tasks and reads the
records back by cursor, handing each chunk's results to its call.
"""
import _pickle as pickle  # pickle's own module costs an executor 3 ms more
import collections
import itertools
import os
import sys
import time
from . import _worker

# zmq, protobuf and the client are imported when a Pool starts, not with
# this module: a worker running the caller's main script (which imports
# zpipe) should not pay for them.
zc = zmq = None


def _timeout_error():
    """multiprocessing.TimeoutError, which callers catch; imported only
    when raised (multiprocessing costs a worker 5 to 10 ms to import)."""
    from multiprocessing import TimeoutError
    return TimeoutError()


def _load():
    global zc, zmq
    if zc is None:
        import importlib
        import zmq as _zmq
        _zc = importlib.import_module(__package__ + ".client")
        zc, zmq = _zc, _zmq

RUN = "run"
CLOSE = "close"
TERMINATE = "terminate"


def _package_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main_file():
    main = sys.modules.get("__main__")
    f = getattr(main, "__file__", None)
    return os.path.abspath(f) if f else None


def _parse_cluster(spec):
    """(Client, extras) from Pool(cluster=...): a Client, a dict of its
    arguments, or the text "ventilator=EP,sink=EP[,curve_secret=F,...]"
    (bare endpoints "INTAKE,SINK" are taken in that order). extras holds
    the Pool's own keys: main (1: the caller's script, or a file) and path
    (directories joined by ':'). name= is the cluster's name (--cluster)."""
    if isinstance(spec, zc.Client):
        return spec, {}
    if isinstance(spec, dict):
        kw = dict(spec)
    else:
        kw, bare = {}, []
        for part in str(spec).split(","):
            part = part.strip()
            if "=" in part and "://" not in part.split("=", 1)[0]:
                k, v = part.split("=", 1)
                kw[k.strip().replace("-", "_")] = v.strip()
            elif part:
                bare.append(part)
        if bare:
            kw.setdefault("ventilator", bare[0])
        if len(bare) > 1:
            kw.setdefault("sink", bare[1])
    if "intake" in kw:
        kw["ventilator"] = kw.pop("intake")
    if "name" in kw:
        kw["cluster"] = kw.pop("name")  # the cluster's name (--cluster)
    extras = {k: kw.pop(k) for k in ("main", "path") if k in kw}
    return zc.Client(**kw), extras


class ApplyResult:
    """multiprocessing's AsyncResult: get(timeout), wait(timeout),
    ready(), successful()."""

    def __init__(self, callback=None, error_callback=None):
        import threading  # here, not with the module: 1 ms of every
        # executor's start (it runs the caller's script, which imports zpipe)
        self._event = threading.Event()
        self._callback, self._error_callback = callback, error_callback
        self._success = None
        self._value = None

    def ready(self):
        return self._event.is_set()

    def successful(self):
        if not self.ready():
            raise ValueError("%r not ready" % self)
        return self._success

    def wait(self, timeout=None):
        self._event.wait(timeout)

    def get(self, timeout=None):
        self.wait(timeout)
        if not self.ready():
            raise _timeout_error()
        if self._success:
            return self._value
        raise self._value

    def _set(self, success, value):
        """Called once, by the engine."""
        self._success, self._value = success, value
        cb = self._callback if success else self._error_callback
        if cb:
            try:
                cb(value)
            except Exception:
                import traceback
                traceback.print_exc()
        self._event.set()

    # The engine's interface: one chunk's outcome.
    def _chunk(self, index, ok, value):
        if self.ready():
            return
        self._set(ok, value[0] if ok else value)


AsyncResult = ApplyResult


class MapResult(ApplyResult):
    """The result of map_async / starmap_async: a list in input order;
    the first failing chunk ends it with that chunk's exception."""

    def __init__(self, n_chunks, chunksize, length, callback, error_callback,
                 progress=None):
        super().__init__(callback, error_callback)
        self._parts = [None] * n_chunks
        self._left = n_chunks
        self._progress = progress
        if n_chunks == 0:  # as the stdlib: done, and no callback for it
            self._success, self._value = True, []
            self._event.set()

    def _chunk(self, index, ok, value):
        if self.ready():
            return
        if not ok:
            self._set(False, value)
            return
        self._parts[index] = value
        self._left -= 1
        if self._progress:
            self._progress.add(len(value))
        if self._left == 0:
            self._set(True, list(itertools.chain.from_iterable(self._parts)))
            self._parts = None


class IMapIterator:
    """The iterator of imap (input order) and imap_unordered (as chunks
    complete); next(timeout) as multiprocessing's."""

    def __init__(self, ordered, progress=None):
        import threading
        self._cond = threading.Condition()
        self._ordered = ordered
        self._done = {}               # ordered: chunk index -> (ok, value)
        self._items = collections.deque()
        self._next_chunk = 0
        self._length = None           # chunks, once all are known
        self._seen = 0
        self._progress = progress

    def __iter__(self):
        return self

    def _set_length(self, n):
        with self._cond:
            self._length = n
            self._cond.notify_all()

    def _chunk(self, index, ok, value):
        with self._cond:
            if self._progress and ok:
                self._progress.add(len(value))
            if self._ordered:
                self._done[index] = (ok, value)
                while self._next_chunk in self._done:
                    ok2, v = self._done.pop(self._next_chunk)
                    self._push(ok2, v)
                    self._next_chunk += 1
            else:
                self._push(ok, value)
            self._cond.notify_all()

    def _push(self, ok, value):
        self._seen += 1
        if ok:
            self._items.extend((True, x) for x in value)
        else:
            self._items.append((False, value))

    def next(self, timeout=None):
        with self._cond:
            end = None if timeout is None else time.monotonic() + timeout
            while not self._items:
                if self._length is not None and self._seen >= self._length:
                    raise StopIteration
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    raise _timeout_error()
                self._cond.wait(left)
            ok, v = self._items.popleft()
        if ok:
            return v
        raise v

    __next__ = next


class _Progress:
    """A one-line progress meter on stderr (items done, rate, elapsed)."""

    def __init__(self, total):
        self.total, self.done, self.t0, self.shown = total, 0, time.monotonic(), 0.0
        import threading
        self.lock = threading.Lock()

    def add(self, n):
        with self.lock:
            self.done += n
            now = time.monotonic()
            if now - self.shown < 0.1 and self.done != self.total:
                return
            self.shown = now
            el = now - self.t0
            rate = self.done / el if el > 0 else 0.0
            tot = "/%d" % self.total if self.total else ""
            pct = " %3d%%" % (100 * self.done // self.total) if self.total else ""
            sys.stderr.write("\rzpipe:%s %d%s items [%.1fs, %.0f it/s]" %
                             (pct, self.done, tot, el, rate))
            if self.total and self.done >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


class Pool:
    """A drop-in for multiprocessing.Pool on zpipe (see the module's
    comment and docs/python.md). processes: workers of the private
    cluster (default os.cpu_count()); initializer(*initargs) runs once per
    worker process before its first task; maxtasksperchild and context are
    accepted and ignored. zpipe's own: cluster (a running cluster: a
    Client, a dict of Client's arguments or "ventilator=EP,sink=EP,...";
    default ZPIPE_CLUSTER when it names endpoints), path (directories the
    workers put on sys.path; a local Pool passes the caller's sys.path),
    main (the script defining __main__'s functions; a local Pool passes
    the caller's), window (tasks a worker holds at once, local only),
    progress (a progress line on stderr when it is a terminal)."""

    def __init__(self, processes=None, initializer=None, initargs=(),
                 maxtasksperchild=None, context=None, *, cluster=None,
                 path=None, main=None, window=2, progress=False):
        if _worker.bootstrapping:
            # As multiprocessing's spawn: the caller's script is being run
            # on a worker to find its functions, and it starts a Pool at
            # import time (no `if __name__ == "__main__":` guard). Going on
            # would start a cluster per executor, each running the script.
            raise RuntimeError(
                "zpipe.Pool() was called while a worker was importing the "
                "main script: put the code that makes the Pool under "
                "`if __name__ == \"__main__\":`, as multiprocessing's spawn "
                "start method requires (docs/python.md)")
        if processes is not None and processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._processes = processes or os.cpu_count() or 1
        self._state = RUN
        self._local = None
        self._progress = progress and sys.stderr.isatty()
        init = pickle.dumps((initializer, tuple(initargs))) \
            if initializer else None
        env_cluster = os.environ.get("ZPIPE_CLUSTER", "")
        if cluster is None and "://" in env_cluster:
            cluster = env_cluster
        config = {"func": "zpipe._worker:run_chunk", "codec": "pickle"}
        if cluster is None:
            dirs = [_package_root()]
            dirs += [os.path.abspath(d or ".") for d in sys.path
                     if os.path.isdir(d or ".")]
            if path:
                dirs = list(path) + dirs
            config["path"] = ":".join(dict.fromkeys(dirs))
            if main in (None, True, 1):
                main = _main_file()
            from .cluster import LocalCluster
            self._local = LocalCluster(self._processes, config,
                                       window=window)
            client = None
        else:
            _load()
            client, extras = _parse_cluster(cluster)
            dirs = list(path or [])
            if extras.get("path"):
                dirs += str(extras["path"]).split(":")
            if dirs:
                config["path"] = ":".join(dirs)
            main = main or extras.get("main")
            if main in (True, 1, "1", "yes", "true"):
                main = _main_file()
        self._client = client
        # Run by zpipe._worker before the first task of this Pool in each
        # executor: the main script as __mp_main__ with the caller's argv
        # (as multiprocessing's spawn does), then the initializer.
        # "pool" makes each Pool's setup its own: an executor of a running
        # cluster runs the script again for the next Pool (an edited script
        # is seen) and never lends one script's __main__.f to another's.
        self._init = pickle.dumps({"main": main or None,
                                   "argv": list(sys.argv), "init": init,
                                   "pool": "%d-%d-%d" % (os.getpid(), id(self),
                                                         time.monotonic_ns())})
        # Classes of the caller's script come back pickled as
        # __mp_main__.X (the workers run it under that name): the caller's
        # __main__ answers to it, as multiprocessing arranges.
        if "__main__" in sys.modules:
            sys.modules.setdefault("__mp_main__", sys.modules["__main__"])
        from . import _engine  # not with this module: see _load
        try:
            if self._local:
                local = self._local
                self._engine = _engine.PipeEngine(local.task_fd,
                                                  local.record_fd)
                local.task_fd = local.record_fd = None  # the engine's now
                engine = self._engine

                def check():
                    why = local.dead(engine.ended)
                    return why and "the private cluster failed: %s\n%s" % (
                        why, local.log_tail())
                engine.check = check
            else:
                self._engine = _engine.ServiceEngine(client, config)
        except BaseException:
            self._stop_cluster()
            raise
        self._engine.start()

    # -- calls -------------------------------------------------------------

    def _check_running(self):
        if self._state != RUN:
            raise ValueError("Pool not running")

    def _submit(self, func, chunks, star, call):
        """Pickles the chunks and hands them to the engine as they are
        made (every 256 KiB or so), so the first ones are on their way
        while the rest are pickled."""
        fn = pickle.dumps(func)
        tasks, size = [], 0
        for i, c in enumerate(chunks):
            t = pickle.dumps((self._init, fn, pickle.dumps(c), star))
            tasks.append((t, call, i))
            size += len(t)
            if size >= 1 << 18:
                self._engine.submit(tasks)
                tasks, size = [], 0
        if tasks:
            self._engine.submit(tasks)

    @staticmethod
    def _chunks(iterable, chunksize):
        it = iter(iterable)
        while True:
            c = list(itertools.islice(it, chunksize))
            if not c:
                return
            yield c

    def _default_chunksize(self, n):
        chunksize, extra = divmod(n, self._processes * 4)
        return chunksize + 1 if extra else chunksize

    def _map_async(self, func, iterable, star, chunksize, callback,
                   error_callback):
        self._check_running()
        if not hasattr(iterable, "__len__"):
            iterable = list(iterable)
        if chunksize is None:
            chunksize = self._default_chunksize(len(iterable))
        if len(iterable) == 0:
            chunksize = 0
        n = len(iterable)
        n_chunks = -(-n // chunksize) if chunksize else 0
        prog = _Progress(n) if self._progress else None
        r = MapResult(n_chunks, chunksize, n, callback, error_callback, prog)
        if n_chunks:
            self._submit(func, self._chunks(iterable, chunksize), star, r)
        return r

    def apply_async(self, func, args=(), kwds={}, callback=None,
                    error_callback=None):
        self._check_running()
        r = ApplyResult(callback, error_callback)
        self._submit(func, [[(tuple(args), dict(kwds))]], 2, r)
        return r

    def apply(self, func, args=(), kwds={}):
        return self.apply_async(func, args, kwds).get()

    def map_async(self, func, iterable, chunksize=None, callback=None,
                  error_callback=None):
        return self._map_async(func, iterable, 0, chunksize, callback,
                               error_callback)

    def starmap_async(self, func, iterable, chunksize=None, callback=None,
                      error_callback=None):
        return self._map_async(func, iterable, 1, chunksize, callback,
                               error_callback)

    def map(self, func, iterable, chunksize=None):
        return self.map_async(func, iterable, chunksize).get()

    def starmap(self, func, iterable, chunksize=None):
        return self.starmap_async(func, iterable, chunksize).get()

    def _imap(self, func, iterable, chunksize, ordered):
        self._check_running()
        if chunksize < 1:
            raise ValueError("Chunksize must be 1+, not {0:n}".format(
                chunksize))
        n = len(iterable) if hasattr(iterable, "__len__") else 0
        it = IMapIterator(ordered, _Progress(n) if self._progress else None)
        # The input is read by a thread, as multiprocessing's task handler
        # does: imap returns at once, also on a long generator.
        fn = pickle.dumps(func)

        engine = self._engine

        def feed():
            i = 0
            try:
                for c in self._chunks(iterable, chunksize):
                    engine.submit([(pickle.dumps(
                        (self._init, fn, pickle.dumps(c), 0)), it, i)])
                    i += 1
            except Exception as e:
                it._chunk(i, False, e)
                i += 1
            finally:
                it._set_length(i)
                engine.feed_ended()
        engine.feed_started()
        import threading
        threading.Thread(target=feed, daemon=True).start()
        return it

    def imap(self, func, iterable, chunksize=1):
        return self._imap(func, iterable, chunksize, True)

    def imap_unordered(self, func, iterable, chunksize=1):
        return self._imap(func, iterable, chunksize, False)

    # -- lifetime ----------------------------------------------------------

    def close(self):
        """No more calls; join() then waits for the queued ones."""
        if self._state == RUN:
            self._state = CLOSE
            self._engine.finishing = True
            self._engine.wake()

    def join(self):
        """Waits for every call to finish, then stops the cluster (after
        close() or terminate())."""
        if self._state == RUN:
            raise ValueError("Pool is still running")
        if self._state == CLOSE:
            self._engine.join()
        self._stop_cluster()

    def terminate(self):
        """Stops at once: unfinished calls never complete."""
        self._state = TERMINATE
        self._engine.stop()
        self._engine.join(5)
        self._stop_cluster()

    def _stop_cluster(self):
        if self._local:
            self._local.stop()

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, *exc):
        self.terminate()

    def __del__(self):
        if getattr(self, "_state", None) == RUN:
            if getattr(self, "_engine", None):
                self._engine.stop()
            if getattr(self, "_local", None):
                self._local.stop()

    def __reduce__(self):
        raise NotImplementedError("pool objects cannot be passed between "
                                  "processes or pickled")
