#!/usr/bin/python3
"""Bench: the same job as pool_map.py on Dask distributed: a LocalCluster
of 2 single-threaded worker processes, client.map of a function that
returns its argument over the lines of FILE, the results written to OUT
one a line. Timed whole, from interpreter start to exit.

    dask_map.py FILE OUT
"""
import logging
import sys


def f(line):
    return line


if __name__ == "__main__":
    from dask.distributed import Client, LocalCluster
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with open(sys.argv[1]) as fi:
        lines = fi.read().splitlines()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        out = client.gather(client.map(f, lines, pure=False))
    with open(sys.argv[2], "w") as fo:
        fo.write("".join(line + "\n" for line in out))
