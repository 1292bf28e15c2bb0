#!/usr/bin/python3
"""Bench: Pool(2).map(f, the lines of FILE, chunksize=1) with the trivial f
of trivial.py, the row the python plugin (`zpipe run --plugin python
--config func=trivial:f`) is compared with. `lines.py FILE`."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trivial  # noqa: E402
from multiprocessing import Pool  # noqa: E402

if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        lines = f.read().splitlines()
    with Pool(2) as p:
        out = p.map(trivial.f, lines, chunksize=1)
    assert out == lines
