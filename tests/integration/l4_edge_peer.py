#!/usr/bin/python3
"""Drives an inbound L4 tunnel (ALPN wisp-l4, mTLS) into the one state that
lost the tail of uploads before commit c8df34c, on purpose, then checks the
app gets every byte.
  l4_edge_peer.py IN_PORT APP_PORT PKI_DIR PENDING
The state: the tunnel's buffer toward the app holds TUN_BUF_MAX bytes, the
last TLS record was read only in part (PENDING bytes of it are still inside
the proxy's SSL) and the proxy's socket from the caller is empty; the caller
then sends nothing more and keeps the connection open. Once the app reads,
only the tunnel itself can move those PENDING bytes: no socket event will.

How it gets there without guessing: the app does not read while the caller
sends one TLS record at a time; after each, the caller waits until the
proxy has taken the record off its socket and stopped writing toward the app
(/proc/net/tcp: the proxy's receive queue from the caller is empty, and the
bytes it has written toward the app, the app's receive queue plus the
proxy's unacknowledged send queue, stay the same). Sent minus written is
what the proxy holds: its buffer plus what is left in its SSL. The next
record is sized so that it crosses TUN_BUF_MAX by PENDING bytes. The state
is checked (held > TUN_BUF_MAX) before the app starts reading.

Prints "same" when the app got every byte, else what it got; "setup: ..."
if the state could not be reached. Loopback only; every wait is bounded."""
import fcntl
import hashlib
import os
import socket
import ssl
import struct
import sys
import termios
import threading
import time

IN, APP, PKI, PENDING = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
TUN_BUF_MAX = 64 * 1024      # proxy/dataplane/wisp_tunnel.c
RECORD_MAX = 16384           # TLS plaintext per record
POLL_S = 0.01
STABLE_POLLS = 10            # the proxy's state unchanged this many polls in a row
CONFIRM_POLLS = 100          # ... before the app starts reading
WAIT_POLLS = 1000            # at most ~10 s per wait
MAX_STEPS = 1024
APP_READ_TIMEOUT_S = 5       # the app gives up this long after the last byte came


def tcp_queues(local_port, remote_port):
    """(tx_queue, rx_queue) of the IPv4 socket local_port -> remote_port."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            lp = int(fields[1].split(":")[1], 16)
            rp = int(fields[2].split(":")[1], 16)
            if lp == local_port and rp == remote_port:
                tx, rx = fields[4].split(":")
                return int(tx, 16), int(rx, 16)
    return None


def fionread(sock):
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small, fixed window toward the app
ls.bind(("127.0.0.1", APP))
ls.listen(4)
ls.settimeout(10)

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.load_verify_locations(PKI + "/ca/ca.crt")
ctx.load_cert_chain(PKI + "/frontend.crt", PKI + "/frontend.key")
ctx.set_alpn_protocols(["wisp-l4"])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", IN), timeout=10))
my_port = s.getsockname()[1]
app, _ = ls.accept()  # the tunnel dials the app when the caller's connection is set up
proxy_app_port = app.getpeername()[1]


def written_toward_app():
    """Bytes the proxy has written toward the app (none read by it yet)."""
    q = tcp_queues(proxy_app_port, APP)
    return fionread(app) + (q[0] if q else 0)


def settle(sent, polls=STABLE_POLLS):
    """Waits until the proxy took everything off its socket from us and
    either wrote it all toward the app or stopped writing; returns the bytes
    written, or None."""
    last, same = -1, 0
    for _ in range(WAIT_POLLS):
        q = tcp_queues(IN, my_port)
        w = written_toward_app()
        if q is not None and q[1] == 0 and (w == sent or w == last):
            same += 1
            if w == sent or same >= polls:
                return w
        else:
            same = 0
        last = w
        time.sleep(POLL_S)
    return None


def send_record(n):
    chunk = os.urandom(n)
    s.sendall(chunk)  # n <= 16384: one TLS record
    h.update(chunk)
    return n


h = hashlib.sha256()
sent, held = 0, 0
setup = None
for _ in range(MAX_STEPS):
    w = settle(sent)
    if w is None:
        setup = "the proxy did not settle"
        break
    held = sent - w
    print("sent %d, the proxy wrote %d toward the app and holds %d" % (sent, w, held), file=sys.stderr)
    if held > TUN_BUF_MAX:
        # The last record crossed the buffer's end. Confirmed over a longer
        # quiet spell, so that a proxy slow to write does not pass for it.
        w = settle(sent, CONFIRM_POLLS)
        held = sent - w if w is not None else held
        if w is not None and held > TUN_BUF_MAX:
            break
        setup = "held %d did not last" % held
        break
    room = TUN_BUF_MAX - held
    if held == 0:
        # Nothing held (the kernel's buffers toward the app still take it):
        # a buffer's worth less one byte, which the proxy can always take.
        sizes = [RECORD_MAX] * 3 + [RECORD_MAX - 1]
    elif room + PENDING <= RECORD_MAX:
        sizes = [room + PENDING]  # crosses the buffer's end by PENDING bytes
    else:
        sizes = [min(RECORD_MAX, room - 1)]  # towards it, never exactly onto it
    for n in sizes:
        sent += send_record(n)
else:
    setup = "not reached in %d steps" % MAX_STEPS
if setup:
    print("setup: %s (sent %d, held %d)" % (setup, sent, held))
    sys.exit(1)

# The caller is silent from here on, its connection open. The app reads.
got = hashlib.sha256()
n_got = 0
app.settimeout(APP_READ_TIMEOUT_S)
try:
    while n_got < sent:
        d = app.recv(65536)
        if not d:
            break
        got.update(d)
        n_got += len(d)
except OSError:
    pass
if n_got == sent and got.hexdigest() == h.hexdigest():
    print("same")
else:
    print("differs: the app got %d of %d bytes (%d held in the proxy, %d of them past its buffer)"
          % (n_got, sent, held, held - TUN_BUF_MAX))
s.close()
app.close()
