#!/usr/bin/python3
"""A caller of an L4 tunnel and the TCP echo app behind it, for
--tunnel-idle-timeout (l4_idle_test).
  l4_idle_peer.py VIA PATTERN PORT APP_PORT PKI_DIR
VIA: "connect" (plain TCP to a route listener, an HTTP/1 CONNECT, the
tunnel's first bytes) or "l4" (mTLS with ALPN wisp-l4 to an inbound
listener, as a peer sidecar's raw TCP flow). PATTERN:
  silent: one byte echoed, then nothing; prints "closed" once the tunnel
          is closed (EOF or reset) within WAIT_S, and "app-closed" if the
          app's connection ended too, else "open after WAIT_S".
  active: a byte every 0.5 s for 3 s, each echoed; prints "alive" when all
          came back and the tunnel stayed open, else what happened.
Loopback only; every wait is bounded."""
import socket
import ssl
import sys
import threading
import time

VIA, PATTERN, PORT, APP, PKI = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
WAIT_S = 15.0  # the tunnel must close within this (timeout 1 s; loaded CI)
ACTIVE_BYTES, ACTIVE_GAP_S = 6, 0.5
IO_TIMEOUT_S = 5.0

ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", APP))
ls.listen(4)
ls.settimeout(WAIT_S)
app_closed = threading.Event()


def app():
    try:
        c, _ = ls.accept()
    except OSError:
        return
    c.settimeout(WAIT_S + ACTIVE_BYTES * ACTIVE_GAP_S + IO_TIMEOUT_S)
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
    except OSError:
        pass
    app_closed.set()
    c.close()


threading.Thread(target=app, daemon=True).start()

raw = socket.create_connection(("127.0.0.1", PORT), timeout=IO_TIMEOUT_S)
if VIA == "l4":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(PKI + "/ca/ca.crt")
    ctx.load_cert_chain(PKI + "/frontend.crt", PKI + "/frontend.key")
    ctx.set_alpn_protocols(["wisp-l4"])
    s = ctx.wrap_socket(raw)
    first = b""
else:
    s = raw
    first = b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n"


def echo(data):
    """Sends |data| and reads its echo: True when all of it came back."""
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        d = s.recv(len(data) - len(got))
        if not d:
            break
        got += d
    same = got.lower() == data.lower()  # the CONNECT head goes on with field names in lower case
    if not same:
        sys.stderr.write("sent %r, got back %r\n" % (data, got))
    return same


try:
    if not echo(first + b"p"):
        print("no echo through the tunnel")
        sys.exit(0)
except OSError as e:
    print("no echo through the tunnel: %r" % e)
    sys.exit(0)

if PATTERN == "silent":
    s.settimeout(WAIT_S)
    try:
        d = s.recv(1)
        state = "closed" if not d else "got %r" % d
    except socket.timeout:
        state = "open after %gs" % WAIT_S
    except OSError:
        state = "closed"  # a reset
    if state == "closed" and app_closed.wait(IO_TIMEOUT_S):
        state += " app-closed"
    print(state)
else:
    for i in range(ACTIVE_BYTES):
        time.sleep(ACTIVE_GAP_S)
        try:
            ok = echo(b"x")
        except OSError as e:
            ok = False
        if not ok:
            print("cut after %d of %d bytes" % (i, ACTIVE_BYTES))
            sys.exit(0)
    print("alive")
s.close()
