"""Raw HTTP/2 frames and connections for the attack suite.

python3-h2 keeps a peer well-behaved; an attacker is not, so the floods and
invalid frames are built here byte by byte (RFC 9113 section 4, HPACK per
RFC 7541 with static-table indexes and literals only, so no encoder state).
Loopback only: every connection goes to 127.0.0.1.
"""
import select
import socket
import ssl
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, \
    WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED = 0x1, 0x1, 0x4, 0x8

SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5

NO_ERROR, CANCEL = 0x0, 0x8
HOST = "127.0.0.1"


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags, stream) + payload


def settings(pairs=(), ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def ping(data=b"attack!!", ack=False):
    return frame(PING, ACK if ack else 0, 0, data)


def rst(stream, code=CANCEL):
    return frame(RST_STREAM, 0, stream, struct.pack(">I", code))


def window_update(stream, inc):
    return frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", inc))


def _hpack_int(value, prefix_bits, first):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name_index, value, indexed=False):
    """A header with a static-table name and a literal value: without
    indexing (0000xxxx), or with incremental indexing (01xxxxxx)."""
    v = value.encode() if isinstance(value, str) else value
    head = _hpack_int(name_index, 6, 0x40) if indexed else _hpack_int(name_index, 4, 0x00)
    return head + _hpack_int(len(v), 7, 0x00) + v


def literal_new_name(name, value, indexed=False):
    n = name.encode()
    v = value.encode() if isinstance(value, str) else value
    return (b"\x40" if indexed else b"\x00") + _hpack_int(len(n), 7, 0) + n + _hpack_int(len(v), 7, 0) + v


def indexed(index):
    return _hpack_int(index, 7, 0x80)


def request_block(path="/", method="GET", authority=HOST):
    """:method, :scheme http, :path, :authority (static indexes 2/3, 6, 4, 1)."""
    m = indexed(2) if method == "GET" else indexed(3) if method == "POST" else literal(2, method)
    return m + indexed(6) + literal(4, path) + literal(1, authority)


def headers(stream, block, end_stream=True, end_headers=True):
    flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
    return frame(HEADERS, flags, stream, block)


def connect(port, tls=None, timeout=5.0, source=None):
    """A TCP (or, with an SSLContext, TLS) connection to 127.0.0.1:port,
    from loopback address |source| if given (another caller's address)."""
    s = socket.create_connection((HOST, port), timeout=timeout, source_address=(source, 0) if source else None)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls is not None:
        s = tls.wrap_socket(s, server_hostname=None)
    return s


def mtls_context(cert, key, ca):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # SPIFFE IDs are URI SANs; the CA check is enough here
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    return ctx


class Reader:
    """Splits what a peer sends into frames; counts GOAWAY and RST_STREAM."""

    def __init__(self):
        self.buf = b""
        self.goaway = None  # error code of the first GOAWAY
        self.resets = 0
        self.responses = 0  # HEADERS frames
        self.frames = 0
        self.http1 = False  # the peer answered in HTTP/1
        self.stream = 0

    def feed(self, data):
        self.buf += data
        if self.frames == 0 and self.buf.startswith(b"HTTP/1."):
            # An HTTP/1 answer (a route listener serves HTTP/1 callers):
            # counted as a response, not parsed as frames.
            self.responses += 1
            self.frames += 1
            self.buf = b""
            self.http1 = True
        if self.http1:
            self.buf = b""
            return
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                break
            ftype, flags = self.buf[3], self.buf[4]
            self.stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF  # of the frame on_frame is given
            payload = self.buf[9:9 + length]
            self.buf = self.buf[9 + length:]
            self.frames += 1
            self.on_frame(ftype, flags, payload)

    def on_frame(self, ftype, flags, payload):
        if ftype == GOAWAY and self.goaway is None and len(payload) >= 8:
            self.goaway = struct.unpack(">I", payload[4:8])[0]
        elif ftype == RST_STREAM:
            self.resets += 1
        elif ftype == HEADERS:
            self.responses += 1

    def answered(self):
        return self.goaway is not None or self.resets > 0 or self.responses > 0


def _ready(sock, events, wait_s):
    """poll(), not select(): attack sockets are numbered past FD_SETSIZE."""
    p = select.poll()
    p.register(sock, events)
    return bool(p.poll(max(0, int(wait_s * 1000))))


def drain(sock, reader=None, wait=0.0):
    """Reads what is there (waiting up to |wait| s for the first bytes).
    False once the peer closed the connection."""
    try:
        ready = _ready(sock, select.POLLIN, wait)
        while ready:
            data = sock.recv(1 << 16)
            if not data:
                return False
            if reader is not None:
                reader.feed(data)
            ready = _ready(sock, select.POLLIN, 0) or (isinstance(sock, ssl.SSLSocket) and sock.pending())
    except (ConnectionError, ssl.SSLError, OSError):
        return False
    return True


def await_answer(sock, reader, timeout):
    """Until the peer answers (GOAWAY, RST_STREAM, HEADERS) or closes:
    True; False if it is silent for |timeout| s."""
    end = time.monotonic() + timeout
    while not reader.answered():
        left = end - time.monotonic()
        if left <= 0:
            return False
        if not drain(sock, reader, left):
            return True
    return True


def send_some(sock, data, budget_s):
    """Sends as much of |data| as the peer takes within budget_s (never
    blocking longer); returns bytes sent, or -1 if the connection broke."""
    sent = 0
    deadline = time.monotonic() + budget_s
    try:
        while sent < len(data):
            left = deadline - time.monotonic()
            if left <= 0 or not _ready(sock, select.POLLOUT, left):
                break
            try:
                sent += sock.send(data[sent:sent + (1 << 16)], socket.MSG_DONTWAIT) \
                    if not isinstance(sock, ssl.SSLSocket) else sock.send(data[sent:sent + (1 << 14)])
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                continue
    except (ConnectionError, ssl.SSLError, OSError):
        return -1
    return sent


def close(sock):
    try:
        sock.close()
    except OSError:
        pass
