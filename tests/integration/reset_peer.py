#!/usr/bin/python3
"""A peer sidecar (mTLS, SVID of orders, ALPN h2) that ends each connection
with a TCP reset (SO_LINGER 0) after some requests, in one of these ways:
  answer      answers every request it has, GOAWAY (last = the highest), RST
  goaway_low  answers none; GOAWAY with the lowest stream it has as last,
              which it counts as processed; RST
  endless     answers with HEADERS and DATA, then streams unknown-type
              frames as fast as the socket takes them, RST after a while
  mid_record  answers, then half of one TLS record holding a PING (h2c:
              half the PING frame), RST
  reset_peer.py PORT PKI_DIR MODE SECONDS LOG
TLS runs over memory BIOs, so the bytes on the wire are the peer's to cut.
PKI_DIR "-": plaintext h2c, as an app behind an inbound proxy.
LOG gets "recv PATH" for every request seen, "done PATH" for every request
the peer processed (answered, or at or below its GOAWAY's last stream).
Loopback only; it exits after SECONDS."""
import fcntl
import random
import select
import socket
import ssl
import struct
import sys
import termios
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

PORT, PKI, MODE, SECS, LOG = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
PLAIN = PKI == "-"
if not PLAIN:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(f"{PKI}/orders.crt", f"{PKI}/orders.key")
    ctx.load_verify_locations(f"{PKI}/ca/ca.crt")
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["h2"])


class PlainBIO:
    """Stands for the TLS object and its outgoing BIO in plaintext."""

    def __init__(self):
        self.buf = b""

    def write(self, data):
        self.buf += data
        return len(data)

    def read(self, n=-1):
        d, self.buf = self.buf, b""
        return d

    def do_handshake(self):
        pass


log_lock = threading.Lock()
logf = open(LOG, "a", buffering=1)
END = time.monotonic() + SECS
ENDLESS_BYTES = 32 << 20  # what one endless connection may send before its RST
# An HTTP/2 frame of a type nobody knows (0xbb, stream 0, 16 KiB): no flow
# control, ignored by the receiver.
UNKNOWN_FRAME = b"\x00\x40\x00\xbb\x00\x00\x00\x00\x00" + b"x" * 0x4000


def log(line):
    with log_lock:
        logf.write(line + "\n")


