"""The trivial task of the python plugin's benchmark row: bytes in, the
same bytes out (`zpipe run --plugin python --config func=trivial:f`)."""


def f(b):
    return b
