#!/usr/bin/python3
"""Bench: a function burning about 1 ms of CPU over 4,000 items, Pool(2).
`burn.py mp|zpipe [N]`; time the whole script (interpreter start to
exit)."""
import os
import sys
import time

if (sys.argv[1:2] or [os.environ.get("POOL", "mp")])[0] == "zpipe":
    from zpipe import Pool
else:
    from multiprocessing import Pool


def burn(x):
    end = time.thread_time() + 0.001
    while time.thread_time() < end:
        pass
    return x


if __name__ == "__main__":
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    with Pool(2) as p:
        out = p.map(burn, range(n))
    assert out == list(range(n))
