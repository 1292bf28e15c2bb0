"""zpipe for Python: Pool (multiprocessing.Pool on a zpipe cluster) and
Client (jobs of any plugin on a running cluster). Pure Python on Debian's
python3-zmq and python3-protobuf; zpipe_pb2, generated from zpipe.proto,
ships inside. See docs/python.md."""
from .errors import RemoteError, RemoteTraceback, Retry
from .pool import AsyncResult, Pool


def __getattr__(name):
    # The client (zmq, protobuf) loads on first use: a worker that runs
    # the caller's script, which imports zpipe, does not pay for it.
    if name in ("Client", "Job", "Record", "RefusedError"):
        import importlib
        return getattr(importlib.import_module(__name__ + ".client"), name)
    raise AttributeError("module 'zpipe' has no attribute %r" % name)

__all__ = ["Client", "Job", "Record", "RefusedError", "Pool", "AsyncResult",
           "RemoteError", "RemoteTraceback", "Retry"]
