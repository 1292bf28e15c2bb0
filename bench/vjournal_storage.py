"""What the ventilator's journal could be built on, measured on this machine
with the workload of vjournal_bench.c: one durable write per batch of 1,000
tasks of 16 bytes.

    /usr/bin/python3 bench/vjournal_storage.py [DIR ...] [--batches N]

For each DIR (default /tmp): fdatasync latency after a 20 KB append (our
journal's write per batch), SQLite in WAL mode with synchronous=FULL (one
transaction of 1,000 INSERTs per batch, and the same with synchronous=OFF
to show its CPU cost alone), and LMDB (python3-lmdb, one write transaction
of 1,000 puts per batch, synced) when it is installed.
"""
import argparse
import os
import sqlite3
import tempfile
import time

TASKS, BYTES = 1000, 16


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def report(name, batches, total, lat):
    print("%-26s %7.0f batches/s %9.0f tasks/s  commit p50 %.2f ms p99 %.2f ms"
          % (name, batches / total, batches * TASKS / total,
             pct(lat, 50) * 1e3, pct(lat, 99) * 1e3))


def bench_fdatasync(d, batches):
    path = os.path.join(d, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    buf = b"x" * (TASKS * (BYTES + 4))
    lat = []
    t0 = time.perf_counter()
    for _ in range(batches):
        os.write(fd, buf)
        ts = time.perf_counter()
        os.fdatasync(fd)
        lat.append(time.perf_counter() - ts)
    report("write 20 KB + fdatasync", batches, time.perf_counter() - t0, lat)
    os.close(fd)
    os.unlink(path)


def payloads(b):
    return [(b * TASKS + i, bytes((b * TASKS + i + k) & 255 for k in range(BYTES)))
            for i in range(TASKS)]


def bench_sqlite(d, batches, sync):
    path = os.path.join(d, "bench.sqlite")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=%s" % sync)
    db.execute("CREATE TABLE task (id INTEGER PRIMARY KEY, job TEXT, payload BLOB)")
    rows = [payloads(b) for b in range(batches)]
    lat = []
    t0 = time.perf_counter()
    for b in range(batches):
        ts = time.perf_counter()
        db.execute("BEGIN")
        db.executemany("INSERT INTO task VALUES (?, 'bench-job', ?)", rows[b])
        db.execute("COMMIT")
        lat.append(time.perf_counter() - ts)
    report("sqlite WAL synchronous=%s" % sync, batches,
           time.perf_counter() - t0, lat)
    db.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)


def bench_lmdb(d, batches):
    try:
        import lmdb
    except ImportError:
        print("lmdb: python3-lmdb is not installed")
        return
    path = os.path.join(d, "bench.lmdb")
    env = lmdb.open(path, map_size=1 << 32, subdir=True, sync=True,
                    metasync=True)
    rows = [[(i.to_bytes(8, "big"), p) for i, p in payloads(b)]
            for b in range(batches)]
    lat = []
    t0 = time.perf_counter()
    for b in range(batches):
        ts = time.perf_counter()
        with env.begin(write=True) as txn:
            for k, v in rows[b]:
                txn.put(k, v)
        lat.append(time.perf_counter() - ts)
    report("lmdb sync", batches, time.perf_counter() - t0, lat)
    env.close()
    for f in os.listdir(path):
        os.unlink(os.path.join(path, f))
    os.rmdir(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="*", default=["/tmp"])
    ap.add_argument("--batches", type=int, default=500)
    a = ap.parse_args()
    print("sqlite %s, batches of %d tasks of %d bytes" %
          (sqlite3.sqlite_version, TASKS, BYTES))
    for d in a.dirs:
        with tempfile.TemporaryDirectory(dir=d) as tmp:
            print("-- %s" % d)
            bench_fdatasync(tmp, a.batches)
            bench_sqlite(tmp, a.batches, "FULL")
            bench_sqlite(tmp, a.batches, "OFF")
            bench_lmdb(tmp, a.batches)


if __name__ == "__main__":
    main()
