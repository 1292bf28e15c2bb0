"""CURVE for a Python client of a secured zpipe cluster (see docs/deploy.md).

zpipe keygen writes czmq certificates, which pyzmq's zmq.auth reads:

    sock = ctx.socket(zmq.DEALER)
    secure(sock, "keys/client.key_secret", "keys/ventilator.key")
    sock.connect("tcp://vent-host:5561")

The client's public key (keys/client.key) must be in the server's
--curve-allow directory. This is zpipe.client.secure from the zpipe
package (build/python), which also takes the server key as Z85 text.
"""
from zpipe.client import secure  # noqa: F401
