#!/usr/bin/python3
"""A script written for multiprocessing.Pool(processes=2), run once as is
and once with only the import changed: `dropin.py mp` or `dropin.py
zpipe` (default: $POOL, else mp). Prints one JSON object of everything it
saw (results, callbacks, exception types); the two runs must print the
same. Used by tests/integration/test_python_pool.py and the hosts test.
"""
import collections
import json
import os
import sys
import time

if (sys.argv[1:2] or [os.environ.get("POOL", "mp")])[0] == "zpipe":
    from zpipe import Pool
else:
    from multiprocessing import Pool
from multiprocessing import TimeoutError


class Boom(ValueError):
    pass


class Unpicklable(Exception):
    def __init__(self, a, b):  # pickles, but does not unpickle
        super().__init__("%s %s" % (a, b))


Point = collections.namedtuple("Point", "x y")


class Mine(Exception):
    """Defined in the script: comes back pickled as __mp_main__.Mine."""


def square(x):
    return x * x


def point(x):
    return Point(x, x * x)


def raise_mine(x):
    raise Mine("mine %d" % x)


def slow_feed(n):
    for i in range(n):
        time.sleep(0.05)
        yield i


def add(a, b):
    return a + b


def kw(a, b=0, *, c=0):
    return [a, b, c]


def fails_at_7(x):
    if x == 7:
        raise Boom("seven")
    return x


def key_error(x):
    return {}[x]


def slow(x):
    time.sleep(x)
    return x


def main():
    out = {}
    with Pool(processes=2) as p:
        out["map"] = p.map(square, range(100))
        out["map_chunk7"] = p.map(square, range(1000), chunksize=7)
        out["map_empty"] = p.map(square, [])
        out["map_gen"] = p.map(square, (i for i in range(33)))
        out["imap"] = list(p.imap(square, range(50)))
        out["imap_chunk3"] = list(p.imap(square, range(50), chunksize=3))
        out["imap_unordered"] = sorted(p.imap_unordered(square, range(200),
                                                        chunksize=5))
        out["starmap"] = p.starmap(add, [(i, i + 1) for i in range(30)])
        out["starmap_async"] = p.starmap_async(add, [(1, 2), (3, 4)]).get(60)
        out["apply"] = p.apply(add, (2, 3))
        out["apply_kw"] = p.apply(kw, (1,), {"b": 2, "c": 3})
        got, errs = [], []
        rs = [p.apply_async(add, (i, 1), callback=got.append,
                            error_callback=errs.append) for i in range(20)]
        rs.append(p.apply_async(fails_at_7, (7,), callback=got.append,
                                error_callback=lambda e: errs.append(
                                    type(e).__name__)))
        for r in rs:
            r.wait(60)
        out["apply_async_callbacks"] = sorted(got)
        out["apply_async_errors"] = errs
        out["successful"] = [r.successful() for r in rs]
        mapped = []
        p.map_async(square, range(10), callback=mapped.append).wait(60)
        out["map_async_callback"] = mapped
        for name, call in [
                ("map_raises", lambda: p.map(fails_at_7, range(20))),
                ("map_raises_chunk1",
                 lambda: p.map(fails_at_7, range(20), chunksize=1)),
                ("apply_raises", lambda: p.apply(key_error, ("k",))),
                ("async_get_raises",
                 lambda: p.map_async(fails_at_7, range(10)).get(60))]:
            try:
                call()
                out[name] = "no exception"
            except Exception as e:
                out[name] = [type(e).__name__, str(e),
                             type(e.__cause__).__name__,
                             "Traceback" in str(e.__cause__)]
        seen = []
        try:
            for x in p.imap(fails_at_7, range(10)):
                seen.append(x)
        except Boom as e:
            seen.append(type(e).__name__)
        out["imap_raises_in_place"] = seen
        try:
            p.apply_async(slow, (3,)).get(timeout=0.05)
            out["get_timeout"] = "no timeout"
        except TimeoutError:
            out["get_timeout"] = "TimeoutError"
        r = p.apply_async(slow, (0.01,))
        r.wait(60)
        out["ready"] = [r.ready(), r.successful(), r.get()]
        pts = p.map(point, range(5))
        out["script_class_results"] = [type(x).__name__ for x in pts] + \
            [list(x) for x in pts]
        try:
            p.apply(raise_mine, (3,))
            out["script_class_raised"] = "no exception"
        except Mine as e:
            out["script_class_raised"] = ["Mine", str(e)]
        except Exception as e:
            out["script_class_raised"] = [type(e).__name__, str(e)]
        called = []
        r = p.map_async(square, [], callback=called.append)
        out["map_async_empty"] = [r.get(60), called]
    # close() while imap's input is still being read: every item comes.
    p = Pool(processes=2)
    it = p.imap(square, slow_feed(8))
    p.close()
    out["imap_then_close"] = list(it)
    p.join()
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
