#!/usr/bin/python3
"""Bench: Pool(2) start to the first result of a 1-item map. `first.py
mp|zpipe` prints the seconds from Pool() to map's return."""
import os
import sys
import time

if (sys.argv[1:2] or [os.environ.get("POOL", "mp")])[0] == "zpipe":
    from zpipe import Pool
else:
    from multiprocessing import Pool


def square(x):
    return x * x


if __name__ == "__main__":
    t0 = time.perf_counter()
    p = Pool(2)
    assert p.map(square, [3]) == [9]
    print("%.4f" % (time.perf_counter() - t0))
    p.terminate()
