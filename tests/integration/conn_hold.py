#!/usr/bin/env python3
"""mTLS HTTP/2 callers that hold their connections, for workers_limits_test
(Debian's /usr/bin/python3 with python3-h2).

  conn_hold.py PORT CERT KEY CA
      Reads commands on stdin, one a line, and answers each with one line:
        open SRC N   opens N connections to 127.0.0.1:PORT from address SRC,
                     one after another, each with a GET /hello; each stays
                     open. "served=X refused=Y": X answered 200, Y closed
                     (or reset) before an answer.
        again        one more GET /hello on every connection held:
                     "served=X refused=Y" again.
        close N      closes the N connections opened first: "held=M".
        quit         closes them all and exits.
      Every connection step is bounded (STEP_TIMEOUT); stdin's end is quit.
"""
import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.events
import h2.exceptions

STEP_TIMEOUT = 10.0


class Caller:
    def __init__(self, ctx, port, src):
        raw = socket.socket(socket.AF_INET)
        raw.settimeout(STEP_TIMEOUT)
        raw.bind((src, 0))
        raw.connect(("127.0.0.1", port))
        self.s = ctx.wrap_socket(raw)
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


def main():
    port, cert, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # SVIDs carry a SPIFFE URI, no DNS name
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    held = []
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        if cmd[0] == "open":
            served = refused = 0
            for _ in range(int(cmd[2])):
                c = None
                try:
                    c = Caller(ctx, port, cmd[1])
                    ok = c.get(port)
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
