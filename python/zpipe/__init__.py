"""zpipe for Python: Pool (multiprocessing.Pool on a zpipe cluster) and
Client (jobs of any plugin on a running cluster). Pure Python on Debian's
python3-zmq and python3-protobuf; zpipe_pb2, generated from zpipe.proto,
ships inside. See docs/python.md."""
from .client import Client, Job, Record, RefusedError
from .errors import RemoteError, RemoteTraceback, Retry
from .pool import AsyncResult, Pool

__all__ = ["Client", "Job", "Record", "RefusedError", "Pool", "AsyncResult",
           "RemoteError", "RemoteTraceback", "Retry"]
