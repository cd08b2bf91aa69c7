#!/usr/bin/python3
"""Peers that break HTTP/2 at the connection level with a request in flight
(the proxy's nghttp2 ends the session; the proxy must then close the
connection and fail its streams).

  conn_error_peer.py caller PORT wu0|ping|data0
      Opens a request for /slow?ms=5000, then sends the connection error
      and keeps its socket open: prints "closed" when the proxy closes the
      connection within 5 s, "open" otherwise.
  conn_error_peer.py app PORT SECONDS
      An h2c app answering the first request it ever gets with a
      connection error (DATA on stream 0) and later requests with 200.
Loopback only."""
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "attack"))
import wire  # noqa: E402

CLOSE_WAIT_S = 5.0
BAD = {"wu0": wire.window_update(0, 0), "ping": wire.frame(wire.PING, 0, 0, b"x" * 7),
       "data0": wire.frame(wire.DATA, 0, 0, b"x")}


def caller(port, kind):
    s = wire.connect(port, timeout=CLOSE_WAIT_S)
    s.sendall(wire.PREFACE + wire.settings() + wire.headers(1, wire.request_block("/slow?ms=5000")))
    time.sleep(0.3)  # the request reaches upstream first
    s.sendall(BAD[kind])
    end = time.monotonic() + CLOSE_WAIT_S
    while time.monotonic() < end:
        if not wire.drain(s, None, end - time.monotonic()):
            print("closed")
            return
    print("open")


def serve(c, first):
    c.settimeout(30)
    try:
        c.sendall(wire.settings() + wire.settings(ack=True))
        buf = b""
        while True:
            d = c.recv(65536)
            if not d:
                return
            buf += d
            if buf.startswith(wire.PREFACE):
                buf = buf[len(wire.PREFACE):]
            while len(buf) >= 9:
                ln = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + ln:
                    break
                t, sid = buf[3], struct.unpack(">I", buf[5:9])[0] & 0x7fffffff
                buf = buf[9 + ln:]
                if t != wire.HEADERS:
                    continue
                if first:
                    c.sendall(wire.frame(wire.DATA, 0, 0, b"x"))  # connection error, request in flight
                else:
                    c.sendall(wire.headers(sid, b"\x88"))  # :status 200, END_STREAM
    except OSError:
        pass
    finally:
        c.close()


def app(port, secs):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
    ls.settimeout(1)
    first = True
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(c, first), daemon=True).start()
        first = False


if __name__ == "__main__":
    if sys.argv[1] == "caller":
        caller(int(sys.argv[2]), sys.argv[3])
    else:
        app(int(sys.argv[2]), float(sys.argv[3]))
