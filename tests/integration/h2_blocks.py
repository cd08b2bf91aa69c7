"""Header blocks (HEADERS + CONTINUATIONs) as an attacker sends them to an
h2c listener (wisp's route port), for h2_blocks_test: each scenario on a
fresh connection, then what came back is checked against what a caller
should see (answers to complete requests, GOAWAY PROTOCOL_ERROR for a
block another frame interrupts). Prints "PASS name ..." or "FAIL name ...".

  h2_blocks.py PORT [SCENARIO...]"""
import random
import socket
import struct
import sys
import time

from hpack import Encoder

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINDOW, CONT = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
ES, EH, ACK = 1, 4, 1

def frame(t, fl, sid, p=b""):
    return struct.pack(">I", len(p))[1:] + struct.pack(">BBI", t, fl, sid) + p

class C:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.enc = Encoder()
        self.buf = b""
        self.s.sendall(PREFACE + frame(SETTINGS, 0, 0))
    def send(self, b):
        try:
            self.s.sendall(b)
        except OSError:
            pass
    def block(self, sid, hdrs):
        return self.enc.encode(hdrs)
    def req(self, sid, path="/", extra=(), method="GET"):
        return self.block(sid, [(":method", method), (":scheme", "http"), (":path", path), (":authority", "x")] + list(extra))
    def split(self, sid, blk, n, es=True, between=b""):
        """HEADERS + CONTINUATIONs of |n| bytes each; |between| after each frame but the last."""
        n = max(n, -(-len(blk) // 9))  # nghttp2 takes at most 8 CONTINUATIONs
        parts = [blk[i:i + n] for i in range(0, len(blk), n)] or [b""]
        out = []
        for i, p in enumerate(parts):
            last = i == len(parts) - 1
            fl = (EH if last else 0)
            if i == 0:
                out.append(frame(HEADERS, fl | (ES if es else 0), sid, p))
            else:
                out.append(frame(CONT, fl, sid, p))
            if not last:
                out.append(between)
        return b"".join(out)
    def drain(self, secs=1.0):
        end = time.time() + secs
        got = b""
        self.s.settimeout(0.2)
        while time.time() < end:
            try:
                d = self.s.recv(65536)
                if not d:
                    break
                got += d
            except socket.timeout:
                continue
            except OSError:
                break
        return got
    def close(self):
        try: self.s.close()
        except OSError: pass

def frames(b):
    out = []
    while len(b) >= 9:
        n = int.from_bytes(b[:3], "big")
        if len(b) < 9 + n: break
        out.append((b[3], b[4], int.from_bytes(b[5:9], "big") & 0x7fffffff, b[9:9 + n]))
        b = b[9 + n:]
    return out

def run(port, name, fn):
    c = C(port)
    try:
        got = fn(c) or b""
        got += c.drain(2.0)
        fs = frames(got)
        answers = len({sid for t, fl, sid, p in fs if t == HEADERS})
        resets = len({sid for t, fl, sid, p in fs if t == RST})
        goaway = [struct.unpack(">I", p[4:8])[0] for t, fl, sid, p in fs if t == GOAWAY]
        return answers, resets, goaway
    finally:
        c.close()

def sc_many_cont(c):
    for sid in range(1, 40, 2):
        extra = [("x-f%d" % i, "v" * 50) for i in range(30)]
        c.send(c.split(sid, c.req(sid, extra=extra), 7))
def sc_rst_mid(c):
    blk = c.req(1, extra=[("x-a", "b" * 200)])
    c.send(c.split(1, blk, 20, between=frame(RST, 0, 1, struct.pack(">I", 8))))
def sc_rst_other_mid(c):
    c.send(c.split(1, c.req(1), 1000, es=False))
    blk = c.req(3, extra=[("x-a", "b" * 200)])
    c.send(c.split(3, blk, 20, between=frame(RST, 0, 1, struct.pack(">I", 8))))
def sc_prio_mid(c):
    blk = c.req(1, extra=[("x-a", "b" * 200)])
    c.send(c.split(1, blk, 20, between=frame(PRIORITY, 0, 1, struct.pack(">IB", 0, 16))))
def sc_goaway_mid(c):
    blk = c.req(1, extra=[("x-a", "b" * 200)])
    c.send(c.split(1, blk, 20, between=frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0))))
def sc_cont_other_stream(c):
    blk = c.req(1, extra=[("x-a", "b" * 200)])
    b = c.split(1, blk, 50)
    # rewrite the second frame's stream id to 3
    fs = frames(b)
    out = b""
    for i, (t, fl, sid, p) in enumerate(fs):
        out += frame(t, fl, 3 if i == 1 else sid, p)
    c.send(out)
def sc_closed_stream(c):
    c.send(frame(HEADERS, EH | ES, 1, c.req(1)))
    got = c.drain(0.5)
    c.send(c.split(1, c.req(1, extra=[("x-b", "c" * 100)]), 10))
    return got
def sc_reset_then_headers(c):
    c.send(frame(HEADERS, EH, 1, c.req(1, method="POST")))
    c.send(frame(RST, 0, 1, struct.pack(">I", 8)))
    c.send(c.split(1, c.block(1, [("x-trailer", "t" * 100)]), 10))
    c.send(c.split(3, c.req(3), 5))