class Conn:
    def __init__(self, sock):
        self.sock = sock
        if PLAIN:
            self.tls = self.outb = PlainBIO()
        else:
            self.inb, self.outb = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = ctx.wrap_bio(self.inb, self.outb, server_side=True)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self.reqs = {}  # stream id -> path, requests complete (END_STREAM seen)
        self.paths = {}
        self.done = []  # requests processed, logged once their bytes left
        self.first = None

    def send_raw(self, data):
        self.sock.setblocking(True)
        self.sock.settimeout(10)
        self.sock.sendall(data)

    def wire(self):
        """The bytes for the wire of what was written so far."""
        return self.outb.read()

    def flush_h2(self):
        data = self.h2.data_to_send()
        if data:
            self.tls.write(data)
        self.send_raw(self.wire())

    def handshake(self):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                self.tls.do_handshake()
                self.send_raw(self.wire())
                return True
            except ssl.SSLWantReadError:
                self.send_raw(self.wire())
                r, _, _ = select.select([self.sock], [], [], 1)
                if r:
                    d = self.sock.recv(65536)
                    if not d:
                        return False
                    self.inb.write(d)
        return False

    def read_some(self, timeout):
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return True
        d = self.sock.recv(65536)
        if not d:
            return False
        plain = d if PLAIN else self.decrypt(d)
        if plain is None:
            return False
        for ev in self.h2.receive_data(plain):
            if isinstance(ev, h2.events.RequestReceived):
                self.paths[ev.stream_id] = dict(ev.headers).get(":path", "?")
                log("recv " + self.paths[ev.stream_id])
                if ev.stream_ended:
                    self.reqs[ev.stream_id] = self.paths[ev.stream_id]
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id in self.paths:
                self.reqs[ev.stream_id] = self.paths[ev.stream_id]
            elif isinstance(ev, h2.events.DataReceived):
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        if self.reqs and self.first is None:
            self.first = time.monotonic()
        self.flush_h2()
        return True

    def decrypt(self, d):
        """The plaintext of what came, None at close_notify."""
        self.inb.write(d)
        plain = b""
        while True:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                return plain
            if not chunk:
                return None
            plain += chunk

    def answer(self, sid, path, end=True):
        body = ("answer " + path).encode()
        if MODE == "answer":  # big: the proxy reads it over several wake-ups, writing between
            body += b"." * (32 << 10)
        body = body[: self.h2.local_flow_control_window(sid)]  # the stream's and the connection's
        self.h2.send_headers(sid, [(":status", "200"), ("content-length", str(len(body)))], end_stream=end and not body)
        step = self.h2.max_outbound_frame_size
        for i in range(0, len(body), step):
            self.h2.send_data(sid, body[i:i + step], end_stream=end and i + step >= len(body))
        self.done.append(path)

    def reset(self):
        # The RST goes once what was sent left (a crash after its last
        # write returned), as tests/inproc/h2peer's tp_app_reset_conn: at
        # most 10 s on a loaded machine. Only then are the requests it
        # processed logged: an RST drops what did not leave.
        for _ in range(10000):
            if struct.unpack("i", fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0] == 0:
                for path in self.done:
                    log("done " + path)
                break
            time.sleep(0.001)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def answer_all(self):
        for sid, path in sorted(self.reqs.items()):
            try:
                self.answer(sid, path)
            except h2.exceptions.StreamClosedError:
                pass  # the proxy reset it first
        self.reqs.clear()

    def finish(self):
        """The connection's end, by MODE."""
        if MODE == "answer":
            last = max(self.reqs)
            # Frames of an unknown type first (ignored by the receiver):
            # more than the proxy reads in one turn, so it writes between.
            self.tls.write(UNKNOWN_FRAME * 32)
            self.answer_all()
            self.h2.close_connection(last_stream_id=last)
            self.flush_h2()
        elif MODE == "goaway_low":
            last = min(self.reqs)
            self.done.append(self.reqs[last])  # the peer says it processed it
            self.h2.close_connection(last_stream_id=last)
            self.flush_h2()
        elif MODE == "mid_record":
            self.answer_all()
            self.flush_h2()
            self.tls.write(b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"12345678")  # a PING in one record
            rec = self.wire()
            self.send_raw(rec[: len(rec) // 2])
        elif MODE == "endless":
            for sid, path in sorted(self.reqs.items()):
                self.answer(sid, path, end=False)
            self.flush_h2()
            sent = 0  # unknown frames, as fast as the socket takes them
            self.sock.settimeout(0.5)
            while sent < ENDLESS_BYTES:
                self.tls.write(UNKNOWN_FRAME * 4)
                rec = self.wire()
                try:
                    self.sock.sendall(rec)
                except (socket.timeout, OSError):
                    break
                sent += len(rec)
        self.reset()

    def run(self):
        if not self.handshake():
            self.sock.close()
            return
        self.h2.initiate_connection()
        # Wide windows: the proxy keeps writing request bodies, so the
        # reset finds it writing (the failed write reads what came first).
        self.h2.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                                 h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16 << 20})
        self.h2.increment_flow_control_window(16 << 20)
        self.flush_h2()
        want = random.randint(1, 30)
        while time.monotonic() < END:
            if not self.read_some(0.005):
                break
            if self.reqs and (len(self.reqs) >= want or time.monotonic() - self.first > 0.02):
                self.finish()
                return
        self.sock.close()


def serve(s):
    try:
        Conn(s).run()
    except (OSError, ssl.SSLError, h2.exceptions.ProtocolError) as e:
        log("error %r" % e)
        s.close()


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", PORT))
ls.listen(64)
ls.settimeout(0.5)
while time.monotonic() < END:
    try:
        c, _ = ls.accept()
    except socket.timeout:
        continue
    threading.Thread(target=serve, args=(c,), daemon=True).start()
