#!/usr/bin/python3
"""zpipe.Pool cases beyond multiprocessing's (run with `from zpipe import
Pool` only): an exception type that does not unpickle in the caller is a
zpipe.RemoteError with the remote traceback; zpipe.Retry runs the chunk
again; initializer runs before the tasks; a task over the size limit fails
its call only; closed-pool errors. Prints one
JSON object. argv[1]: a scratch directory."""
import json
import os
import sys

import zpipe
from zpipe import Pool

SCRATCH = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
_init = {}


class Unpicklable(Exception):
    def __init__(self, a, b):  # pickles, but does not unpickle
        super().__init__("%s-%s" % (a, b))


def raise_unpicklable(x):
    raise Unpicklable(x, x)


def flaky(x):
    """Raises zpipe.Retry on the first attempt of each item."""
    mark = os.path.join(SCRATCH, "tried-%d" % x)
    if not os.path.exists(mark):
        open(mark, "w").close()
        raise zpipe.Retry("first attempt of %d" % x)
    return x + 100


def init(value):
    _init["v"] = value


def initialized(x):
    return _init.get("v", "none"), x


def main():
    out = {}
    with Pool(2, initializer=init, initargs=("set",)) as p:
        try:
            p.apply(raise_unpicklable, (1,))
        except zpipe.RemoteError as e:
            out["unpicklable"] = [e.type_name, e.message,
                                  "Traceback" in str(e.__cause__)]
        out["retry"] = p.map(flaky, range(4), chunksize=1)
        # The workers saw the caller's argv: the marks are in SCRATCH.
        out["retry_marks"] = sorted(f for f in os.listdir(SCRATCH)
                                    if f.startswith("tried-"))
        out["initializer"] = p.map(initialized, range(3))
        # A task over zpipe's 64 MiB limit fails its own call, not the
        # Pool: the next call runs.
        try:
            p.apply(len, (b"x" * (65 << 20),))
        except zpipe.RemoteError as e:
            out["oversized"] = [e.type_name, "chunksize" in e.message]
        out["after_oversized"] = p.map(len, ["ab", "c"])
        p.close()
        try:
            p.map(initialized, range(3))
        except ValueError as e:
            out["closed"] = str(e)
        p.join()
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
