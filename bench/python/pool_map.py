#!/usr/bin/python3
"""Bench: the script a user writes instead of `zpipe run --plugin echo
--workers 2`: Pool(2).map of a function that returns its argument over
the lines of FILE, the results written to OUT one a line. Timed whole,
from interpreter start to exit (bench/run.py --whole).

    pool_map.py FILE OUT [CHUNKSIZE]    # no CHUNKSIZE: Pool.map's default
"""
import sys
from multiprocessing import Pool


def f(line):
    return line


if __name__ == "__main__":
    with open(sys.argv[1]) as fi:
        lines = fi.read().splitlines()
    with Pool(2) as pool:
        if len(sys.argv) > 3:
            out = pool.map(f, lines, int(sys.argv[3]))
        else:
            out = pool.map(f, lines)
    with open(sys.argv[2], "w") as fo:
        fo.write("".join(line + "\n" for line in out))
