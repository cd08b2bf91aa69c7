#!/usr/bin/env python3
"""An HTTP/2 CONNECT over h2c: h2_connect.py PORT AUTHORITY

Sends CONNECT AUTHORITY on one stream (no END_STREAM) and prints the
response's :status (or "reset CODE" / "timeout"). Exit 0; the caller checks."""
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events

port, authority = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, validate_outbound_headers=False))
c.initiate_connection()
c.send_headers(1, [(":method", "CONNECT"), (":authority", authority)])
s.sendall(c.data_to_send())
end = time.monotonic() + 10
result = "timeout"
while time.monotonic() < end and result == "timeout":
    try:
        data = s.recv(65536)
    except socket.timeout:
        continue
    if not data:
        result = "closed"
        break
    for ev in c.receive_data(data):
        if isinstance(ev, h2.events.ResponseReceived):
            result = dict((k.decode(), v.decode()) for k, v in ev.headers).get(":status", "?")
        elif isinstance(ev, h2.events.StreamReset):
            result = "reset %d" % ev.error_code
    s.sendall(c.data_to_send())
print(result)
