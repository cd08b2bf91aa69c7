#!/usr/bin/python3
"""Holds connections to the webhook the way an attacker on the network
would, to show they cannot lock the API server out (webhook_test.sh).

    hold.py PORT BUNDLE NAME IDLE SLOW READY STOP

Opens IDLE plain TCP connections that never start TLS, then SLOW
slowloris ones: TLS handshake done, a request head sent a byte at a time.
Writes READY (how many it opened) once all are open, and keeps trickling
until the file STOP exists (or 60 s pass). Writes, per kind, how many the
server has closed to READY.closed at every round, and prints it at the end."""
import os
import socket
import ssl
import sys
import time

port, bundle, name = int(sys.argv[1]), sys.argv[2], sys.argv[3]
n_idle, n_slow, ready, stop = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
HEAD = b"POST /mutate HTTP/1.1\r\nHost: " + name.encode() + b"\r\nX-Pad: " + b"a" * 4096

ctx = ssl.create_default_context(cafile=bundle)
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(n_idle)]
closed = {"idle": set(), "slow": set()}
slow = []
for i in range(n_slow):
    raw = socket.create_connection(("127.0.0.1", port))
    try:
        s = ctx.wrap_socket(raw, server_hostname=name)
        s.send(HEAD[:1])
    except OSError:  # a server that refuses newcomers closes it at once
        s = raw
        closed["slow"].add(i)
    slow.append([s, 1])
with open(ready + ".tmp", "w") as f:
    f.write("%d\n" % (n_idle + n_slow))
os.rename(ready + ".tmp", ready)

deadline = time.monotonic() + 60
while not os.path.exists(stop) and time.monotonic() < deadline:
    for i, entry in enumerate(slow):
        if i in closed["slow"]:
            continue
        s, sent = entry
        try:
            s.send(HEAD[sent:sent + 1])
            entry[1] = sent + 1 if sent + 1 < len(HEAD) else 1
        except OSError:
            closed["slow"].add(i)
    for i, s in enumerate(idle):
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed["idle"].add(i)
        except BlockingIOError:
            pass
        except OSError:
            closed["idle"].add(i)
    with open(ready + ".closed.tmp", "w") as f:
        f.write("idle %d slow %d\n" % (len(closed["idle"]), len(closed["slow"])))
    os.rename(ready + ".closed.tmp", ready + ".closed")
    time.sleep(0.2)
print("idle closed %d of %d, slow closed %d of %d" % (len(closed["idle"]), n_idle, len(closed["slow"]), n_slow))
for s in idle + [e[0] for e in slow]:
    s.close()
