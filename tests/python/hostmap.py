#!/usr/bin/python3
"""A larger map for the hosts test: `hostmap.py N [CHUNKSIZE]` runs
hostwork.digest over range(N) with `from zpipe import Pool` (the cluster
comes from ZPIPE_CLUSTER) through imap_unordered, so every result the Pool
yields is seen, duplicates included. Prints one JSON object: the results
as [x, digest, worker pid] in the order they came, and the seconds the map
took. The caller checks them."""
import json
import sys
import time

from zpipe import Pool

import hostwork


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    chunksize = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    with Pool(2) as p:
        t0 = time.monotonic()
        got = list(p.imap_unordered(hostwork.digest, range(n), chunksize))
        took = time.monotonic() - t0
    print(json.dumps({"results": got, "seconds": round(took, 3)}))


if __name__ == "__main__":
    main()
