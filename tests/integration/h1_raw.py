#!/usr/bin/env python3
"""Raw HTTP/1 bytes to a listener: h1_raw.py PORT BYTES [--pause S] [--split]

BYTES is a Python string literal body (escapes such as \\r\\n are decoded).
Sends them, half-closes unless --keep-open, and prints what comes back until
the peer closes (bounded by --timeout). With --split, sends the bytes one at
a time (a head that arrives in many reads). Exit 0; the output is checked
by the caller. Prints "<closed>" when the server closed the connection
before the timeout, "<timeout>" otherwise."""
import argparse
import codecs
import socket
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("data")
ap.add_argument("--timeout", type=float, default=5.0)
ap.add_argument("--keep-open", action="store_true", help="do not half-close after sending")
ap.add_argument("--split", action="store_true")
a = ap.parse_args()

data = codecs.escape_decode(a.data.encode())[0]
s = socket.create_connection(("127.0.0.1", a.port), timeout=a.timeout)
if a.split:
    for i in range(len(data)):
        s.sendall(data[i:i + 1])
        time.sleep(0.001)
else:
    s.sendall(data)
if not a.keep_open:
    s.shutdown(socket.SHUT_WR)
got = b""
end = time.monotonic() + a.timeout
state = "<timeout>"
while time.monotonic() < end:
    s.settimeout(max(0.01, end - time.monotonic()))
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        break
    except ConnectionResetError:
        state = "<closed>"
        break
    if not chunk:
        state = "<closed>"
        break
    got += chunk
sys.stdout.write(got.decode("latin-1"))
print("\n" + state)
