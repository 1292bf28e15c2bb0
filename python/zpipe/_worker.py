"""What runs on the workers for zpipe.Pool: the python plugin calls
run_chunk (func=zpipe._worker:run_chunk, codec=pickle) once per task.

A task's payload is the pickled tuple (init, func, args, star): init is
None or the pickled (initializer, initargs) of the Pool, func the pickled
function, args the pickled list of the chunk's arguments, star 0 (f(a)),
1 (f(*a)) or 2 (f(*a, **k) for a = (args, kwds)). The function and the
arguments are pickled apart so that one that does not unpickle here (a
module missing on this host) is reported like an exception of the task.

run_chunk returns ("ok", [results]) or ("err", exception or None,
type name, message, traceback text); the plugin pickles it. An exception
with a true `retryable` attribute (zpipe.Retry) is raised instead, so that
the plugin fails the task as retryable and zpipe runs it again.
"""
import pickle
import traceback

_inits_done = set()   # the initializers this process has run
_funcs = {}           # pickled function -> function, the last few


def _load_func(data):
    f = _funcs.get(data)
    if f is None:
        f = pickle.loads(data)
        if len(_funcs) > 64:
            _funcs.clear()
        _funcs[data] = f
    return f


def _error(e):
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
    init, func, args, star = task
    try:
        if init is not None and init not in _inits_done:
            initializer, initargs = pickle.loads(init)
            _inits_done.add(init)
            initializer(*initargs)
        f = _load_func(func)
        items = pickle.loads(args)
        if star == 0:
            return ("ok", [f(a) for a in items])
        if star == 1:
            return ("ok", [f(*a) for a in items])
        return ("ok", [f(*a, **k) for a, k in items])
    except Exception as e:
        if getattr(e, "retryable", False):
            raise
        return _error(e)
