#!/usr/bin/python3
"""At --webhook-max-connections (4), a real caller still in its TLS
handshake must not be the one evicted for an attacker's newcomer. The
attacker (from 127.0.0.2) fills every slot with connections holding half a
request; the caller (127.0.0.1) connects, and before it sends its
ClientHello the attacker opens one more connection; then the caller
finishes its handshake and posts REVIEW. Prints the caller's status line.
usage: evict.py PORT BUNDLE NAME REVIEW"""
import socket
import ssl
import sys
import time

port, bundle, name, review = int(sys.argv[1]), sys.argv[2], sys.argv[3], open(sys.argv[4], "rb").read()
plain = ssl.create_default_context()
plain.check_hostname = False
plain.verify_mode = ssl.CERT_NONE
held = []


def attacker():
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.2", 0))
    t = plain.wrap_socket(s)
    t.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\n")  # half a head: the connection is busy
    held.append(t)


for _ in range(4):
    attacker()
time.sleep(0.2)  # the agent has them all
caller = socket.create_connection(("127.0.0.1", port), timeout=10)
time.sleep(0.2)  # accepted: the caller is in its handshake
attacker()       # the fifth: someone makes room
time.sleep(0.2)
try:
    ctx = ssl.create_default_context(cafile=bundle)
    t = ctx.wrap_socket(caller, server_hostname=name)
    t.sendall(b"POST /mutate HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
              b"Connection: close\r\n\r\n" % (name.encode(), len(review)) + review)
    line = t.makefile("rb").readline().decode().strip()
    print(line or "no answer: the connection closed")
except OSError as e:
    print("the caller failed: %s" % e)
for t in held:
    t.close()