def sc_trailers(c):
    for sid in range(1, 20, 2):
        c.send(frame(HEADERS, EH, sid, c.req(sid, method="POST")))
        c.send(frame(DATA, 0, sid, b"x" * 100))
        c.send(c.split(sid, c.block(sid, [("x-trailer-%d" % i, "t" * 60) for i in range(20)]), 9))
def sc_trailers_rst(c):
    for sid in range(1, 20, 2):
        c.send(frame(HEADERS, EH, sid, c.req(sid, method="POST")))
        c.send(frame(DATA, 0, sid, b"x" * 100))
        c.send(frame(RST, 0, sid, struct.pack(">I", 8)))
        c.send(c.split(sid, c.block(sid, [("x-trailer", "t" * 60)]), 9))
def sc_huge(c):
    got = b""
    for sid, n in ((1, 8000), (3, 16000), (5, 60000), (7, 64000), (9, 200000)):
        c.send(c.split(sid, c.req(sid, extra=[("x-big", "h" * n)]), 16384))
        got += c.drain(0.3)
    return got
def sc_many_fields(c):
    for sid in (1, 3, 5):
        c.send(c.split(sid, c.req(sid, extra=[("x-%d" % i, "v") for i in range(3000)]), 997))
def sc_binary(c):
    for sid in range(1, 30, 2):
        v = bytes(random.randrange(0x80, 0x100) for _ in range(40)) + b"\t\"\\x" + bytes(random.randrange(0x80, 0x100) for _ in range(sid % 9))
        p = b"/p\x80\xff\"\\" + bytes([random.randrange(0x21, 0x100)]) * 7
        c.send(frame(HEADERS, EH | ES, sid, c.enc.encode([(b":method", b"GET"), (b":scheme", b"http"), (b":path", p if sid % 4 == 1 else b"/ok"), (b":authority", b"x"), (b"user-agent", v), (b"traceparent", v), (b"x-request-id", v)])))
def sc_concurrent(c):
    out = b""
    for sid in range(1, 600, 2):
        out += c.split(sid, c.req(sid, extra=[("x-q", "w" * 30)]), 13)
    c.send(out)
    got = c.drain(1)
    c.send(b"".join(frame(RST, 0, sid, struct.pack(">I", 8)) for sid in range(1, 600, 2)))
    return got
def sc_rst_after_headers(c):
    for sid in range(1, 200, 2):
        c.send(c.split(sid, c.req(sid, method="POST"), 11, es=False) + frame(RST, 0, sid, struct.pack(">I", 8)))
def sc_window_zero_rst(c):
    c.send(frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 0)))
    for sid in range(1, 100, 2):
        c.send(c.split(sid, c.req(sid, path="/big"), 11))
    got = c.drain(0.5)
    for sid in range(1, 100, 2):
        c.send(frame(RST, 0, sid, struct.pack(">I", 8)))
    return got
def sc_eof_mid(c):
    c.send(frame(HEADERS, 0, 1, c.req(1, extra=[("x-a", "b" * 100)])[:30]))



PROTOCOL_ERROR, STREAM_CLOSED = 1, 5
# What a caller sees, per scenario: answers (streams with a HEADERS
# back), and the GOAWAY code (None: none); an omitted item is not checked.
WANT = {
    "many_cont": dict(answers=20, goaway=None),
    "rst_mid": dict(goaway=PROTOCOL_ERROR),
    "rst_other_mid": dict(goaway=PROTOCOL_ERROR),
    "prio_mid": dict(goaway=PROTOCOL_ERROR),
    "goaway_mid": dict(goaway=PROTOCOL_ERROR),
    "cont_other_stream": dict(goaway=PROTOCOL_ERROR),
    "closed_stream": dict(answers=1, goaway=STREAM_CLOSED),
    "reset_then_headers": dict(goaway=STREAM_CLOSED),
    "trailers": dict(answers=10, goaway=None),
    "trailers_rst": dict(goaway=STREAM_CLOSED),
    "huge": dict(answers=4),  # 8,000 to 64,000 bytes answered (a 431 past the limit); 200,000 ends it
    "many_fields": dict(answers=0, goaway=None),
    "binary": dict(answers=15, goaway=None),
    "concurrent": dict(answers=100),  # the rest refused (--max-concurrent-streams 100)
    "rst_after_headers": dict(goaway=None),
    "window_zero_rst": dict(answers=50, goaway=None),
    "eof_mid": dict(answers=0),
}


def main():
    port = int(sys.argv[1])
    fails = 0
    for name in sys.argv[2:] or list(WANT):
        answers, resets, goaway = run(port, name, globals()["sc_" + name])
        got = dict(answers=answers, goaway=goaway[0] if goaway else None)
        bad = {k: (v, got[k]) for k, v in WANT[name].items() if got[k] != v}
        fails += bool(bad)
        print("FAIL" if bad else "PASS", name, "answers=%d resets=%d goaway=%s" % (answers, resets, goaway),
              "want/got %s" % bad if bad else "", flush=True)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
