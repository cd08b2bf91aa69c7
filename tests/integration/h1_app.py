#!/usr/bin/env python3
"""An HTTP/1.1 app for h1_test, on Python's http.server (keep-alive,
HTTP/1.1 framing by the standard library): h1_app.py PORT [H2C_PORT]

With H2C_PORT, a connection that opens with the HTTP/2 preface is relayed
to the h2c app there: one port for both kinds of app connection
(--app-protocol auto).

  GET  /bytes?n=N   N zero bytes, chunked, written as they go
  GET  /hold?s=S    answers 200 after S seconds
  GET  /trailers    a chunked body with a trailer field x-trailer-test: yes
  POST /sha256      "<sha256 hex> <bytes>" of the body (Content-Length or chunked,
                    read as it arrives); x-request-chunked: yes|no
  GET with "Connection: Upgrade" and "Upgrade: echo"
                    101, then echoes every byte until the caller half-closes
  CONNECT           200, then echoes the same way
  POST /no-continue... with Expect: 100-continue
                    413 before the body (no 100), and the connection closed
  anything else     JSON: method, path, version, headers as the app saw them
"""
import hashlib
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s %s from_port=%d\n" % (self.command, self.path, self.request_version,
                                                      self.client_address[1]))
        sys.stdout.flush()

    def body_pieces(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                yield from self.read_exactly(size)
                self.rfile.readline()
        else:
            yield from self.read_exactly(int(self.headers.get("Content-Length", "0")))

    def read_exactly(self, left):
        while left:
            piece = self.rfile.read(min(left, 65536))
            if not piece:
                return
            left -= len(piece)
            yield piece

    def handle_expect_100(self):
        if not self.path.startswith("/no-continue"):
            return super().handle_expect_100()  # 100 Continue
        self.send_response(413)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        return False

    def send_text(self, status, text, extra=()):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def describe(self):
        body = sum(len(p) for p in self.body_pieces())
        self.send_text(200, json.dumps({
            "method": self.command, "path": self.path, "version": self.request_version,
            "headers": {k.lower(): v for k, v in self.headers.items()}, "body_bytes": body}))

    def chunked(self, pieces, trailers=()):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        if trailers:
            self.send_header("Trailer", ", ".join(k for k, _ in trailers))
        self.end_headers()
        for p in pieces:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
        self.wfile.write(b"0\r\n" + b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in trailers) + b"\r\n")

    def echo_after(self, status, fields):
        self.send_response(status)
        for k, v in fields:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.flush()
        while True:
            data = self.rfile.read1(65536)  # what came with the request first
            if not data:
                break
            self.wfile.write(data)
            self.wfile.flush()
        self.close_connection = True

    def do_CONNECT(self):
        self.echo_after(200, [])

    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "echo":
            self.echo_after(101, [("Upgrade", "echo"), ("Connection", "Upgrade")])
        elif self.path.startswith("/hold?s="):
            time.sleep(float(self.path.split("=", 1)[1]))
            self.send_text(200, "held", [])
        elif self.path.startswith("/bytes?n="):
            n = int(self.path.split("=", 1)[1])
            zeros = b"\0" * 65536

            def gen(left=n):
                while left:
                    k = min(left, len(zeros))
                    left -= k
                    yield zeros[:k]
            self.chunked(gen())
        elif self.path == "/trailers":
            self.chunked([b"body"], [("x-trailer-test", "yes")])
        else:
            self.describe()

    do_HEAD = do_DELETE = do_PUT = do_OPTIONS = describe

    def do_POST(self):
        if self.path == "/sha256":
            h, n = hashlib.sha256(), 0
            for p in self.body_pieces():
                h.update(p)
                n += len(p)
            chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
            self.send_text(200, "%s %d" % (h.hexdigest(), n), [("x-request-chunked", "yes" if chunked else "no")])
        else:
            self.describe()


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def relay(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    h2c_port = int(sys.argv[2]) if len(sys.argv) > 2 else 0

    def finish_request(self, request, client_address):
        if self.h2c_port and request.recv(len(PREFACE), socket.MSG_PEEK | socket.MSG_WAITALL) == PREFACE:
            up = socket.create_connection(("127.0.0.1", self.h2c_port))
            threading.Thread(target=relay, args=(up, request), daemon=True).start()
            relay(request, up)
            return
        super().finish_request(request, client_address)


Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
