#!/usr/bin/python3
"""Bench: x * x over 1,000,000 ints with the default chunksize, Pool(2).
`squares.py mp|zpipe [N]`; time the whole script."""
import os
import sys

if (sys.argv[1:2] or [os.environ.get("POOL", "mp")])[0] == "zpipe":
    from zpipe import Pool
else:
    from multiprocessing import Pool


def square(x):
    return x * x


if __name__ == "__main__":
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
    with Pool(2) as p:
        out = p.map(square, range(n))
    assert len(out) == n and out[-1] == (n - 1) ** 2
