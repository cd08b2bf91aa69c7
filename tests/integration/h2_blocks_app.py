"""A raw h2c app whose answers' header blocks misbehave per path, for
h2_blocks_test (wisp's upstream side): blocks over CONTINUATIONs, with
RST_STREAM / GOAWAY / PRIORITY or another stream's block inside them,
trailers after a reset, a block on a stream never opened, huge and
many-field blocks, binary values.

  h2_blocks_app.py PORT"""
import socket
import struct
import sys
import threading
import time

from hpack import Decoder, Encoder

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINDOW, CONT = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
ES, EH, ACK = 1, 4, 1
def frame(t, fl, sid, p=b""):
    return struct.pack(">I", len(p))[1:] + struct.pack(">BBI", t, fl, sid) + p
def split(sid, blk, parts, es=False, between=b""):
    n = max(1, -(-len(blk) // parts))
    ch = [blk[i:i + n] for i in range(0, len(blk), n)] or [b""]
    out = b""
    for i, p in enumerate(ch):
        last = i == len(ch) - 1
        out += frame(HEADERS if i == 0 else CONT, (EH if last else 0) | (ES if es and i == 0 else 0), sid, p)
        if not last: out += between
    return out
RST8 = struct.pack(">I", 8)

def respond(conn, enc, sid, path, pend):
    ok = [(":status", "200"), ("content-type", "text/plain")]
    big = [("x-r%d" % i, "r" * 200) for i in range(10)]
    if path == "/cont":
        return split(sid, enc.encode(ok + big), 8) + frame(DATA, 0, sid, b"a" * 100) + split(sid, enc.encode([("grpc-status", "0")] + big), 8, es=True)
    if path == "/rst-mid":
        return split(sid, enc.encode(ok + big), 4, between=frame(RST, 0, sid, RST8))
    if path == "/goaway-mid":
        return split(sid, enc.encode(ok + big), 4, between=frame(GOAWAY, 0, 0, struct.pack(">II", sid, 0)))
    if path == "/prio-mid":
        return split(sid, enc.encode(ok + big), 4, between=frame(PRIORITY, 0, sid, struct.pack(">IB", 0, 16)))
    if path == "/rst-after":
        return split(sid, enc.encode(ok + big), 4) + frame(DATA, 0, sid, b"a" * 1000) + frame(RST, 0, sid, RST8)
    if path == "/rst-before-trailers":
        return split(sid, enc.encode(ok), 2) + frame(DATA, 0, sid, b"a" * 10) + frame(RST, 0, sid, RST8) + split(sid, enc.encode(big), 4, es=True)
    if path == "/trailers-rst-mid":
        return frame(HEADERS, EH, sid, enc.encode(ok)) + frame(DATA, 0, sid, b"a" * 10) + split(sid, enc.encode(big), 4, es=True, between=frame(RST, 0, sid, RST8))
    if path == "/interleave":
        pend.append(sid)
        if len(pend) < 2: return b""
        a, b = pend[0], pend[1]
        del pend[:]
        print("interleaved", a, b, flush=True)
        return split(a, enc.encode(ok + big), 3, between=split(b, enc.encode(ok), 1, es=True)) + frame(DATA, ES, a, b"x")
    if path == "/bin":
        v = bytes(range(0x80, 0x100)) + b'"\\\t'
        return frame(HEADERS, EH, sid, enc.encode([(b":status", b"200"), (b"x-bin", v), (b"grpc-message", v)])) + frame(DATA, ES, sid, b"b")
    if path == "/closed":
        return frame(HEADERS, EH | ES, sid, enc.encode(ok)) + split(sid, enc.encode(ok + big), 3, es=True)
    if path == "/idle-stream":
        return split(sid + 200, enc.encode(ok + big), 3, es=True) + frame(HEADERS, EH | ES, sid, enc.encode(ok))
    if path == "/huge":
        return split(sid, enc.encode(ok + [("x-huge", "h" * 60000)]), 8, es=True)
    if path == "/many":
        return split(sid, enc.encode(ok + [("x-%d" % i, "v") for i in range(2000)]), 8, es=True)
    return frame(HEADERS, EH, sid, enc.encode(ok)) + frame(DATA, ES, sid, b"ok")

def serve(conn):
    enc, dec = Encoder(), Decoder()
    dec.max_allowed_table_size = 65536
    buf = b""; got_preface = False; blk = {}; pend = []
    conn.sendall(frame(SETTINGS, 0, 0))
    conn.settimeout(1)
    idle = 0
    try:
        while idle < 30:
            try:
                d = conn.recv(65536)
            except socket.timeout:
                idle += 1
                if pend:  # an /interleave left alone: answered plainly
                    conn.sendall(respond(conn, enc, pend.pop(), "/", pend))
                continue
            idle = 0
            if not d: return
            buf += d
            if not got_preface:
                if len(buf) < 24: continue
                buf = buf[24:]; got_preface = True
            out = b""
            while len(buf) >= 9:
                n = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + n: break
                t, fl, sid, p = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff, buf[9:9 + n]
                buf = buf[9 + n:]
                if t == SETTINGS and not fl & ACK: out += frame(SETTINGS, ACK, 0)
                elif t == PING and not fl & ACK: out += frame(PING, ACK, 0, p)
                elif t in (HEADERS, CONT):
                    if t == HEADERS:
                        if fl & 0x8: p = p[1:len(p) - p[0]]
                        if fl & 0x20: p = p[5:]
                        blk[sid] = p
                    else:
                        blk[sid] = blk.get(sid, b"") + p
                    if fl & EH:
                        hs = dict((k.decode() if isinstance(k, bytes) else k, v) for k, v in dec.decode(blk.pop(sid), raw=True))
                        path = hs.get(":path", b"/").decode(errors="replace").split("?")[0]
                        out += respond(conn, enc, sid, path, pend)
            if out: conn.sendall(out)
    except Exception:
        pass
    finally:
        conn.close()

ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1]))); ls.listen(128)
end = time.time() + 300  # bounded: the test is done well before
ls.settimeout(5)
while time.time() < end:
    try:
        c, _ = ls.accept()
    except socket.timeout:
        continue
    threading.Thread(target=serve, args=(c,), daemon=True).start()
