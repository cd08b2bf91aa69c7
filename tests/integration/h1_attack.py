#!/usr/bin/env python3
"""Raw-bytes HTTP/1 attackers of h1_attack_test (issue 9).

h1_attack.py pipeline PORT N PATH END [WAIT]
    Sends N pipelined "GET PATH" requests in one write, waits WAIT seconds
    (default 0) and ENDs the connection: "close" (close(), a FIN), "rst"
    (SO_LINGER 0: a reset) or "half" (shutdown(SHUT_WR), then reads the
    answers to the end). Prints "sent=N answers=M" (M: status lines read
    before the end).
h1_attack.py midbody PORT SECONDS STOPFILE
    Resets: a loop of new connections, each a POST that closes mid-body
    (a premature reset upstream), until STOPFILE exists or SECONDS pass.
    Prints "sent=N".
h1_attack.py star PORT THREADS SECONDS
    On THREADS threads for SECONDS, a new connection each time sends
    "GET * HTTP/1.1" and reads the answer. Prints "conns=N" and the count of
    each status seen ("400=N ...").
h1_attack.py tunnels PORT N SECONDS STOPFILE
    Opens N "Upgrade: echo" requests, one after another, reads each one's
    status line and keeps every connection open; prints "opened=N" and the
    count of each status, then holds them for SECONDS or until STOPFILE.
h1_attack.py slowbody PORT CONNS INTERVAL SECONDS
    Opens CONNS connections, each a "POST /sha256" head with Content-Length
    1000000, prints "open=N", then sends each one body byte per INTERVAL
    seconds for SECONDS; prints "answers" and the count of each status."""
import socket
import struct
import sys
import time


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def count_answers(s, until):
    got = b""
    while time.monotonic() < until:
        s.settimeout(max(0.01, until - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        got += chunk
    return got.count(b"HTTP/1.1 ")


def pipeline(port, n, path, end, wait=0.0):
    s = connect(port)
    req = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode()
    s.sendall(req * n)
    answers = 0
    if wait:
        answers = count_answers(s, time.monotonic() + wait)
    if end == "rst":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    elif end == "half":
        s.shutdown(socket.SHUT_WR)
        answers += count_answers(s, time.monotonic() + 30)
        s.close()
    else:
        s.close()
    print("sent=%d answers=%d" % (n, answers))


def hold(port, conns, n, path, seconds, stopfile):
    import os
    req = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode()
    socks = []
    for _ in range(conns):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.sendall(req * n)
        socks.append(s)
    print("open=%d" % len(socks), flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end and not os.path.exists(stopfile):
        time.sleep(0.1)
    for s in socks:
        s.close()


def flood(port, conns, n):
    import threading
    req = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
    counts = []

    def one():
        s = connect(port)
        s.sendall(req * n)
        got = 0
        buf = b""
        end = time.monotonic() + 60
        while got < n and time.monotonic() < end:
            s.settimeout(max(0.01, end - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            buf += chunk
            got += buf.count(b"HTTP/1.1 200")
            buf = buf[buf.rfind(b"HTTP/1.1 200") + 1:] if b"HTTP/1.1 200" in buf else buf[-16:]
        s.close()
        counts.append(got)

    threads = [threading.Thread(target=one) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("answers=%d" % sum(counts))


def midbody(port, seconds, stopfile):
    import os
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end and not os.path.exists(stopfile):
        s = connect(port)
        s.sendall(b"POST /slow?ms=300 HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
        time.sleep(0.01)
        s.shutdown(socket.SHUT_WR)
        count_answers(s, time.monotonic() + 2)
        s.close()
        n += 1
    print("sent=%d" % n, flush=True)


def star(port, threads, seconds):
    import threading
    seen = {}
    conns = [0]

    def one():
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                s = connect(port)
                s.sendall(b"GET * HTTP/1.1\r\nHost: x\r\n\r\n")
                got = s.recv(256)
                s.close()
            except OSError:
                time.sleep(0.01)
                continue
            conns[0] += 1
            code = got[9:12].decode(errors="replace") or "none"
            seen[code] = seen.get(code, 0) + 1

    ts = [threading.Thread(target=one) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("conns=%d %s" % (conns[0], " ".join("%s=%d" % kv for kv in sorted(seen.items()))))


def tunnels(port, n, seconds, stopfile):
    import os
    req = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
    socks, seen = [], {}
    for _ in range(n):
        try:
            s = connect(port)
            s.sendall(req)
            code = s.recv(4096)[9:12].decode(errors="replace") or "none"
        except OSError:
            code = "err"
        else:
            socks.append(s)
        seen[code] = seen.get(code, 0) + 1
    print("opened=%d %s" % (len(socks), " ".join("%s=%d" % kv for kv in sorted(seen.items()))), flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end and not os.path.exists(stopfile):
        time.sleep(0.1)
    for s in socks:
        s.close()


def slowbody(port, conns, interval, seconds):
    import select
    head = b"POST /sha256 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
    socks = []
    for _ in range(conns):
        s = connect(port)
        s.sendall(head)
        socks.append(s)
    print("open=%d" % len(socks), flush=True)
    got = {s: b"" for s in socks}
    live = list(socks)
    end = time.monotonic() + seconds
    next_byte = time.monotonic() + interval
    while live and time.monotonic() < end:
        r, _, _ = select.select(live, [], [], 0.2)
        for s in r:
            try:
                chunk = s.recv(4096)
            except OSError:
                chunk = b""
            got[s] += chunk
            if not chunk:
                live.remove(s)
        if time.monotonic() >= next_byte:
            next_byte += interval
            for s in live:
                try:
                    s.send(b"x")
                except OSError:
                    pass
    seen = {}
    for s in socks:
        code = got[s][9:12].decode(errors="replace") or "none"
        seen[code] = seen.get(code, 0) + 1
        s.close()
    print("answers %s" % " ".join("%s=%d" % kv for kv in sorted(seen.items())), flush=True)


def main():
    cmd = sys.argv[1]
    if cmd == "pipeline":
        pipeline(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5],
                 float(sys.argv[6]) if len(sys.argv) > 6 else 0.0)
    elif cmd == "flood":
        flood(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "hold":
        hold(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], float(sys.argv[6]), sys.argv[7])
    elif cmd == "midbody":
        midbody(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
    elif cmd == "star":
        star(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    elif cmd == "slowbody":
        slowbody(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    elif cmd == "tunnels":
        tunnels(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
    else:
        sys.exit("unknown command " + cmd)


main()
