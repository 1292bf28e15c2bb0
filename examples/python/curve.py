"""CURVE for a Python client of a secured zpipe cluster (see docs/deploy.md).

zpipe keygen writes czmq certificates, which pyzmq's zmq.auth reads:

    sock = ctx.socket(zmq.DEALER)
    secure(sock, "keys/client.key_secret", "keys/ventilator.key")
    sock.connect("tcp://vent-host:5561")

The client's public key (keys/client.key) must be in the server's
--curve-allow directory.
"""
import zmq.auth


def secure(sock, secret_file, server_key_file):
    """Makes sock a CURVE client; call before connect. A no-op without a
    secret file (a plaintext cluster)."""
    if not secret_file:
        return
    public, secret = zmq.auth.load_certificate(secret_file)
    if secret is None:
        raise ValueError("%s has no secret key" % secret_file)
    server, _ = zmq.auth.load_certificate(server_key_file)
    sock.curve_publickey, sock.curve_secretkey = public, secret
    sock.curve_serverkey = server
