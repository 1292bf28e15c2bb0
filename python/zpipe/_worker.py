"""What runs on the workers for zpipe.Pool: the python plugin calls
run_chunk (func=zpipe._worker:run_chunk, codec=pickle) once per task.

A task's payload is the pickled tuple (setup, func, args, star):
- setup: None or the Pool's pickled dict {"main": the caller's script or
  None, "argv": its sys.argv, "init": pickled (initializer, initargs) or
  None, "pool": unique to the Pool}, the same bytes for every task of a
  Pool. The first task of a
  Pool in a process sets sys.argv, runs main as __mp_main__ (as
  multiprocessing's spawn does, so a function pickled as __main__.f is
  found) and calls the initializer; later tasks only make that module
  sys.modules["__main__"] again (other Pools may share the executor);
- func: the pickled function; args: the pickled list of the chunk's
  arguments; star: 0 f(a), 1 f(*a), 2 f(*a, **k) for a = (args, kwds).
Everything is unpickled here, so a module missing on this host is an
exception of the task, not a refusal of the job.

run_chunk returns ("ok", [results]) or ("err", exception or None,
type name, message, traceback text); the plugin pickles it. An exception
with a true `retryable` attribute (zpipe.Retry) is raised instead, so that
the plugin fails the task as retryable and zpipe runs it again.
"""
import _pickle as pickle  # pickle's module imports re and more: 3 ms
import itertools
import sys
import types

_setups = {}   # setup bytes -> the main module (or None), once set up
bootstrapping = False  # running the caller's script: a Pool() now is a bug
_funcs = {}    # (setup, pickled function) -> function, the last few


def _run_main(path):
    """Runs the caller's script as __mp_main__, as multiprocessing.spawn's
    _fixup_main_from_path does (runpy.run_path, without importing runpy and
    the importlib machinery it brings: 1 to 2 ms of every executor's start),
    and returns the module."""
    global bootstrapping
    mod = types.ModuleType("__mp_main__")
    mod.__dict__.update(__file__=path, __cached__=None, __loader__=None,
                        __package__=None, __spec__=None)
    sys.modules["__mp_main__"] = sys.modules["__main__"] = mod
    bootstrapping = True
    try:
        with open(path, "rb") as f:
            code = compile(f.read(), path, "exec", dont_inherit=True)
        exec(code, mod.__dict__)
    finally:
        bootstrapping = False
    return mod


def _setup(data):
    if data in _setups:
        mod = _setups[data]
    else:
        if len(_setups) >= 16:  # a long-lived executor of many Pools
            _setups.clear()
        s = pickle.loads(data)
        if s.get("argv") is not None:
            sys.argv = list(s["argv"])
        mod = _run_main(s["main"]) if s.get("main") else None
        if s.get("init"):
            initializer, initargs = pickle.loads(s["init"])
            initializer(*initargs)
        _setups[data] = mod
    if mod is not None:
        sys.modules["__main__"] = sys.modules["__mp_main__"] = mod


def _load_func(setup, data):
    """The function pickled as data, for the Pool whose setup this is:
    `__main__.f` of one script is not another's (same bytes)."""
    key = (setup, data)
    f = _funcs.get(key)
    if f is None:
        f = pickle.loads(data)
        if len(_funcs) > 64:
            _funcs.clear()
        _funcs[key] = f
    return f


def _error(e):
    import traceback  # only on a failure: 2 ms less per executor start
    tb = traceback.format_exc()
    try:
        pickle.loads(pickle.dumps(e))
        exc = e
    except Exception:
        exc = None  # the caller gets a RemoteError with the text
    t = type(e)
    mod = "__main__" if t.__module__ == "__mp_main__" else t.__module__
    name = t.__qualname__ if mod == "builtins" else \
        "%s.%s" % (mod, t.__qualname__)
    return ("err", exc, name, str(e), tb)


def run_chunk(task):
    """Runs one chunk of a Pool call (see the module's comment)."""
    setup, func, args, star = task
    try:
        if setup is not None:
            _setup(setup)
        f = _load_func(setup, func)
        items = pickle.loads(args)
        # map and starmap, as the standard library's mapstar and starmapstar
        # (a little faster than a comprehension's frame per chunk).
        if star == 0:
            return ("ok", list(map(f, items)))
        if star == 1:
            return ("ok", list(itertools.starmap(f, items)))
        return ("ok", [f(*a, **k) for a, k in items])
    except Exception as e:
        if getattr(e, "retryable", False):
            raise
        return _error(e)
