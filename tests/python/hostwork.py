"""A function module for the hosts test's larger map (tests/hosts): not the
caller's main script, so a worker finds it only through the Pool's `path`
setting (the tests/python folder, the same path on every namespace host).
"""
import hashlib
import os


def digest(x):
    """Returns x, the first 16 hex digits of sha256(str(x)), and the pid of
    the worker whose executor ran it (the executor's parent), so the caller
    can tell which host did each item."""
    return x, hashlib.sha256(str(x).encode()).hexdigest()[:16], os.getppid()
