#!/usr/bin/env python3
"""Callers that hold their connections, for workers_limits_test (Debian's
/usr/bin/python3 with python3-h2).

  conn_hold.py PORT CERT KEY CA
      Reads commands on stdin, one a line, and answers each with one line:
        open SRC N [l4]
                     opens N mTLS connections to 127.0.0.1:PORT from address
                     SRC, one after another, each with a GET /hello; each
                     stays open. "served=X refused=Y": X answered 200, Y
                     closed (or reset) before an answer. With l4 they offer
                     ALPN wisp-l4 (an L4 tunnel to the app, an h2c server:
                     the GET is the app's own answer), else h2.
        open-h1 PORT N
                     the same with plaintext HTTP/1.1 keep-alive callers of
                     127.0.0.1:PORT (a --route listener).
        cut SRC N    N connections from SRC cut in their TLS handshake (a
                     partial ClientHello, or none), every other one with a
                     reset: "cut=N".
        again        one more GET /hello on every connection held:
                     "served=X refused=Y" again.
        close N      closes the N connections opened first: "held=M".
        quit         closes them all and exits.
      Every connection step is bounded (STEP_TIMEOUT); stdin's end is quit.
"""
import socket
import ssl
import struct
import sys

import h2.config
import h2.connection
import h2.events
import h2.exceptions

STEP_TIMEOUT = 10.0


def connect(src, port):
    raw = socket.socket(socket.AF_INET)
    raw.settimeout(STEP_TIMEOUT)
    raw.bind((src, 0))
    raw.connect(("127.0.0.1", port))
    return raw


class Caller:
    def __init__(self, ctx, port, src):
        self.s = ctx.wrap_socket(connect(src, port))
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.initiate_connection()
        self.s.sendall(self.h2.data_to_send())

    def get(self, port):
        """One GET /hello; True when it is answered 200."""
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(
            sid,
            [(":method", "GET"), (":scheme", "https"), (":authority", "127.0.0.1:%d" % port), (":path", "/hello")],
            end_stream=True,
        )
        self.s.sendall(self.h2.data_to_send())
        status = None
        for _ in range(1000):  # frames; each recv is bounded by the socket timeout
            data = self.s.recv(65536)
            if not data:
                return False
            for ev in self.h2.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    status = dict(ev.headers).get(b":status")
                elif isinstance(ev, h2.events.DataReceived):
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    self.s.sendall(self.h2.data_to_send())
                    return status == b"200"
                elif isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    return False
            self.s.sendall(self.h2.data_to_send())
        return False

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


class H1Caller(Caller):
    """A plaintext HTTP/1.1 keep-alive caller: an answer ends with its
    last chunk or its Content-Length."""

    def __init__(self, ctx, port, src):
        self.s = connect(src, port)

    def get(self, port):
        self.s.sendall(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        got = b""
        for _ in range(100):  # reads; each bounded by the socket timeout
            data = self.s.recv(65536)
            if not data:
                return False
            got += data
            head, sep, body = got.partition(b"\r\n\r\n")
            if sep and (body.endswith(b"0\r\n\r\n") or b"content-length: " + str(len(body)).encode() in head.lower()):
                return head.startswith(b"HTTP/1.1 200")
        return False


def cut(src, port, i):
    """A caller that leaves in its TLS handshake: half a ClientHello or
    nothing, then a close (every other one a reset)."""
    raw = connect(src, port)
    if i % 2:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if i % 3:
        raw.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(i % 40))
    raw.close()


def tls_context(cert, key, ca, alpn):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # SVIDs carry a SPIFFE URI, no DNS name
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols([alpn])
    return ctx


def main():
    port, cert, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    ctxs = {"h2": tls_context(cert, key, ca, "h2"), "l4": tls_context(cert, key, ca, "wisp-l4")}
    held = []
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        if cmd[0] in ("open", "open-h1"):
            served = refused = 0
            h1 = cmd[0] == "open-h1"
            kind, ctx = (H1Caller, None) if h1 else (Caller, ctxs["l4" if cmd[3:] == ["l4"] else "h2"])
            to = int(cmd[1]) if h1 else port
            for _ in range(int(cmd[2])):
                c = None
                try:
                    c = kind(ctx, to, "127.0.0.1" if h1 else cmd[1])
                    ok = c.get(to)
                except (ssl.SSLError, OSError, h2.exceptions.ProtocolError):
                    ok = False
                if ok:
                    held.append(c)
                    served += 1
                else:
                    if c:
                        c.close()
                    refused += 1
            print("served=%d refused=%d" % (served, refused), flush=True)
        elif cmd[0] == "cut":
            for i in range(int(cmd[2])):
                try:
                    cut(cmd[1], port, i)
                except OSError:
                    pass
            print("cut=%s" % cmd[2], flush=True)
        elif cmd[0] == "again":
            served = 0
            for c in held:
                try:
                    served += c.get(port)
                except (ssl.SSLError, OSError, h2.exceptions.ProtocolError):
                    pass
            print("served=%d refused=%d" % (served, len(held) - served), flush=True)
        elif cmd[0] == "close":
            for c in held[: int(cmd[1])]:
                c.close()
            held = held[int(cmd[1]) :]
            print("held=%d" % len(held), flush=True)
        else:
            print("unknown command %s" % cmd[0], flush=True)
    for c in held:
        c.close()


if __name__ == "__main__":
    main()
