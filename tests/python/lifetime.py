#!/usr/bin/python3
"""Ends a zpipe.Pool one way (argv[1]): with (exit from `with`),
closejoin, terminate, exit (interpreter exit, Pool never closed), sigkill
(waits to be killed). Prints a JSON line with the private cluster's
process group and pids once a map has run, so a test can check that none
of them is left."""
import json
import os
import sys
import time

from zpipe import Pool


def square(x):
    return x * x


def children(pids):
    """The pids whose parent is in pids (the workers' executors)."""
    out = []
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % pid) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) in pids:
                    out.append(int(pid))
        except (OSError, ValueError):
            pass
    return out


def report(p):
    """Once every worker has its executor (a Pool returns before its
    processes are up, and a map may finish on the first executor)."""
    c = p._local
    end = time.monotonic() + 10
    while len(children(c.pids())) < 2 and time.monotonic() < end:
        time.sleep(0.01)
    print(json.dumps({"pgid": c.pgid, "pids": c.pids(),
                      "executors": children(c.pids()), "dir": c.dir}),
          flush=True)


def main(how):
    if how == "with":
        with Pool(2) as p:
            assert p.map(square, range(100)) == [x * x for x in range(100)]
            report(p)
    elif how == "closejoin":
        p = Pool(2)
        r = p.map_async(square, range(100))
        report(p)
        p.close()
        p.join()
        assert r.get(0) == [x * x for x in range(100)]
    elif how == "terminate":
        p = Pool(2)
        p.map(square, range(10))
        report(p)
        p.apply_async(time.sleep, (30,))
        p.terminate()
    elif how == "exit":
        p = Pool(2)
        p.map(square, range(10))
        report(p)
    elif how == "sigkill":
        p = Pool(2)
        p.map(square, range(10))
        p.apply_async(time.sleep, (60,))  # an executor busy when we die
        report(p)
        time.sleep(120)


if __name__ == "__main__":
    main(sys.argv[1])
