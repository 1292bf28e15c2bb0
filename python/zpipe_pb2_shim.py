"""zpipe_pb2 as a top-level module, for the tests and scripts that import
it so: the same module object as zpipe.zpipe_pb2 (the build copies this
file to build/python/zpipe_pb2.py). One module, so protobuf registers
zpipe.proto once."""
import sys

from zpipe import zpipe_pb2 as _pb2

sys.modules[__name__] = _pb2
